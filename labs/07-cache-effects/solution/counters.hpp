// Per-thread request counters for lab 07: the reference layout.
//
// Each worker thread owns one ThreadCounters slot of a CounterTable and is the only thread that
// writes it (a relaxed load and store, no locked instruction, like servers/core/http/stats.hpp);
// a reader sums all slots now and then.
//
// alignas(kCacheLine) on the slot type does two things at once: every slot starts on a line
// boundary, and sizeof(ThreadCounters) is rounded up to a multiple of the line, so the array
// places the next slot on the next line. The table inherits the alignment, so `new
// CounterTable` (C++17 aligned new), a static, or a member all land on a boundary. Padding with
// a char array alone would not do: the slots would be 64 bytes long but could start anywhere a
// 16-byte-aligned allocation puts them, and then each one straddles two lines.
// The cost is memory: 64 bytes per thread instead of 16, which is nothing for 8 threads and
// everything for a million connection objects (keep per-connection state compact instead).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace lab07 {

inline constexpr std::size_t kCacheLine = 64;  // x86-64 and most ARM cores
inline constexpr int kMaxThreads = 8;

struct alignas(kCacheLine) ThreadCounters {
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> bytes{0};
};
static_assert(sizeof(ThreadCounters) % kCacheLine == 0);

struct CounterTable {
  ThreadCounters slot[kMaxThreads];
};

// Only the owning thread calls this on its slot.
inline void count_request(ThreadCounters& mine, std::uint64_t bytes) {
  mine.requests.store(mine.requests.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  mine.bytes.store(mine.bytes.load(std::memory_order_relaxed) + bytes, std::memory_order_relaxed);
}

}  // namespace lab07
