// The keep-alive limits: the second part you change, in place of servers/core/http/keep_alive.cpp.
// Both functions are members of Connection (servers/core/http/connection.hpp): read its state.
//
// 1. stays_open_after(): emit() asks it once per response; false puts "Connection: close" in its
//    head, stops parsing and closes the connection once the output is written. Make the Nth
//    response the last, N = limits_.keepalive_requests (0: no limit).
// 2. next_deadline(), past which on_timeout() closes the connection: add the idle timer. Waiting
//    for the next request, or on a peer that stops reading or sending its body, the connection is
//    closed after limits_.idle_timeout without a byte. A request head has its own timer.
#include "connection.hpp"

namespace iolab {

bool Connection::stays_open_after(const Response& resp) {
  return keep_alive_ && !resp.close;  // TODO(lab 10): --keepalive-requests
}

TimePoint Connection::next_deadline() const {
  if (work_ != Work::kNone) return TimePoint::max();  // the server is busy, not the peer
  // TODO(lab 10): the idle timer
  if (header_timer_running_) return header_deadline_;  // from accept, and from a head's first byte
  return TimePoint::max();
}

}  // namespace iolab
