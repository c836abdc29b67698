// Lingering close (RFC 9112 section 9.6; nginx's lingering_close), shared by every model.
//
// A server that closes a socket whose receive queue still holds bytes (the rest of a 413'd
// upload, requests pipelined after "Connection: close" or after a 400) makes Linux send RST at
// once, and an RST discards what the socket had not transmitted yet: the client may never see
// the answer it was sent. So at close the model asks has_unread_input(); if it says yes, the
// model takes the socket out of its own poller and hands it to linger_close(), which half-closes
// it (FIN after the queued response), then reads and discards what keeps arriving until the
// peer's EOF, kLingerBytes or kLingerTime, whichever comes first, and closes it then. This runs
// on one small helper thread per process (an epoll loop), so no model's own loop changes.
// The model asks only when the core says the peer may still be sending
// (Connection::may_have_unread_input(): an error ended the connection, bytes are buffered past
// the last request, or a body was arriving), as nginx decides from its own state: a connection
// that ends because the client asked, or closed, costs no system call more.
#pragma once

#include "clock.hpp"
#include "net.hpp"

namespace iolab {

inline constexpr Millis kLingerTime{2000};
inline constexpr std::size_t kLingerBytes = 1 << 20;
inline constexpr std::size_t kLingerMaxSockets = 1024;  // beyond: closed at once (bounded state)

// True when bytes are waiting to be read (it reads and discards them, without blocking).
bool has_unread_input(int fd);
// Half-closes `fd` and closes it after the lingering described above.
void linger_close(UniqueFd fd);

}  // namespace iolab
