// server_poll (lab 01, the reference solution): one poll() loop on the shared core.
//
// What this model shows
//   poll() asks the same question as select() ("which of these descriptors can I read or write
//   without blocking?") but takes an array of struct pollfd {fd, events, revents} instead of
//   three fixed 1024-bit sets. So there is no FD_SETSIZE: a descriptor numbered 5000 is just
//   one more array entry, and the server serves as many connections as RLIMIT_NOFILE allows.
//   What poll() keeps from select() is the cost: the whole array is copied into the kernel on
//   every call, the kernel checks every entry, and the loop scans every entry's revents
//   afterwards. One busy connection among a thousand idle ones still pays for a thousand.
//
// What to notice
//   - The array is rebuilt before every call, from the connection table, asking for POLLIN
//     or POLLOUT according to what the core's Connection wants next (lab_loop.hpp: drive()).
//   - revents may carry POLLHUP or POLLERR without POLLIN or POLLOUT having been asked for:
//     the kernel always reports them, and the next recv/write returns the error or EOF.
//   - The connection table is indexed by descriptor number and grows when accept4() returns a
//     higher number than it has seen (the kernel hands out the lowest free number).
//   - Timers need no heap: the loop visits every connection per pass anyway.
//   - accept4() failing with EMFILE leaves the connection in the backlog, so a listener that
//     stays in the array reports POLLIN again at once, forever: stop watching it for a moment.
//
// Usage
//   build/labs/bin/solution/server_poll [--port 8080] (all flags: --help; one loop only)
//
// Try
//   build/labs/bin/solution/server_poll --port 8080 &
//   build/bin/loadgen --url http://127.0.0.1:8080/ping --rate 5000 --duration 3s --idle-connections 1500
//   curl -s localhost:8080/stats   (syscalls.poll per request; no fd_setsize_refused)

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "lab_loop.hpp"

namespace {

using namespace iolab;

constexpr std::string_view kModel = IOLAB_MODEL;
constexpr std::size_t kDefaultMaxConns = 100'000;
constexpr int kAcceptBatch = 64;      // accept4 calls per listener wake-up (fairness cap)
constexpr Millis kAcceptPause{100};   // stop watching the listener after EMFILE
constexpr Millis kMaxWait{1000};      // poll timeout when no timer is due sooner

// The connection table: descriptor number -> connection, grown on demand.
struct Table {
  std::vector<lab::Client*> by_fd;
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
    if (loop.open_connections >= loop.shared.options.max_conns) {
      lab::refuse(loop.shared, UniqueFd(fd));
      continue;
    }
    const auto index = static_cast<std::size_t>(fd);
    if (index >= table.by_fd.size()) table.by_fd.resize(index + 1, nullptr);
    table.by_fd[index] = lab::open_client(loop, fd, now);
    table.max_fd = std::max(table.max_fd, fd);
  }
}

void event_loop(lab::Loop& loop) {
  Table table;
  std::vector<pollfd> fds;
  const int listen_fd = loop.listener.get();
  const int wakeup_fd = loop.wakeup_read.get();
  while (!loop.stopping) {
    // Rebuild the array: one entry per descriptor with something to wait for.
    fds.clear();
    TimePoint now = coarse_now();
    TimePoint next_deadline = now + kMaxWait;
    fds.push_back({wakeup_fd, POLLIN, 0});
    if (table.accept_paused_until == TimePoint::min()) {
      fds.push_back({listen_fd, POLLIN, 0});
    } else {
      next_deadline = std::min(next_deadline, table.accept_paused_until);
    }
    for (int fd = 0; fd <= table.max_fd; ++fd) {
      lab::Client* c = table.by_fd[static_cast<std::size_t>(fd)];
      if (c == nullptr) continue;
      short events = 0;
      if (lab::wants_readable(*c)) events |= POLLIN;
      if (lab::wants_writable(*c)) events |= POLLOUT;
      if (events != 0) fds.push_back({fd, events, 0});
      next_deadline = std::min(next_deadline, c->conn.next_deadline());
    }
    const auto wait = std::max(Millis(0), std::chrono::ceil<Millis>(next_deadline - now));
    const int ready = sys::poll(fds.data(), fds.size(), static_cast<int>(wait.count()));
    if (ready < 0 && errno != EINTR) {
      std::perror("poll");
      return;
    }
    now = coarse_now();
    for (std::size_t i = 0; ready > 0 && i < fds.size(); ++i) {
      const pollfd& p = fds[i];
      if (p.revents == 0) continue;
      if (p.fd == wakeup_fd) {
        loop.stopping = true;
      } else if (p.fd == listen_fd) {
        on_accept(loop, table, now);
      } else if (lab::Client* c = table.by_fd[static_cast<std::size_t>(p.fd)]) {
        const bool r = p.revents & (POLLIN | POLLHUP | POLLERR);
        const bool w = p.revents & (POLLOUT | POLLHUP | POLLERR);
        if (!lab::drive(loop, *c, r, w)) forget(loop, table, c);
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
