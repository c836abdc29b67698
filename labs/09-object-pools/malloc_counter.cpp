// Counts every call into the C allocator, not only operator new, for lab09_server's /stats.
//
// The servers link servers/core/os/alloc_counter.cpp, which replaces operator new. A memory
// resource that called malloc() directly would slip past it, so the lab server counts one level
// lower: it defines malloc and its siblings itself (glibc lets a program replace them; the
// definitions in the executable take precedence over libc's, for libstdc++'s operator new too)
// and forwards each to glibc's own implementation under its __libc_ name, so free() and
// malloc_usable_size() stay glibc's and agree with every pointer. Each call adds to /stats
// "allocations" and "allocated_bytes". The counter itself may allocate (its first use on a
// thread registers a block); a thread-local flag keeps that from counting itself forever.
// Sanitizer builds define LAB09_COUNT_OPERATOR_NEW_ONLY (see CMakeLists.txt): the sanitizer's
// runtime owns malloc, and this file then defines nothing.
// Not part of the exercise: exercise/ and solution/ both build with this file.
#ifndef LAB09_COUNT_OPERATOR_NEW_ONLY
#include <cerrno>
#include <cstddef>

#include "stats.hpp"

extern "C" {
void* __libc_malloc(std::size_t size);
void* __libc_calloc(std::size_t n, std::size_t size);
void* __libc_realloc(void* p, std::size_t size);
void* __libc_memalign(std::size_t alignment, std::size_t size);
}

namespace {

thread_local bool counting = false;

void note(std::size_t bytes) {
  if (counting) return;
  counting = true;
  iolab::count(iolab::Counter::kAllocations);
  iolab::count(iolab::Counter::kAllocatedBytes, bytes);
  counting = false;
}

}  // namespace

extern "C" {

void* malloc(std::size_t size) {
  note(size);
  return __libc_malloc(size);
}

void* calloc(std::size_t n, std::size_t size) {
  note(n * size);
  return __libc_calloc(n, size);
}

void* realloc(void* p, std::size_t size) {
  note(size);
  return __libc_realloc(p, size);
}

void* memalign(std::size_t alignment, std::size_t size) {
  note(size);
  return __libc_memalign(alignment, size);
}

void* aligned_alloc(std::size_t alignment, std::size_t size) {
  note(size);
  return __libc_memalign(alignment, size);
}

int posix_memalign(void** out, std::size_t alignment, std::size_t size) {
  if (alignment % sizeof(void*) != 0 || (alignment & (alignment - 1)) != 0) return EINVAL;
  note(size);
  void* p = __libc_memalign(alignment, size);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}

}  // extern "C"

#endif  // LAB09_COUNT_OPERATOR_NEW_ONLY
