// Refusing connections at the descriptor limit (server_select; lab 02's reference solution).
//
// accept4() allocates the new descriptor before it looks at the backlog, so at RLIMIT_NOFILE it
// fails with EMFILE and the connection stays queued, its client waiting for an answer that
// comes only when some other connection closes. A descriptor held in reserve breaks the
// deadlock: close it and one number is free, accept4() takes the oldest waiting connection,
// refuse() answers 503 and closes it (the number is free again), and the reserve is reopened.
// Repeated until accept4() says EAGAIN, this empties the backlog; the listener then turns
// readable only when a new connection arrives, so watching it costs no busy loop.
#include "spare_fd.hpp"

#include <fcntl.h>
#include <sys/socket.h>

#include "sys.hpp"

namespace iolab::select_loop {
namespace {

UniqueFd open_spare() { return UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC)); }

}  // namespace

SpareFd::SpareFd() : spare_(open_spare()) {}

bool SpareFd::refuse_waiting(int listener, const SharedState& shared, int max) {
  for (int i = 0; i < max && spare_; ++i) {
    spare_.reset();
    UniqueFd waiting(sys::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    const bool took = static_cast<bool>(waiting);
    if (took) refuse(shared, std::move(waiting));
    spare_ = open_spare();  // the number refuse() just closed, or the one accept4() left unused
    if (!took) break;       // EAGAIN: the backlog is empty (anything else: the next try tells)
  }
  return static_cast<bool>(spare_);
}

}  // namespace iolab::select_loop
