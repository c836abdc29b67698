// The read rule of edge-triggered epoll (server_epoll_et; lab 03's reference solution).
//
// EPOLLET reports a *change*: "bytes arrived since you last looked", not "bytes are waiting".
// After an EPOLLIN edge the loop may read until the kernel says it has nothing (EAGAIN); if it
// stops earlier while bytes are still queued, no new edge comes for them, and the connection
// waits forever for input that is already there. Two ways to honour the rule:
//   - drain: read until EAGAIN (the textbook rule; --drain-to-eagain 1). Every request costs one
//     extra read that returns EAGAIN.
//   - nginx's refinement (the default): a read that returns less than the space offered has
//     emptied the receive queue at that moment, and any byte arriving later raises a new edge, so
//     the loop stops there without the EAGAIN read. A read that fills the space offered may have
//     left bytes behind: read again. The peer's FIN can arrive with the last bytes and raise no
//     further edge, so once EPOLLRDHUP is seen the loop reads to EOF.
// Watch "read" against "requests" in /stats: 2 reads a request when draining, 1 with the
// refinement (curl -s localhost:PORT/stats after a few keep-alive requests).
#include "read.hpp"

#include <cerrno>
#include <span>

#include "clock.hpp"
#include "sys.hpp"

namespace iolab::epoll_et {

long on_readable(int fd, Connection& conn, bool& may_read, bool peer_closing, bool drain_to_eagain) {
  const std::span<char> space = conn.read_space();
  if (space.empty()) return -1;  // the core refuses input it could not hold: give up
  const ssize_t n = sys::recv(fd, space.data(), space.size());
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) {
      may_read = errno == EINTR;  // EAGAIN: drained, the next byte raises a new edge
      return 0;
    }
    return -1;  // ECONNRESET and friends
  }
  // A short read emptied the queue; after EPOLLRDHUP read on to EOF (n == 0), since a FIN that
  // came with the last bytes raises no edge of its own.
  const bool short_read = n > 0 && static_cast<std::size_t>(n) < space.size();
  if (short_read && !drain_to_eagain && !peer_closing) may_read = false;
  conn.on_read(static_cast<std::size_t>(n), coarse_now());
  return n;
}

}  // namespace iolab::epoll_et
