// Frame accounting for every coroutine of the library (see task.hpp).
#include "task.hpp"

namespace iolab::coro::detail {

std::atomic<std::uint64_t> g_frames{0};
std::atomic<std::uint64_t> g_frame_bytes{0};
std::atomic<std::uint64_t> g_freed_frames{0};
std::atomic<std::uint64_t> g_freed_bytes{0};

void* PromiseBase::operator new(std::size_t size) {
  g_frames.fetch_add(1, std::memory_order_relaxed);
  g_frame_bytes.fetch_add(size, std::memory_order_relaxed);
  return ::operator new(size);
}

void PromiseBase::operator delete(void* p, std::size_t size) noexcept {
  g_freed_frames.fetch_add(1, std::memory_order_relaxed);
  g_freed_bytes.fetch_add(size, std::memory_order_relaxed);
  ::operator delete(p);
}

}  // namespace iolab::coro::detail
