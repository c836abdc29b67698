// The keep-alive limits of a connection: the second part you change. server_lab10 is built with
// this file in place of servers/core/http/keep_alive.cpp; both functions are members of
// Connection (servers/core/http/connection.hpp), so its state is yours to read.
//
// 1. stays_open_after(): emit() asks it once for each response it queues. false puts
//    "Connection: close" in that response's head and stops parsing; the connection closes once
//    its output is written. Make the Nth response of a connection its last, N being
//    limits_.keepalive_requests (--keepalive-requests; 0: no limit).
// 2. next_deadline(): the connection is closed (on_timeout) when that time passes. Add the idle
//    timer, limits_.idle_timeout (--idle-timeout-ms): a connection waiting for its next request,
//    or a peer that stops reading its response or sending its body, is closed after that long
//    without a byte; one that keeps sending is not. A request head on its way has its own timer.
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
