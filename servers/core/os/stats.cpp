#include "stats.hpp"

#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace iolab {

namespace {

constexpr std::string_view kCounterNames[kCounterCount] = {
    "requests", "stats_requests", "connections_accepted", "connections_closed",
    "connections_refused", "bytes_in", "bytes_out", "allocations", "allocated_bytes",
    "read", "write", "writev", "sendfile", "pread", "splice", "accept", "close", "shutdown",
    "setsockopt", "poll", "select", "epoll_wait", "epoll_ctl", "io_uring_enter",
    "accept_backoffs", "deferred_work", "threads_created", "fd_setsize_refused",
    "connection_errors", "blocking_inline", "resumed_off_worker", "pool_hits",
    "pool_misses", "pool_reserved_bytes", "pool_high_water", "steals", "parks", "sqes_submitted", "cqes_reaped"};

// Registry of live blocks and the totals of exited threads. Blocks come from calloc, not
// operator new, because operator new itself counts (alloc_counter.cpp).
std::mutex registry_mutex;
CounterBlock* live_blocks = nullptr;
CounterBlock retired_block{};  // exited threads and the fallback; written with fetch_add

thread_local bool tls_exiting = false;

void retire(CounterBlock* block) {
  std::lock_guard lock(registry_mutex);
  for (unsigned i = 0; i < kCounterCount; ++i) {
    retired_block.values[i].fetch_add(block->values[i].load(std::memory_order_relaxed),
                                      std::memory_order_relaxed);
  }
  if (block->prev) block->prev->next = block->next; else live_blocks = block->next;
  if (block->next) block->next->prev = block->prev;
  std::free(block);
}

struct ThreadRetirer {
  CounterBlock* block = nullptr;
  ~ThreadRetirer() {
    tls_exiting = true;
    detail::tls_counters = nullptr;
    if (block) retire(block);
  }
};

}  // namespace

namespace detail {

thread_local CounterBlock* tls_counters = nullptr;

CounterBlock* register_thread_counters() {
  if (tls_exiting) return nullptr;
  static_assert(kCounterCount == sizeof(kCounterNames) / sizeof(kCounterNames[0]));
  auto* block = static_cast<CounterBlock*>(std::aligned_alloc(64, sizeof(CounterBlock)));
  if (block == nullptr) return nullptr;
  for (auto& v : block->values) v.store(0, std::memory_order_relaxed);
  {
    std::lock_guard lock(registry_mutex);
    block->prev = nullptr;
    block->next = live_blocks;
    if (live_blocks) live_blocks->prev = block;
    live_blocks = block;
  }
  tls_counters = block;
  thread_local ThreadRetirer retirer;
  retirer.block = block;
  return block;
}

void count_fallback(Counter c, std::uint64_t n) {
  retired_block.values[static_cast<unsigned>(c)].fetch_add(n, std::memory_order_relaxed);
}

}  // namespace detail

std::string_view counter_name(Counter c) { return kCounterNames[static_cast<unsigned>(c)]; }

std::uint64_t counter_total(Counter c) {
  const unsigned i = static_cast<unsigned>(c);
  std::lock_guard lock(registry_mutex);
  std::uint64_t sum = retired_block.values[i].load(std::memory_order_relaxed);
  for (CounterBlock* b = live_blocks; b != nullptr; b = b->next) {
    sum += b->values[i].load(std::memory_order_relaxed);
  }
  return sum;
}

namespace {

void append_kv(std::pmr::string& out, std::string_view key, std::uint64_t value, bool comma = true) {
  char buf[64];
  int n = std::snprintf(buf, sizeof buf, "\"%.*s\":%llu", static_cast<int>(key.size()), key.data(),
                        static_cast<unsigned long long>(value));
  if (comma) out += ',';
  out.append(buf, static_cast<std::size_t>(n));
}

std::uint64_t rss_kb() {
  // /proc/self/statm: size resident shared ... in pages.
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long long size = 0, resident = 0;
  int got = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  if (got != 2) return 0;
  return resident * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE)) / 1024;
}

}  // namespace

std::string stats_json(std::string_view model) {
  std::pmr::string out;
  append_stats_json(model, out);
  return std::string(out);
}

void append_stats_json(std::string_view model, std::pmr::string& out) {
  std::uint64_t totals[kCounterCount];
  {
    std::lock_guard lock(registry_mutex);
    for (unsigned i = 0; i < kCounterCount; ++i) {
      totals[i] = retired_block.values[i].load(std::memory_order_relaxed);
    }
    for (CounterBlock* b = live_blocks; b != nullptr; b = b->next) {
      for (unsigned i = 0; i < kCounterCount; ++i) {
        totals[i] += b->values[i].load(std::memory_order_relaxed);
      }
    }
  }
  out.reserve(out.size() + 1536);
  out += "{\"model\":\"";
  out += model;
  out += '"';
  append_kv(out, "pid", static_cast<std::uint64_t>(getpid()));
  for (unsigned i = 0; i < kFirstSyscallCounter; ++i) append_kv(out, kCounterNames[i], totals[i]);
  const auto accepted = totals[static_cast<unsigned>(Counter::kConnectionsAccepted)];
  const auto closed = totals[static_cast<unsigned>(Counter::kConnectionsClosed)];
  // The blocks are read one after another, so a close may be seen before its accept.
  append_kv(out, "connections_open", accepted > closed ? accepted - closed : 0);
  out += ",\"syscalls\":{";
  for (unsigned i = kFirstSyscallCounter; i < kFirstModelCounter; ++i) {
    append_kv(out, kCounterNames[i], totals[i], i != kFirstSyscallCounter);
  }
  out += "},\"model_counters\":{";
  for (unsigned i = kFirstModelCounter; i < kCounterCount; ++i) {
    append_kv(out, kCounterNames[i], totals[i], i != kFirstModelCounter);
  }
  out += '}';
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto us = [](const timeval& tv) {
    return static_cast<std::uint64_t>(tv.tv_sec) * 1000000 + static_cast<std::uint64_t>(tv.tv_usec);
  };
  append_kv(out, "cpu_user_us", us(ru.ru_utime));
  append_kv(out, "cpu_sys_us", us(ru.ru_stime));
  // The process CPU clock: the scheduler's run time of every thread, exact where the
  // user/system split above is tick-sampled (a remote harness reads its total from here).
  timespec cpu{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
  append_kv(out, "cpu_clock_us", static_cast<std::uint64_t>(cpu.tv_sec) * 1000000 +
                                     static_cast<std::uint64_t>(cpu.tv_nsec) / 1000);
  append_kv(out, "voluntary_context_switches", static_cast<std::uint64_t>(ru.ru_nvcsw));
  append_kv(out, "involuntary_context_switches", static_cast<std::uint64_t>(ru.ru_nivcsw));
  append_kv(out, "rss_kb", rss_kb());
  rlimit lim{};
  getrlimit(RLIMIT_NOFILE, &lim);
  append_kv(out, "fd_soft_limit", static_cast<std::uint64_t>(lim.rlim_cur));
  append_kv(out, "fd_hard_limit", static_cast<std::uint64_t>(lim.rlim_max));
  out += '}';
}

}  // namespace iolab
