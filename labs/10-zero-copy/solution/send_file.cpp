// The file part of a /file response: the reference.
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
#include "send_file.hpp"

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "sys.hpp"

namespace lab10 {

namespace {
constexpr std::size_t kChunk = 64 * 1024;
// sendfile transfers at most 0x7ffff000 bytes per call on Linux; ask for no more.
constexpr std::uint64_t kMaxSendfile = 0x7ffff000;
}  // namespace

ssize_t send_file_part(int sock, const iolab::FileRegion& region, bool use_sendfile) {
  if (use_sendfile) {
    off_t offset = static_cast<off_t>(region.offset);
    const std::uint64_t n = region.length < kMaxSendfile ? region.length : kMaxSendfile;
    return iolab::sys::sendfile(sock, region.fd, &offset, static_cast<std::size_t>(n));
  }
  thread_local std::unique_ptr<char[]> buffer = std::make_unique_for_overwrite<char[]>(kChunk);
  const std::size_t want =
      region.length < kChunk ? static_cast<std::size_t>(region.length) : kChunk;
  const ssize_t got =
      iolab::sys::pread(region.fd, buffer.get(), want, static_cast<off_t>(region.offset));
  if (got <= 0) return got == 0 ? (errno = EIO, -1) : got;
  // What the socket does not take now is read again next time, from the advanced offset.
  return iolab::sys::send(sock, buffer.get(), static_cast<std::size_t>(got));
}

}  // namespace lab10
