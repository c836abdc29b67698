// server_epoll_et's read path: one recv after an EPOLLIN edge, and whether another may follow.
// In a file of its own (read.cpp) so that lab 03 builds this server with the student's version.
#pragma once

#include "connection.hpp"

namespace iolab::epoll_et {

// Reads once from the non-blocking socket `fd` into conn's buffer and hands the bytes to conn.
// drive() calls it while may_read holds and the core wants input; setting may_read false means
// "wait for the next edge". peer_closing: EPOLLRDHUP was seen. drain_to_eagain: the textbook
// rule (--drain-to-eagain 1) instead of nginx's refinement. Returns the bytes handed to conn (0
// after EAGAIN or at the peer's EOF; drive() counts them against the connection's budget for the
// turn), or -1 on a fatal error (the loop closes the connection).
long on_readable(int fd, Connection& conn, bool& may_read, bool peer_closing, bool drain_to_eagain);

}  // namespace iolab::epoll_et
