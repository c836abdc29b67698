// The read path of server_lab03: on_readable(), yours to write (lab 03's exercise).
//
// server_lab03 is server_epoll_et (servers/epoll_et/main.cpp) built with this file in place of
// servers/epoll_et/read.cpp; read.hpp has the contract. drive() calls on_readable() while
// may_read holds and the connection wants input, again and again: each call reads at most once.
//   fd               the non-blocking socket, registered EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET
//   may_read         set it false to wait for the next edge; leave it true to be called again
//   peer_closing     EPOLLRDHUP was seen: the peer sent its FIN
//   drain_to_eagain  --drain-to-eagain 1
//   returns          the bytes handed to conn (0 when none), or -1: the loop closes this
//                    connection, and only this one
// What you have:
//   conn.read_space()       where input goes, the free end of the connection's buffer (empty:
//                           it can hold no more, give up on the connection)
//   conn.on_read(n, now)    takes the n bytes just read into read_space(); on_read(0, now): the
//                           peer will send nothing more
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
