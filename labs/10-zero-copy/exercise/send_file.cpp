// send_file_region(), the file part of a /file response: the part you change.
//
// server_lab10 is server_epoll_et (servers/epoll_et/main.cpp) built with this file in place of
// servers/core/os/send_file.cpp: its on_writable() sends a response's head with writev, then calls
// send_file_region() (declared in servers/core/os/net.hpp) until the region is gone; a short send
// leaves the rest for the next EPOLLOUT edge.
//
// As written, both modes copy: pread(2) pulls the bytes from the page cache into a buffer in this
// process, send(2) pushes them from that buffer into the socket's buffer. Two copies through
// user space and two system calls per chunk, for bytes the program never looks at.
//
// Exercise: when use_sendfile is true, send the region with sendfile(2) so that no file data
// passes through user space; keep the copying path for --sendfile off (it is the comparison).
// Use the counted wrappers in servers/core/os/sys.hpp (sys::sendfile, ...) so /stats sees the
// calls. Read `man 2 sendfile` on its offset argument first: the same file is sent to many
// connections at once.
#include <cerrno>
#include <cstddef>
#include <memory>

#include "net.hpp"
#include "sys.hpp"

namespace iolab {

ssize_t send_file_region(int sock, const FileRegion& region, bool use_sendfile) {
  (void)use_sendfile;  // TODO(lab 10): sendfile(2) when true
  constexpr std::size_t kChunk = 64 * 1024;
  thread_local std::unique_ptr<char[]> buffer = std::make_unique_for_overwrite<char[]>(kChunk);
  const std::size_t want =
      region.length < kChunk ? static_cast<std::size_t>(region.length) : kChunk;
  const ssize_t got = sys::pread(region.fd, buffer.get(), want, static_cast<off_t>(region.offset));
  if (got <= 0) return got == 0 ? (errno = EIO, -1) : got;
  // What the socket does not take now is read again next time, from the advanced offset.
  return sys::send(sock, buffer.get(), static_cast<std::size_t>(got));
}

}  // namespace iolab
