// The read path of server_lab03: on_readable(), yours to write (lab 03's exercise).
//
// server_lab03 is server_epoll_et (servers/epoll_et/main.cpp) built with this file in place of
// servers/epoll_et/read.cpp; read.hpp has the contract. drive() calls on_readable() while
// may_read holds and the connection wants input, again and again: each call reads at most once.
//   fd               the non-blocking socket, registered EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET
//   may_read         set it false to wait for the next edge; leave it true to be called again
//   peer_closing     EPOLLRDHUP was seen: the peer sent its FIN
//   drain_to_eagain  --drain-to-eagain 1: the textbook rule instead of nginx's refinement
//   returns          the bytes handed to conn (0: none), or -1: the loop closes this connection
// What you have:
//   conn.read_space()       where to read: the buffer's free end (empty: full, give up: -1)
//   conn.on_read(n, now)    hands conn the n bytes read into read_space(); n == 0: end of stream
//   sys::recv(fd, p, len)   recvfrom(2), counted in /stats; -1 and errno on failure
//   coarse_now()            the loop's clock, for on_read()
// Until you write it, every connection closes at its first read. `make lab-03-check`.
#include "read.hpp"

#include <cerrno>
#include <span>

#include "clock.hpp"
#include "sys.hpp"

namespace iolab::epoll_et {

long on_readable(int fd, Connection& conn, bool& may_read, bool peer_closing,
                 bool drain_to_eagain) {
  (void)fd, (void)conn, (void)may_read, (void)peer_closing, (void)drain_to_eagain;
  return -1;
}

}  // namespace iolab::epoll_et
