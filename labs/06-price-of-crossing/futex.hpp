// futex(2), counted: the only way lab 06's ring may enter the kernel; and cpu_relax(), for the
// spin before it.
//
// A futex is a 32-bit word in memory that threads (or processes sharing the page) agree on.
// FUTEX_WAIT(addr, expected) puts the caller to sleep only if *addr still equals `expected` when
// the kernel looks (atomically with its check), so a wake that came just before the sleep is
// never lost; FUTEX_WAKE(addr, n) wakes up to n sleepers. Everything else (the fast path) happens
// in user space, on atomics, without a system call. These are the shared (not _PRIVATE) forms:
// the ring may live in memory mapped by two processes (mmap MAP_SHARED), and a private futex is
// keyed by the process's own address space.
//
// Each call is counted (futex_calls()), so the lab's check can tell how many system calls a
// message cost; the check also counts with the kernel's raw_syscalls tracepoint where perf runs.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace lab06 {

inline std::atomic<std::uint64_t> g_futex_calls{0};
// For the check's late-producer test only (ring_check.cpp --mode late): how long futex_wait
// holds the caller between its last look at the ring and the sleep, so that another thread's
// wake can fall there, as it can when the caller is preempted. 0 (no delay) everywhere else.
inline std::atomic<std::int64_t> g_wait_delay_ns{0};

inline std::uint64_t futex_calls() { return g_futex_calls.load(std::memory_order_relaxed); }

// Sleeps while *word == expected (returns at once if it differs). Spurious returns happen
// (EINTR, a wake meant for someone else): the caller re-checks its condition.
inline void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected) {
  g_futex_calls.fetch_add(1, std::memory_order_relaxed);
  if (const std::int64_t delay = g_wait_delay_ns.load(std::memory_order_relaxed); delay > 0) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::nanoseconds(delay);
    while (std::chrono::steady_clock::now() < until) {
    }
  }
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT, expected, nullptr,
            nullptr, 0);
}

// Wakes up to `count` threads sleeping on `word`.
inline void futex_wake(std::atomic<std::uint32_t>& word, int count = 1) {
  g_futex_calls.fetch_add(1, std::memory_order_relaxed);
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE, count, nullptr,
            nullptr, 0);
}

// Tells the CPU this is a spin loop (x86 PAUSE: saves power, lets an SMT sibling run).
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

}  // namespace lab06
