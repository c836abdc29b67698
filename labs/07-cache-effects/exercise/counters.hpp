// Per-thread request counters for lab 07: the part you change.
//
// Each worker thread owns one ThreadCounters slot of a CounterTable and is the only thread that
// writes it (a relaxed load and store, no locked instruction, like servers/core/http/stats.hpp);
// a reader sums all slots now and then. No data is shared, yet as laid out below the slots of
// different threads sit side by side in memory: four 16-byte slots fill one 64-byte cache line,
// so every write by one thread takes that line away from the CPU that another thread is
// writing it on. That is false sharing.
//
// Exercise: change the layout (only this file) so that no two slots share a cache line, for
// any address the table may be placed at that its alignment allows. Keep the names: main.cpp
// and the check use them. `make lab-07-check` judges the layout, not the clock.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace lab07 {

inline constexpr std::size_t kCacheLine = 64;  // x86-64 and most ARM cores
inline constexpr int kMaxThreads = 8;

struct ThreadCounters {
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> bytes{0};
};

struct CounterTable {
  ThreadCounters slot[kMaxThreads];
};

// Only the owning thread calls this on its slot.
inline void count_request(ThreadCounters& mine, std::uint64_t bytes) {
  mine.requests.store(mine.requests.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  mine.bytes.store(mine.bytes.load(std::memory_order_relaxed) + bytes, std::memory_order_relaxed);
}

}  // namespace lab07
