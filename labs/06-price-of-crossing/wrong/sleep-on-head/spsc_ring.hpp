// Lab 06, a known wrong solution: the consumer sleeps on head_ instead of on its flag. A late
// producer (it published a message the consumer already took, and reaches the flag only after
// the consumer set it again) clears the flag and wakes before the consumer sleeps: the wake is
// lost, head_ has not changed, so the sleep goes ahead and no later push wakes it.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>

#include "futex.hpp"

namespace lab06 {

struct Message {
  std::uint64_t seq;
  std::uint64_t payload[7];
};
static_assert(sizeof(Message) == 64);

class SpscRing {
 public:
  static constexpr std::uint32_t kSlots = 1024;  // a power of two: head and tail wrap cleanly
  static constexpr int kSpins = 200;  // checks of an empty ring before sleeping (a few us)

  // Producer. False when the ring is full (nothing written).
  bool try_push(const Message& m) {
    const std::uint32_t h = head_.load(std::memory_order_relaxed);
    if (h - tail_.load(std::memory_order_acquire) == kSlots) return false;
    slots_[h % kSlots] = m;
    head_.store(h + 1, std::memory_order_seq_cst);  // publish; seq_cst: see the race above
    // Take the flag as it wakes: pushes that follow before the consumer runs again find it
    // clear and make no system call (one wake per sleep, not one per message).
    if (consumer_waiting_.load(std::memory_order_seq_cst) != 0 &&
        consumer_waiting_.exchange(0, std::memory_order_seq_cst) != 0) {
      futex_wake(head_);
    }
    return true;
  }

  // Consumer. Waits until a message is there (the end of a stream is a message too: the
  // ring has no "closed" state to race with).
  void pop(Message& out) {
    const std::uint32_t t = tail_.load(std::memory_order_relaxed);
    wait_not_empty(t);
    out = slots_[t % kSlots];
    tail_.store(t + 1, std::memory_order_release);  // the slot is free again
  }

 private:
  void wait_not_empty(std::uint32_t t) {
    for (int i = 0; i < kSpins; ++i) {
      if (head_.load(std::memory_order_acquire) != t) return;
      cpu_relax();
    }
    for (;;) {
      consumer_waiting_.store(1, std::memory_order_seq_cst);
      const std::uint32_t h = head_.load(std::memory_order_seq_cst);
      if (h != t) break;
      futex_wait(head_, h);  // the mistake: sleeps on head, not on the flag (see WHY.md)
    }
    consumer_waiting_.store(0, std::memory_order_relaxed);
  }

  alignas(64) std::atomic<std::uint32_t> head_{0};
  alignas(64) std::atomic<std::uint32_t> tail_{0};
  alignas(64) std::atomic<std::uint32_t> consumer_waiting_{0};
  alignas(64) Message slots_[kSlots];
};

static_assert(std::atomic<std::uint32_t>::is_always_lock_free &&
              sizeof(std::atomic<std::uint32_t>) == 4,
              "a futex is a plain 32-bit word");

}  // namespace lab06
