#include "pool.hpp"

#include <bit>

namespace iolab {

namespace {
// The class of a request: 0 for up to 512 bytes, 1 for up to 1 KiB, ...
std::size_t size_class(std::size_t bytes) {
  const std::size_t rounded = std::bit_ceil(std::max(bytes, BlockPool::kMinBlock));
  return static_cast<std::size_t>(std::countr_zero(rounded)) - 9;
}
}  // namespace

BlockPool::~BlockPool() {
  for (std::size_t c = 0; c < kClasses; ++c) {
    while (FreeBlock* b = free_[c]) {
      free_[c] = b->next;
      ::operator delete(static_cast<void*>(b), std::align_val_t(alignof(std::max_align_t)));
    }
  }
  count_down(Counter::kPoolReservedBytes, reserved_);
}

void* BlockPool::do_allocate(std::size_t bytes, std::size_t alignment) {
  if (bytes > kMaxBlock || alignment > alignof(std::max_align_t)) {
    count(Counter::kPoolMisses);
    return ::operator new(bytes, std::align_val_t(alignment));
  }
  const std::size_t c = size_class(bytes);
  if (FreeBlock* b = free_[c]) {
    free_[c] = b->next;
    count(Counter::kPoolHits);
    return b;
  }
  const std::size_t size = kMinBlock << c;
  reserved_ += size;
  count(Counter::kPoolMisses);
  count(Counter::kPoolReservedBytes, size);
  return ::operator new(size, std::align_val_t(alignof(std::max_align_t)));
}

void BlockPool::do_deallocate(void* p, std::size_t bytes, std::size_t alignment) {
  if (bytes > kMaxBlock || alignment > alignof(std::max_align_t)) {
    ::operator delete(p, std::align_val_t(alignment));
    return;
  }
  auto* b = static_cast<FreeBlock*>(p);
  const std::size_t c = size_class(bytes);
  b->next = free_[c];
  free_[c] = b;
}

}  // namespace iolab
