// server_poll (lab 01, the starter): YOUR TASK is to make this a poll() server.
//
// As handed out, this file still waits with select(), like servers/select/main.cpp: before
// every call it fills two fixed 1024-bit descriptor sets, and a descriptor numbered FD_SETSIZE
// (1024) or more cannot be put in a set at all, so on_accept() is told to refuse it with a 503.
// `make lab-01-check` shows that (it opens more than FD_SETSIZE connections), and finds select
// calls in /stats where it expects poll calls.
//
// The exercise (labs/01-anatomy-of-a-request/README.md, "Exercise"):
//   1. Replace the two fd_sets by a std::vector<pollfd>, rebuilt before each call: one entry
//      {fd, events, 0} per descriptor with something to wait for (POLLIN to read, POLLOUT to
//      write; lab::wants_readable() and lab::wants_writable() say which).
//   2. Wait with sys::poll(fds.data(), fds.size(), timeout_ms) (counted in /stats as "poll").
//   3. After the call, walk the array and read each entry's revents instead of FD_ISSET();
//      treat POLLHUP and POLLERR as "readable and writable" (the next call reports the error).
//   4. Remove the FD_SETSIZE wall (on_accept()'s last argument).
// Keep the rest: lab_loop.hpp (labs/common) does the reading, writing and the process around
// it. man 2 poll is the reference; `diff` this file with solution/main.cpp only after you tried.
//
// Usage
//   build/labs/bin/exercise/server_poll [--port 8080] (all flags: --help; one loop only)

#include <sys/select.h>

#include "lab_loop.hpp"

namespace {

using namespace iolab;
using std::chrono::ceil;

void event_loop(lab::Loop& loop) {
  lab::Table table;
  const int listen_fd = loop.listener.get();
  const int wakeup_fd = loop.wakeup_read.get();
  while (!loop.stopping) {
    // Rebuild both sets: select() overwrites them with its answer.
    fd_set readable, writable;
    FD_ZERO(&readable);
    FD_ZERO(&writable);
    int max_fd = std::max(listen_fd, wakeup_fd);
    FD_SET(wakeup_fd, &readable);
    if (table.accept_paused_until == TimePoint::min()) FD_SET(listen_fd, &readable);
    for (int fd = 0; fd <= table.max_fd; ++fd) {
      if (lab::Client* c = table.at(fd)) {
        if (lab::wants_readable(*c)) FD_SET(fd, &readable);
        if (lab::wants_writable(*c)) FD_SET(fd, &writable);
        max_fd = std::max(max_fd, fd);
      }
    }
    TimePoint now = coarse_now();
    const auto wait = std::max(Millis(0), ceil<Millis>(lab::next_deadline(table, now) - now));
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
      if (FD_ISSET(listen_fd, &readable)) lab::on_accept(loop, table, now, FD_SETSIZE);
      for (int fd = 0; fd <= table.max_fd; ++fd) {
        lab::Client* c = table.at(fd);
        const bool r = FD_ISSET(fd, &readable);
        const bool w = FD_ISSET(fd, &writable);
        if (c != nullptr && (r || w) && !lab::drive(loop, *c, r, w)) lab::forget(loop, table, c);
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
