// send_file_region(): the file part of a /file response, in a file of its own so that lab 10's
// server links its student's version instead (the linker takes the lab's definition and never
// pulls this member of iolab_core); this file is the lab's reference solution.
//
// --sendfile on: one sendfile(2) per call. The kernel moves the bytes from the page cache to the
// socket itself (for TCP it attaches page references to the socket buffer where it can, and
// copies inside the kernel otherwise): no copy into this process, no copy back out, one system
// call per socket-buffer-full instead of two per 64 KiB.
// The offset argument: with a pointer, sendfile reads from *offset and stores the advanced
// offset back there, leaving the file's own position alone. With nullptr it would read from
// and advance the file position, which is shared by every connection sending the same file
// descriptor at once: the bytes would come from wherever the last sender left off. So each call
// passes a private copy of region.offset; the connection advances the region by the return.
// --sendfile off: pread into a per-thread buffer and send it, the two copies sendfile avoids.
#include <cerrno>
#include <cstddef>
#include <memory>

#include "net.hpp"
#include "sys.hpp"

namespace iolab {

ssize_t send_file_region(int sock, const FileRegion& region, bool use_sendfile) {
  if (use_sendfile) {
    off_t offset = static_cast<off_t>(region.offset);
    return sys::sendfile(sock, region.fd, &offset, static_cast<std::size_t>(region.length));
  }
  constexpr std::size_t kChunk = 64 * 1024;
  // Allocated on first use: a static thread_local array would be zero-filled into every
  // thread's TLS block, 64 KiB per connection for the threads server.
  thread_local std::unique_ptr<char[]> chunk_buffer;
  if (!chunk_buffer) chunk_buffer = std::make_unique_for_overwrite<char[]>(kChunk);
  char* chunk = chunk_buffer.get();
  const std::size_t want = region.length < kChunk ? static_cast<std::size_t>(region.length) : kChunk;
  const ssize_t got = sys::pread(region.fd, chunk, want, static_cast<off_t>(region.offset));
  if (got <= 0) return got == 0 ? (errno = EIO, -1) : got;
  // Whatever the socket does not take is read again next time, from the advanced offset.
  return sys::send(sock, chunk, static_cast<std::size_t>(got));
}

}  // namespace iolab
