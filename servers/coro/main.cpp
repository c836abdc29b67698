// server_coro: one C++20 coroutine per connection on an M:N work-stealing scheduler.
//
// What this model shows
//   Go's goroutine-per-connection model, in C++20. Each connection is a coroutine whose code
//   reads like server_threads (co_await read, co_await write, top to bottom), but a coroutine
//   is a heap frame of a few hundred bytes instead of a thread with two stacks: suspending it is
//   a function return, resuming it a function call. N worker threads (--threads) run all of them
//   on the scheduler in scheduler.hpp: per-worker run queues, work stealing, one epoll poller
//   shared by the workers, timers, and a pool of threads for blocking calls.
//
// What to notice
//   - serve_connection() is server_threads' loop with co_await in front of the I/O. Each
//     operation tries the system call first and waits for the poller only on EAGAIN; with the
//     drain rule of server_epoll_et, steady keep-alive traffic makes the same system calls as
//     epoll_et: a recv and a writev per request, an epoll_wait per batch.
//   - Memory: while a connection waits for its next request it holds no input buffer (the read
//     hands the buffer back before waiting) and a coroutine frame (the Connection lives in it):
//     compare rss per idle connection with server_threads (a stack each) and server_epoll_et.
//     The frame size is printed on stderr at exit.
//   - /sleep runs on the scheduler's blocking pool (run_work.cpp): the work moves to a pool
//     thread and the worker serves other connections meanwhile. In server_epoll_et the same
//     request stalls its loop.
//   - One accept coroutine. New connections start on its worker and spread to the others by
//     stealing; the poller hands a woken coroutine to whichever worker polled. Watch "steals"
//     and "parks" in /stats.
//   - Timeouts: the core's header or idle deadline is the read's deadline. Each socket has one
//     timer in the scheduler's heap, pushed only when the deadline moves earlier, so steady
//     keep-alive traffic costs no timer work per request.
//   - A budget per connection per turn: an operation that does not have to wait never
//     suspends, so a client that pipelines as fast as the server reads would keep its worker
//     forever (the other coroutines on that worker's queue, and the poller, wait behind it).
//     After kTurnBytes in and out the connection does `co_await coro::yield()`: to the back of
//     the run queue, and the worker asks the poller before going on. 16 KiB is about 90 small
//     requests with their answers: keep-alive traffic and ordinary pipelines never reach it,
//     and a busy connection delays the others by at most one such turn.
//   - accept4() fails with EMFILE while the descriptor table is full: the accept coroutine
//     sleeps kAcceptPause (co_await sleep_for) and tries again; no busy loop.
//
// Usage
//   build/bin/server_coro [--port 8080] [--threads N workers] [--pin LIST]
//                         [--blocking-threads N] (all flags: --help)
//
// Try
//   build/bin/server_coro --port 8080 --threads 2 &  curl -s localhost:8080/ping
//   curl -s 'localhost:8080/sleep?ms=2000' & time curl -s localhost:8080/ping  (not delayed)
//   build/bin/loadgen --url http://127.0.0.1:8080/ping --idle-connections 3000 --duration 5s
//     while watching grep VmRSS /proc/$(pgrep server_coro)/status

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
#include "linger.hpp"
#include "net.hpp"
#include "options.hpp"
#include "run_work.hpp"
#include "scheduler.hpp"
#include "server.hpp"
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
constexpr std::size_t kTurnBytes = 16 * 1024;  // bytes in and out per connection per turn
const ExtraFlag kExtraFlags[] = {{"--blocking-threads", 256, 1, 10'000,
                                  "threads for blocking work (/sleep), started on demand"}};

// Process-wide, read-only once the workers run (except the atomic counter).
struct Shared : SharedState {
  Shared() : SharedState(kModel) {}
  HeapMemory memory;
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

Task<void> serve_steps(Shared& shared, UniqueFd fd) {
  OpenConnection open(shared);
  Socket sock(std::move(fd));
  if (!sock.ok()) {  // the poller could not take it (ENOMEM, max_user_watches): this one only
    count(Counter::kConnectionErrors);
    co_return;
  }
  Connection conn(shared.app, shared.options.limits, shared.memory, coarse_now());
  std::size_t moved = 0;  // bytes in and out since the last yield
  for (;;) {
    if (moved >= kTurnBytes) {
      moved = 0;
      co_await coro::yield();
    }
    const TimePoint deadline = conn.next_deadline();
    switch (conn.next()) {
      case Step::kRead: {
        const IoResult r = co_await sock.read(conn, deadline);
        if (!on_readable(conn, r, deadline)) co_return;
        if (r.ok()) moved += static_cast<std::size_t>(r.n);
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
        if (r.ok()) moved += static_cast<std::size_t>(r.n);
        break;
      }
      case Step::kRunWork:
        co_await coro::run_work(conn.take_work());  // run_work.cpp: this worker serves others
        // A worker resumes us, never the thread that ran the work (lab 11's check reads this).
        if (coro::current_worker_index() < 0) count(Counter::kResumedOffWorker);
        conn.on_work_done(coarse_now());
        break;
      case Step::kWaitWork:  // the work is awaited above, so never seen here
        co_return;
      case Step::kClose:
        if (conn.may_have_unread_input() && has_unread_input(sock.fd())) {
          linger_close(sock.take_fd());  // a lingering close (linger.hpp)
        }
        co_return;
    }
  }
}

// The connection boundary: an exception from one connection's path (std::bad_alloc, ...)
// closes that connection and is counted; the scheduler and the other connections go on.
Task<void> serve_connection(Shared& shared, UniqueFd fd) {
  try {
    co_await serve_steps(shared, std::move(fd));
  } catch (const std::exception& e) {
    count_connection_error(kModel, e.what());
  }
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

void print_scheduler_stats(const coro::Scheduler& scheduler) {
  const coro::SchedulerStats s = scheduler.stats();
  std::fprintf(
      stderr,
      "server_coro: scheduler: spawned=%llu steals=%llu parks=%llu wakeups=%llu "
      "polls=%llu blocking=%llu blocking_threads=%llu frames=%llu frame_bytes=%llu "
      "(%llu per frame)\n",
      static_cast<unsigned long long>(s.spawned), static_cast<unsigned long long>(s.steals),
      static_cast<unsigned long long>(s.parks), static_cast<unsigned long long>(s.wakeups),
      static_cast<unsigned long long>(s.polls),
      static_cast<unsigned long long>(s.blocking_handoffs),
      static_cast<unsigned long long>(s.blocking_threads),
      static_cast<unsigned long long>(s.frames.frames),
      static_cast<unsigned long long>(s.frames.bytes),
      static_cast<unsigned long long>(s.frames.frames ? s.frames.bytes / s.frames.frames : 0));
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
    print_scheduler_stats(*scheduler);
    if (!idle) {  // blocking work (/sleep) still running: its coroutines cannot be destroyed
      print_final_stats(kModel);
      std::_Exit(0);
    }
    scheduler.reset();  // destroys the connection coroutines: their sockets close
    print_final_stats(kModel);
    return 0;
  } catch (const std::system_error& e) {
    std::fprintf(stderr, "%s: %s\n", program.c_str(), e.what());
    return 1;
  }
}
