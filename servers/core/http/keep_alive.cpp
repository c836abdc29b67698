// How long a connection lives: the keep-alive limits. A file of its own, apart from the rest of
// the state machine (connection.cpp), so that lab 10 (labs/10-zero-copy) can swap in the
// reader's version; both functions are members of Connection and read its state.
//
// Requests per connection (--keepalive-requests N; 0, the default, for no limit). The Nth
// response is the connection's last: its head says "Connection: close", so the client knows not
// to send more on it (RFC 9112 9.6), and it is sent whole before the connection closes. emit()
// turns a false from stays_open_after() into both: the header, and closing_, which stops
// parsing, so requests pipelined behind the Nth stay unanswered (the client retries them on a
// new connection; the lingering close, linger.hpp, keeps their unread bytes from resetting the
// connection before the client has read the last response). A server limits a connection's
// life to free what it has accumulated and to let clients spread over processes again; nginx's
// keepalive_requests defaults to 1000 since 1.19.10, 100 before
// (https://nginx.org/en/docs/http/ngx_http_core_module.html#keepalive_requests).
//
// The timers: one deadline at a time, the one of the connection's state.
//   deferred work runs       none: the server is slow, not the peer
//   output pending, or a     --idle-timeout-ms from the last byte in or out: a peer that stops
//   body arriving            reading its response, or stops sending its body
//   a request head arriving  the header timer (header_deadline_: from accept, and from the first
//                            byte of each later request; later bytes do not push it back)
//   between requests         --idle-timeout-ms from the end of the last response
// last_progress_ moves with every byte in or out, so each response re-arms the idle timer: a
// connection that keeps sending requests is never cut by it. The first byte of the next request
// ends the idle time; from there the header timer governs, however long the idle limit is.
#include "connection.hpp"

namespace iolab {

bool Connection::stays_open_after(const Response& resp) {
  ++responses_;
  const bool last = limits_.keepalive_requests != 0 && responses_ >= limits_.keepalive_requests;
  return keep_alive_ && !resp.close && !last;
}

TimePoint Connection::next_deadline() const {
  if (work_ != Work::kNone) return TimePoint::max();
  if (has_output() || phase_ == Phase::kBody) return last_progress_ + limits_.idle_timeout;
  if (header_timer_running_) return header_deadline_;
  return last_progress_ + limits_.idle_timeout;
}

}  // namespace iolab
