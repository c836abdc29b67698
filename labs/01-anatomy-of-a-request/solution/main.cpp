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
//
// Try
//   build/labs/bin/solution/server_poll --port 8080 &
//   build/bin/loadgen --url http://127.0.0.1:8080/ping --rate 5000 --duration 3s
//                     --idle-connections 1500   (on one line)
//   curl -s localhost:8080/stats   (syscalls.poll per request; no fd_setsize_refused)

#include <poll.h>

#include <climits>

#include "lab_loop.hpp"

namespace {

using namespace iolab;
using std::chrono::ceil;

void event_loop(lab::Loop& loop) {
  lab::Table table;
  std::vector<pollfd> fds;
  const int listen_fd = loop.listener.get();
  const int wakeup_fd = loop.wakeup_read.get();
  while (!loop.stopping) {
    // Rebuild the array: one entry per descriptor with something to wait for.
    fds.clear();
    fds.push_back({wakeup_fd, POLLIN, 0});
    if (table.accept_paused_until == TimePoint::min()) fds.push_back({listen_fd, POLLIN, 0});
    for (int fd = 0; fd <= table.max_fd; ++fd) {
      if (lab::Client* c = table.at(fd)) {
        short events = 0;
        if (lab::wants_readable(*c)) events |= POLLIN;
        if (lab::wants_writable(*c)) events |= POLLOUT;
        if (events != 0) fds.push_back({fd, events, 0});
      }
    }
    TimePoint now = coarse_now();
    const auto wait = std::max(Millis(0), ceil<Millis>(lab::next_deadline(table, now) - now));
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
        lab::on_accept(loop, table, now, INT_MAX);
      } else if (lab::Client* c = table.at(p.fd)) {
        const bool r = p.revents & (POLLIN | POLLHUP | POLLERR);
        const bool w = p.revents & (POLLOUT | POLLHUP | POLLERR);
        if (!lab::drive(loop, *c, r, w)) lab::forget(loop, table, c);
      }
    }
    lab::after_wait(loop, table, now);
  }
  for (lab::Client* c : table.by_fd) {
    if (c != nullptr) lab::forget(loop, table, c);
  }
}

}  // namespace

int main(int argc, char** argv) {
  return iolab::lab::run_server(argc, argv, IOLAB_MODEL, event_loop);
}
