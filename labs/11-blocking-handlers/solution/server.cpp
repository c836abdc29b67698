// server_lab11: server_coro with its /sleep handling left to you (lab 11).
//
// This is servers/coro/main.cpp without the scheduler statistics print-out: one coroutine per
// connection on the M:N work-stealing scheduler of servers/coro (N worker threads, per-worker
// run queues, stealing, one epoll poller, timers, a blocking pool). Read that file's header
// first. serve_connection() below is where a connection's steps are taken, and the kRunWork
// step is the exercise: the work a handler must block on (/sleep?ms=N sleeps N ms in the
// calling thread: servers/core/app.hpp DeferredWork).
//
// Usage: server_lab11 [--port 8080] [--threads N workers] [--blocking-threads N] (--help)
// Try:   curl -s 'localhost:8080/sleep?ms=2000' & time curl -s localhost:8080/ping

#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <system_error>

#include "app.hpp"
#include "connection.hpp"
#include "io.hpp"
#include "net.hpp"
#include "options.hpp"
#include "scheduler.hpp"
#include "stats.hpp"
#include "sys.hpp"
#include "task.hpp"

namespace {

using namespace iolab;
using coro::IoResult;
using coro::Socket;
using coro::Task;

constexpr std::string_view kModel = IOLAB_MODEL;
constexpr std::size_t kDefaultMaxConns = 100'000;
constexpr int kAcceptBatch = 64;        // accepts before the accept coroutine yields (fairness)
constexpr Millis kAcceptPause{100};     // sleep after EMFILE/ENFILE from accept
constexpr Millis kShutdownGrace{1000};  // for blocking work still running at SIGTERM
const ExtraFlag kExtraFlags[] = {{"--blocking-threads", 256, 1, 10'000,
                                  "threads for blocking work (/sleep), started on demand"}};

// Process-wide, read-only once the workers run (except the atomic counter).
struct Shared {
  Options options;
  ContentSource content;
  App app{kModel, content};
  HeapMemory memory;
  std::string refusal = app.refusal_response();
  std::atomic<std::size_t> open_connections{0};
};

// Per-connection state lives in serve_connection's frame: the socket, the protocol, and this
// guard, which counts the close however the coroutine ends (returns, or is destroyed at exit).
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

// The outcome of a read, handed to the core. False: the connection is finished.
bool on_readable(Connection& conn, const IoResult& r, TimePoint deadline) {
  if (r.ok()) {
    conn.on_read(static_cast<std::size_t>(r.n), coarse_now());
    return true;
  }
  // The awaiter reports a timeout only once its deadline has passed on the precise clock;
  // the core's coarse clock may lag it by a tick.
  if (r.timed_out()) {
    conn.on_timeout(std::max(coarse_now(), deadline));
    return true;
  }
  return r.again();  // a stale edge: wait again. Anything else (reset, ENOBUFS): give up.
}

bool on_writable(Connection& conn, const IoResult& r, TimePoint deadline) {
  if (r.ok()) {
    conn.on_written(static_cast<std::size_t>(r.n), coarse_now());
    return true;
  }
  if (r.timed_out()) {
    conn.on_timeout(std::max(coarse_now(), deadline));  // a peer that stopped reading
    return true;
  }
  return r.again();  // EPIPE, ECONNRESET: the peer is gone
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
        const IoResult r = co_await sock.read(conn, deadline);
        if (!on_readable(conn, r, deadline)) co_return;
        break;
      }
      case Step::kWrite: {
        const Output out = conn.output();
        IoResult r;
        if (out.iovcnt > 0) {
          r = co_await sock.writev(out.iov.data(), out.iovcnt, deadline);
        } else {
          auto send_file = [&] {
            return send_file_region(sock.fd(), out.file, shared.options.sendfile);
          };
          r = co_await sock.write_with(send_file, deadline);
        }
        if (!on_writable(conn, r, deadline)) co_return;
        break;
      }
      case Step::kRunWork: {
        // The work goes to the scheduler's blocking pool (a thread started on demand, like the
        // threads Go starts for blocking system calls): this coroutine suspends, the worker
        // goes on with its run queue, and the pool thread makes the coroutine runnable again
        // when the work returns. `run` is a named lambda, not a temporary: see blocking() in
        // servers/coro/scheduler.hpp for why.
        const DeferredWork work = conn.take_work();
        auto run = [&work] { work.run(); };
        co_await coro::blocking(run);
        conn.on_work_done(coarse_now());
        break;
      }
      case Step::kWaitWork:  // the work is awaited above, so never seen here
      case Step::kClose:
        co_return;
    }
  }
}

void refuse(Shared& shared, UniqueFd socket) {
  ::send(socket.get(), shared.refusal.data(), shared.refusal.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  count(Counter::kConnectionsRefused);
}

void on_accepted(Shared& shared, UniqueFd fd) {
  if (shared.open_connections.load(std::memory_order_relaxed) >= shared.options.max_conns) {
    return refuse(shared, std::move(fd));
  }
  set_nodelay(fd.get());
  shared.open_connections.fetch_add(1, std::memory_order_relaxed);
  count(Counter::kConnectionsAccepted);
  coro::spawn(serve_connection(shared, std::move(fd)));
}

// The coroutine model's event loop is the scheduler; this is the accept loop that feeds it.
Task<void> accept_loop(Shared& shared, UniqueFd listen_fd) {
  Socket listener(std::move(listen_fd));
  if (!listener.ok()) {
    std::fprintf(stderr, "server_%.*s: epoll_ctl: %s\n", static_cast<int>(kModel.size()),
                 kModel.data(), std::strerror(listener.error()));
    std::_Exit(1);  // a setup failure (status 1), with workers running: no static teardown
  }
  auto accept = [&] {
    return sys::accept4(listener.fd(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  };
  int batch = 0;
  for (;;) {
    const IoResult r = co_await listener.read_with(accept, TimePoint::max());
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
      // The connection stays in the backlog; serve the open ones and try again later.
      count(Counter::kAcceptBackoffs);
      co_await coro::sleep_for(kAcceptPause);
    }  // EAGAIN (a stale edge), ECONNABORTED and friends: accept again
  }
}

}  // namespace

int main(int argc, char** argv) {
  init_process_signals();
  const std::string program = "server_" + std::string(kModel);
  try {
    auto shared = std::make_unique<Shared>();
    shared->options = parse_options(argc, argv, kModel, kDefaultMaxConns, kExtraFlags);
    const Options& options = shared->options;
    raise_fd_limit();
    std::vector<UniqueFd> listeners = listen_tcp(options.bind, options.port, 1, true);
    const std::uint16_t port = local_port(listeners[0].get());

    coro::SchedulerOptions so;
    so.workers = options.threads;
    so.pin = options.pin;
    so.max_blocking_threads = static_cast<int>(options.extra_value("--blocking-threads"));
    auto scheduler = std::make_unique<coro::Scheduler>(so);
    scheduler->spawn(accept_loop(*shared, std::move(listeners[0])));
    print_ready_line(kModel, options.bind, port, options.threads);

    wait_for_stop_signal();
    const bool idle = scheduler->stop(kShutdownGrace);
    if (!idle) {  // blocking work (/sleep) still running: its coroutines cannot be destroyed
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
