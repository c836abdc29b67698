// The read path of server_lab03: one recv after an EPOLLIN edge, and whether another may follow.
// The part you change.
//
// server_lab03 is server_epoll_et (servers/epoll_et/main.cpp) built with this file in place of
// servers/epoll_et/read.cpp. drive() calls on_readable() while may_read holds and the core wants
// input; may_read = false means "wait for the next edge".
//
// EXERCISE (lab 03): this starter reads once per edge, the habit level-triggered epoll allows
// (there, bytes left behind are reported again at the next epoll_wait). Under EPOLLET they are
// not: a request larger than the buffer, or many pipelined requests sent in one go, leave bytes
// queued that nobody will read, and the client waits forever. Make it honour the ET rule: clear
// may_read only when the receive queue is known to be empty. First drain to EAGAIN; then apply
// nginx's refinement (a short read means empty, unless the peer is closing: peer_closing), and
// make --drain-to-eagain 1 (drain_to_eagain) keep the plain drain. `make lab-03-check`.
#include "read.hpp"

#include <cerrno>
#include <span>

#include "clock.hpp"
#include "sys.hpp"

namespace iolab::epoll_et {

long on_readable(int fd, Connection& conn, bool& may_read, bool peer_closing, bool drain_to_eagain) {
  (void)peer_closing;     // the exercise needs it
  (void)drain_to_eagain;  // and this
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
  may_read = false;  // one read per edge: wrong under EPOLLET (see above)
  conn.on_read(static_cast<std::size_t>(n), coarse_now());
  return n;
}

}  // namespace iolab::epoll_et
