// The operating-system side of ContentSource (declared in http/app.hpp, which only reads it):
// the memfd that /file sends from and its read-only mapping that /bytes points into.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "app.hpp"

namespace iolab {

ContentSource::ContentSource() {
  fd_ = memfd_create("iolab-content", MFD_CLOEXEC);
  if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "memfd_create");
  if (ftruncate(fd_, static_cast<off_t>(kSize)) != 0) {
    throw std::system_error(errno, std::generic_category(), "ftruncate content file");
  }
  void* map = mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
  if (map == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "mmap content");
  // One period of the pattern, then doubling copies, never a loop over 16 MiB of single bytes:
  // every server builds this at startup, before its ready line.
  auto* bytes = static_cast<char*>(map);
  std::uint64_t filled = 26;
  for (std::uint64_t i = 0; i < filled; ++i) bytes[i] = byte_at(i);
  while (filled < kSize) {
    const std::uint64_t n = std::min(filled, kSize - filled);
    std::memcpy(bytes + filled, bytes, n);  // period 26 divides `filled`: the pattern continues
    filled += n;
  }
  mprotect(map, kSize, PROT_READ);
  data_ = bytes;
}

ContentSource::~ContentSource() {
  if (data_) munmap(const_cast<char*>(data_), kSize);
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace iolab
