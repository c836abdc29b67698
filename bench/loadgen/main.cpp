// loadgen: the load generator every iolab measurement goes through.
//
// What it does
//   Drives an HTTP/1.1 server over loopback, closed loop (optionally pipelined) or open loop at
//   a fixed rate, verifies every response, and reports throughput, latency percentiles (from an
//   HdrHistogram-style histogram; corrected for coordinated omission in open loop) and its own
//   CPU time. engine.hpp explains the event loop and what a request costs; cli.cpp lists the
//   flags (loadgen --help).
//
// This file is the coordinator: it checks the command line and the target, starts the workers,
// waits until all have opened their connections, publishes t0 and the measured window, prints
// the window marks at its edges (so a runner can snapshot server counters at the same moments)
// with the process's CPU time at each, and finally merges the workers' results into a report.
//
// Usage
//   build/bin/loadgen --url http://127.0.0.1:8080/ping --connections 64 --duration 10s
//   build/bin/loadgen --url http://127.0.0.1:8080/ping --rate 20000 --json -
//   build/bin/loadgen --url http://127.0.0.1:8080/ping --requests 100000 --pipeline 16
//
// Try
//   build/bin/server_threads --port 8080 &
//   build/bin/loadgen --url http://127.0.0.1:8080/ping -c 8 -d 3s
//   build/bin/loadgen --url http://127.0.0.1:8080/ping -c 8 -d 3s --rate 5000 --hist /tmp/h.csv
//   kill -STOP / -CONT the server during an open-loop run and compare corrected and raw latency.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cli.hpp"
#include "engine.hpp"
#include "net.hpp"
#include "report.hpp"

namespace {

using namespace iolab;
using namespace iolab::loadgen;

constexpr int kProbeTimeoutMs = 3000;
constexpr int kDescriptorsSpare = 64;              // stdio, epoll, eventfd, signalfd, files
constexpr std::int64_t kStartDelayNs = 1'000'000;  // t0 is this far after the workers are ready

std::int64_t realtime_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

CpuTimes process_cpu() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);  // all threads of the process
  const auto s = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return {s(ru.ru_utime), s(ru.ru_stime)};
}

// One blocking-style connect with a timeout, so an unreachable server is a clear error before
// any worker starts. The server sees one connection that sends nothing and is reset.
bool probe(const sockaddr_in& address, std::string& error) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = std::string("socket: ") + std::strerror(errno);
    return false;
  }
  int err = 0;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    err = errno;
    if (err == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      const int n = ::poll(&p, 1, kProbeTimeoutMs);
      socklen_t len = sizeof err;
      if (n == 0) {
        err = ETIMEDOUT;
      } else if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
        err = errno;
      }
    }
  }
  // Closed with a reset (SO_LINGER 0), so the probe leaves no TIME_WAIT on a client port.
  const linger reset{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  ::close(fd);
  if (err != 0) error = std::strerror(err);
  return err == 0;
}

void write_mark(int fd, const char* edge, std::int64_t unix_ns) {
  char line[96];
  const int n = std::snprintf(line, sizeof line, "loadgen: window %s %lld\n", edge,
                              static_cast<long long>(unix_ns));
  if (::write(fd, line, static_cast<std::size_t>(n)) < 0) {
    // A runner that closed its end of --mark-fd has stopped listening; the run goes on.
  }
}

enum class Wake { kDeadline, kSignal, kAllDone };

// Sleeps until `deadline` (CLOCK_MONOTONIC ns), a SIGINT/SIGTERM, or, when `done_total` is given,
// until every worker has reported done on the eventfd.
Wake wait_until(std::int64_t deadline, int signal_fd, int done_fd, int workers, int* done_total) {
  for (;;) {
    const std::int64_t now = monotonic_ns();
    if (now >= deadline) return Wake::kDeadline;
    pollfd fds[2] = {{signal_fd, POLLIN, 0}, {done_fd, POLLIN, 0}};
    const std::int64_t left = deadline - now;
    const timespec ts{static_cast<time_t>(left / 1'000'000'000),
                      static_cast<long>(left % 1'000'000'000)};
    // ppoll: a nanosecond timeout, where poll(2) takes milliseconds.
    const int n = ::ppoll(fds, done_total != nullptr ? 2 : 1, &ts, nullptr);
    if (n <= 0) continue;
    if (fds[0].revents & POLLIN) return Wake::kSignal;
    if (done_total != nullptr && (fds[1].revents & POLLIN)) {
      std::uint64_t count = 0;
      if (::read(done_fd, &count, sizeof count) == sizeof count) {
        *done_total += static_cast<int>(count);
      }
      if (*done_total >= workers) return Wake::kAllDone;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string error;
  bool help = false;
  std::optional<Config> parsed = parse_command_line(argc, argv, error, help);
  if (!parsed) {
    if (help) {
      std::fputs(usage().c_str(), stdout);
      return 0;
    }
    std::fprintf(stderr, "loadgen: %s\n", error.c_str());
    return 2;
  }
  const Config& cfg = *parsed;
  if (::fcntl(cfg.mark_fd, F_GETFD) < 0) {
    std::fprintf(stderr, "loadgen: --mark-fd %d is not an open descriptor\n", cfg.mark_fd);
    return 2;
  }

  // SIGINT and SIGTERM end the run early (with a report); they are blocked in every thread
  // (the workers inherit this mask) and read from a signalfd by this one.
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  const int signal_fd = ::signalfd(-1, &stop_signals, SFD_CLOEXEC | SFD_NONBLOCK);

  const FdLimits limits = raise_fd_limit();
  const auto needed = static_cast<rlim_t>(cfg.connections) +
                      static_cast<rlim_t>(cfg.idle_connections) + kDescriptorsSpare;
  if (needed > limits.soft) {
    std::fprintf(stderr,
                 "loadgen: %d connections need about %llu descriptors but the limit is %llu "
                 "(hard limit %llu); raise it (ulimit -n) or use fewer connections\n",
                 cfg.connections + cfg.idle_connections, static_cast<unsigned long long>(needed),
                 static_cast<unsigned long long>(limits.soft),
                 static_cast<unsigned long long>(limits.hard));
    return 1;
  }
  if (!probe(cfg.address, error)) {
    std::fprintf(stderr, "loadgen: cannot connect to %s:%u (%s): %s\n", cfg.host.c_str(), cfg.port,
                 cfg.url.c_str(), error.c_str());
    return 1;
  }
  std::FILE* json_file = nullptr;
  if (!cfg.json_path.empty() && cfg.json_path != "-") {
    json_file = std::fopen(cfg.json_path.c_str(), "w");
    if (json_file == nullptr) {
      std::fprintf(stderr, "loadgen: cannot write --json %s: %s\n", cfg.json_path.c_str(),
                   std::strerror(errno));
      return 1;
    }
  }

  Shared shared;
  shared.done_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  shared.tickets.store(cfg.requests);
  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<std::thread> threads;
  for (int i = 0; i < cfg.threads; ++i) {
    workers.push_back(std::make_unique<Worker>(cfg, shared, i));
    threads.emplace_back([w = workers.back().get()] { w->run(); });
  }
  const auto join_all = [&] {
    for (auto& t : threads) t.join();
  };

  // Setup: wait until every worker has opened its connections.
  bool interrupted = false;
  {
    std::unique_lock lock(shared.mutex);
    while (shared.ready < cfg.threads && !interrupted) {
      shared.changed.wait_for(lock, std::chrono::milliseconds(50));
      signalfd_siginfo info;
      interrupted = ::read(signal_fd, &info, sizeof info) == sizeof info;
    }
    if (interrupted || !shared.setup_error.empty()) {
      shared.abort = true;
      shared.changed.notify_all();
    }
  }
  if (shared.abort) {
    join_all();
    std::fprintf(stderr, "loadgen: %s\n",
                 interrupted ? "interrupted during setup" : shared.setup_error.c_str());
    return 1;
  }

  // Load: publish t0 and the window, then mark its edges.
  const std::int64_t t0 = monotonic_ns() + kStartDelayNs;
  const std::int64_t window_start = t0 + cfg.warmup_ns;
  const std::int64_t window_end = cfg.duration_ns > 0 ? window_start + cfg.duration_ns
                                                      : std::numeric_limits<std::int64_t>::max();
  {
    std::lock_guard lock(shared.mutex);
    shared.t0_ns = t0;
    shared.window_start_ns = window_start;
    shared.window_end_ns = window_end;
    shared.go = true;
  }
  shared.changed.notify_all();

  RunInfo run;
  run.warmup_s = static_cast<double>(cfg.warmup_ns) / 1e9;
  int done = 0;
  Wake wake = wait_until(window_start, signal_fd, shared.done_fd, cfg.threads, nullptr);
  const CpuTimes cpu_start = process_cpu();
  run.window_start_unix_ns = realtime_ns();
  std::int64_t end_mono = window_start;
  if (wake == Wake::kSignal) {
    interrupted = true;
  } else {
    write_mark(cfg.mark_fd, "start", run.window_start_unix_ns);
    wake = wait_until(window_end, signal_fd, shared.done_fd, cfg.threads, &done);
    interrupted = wake == Wake::kSignal;
    end_mono = wake == Wake::kDeadline ? window_end : monotonic_ns();
  }
  const CpuTimes cpu_end = process_cpu();
  run.window_end_unix_ns = realtime_ns();
  if (!interrupted) write_mark(cfg.mark_fd, "end", run.window_end_unix_ns);
  shared.stop.store(true);
  join_all();

  Results total;
  for (const auto& w : workers) total.merge(w->results());
  run.duration_s = static_cast<double>(end_mono - window_start) / 1e9;
  run.window_cpu = {cpu_end.user_s - cpu_start.user_s, cpu_end.sys_s - cpu_start.sys_s};
  run.total_cpu = process_cpu();
  run.interrupted = interrupted;

  bool ok = true;
  if (cfg.json_path == "-") {
    std::fputs(json_report(cfg, total, run).c_str(), stdout);
  } else {
    std::fputs(text_summary(cfg, total, run).c_str(), stdout);
  }
  if (json_file != nullptr) {
    std::fputs(json_report(cfg, total, run).c_str(), json_file);
    if (std::fclose(json_file) != 0) {
      std::fprintf(stderr, "loadgen: cannot write --json %s\n", cfg.json_path.c_str());
      ok = false;
    }
  }
  if (!cfg.hist_path.empty() && !write_histogram_csv(cfg.hist_path, cfg, total, error)) {
    std::fprintf(stderr, "loadgen: %s\n", error.c_str());
    ok = false;
  }
  std::fflush(stdout);
  return ok && !interrupted ? 0 : 1;
}
