// server_lab02 (lab 02, the reference solution): a select() loop that survives the
// descriptor limit.
//
// What this model shows
//   Two limits meet a select() server. FD_SETSIZE (1024) is the size of the fd_set bitmap: a
//   descriptor numbered 1024 or more cannot be watched at all, so such connections are refused
//   with a 503 and counted (fd_setsize_refused). RLIMIT_NOFILE is the process's descriptor
//   limit (often 1024 soft by default, C20): at the limit, accept4() fails with EMFILE and the
//   connection stays in the kernel's backlog.
//
// What to notice
//   - EMFILE does not consume the pending connection, so the listener is still readable: put
//     it back in the read set and select() returns at once, accept4() fails again, and the loop
//     spins at 100% CPU doing nothing (a "busy loop"). So on EMFILE (and ENFILE, ENOBUFS,
//     ENOMEM) the loop stops watching the listener for kAcceptPause, keeps serving the
//     connections it has, and tries again later: nginx does the same.
//   - Connections already accepted keep being served, and the waiting ones are accepted as soon
//     as descriptors free up: nothing is lost, only delayed.
//
// Usage
//   build/labs/bin/solution/server_lab02 [--port 8080] (all flags: --help; one loop only)
//
// Try
//   (ulimit -n 64; build/labs/bin/solution/server_lab02 --port 8082) &
//   build/bin/loadgen --url http://127.0.0.1:8082/ping --connections 100 --duration 3s
//   curl -s localhost:8082/stats   (accept_backoffs; syscalls.accept stays small)

#include <sys/select.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>

#include "lab_loop.hpp"

namespace {

using namespace iolab;

constexpr std::string_view kModel = IOLAB_MODEL;
constexpr std::size_t kDefaultMaxConns = 100'000;
constexpr int kAcceptBatch = 64;      // accept4 calls per listener wake-up (fairness cap)
constexpr Millis kAcceptPause{100};   // stop watching the listener after EMFILE
constexpr Millis kMaxWait{1000};      // select timeout when no timer is due sooner

// The connection table: descriptor number -> connection. An fd_set cannot hold more.
struct Table {
  std::array<lab::Client*, FD_SETSIZE> by_fd{};
  int max_fd = -1;
  TimePoint accept_paused_until = TimePoint::min();
};

void forget(lab::Loop& loop, Table& table, lab::Client* c) {
  table.by_fd[static_cast<std::size_t>(c->fd.get())] = nullptr;
  while (table.max_fd >= 0 && table.by_fd[static_cast<std::size_t>(table.max_fd)] == nullptr) {
    --table.max_fd;
  }
  lab::close_client(loop, c);
}

void on_accept(lab::Loop& loop, Table& table, TimePoint now) {
  for (int i = 0; i < kAcceptBatch; ++i) {
    const int fd = sys::accept4(loop.listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        count(Counter::kAcceptBackoffs);
        table.accept_paused_until = now + kAcceptPause;
      }
      return;  // EAGAIN: the backlog is empty
    }
    if (fd >= FD_SETSIZE) {
      // FD_SET(fd) would write past the end of the 1024-bit set.
      count(Counter::kFdSetsizeRefused);
      lab::refuse(loop.shared, UniqueFd(fd));
      continue;
    }
    if (loop.open_connections >= loop.shared.options.max_conns) {
      lab::refuse(loop.shared, UniqueFd(fd));
      continue;
    }
    table.by_fd[static_cast<std::size_t>(fd)] = lab::open_client(loop, fd, now);
    table.max_fd = std::max(table.max_fd, fd);
  }
}

void event_loop(lab::Loop& loop) {
  Table table;
  const int listen_fd = loop.listener.get();
  const int wakeup_fd = loop.wakeup_read.get();
  while (!loop.stopping) {
    // Rebuild both sets: select() overwrites them with its answer.
    fd_set readable, writable;
    FD_ZERO(&readable);
    FD_ZERO(&writable);
    TimePoint now = coarse_now();
    TimePoint next_deadline = now + kMaxWait;
    int max_fd = std::max(listen_fd, wakeup_fd);
    FD_SET(wakeup_fd, &readable);
    if (table.accept_paused_until == TimePoint::min()) {
      FD_SET(listen_fd, &readable);
    } else {
      next_deadline = std::min(next_deadline, table.accept_paused_until);
    }
    for (int fd = 0; fd <= table.max_fd; ++fd) {
      lab::Client* c = table.by_fd[static_cast<std::size_t>(fd)];
      if (c == nullptr) continue;
      if (lab::wants_readable(*c)) FD_SET(fd, &readable);
      if (lab::wants_writable(*c)) FD_SET(fd, &writable);
      next_deadline = std::min(next_deadline, c->conn.next_deadline());
      max_fd = std::max(max_fd, fd);
    }
    const auto wait = std::max(Millis(0), std::chrono::ceil<Millis>(next_deadline - now));
    timeval timeout{static_cast<time_t>(wait.count() / 1000),
                    static_cast<suseconds_t>(wait.count() % 1000 * 1000)};
    const int ready = sys::select(max_fd + 1, &readable, &writable, nullptr, &timeout);
    if (ready < 0 && errno != EINTR) {
      std::perror("select");
      return;
    }
    now = coarse_now();
    if (ready > 0) {
      if (FD_ISSET(wakeup_fd, &readable)) loop.stopping = true;
      if (FD_ISSET(listen_fd, &readable)) on_accept(loop, table, now);
      for (int fd = 0; fd <= table.max_fd; ++fd) {
        lab::Client* c = table.by_fd[static_cast<std::size_t>(fd)];
        if (c == nullptr) continue;
        const bool r = FD_ISSET(fd, &readable);
        const bool w = FD_ISSET(fd, &writable);
        if ((r || w) && !lab::drive(loop, *c, r, w)) forget(loop, table, c);
      }
    }
    // Expired timers, found by the same kind of scan.
    for (int fd = 0; fd <= table.max_fd; ++fd) {
      lab::Client* c = table.by_fd[static_cast<std::size_t>(fd)];
      if (c != nullptr && c->conn.next_deadline() <= now && c->conn.on_timeout(now) == Step::kClose) {
        forget(loop, table, c);
      }
    }
    if (table.accept_paused_until != TimePoint::min() && now >= table.accept_paused_until) {
      table.accept_paused_until = TimePoint::min();
    }
  }
  for (lab::Client* c : table.by_fd) {
    if (c != nullptr) forget(loop, table, c);
  }
}

}  // namespace

int main(int argc, char** argv) {
  return iolab::lab::run_server(argc, argv, kModel, kDefaultMaxConns, event_loop);
}
