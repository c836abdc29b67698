// server_lab02 (lab 02, the starter): YOUR TASK is to make this select() loop survive the
// descriptor limit.
//
// server_lab02 is server_select (servers/select/main.cpp) built with this file in place of
// servers/select/accept_pause.cpp. When accept4() on the listener fails (not with EAGAIN, which
// only says the backlog is empty), on_accept() asks accept_pause() how long to stop watching the
// listener; while it is not watched, the loop keeps serving the connections it has.
//
// As handed out, it serves well until the process runs out of descriptors (RLIMIT_NOFILE; C20
// says 1024 by default). Then accept4() fails with EMFILE, and accept_pause() says "go on
// watching". But EMFILE leaves the connection waiting in the kernel's backlog, so the listener
// is readable again at once: select() returns immediately, accept4() fails again, and the loop
// spins, burning a whole CPU while every other connection waits its turn in a loop that does
// nothing. `make lab-02-check` shows it: with the limit lowered to 64, /stats counts thousands
// of accept and select calls per second.
//
// The exercise (labs/02-select-and-c10k/README.md, "Exercise"): when accept4() failed with
// EMFILE (or ENFILE, ENOBUFS, ENOMEM), stop watching the listener for a while (100 ms is what
// the servers use); on_accept() counts each pause in /stats as accept_backoffs. When
// descriptors free up, the waiting connections are accepted.
//
// Usage
//   build/labs/bin/exercise/server_lab02 [--port 8080] (all flags: --help)
#include "accept_pause.hpp"

namespace iolab::select_loop {

Millis accept_pause(int error) {
  (void)error;  // TODO(lab 02): EMFILE and the like
  return Millis{0};
}

}  // namespace iolab::select_loop
