// Per-process counters for /stats, written by the thread that owns them and read by anyone.
//
// Design: every thread that counts gets its own block of counters (a cache line apart from the
// others), registered in a process-wide list the first time it counts. A counter is written only
// by its owning thread, with a relaxed load and store (no locked read-modify-write on the hot
// path); readers sum all live blocks plus the totals of threads that have exited, using relaxed
// loads. The sum is a snapshot, not an atomic cut: good enough for counters read between runs.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory_resource>
#include <string>
#include <string_view>

namespace iolab {

enum class Counter : unsigned {
  // requests and connections
  kRequests,
  kStatsRequests,
  kConnectionsAccepted,
  kConnectionsClosed,
  kConnectionsRefused,
  kBytesIn,
  kBytesOut,
  kAllocations,
  kAllocatedBytes,
  // system calls, by kind (see sys.hpp)
  kSysRead,
  kSysWrite,
  kSysWritev,
  kSysSendfile,
  kSysPread,
  kSysSplice,
  kSysAccept,
  kSysClose,
  kSysShutdown,
  kSysSetsockopt,
  kSysPoll,
  kSysSelect,
  kSysEpollWait,
  kSysEpollCtl,
  kSysIoUringEnter,
  // model-specific
  kAcceptBackoffs,
  kDeferredWork,
  kThreadsCreated,
  kFdSetsizeRefused,
  kConnectionErrors,  // closed by an error on its own path (EPOLL_CTL_ADD, an exception)
  kBlockingInline,    // blocking work run inline because no pool thread could start
  kResumedOffWorker,  // server_coro: a connection came back from its blocking work off a worker
  kPoolHits,
  kPoolMisses,
  kPoolReservedBytes,
  kPoolHighWater,
  kSteals,
  kParks,
  kSqesSubmitted,
  kCqesReaped,
  kCount
};

inline constexpr unsigned kCounterCount = static_cast<unsigned>(Counter::kCount);
inline constexpr unsigned kFirstSyscallCounter = static_cast<unsigned>(Counter::kSysRead);
inline constexpr unsigned kFirstModelCounter = static_cast<unsigned>(Counter::kAcceptBackoffs);

// The JSON name of a counter ("requests", "read", "pool_hits", ...).
std::string_view counter_name(Counter c);

struct alignas(64) CounterBlock {
  std::atomic<std::uint64_t> values[kCounterCount];
  CounterBlock* next;
  CounterBlock* prev;
};

namespace detail {
extern thread_local CounterBlock* tls_counters;
CounterBlock* register_thread_counters();  // nullptr while the thread is exiting
void count_fallback(Counter c, std::uint64_t n);
}  // namespace detail

// Adds n to counter c of the calling thread. Safe from operator new and from any thread.
inline void count(Counter c, std::uint64_t n = 1) {
  CounterBlock* block = detail::tls_counters;
  if (block == nullptr) block = detail::register_thread_counters();
  if (block == nullptr) return detail::count_fallback(c, n);
  auto& v = block->values[static_cast<unsigned>(c)];
  v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}
// Gauges (connections open, pool bytes) go down too; unsigned wrap-around keeps sums right.
inline void count_down(Counter c, std::uint64_t n = 1) { count(c, ~n + 1); }

// Sum of counter c over all threads, live and exited.
std::uint64_t counter_total(Counter c);

// One line of JSON: the counters, the process's rusage, RSS and descriptor limits. Appends to
// `out` (from whatever resource it has: /stats itself allocates nothing in the pooled server).
void append_stats_json(std::string_view model, std::pmr::string& out);
std::string stats_json(std::string_view model);

}  // namespace iolab
