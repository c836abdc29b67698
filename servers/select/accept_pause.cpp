// Surviving the descriptor limit (server_select; lab 02's reference solution).
//
// At RLIMIT_NOFILE (often 1024 soft by default, C20) accept4() fails with EMFILE, and EMFILE
// does not consume the pending connection: it stays in the kernel's backlog, so the listener is
// still readable. Put it back in the read set and select() returns at once, accept4() fails
// again, and the loop spins at 100% CPU doing nothing (a "busy loop") while every connection
// waits its turn. So on EMFILE (and ENFILE, ENOBUFS, ENOMEM: the system is out of the same
// thing) the loop stops watching the listener for a while, keeps serving the connections it has,
// and tries again later: nginx does the same. Nothing is lost, only delayed: the waiting
// connections are accepted as soon as descriptors free up.
#include "accept_pause.hpp"

#include <cerrno>

namespace iolab::select_loop {

Millis accept_pause(int error) {
  constexpr Millis kAcceptPause{100};
  if (error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM) return kAcceptPause;
  return Millis{0};  // EINTR, ECONNABORTED and the like: the next connection may be fine
}

}  // namespace iolab::select_loop
