// Replaces the global operator new/delete to count allocations and bytes (Counter::kAllocations,
// Counter::kAllocatedBytes). Linked into every server and into tests that count allocations, so
// "allocations per request" is measured, not estimated. Frees are not counted: the figure that
// matters is how often the allocator is entered on the request path.
#include <cstddef>
#include <cstdlib>
#include <new>

#include "stats.hpp"

namespace {

void* allocate(std::size_t size) {
  iolab::count(iolab::Counter::kAllocations);
  iolab::count(iolab::Counter::kAllocatedBytes, size);
  if (size == 0) size = 1;
  if (void* p = std::malloc(size)) return p;
  throw std::bad_alloc();
}

void* allocate_aligned(std::size_t size, std::align_val_t align) {
  const auto a = static_cast<std::size_t>(align);
  // std::pmr::new_delete_resource asks for alignof(max_align_t), which malloc already gives.
  if (a <= alignof(std::max_align_t)) return allocate(size);
  iolab::count(iolab::Counter::kAllocations);
  iolab::count(iolab::Counter::kAllocatedBytes, size);
  size = (size + a - 1) / a * a;
  if (size == 0) size = a;
  if (void* p = std::aligned_alloc(a, size)) return p;
  throw std::bad_alloc();
}

}  // namespace

void* operator new(std::size_t size) { return allocate(size); }
void* operator new[](std::size_t size) { return allocate(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  try { return allocate(size); } catch (...) { return nullptr; }
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  try { return allocate(size); } catch (...) { return nullptr; }
}
void* operator new(std::size_t size, std::align_val_t align) { return allocate_aligned(size, align); }
void* operator new[](std::size_t size, std::align_val_t align) {
  return allocate_aligned(size, align);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
