// How server_lab10 sends the file part of a /file response (the exercise is send_file.cpp).
#pragma once

#include <sys/types.h>

#include "app.hpp"  // iolab::FileRegion

namespace lab10 {

// Sends up to region.length bytes of the file region (region.fd from region.offset) to the
// non-blocking socket `sock`: with sendfile(2) when use_sendfile (--sendfile on, the default),
// else by reading into a buffer and writing it (--sendfile off). Returns the number of bytes the
// socket took, which may be fewer than asked, or -1 with errno set (EAGAIN: the socket buffer
// is full, try again on the next EPOLLOUT edge). Nothing is remembered between calls: the
// caller advances the region by what was sent.
ssize_t send_file_part(int sock, const iolab::FileRegion& region, bool use_sendfile);

}  // namespace lab10
