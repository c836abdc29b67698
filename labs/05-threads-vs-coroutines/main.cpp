// server_lab05: a small coroutine HTTP server on the project's M:N scheduler, built on the
// readiness awaitable of readiness.hpp (the lab's exercise).
//
// What this shows
//   servers/coro/main.cpp in miniature: one coroutine per connection, written like the
//   thread-per-connection server (read, handle, write, top to bottom), each blocking point a
//   `co_await` on readiness.hpp's awaitable. A connection costs a coroutine frame (its locals,
//   the Connection among them: printed at exit) instead of a thread with its two stacks, and
//   switching between connections is a function return and a call on the same thread.
//
// What to notice
//   - With --threads 2 (two workers) the poller hands a woken coroutine to whichever worker
//     polled, so a coroutine often suspends on one thread and resumes on the other. That is the
//     case the awaitable's "publish last" rule is about, and why the lab's check runs this
//     server with two workers under ThreadSanitizer.
//   - Timeouts: the core's header or idle deadline is each read's deadline; the awaitable arms
//     it on the scheduler's timer heap before it waits.
//   - /sleep runs on the scheduler's blocking pool (co_await coro::blocking(fn)), so a worker
//     serves other connections meanwhile.
//
// Usage
//   build/labs/bin/{exercise,solution}/server_lab05 [--port 8080] [--threads N] (all flags: --help)

#include <sys/socket.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>

#include "app.hpp"
#include "connection.hpp"
#include "net.hpp"
#include "options.hpp"
#include "readiness.hpp"
#include "scheduler.hpp"
#include "stats.hpp"
#include "sys.hpp"
#include "task.hpp"

namespace {

using namespace iolab;
using coro::Task;
using lab05::IoResult;
using lab05::Socket;

constexpr std::string_view kModel = IOLAB_MODEL;
constexpr std::size_t kDefaultMaxConns = 100'000;
constexpr int kAcceptBatch = 64;       // accepts before the accept coroutine yields
constexpr Millis kAcceptPause{100};    // sleep after EMFILE/ENFILE from accept
constexpr Millis kShutdownGrace{1000};

struct Shared {
  Options options;
  ContentSource content;
  App app{kModel, content};
  HeapMemory memory;
  std::string refusal = app.refusal_response();
  std::atomic<std::size_t> open_connections{0};
};

// Counts the close however the coroutine ends (returns, or is destroyed at shutdown).
struct OpenConnection {
  explicit OpenConnection(Shared& s) : shared(s) {}
  OpenConnection(const OpenConnection&) = delete;
  OpenConnection& operator=(const OpenConnection&) = delete;
  ~OpenConnection() {
    count(Counter::kConnectionsClosed);
    shared.open_connections.fetch_sub(1, std::memory_order_relaxed);
  }
  Shared& shared;
};

// What an operation returned, handed to the core. False: the connection is finished.
bool on_result(Connection& conn, const IoResult& r, TimePoint deadline, bool was_read) {
  if (r.ok()) {
    if (was_read) {
      conn.on_read(static_cast<std::size_t>(r.n), coarse_now());
    } else {
      conn.on_written(static_cast<std::size_t>(r.n), coarse_now());
    }
    return true;
  }
  if (r.timed_out()) {  // the coarse clock may lag the awaitable's precise one by a tick
    conn.on_timeout(std::max(coarse_now(), deadline));
    return true;
  }
  return r.again();  // a stale edge: wait again. Anything else (reset, EPIPE): give up
}

Task<void> serve_connection(Shared& shared, UniqueFd fd) {
  OpenConnection open(shared);
  Socket sock(std::move(fd));
  if (!sock.ok()) co_return;  // the poller could not take it (ENOMEM, max_user_watches)
  Connection conn(shared.app, shared.options.limits, shared.memory, coarse_now());
  for (;;) {
    const TimePoint deadline = conn.next_deadline();
    switch (conn.next()) {
      case Step::kRead: {
        auto receive = [&]() -> ssize_t {
          const std::span<char> space = conn.read_space();
          if (space.empty()) {  // the core refuses input it could not hold
            errno = ENOBUFS;
            return -1;
          }
          return sys::recv(sock.fd(), space.data(), space.size());
        };
        const IoResult r = co_await lab05::read(sock, receive, deadline);
        if (!on_result(conn, r, deadline, true)) co_return;
        break;
      }
      case Step::kWrite: {
        const Output out = conn.output();
        auto send = [&]() -> ssize_t {
          return out.iovcnt > 0 ? sys::writev(sock.fd(), out.iov.data(), out.iovcnt)
                                : send_file_region(sock.fd(), out.file, shared.options.sendfile);
        };
        const IoResult r = co_await lab05::write(sock, send, deadline);
        if (!on_result(conn, r, deadline, false)) co_return;
        break;
      }
      case Step::kRunWork: {
        const DeferredWork work = conn.take_work();
        auto run = [&work] { work.run(); };
        co_await coro::blocking(run);
        conn.on_work_done(coarse_now());
        break;
      }
      case Step::kWaitWork:
      case Step::kClose:
        co_return;
    }
  }
}

void on_accepted(Shared& shared, UniqueFd fd) {
  if (shared.open_connections.load(std::memory_order_relaxed) >= shared.options.max_conns) {
    ::send(fd.get(), shared.refusal.data(), shared.refusal.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    return count(Counter::kConnectionsRefused);
  }
  set_nodelay(fd.get());
  shared.open_connections.fetch_add(1, std::memory_order_relaxed);
  count(Counter::kConnectionsAccepted);
  coro::spawn(serve_connection(shared, std::move(fd)));
}

Task<void> accept_loop(Shared& shared, UniqueFd listen_fd) {
  Socket listener(std::move(listen_fd));
  if (!listener.ok()) {
    std::fprintf(stderr, "server_%s: epoll_ctl: %s\n", kModel.data(), std::strerror(errno));
    std::_Exit(1);
  }
  auto accept = [&] {
    return static_cast<ssize_t>(
        sys::accept4(listener.fd(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
  };
  int batch = 0;
  for (;;) {
    const IoResult r = co_await lab05::read(listener, accept, TimePoint::max());
    if (r.ok()) {
      on_accepted(shared, UniqueFd(static_cast<int>(r.n)));
      if (++batch == kAcceptBatch) {  // a flood of connections must not starve the others
        batch = 0;
        co_await coro::yield();
      }
      continue;
    }
    batch = 0;
    if (r.error == EMFILE || r.error == ENFILE || r.error == ENOBUFS || r.error == ENOMEM) {
      count(Counter::kAcceptBackoffs);  // the connection stays in the backlog: try again later
      co_await coro::sleep_for(kAcceptPause);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  init_process_signals();
  const std::string program = "server_" + std::string(kModel);
  try {
    auto shared = std::make_unique<Shared>();
    shared->options = parse_options(argc, argv, kModel, kDefaultMaxConns);
    const Options& options = shared->options;
    raise_fd_limit();
    std::vector<UniqueFd> listeners = listen_tcp(options.bind, options.port, 1, true);
    const std::uint16_t port = local_port(listeners[0].get());

    coro::SchedulerOptions so;
    so.workers = options.threads;
    so.pin = options.pin;
    auto scheduler = std::make_unique<coro::Scheduler>(so);
    scheduler->spawn(accept_loop(*shared, std::move(listeners[0])));
    print_ready_line(kModel, options.bind, port, options.threads);

    wait_for_stop_signal();
    const bool idle = scheduler->stop(kShutdownGrace);
    const coro::FrameStats frames = coro::frame_stats();
    std::fprintf(stderr, "server_%s: %llu coroutine frames, %llu bytes each on average\n",
                 kModel.data(), static_cast<unsigned long long>(frames.frames),
                 static_cast<unsigned long long>(frames.frames ? frames.bytes / frames.frames : 0));
    if (!idle) {  // blocking work still running: its coroutines cannot be destroyed
      std::printf("%s\n", stats_json(kModel).c_str());
      std::fflush(stdout);
      std::_Exit(0);
    }
    scheduler.reset();  // destroys the connection coroutines: their sockets close
    std::printf("%s\n", stats_json(kModel).c_str());
    std::fflush(stdout);
    return 0;
  } catch (const std::system_error& e) {
    std::fprintf(stderr, "%s: %s\n", program.c_str(), e.what());
    return 1;
  }
}
