// A single-producer, single-consumer ring of 64-byte messages, for shared memory, that makes no
// system call while the consumer keeps up with work (lab 06's exercise).
//
// The data path, and the message: message.hpp.
//
// The wait path. An empty ring has nothing to do for the consumer: spinning burns a CPU (and on
// one CPU keeps the producer from running at all), so after kSpins checks it sleeps on a futex.
// The producer must then wake it, and a FUTEX_WAKE is a system call: making it on every push
// would put a system call on every message, the very cost the ring exists to avoid. So the
// consumer announces that it is about to sleep (waiting = 1), and the producer wakes it only
// when it takes that flag (one wake per sleep). The race to get right:
//
//   consumer                                   producer
//   waiting = 1                                head = h + 1      (publish)
//   if head != h: don't sleep                  if exchange(waiting, 0) == 1: FUTEX_WAKE(waiting)
//   FUTEX_WAIT(waiting, 1)
//
// With both sides storing then loading in sequentially consistent order, at least one of them
// sees the other's store: either the consumer sees the new head and does not sleep, or the
// producer sees the flag and wakes. (With release/acquire alone, both loads could read the old
// values: a lost wake-up, the consumer asleep with a message in the ring.)
//
// The futex word is the flag, not head. The producer that clears the flag may be a late one:
// it published a message the consumer has already taken, and reaches the flag only after the
// consumer came back empty-handed, set the flag again and is about to sleep with head unchanged.
// A sleep on head would then go ahead, and the flag is gone, so no later push wakes it (the
// lab's check caught exactly this, once in a few hundred thousand messages). A sleep on the flag
// cannot: FUTEX_WAIT(waiting, 1) re-checks the word inside the kernel, atomically with going to
// sleep, so a flag cleared before it returns at once (and the loop looks again), and a flag
// cleared after it is followed by the wake it was cleared for.
//
// A full ring is the producer's problem: try_push() says so and the caller decides (spin, drop,
// or sleep on its own futex: left out here, see Going further).
#pragma once

#include "message.hpp"

namespace lab06 {

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
      futex_wake(consumer_waiting_);
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
      futex_wait(consumer_waiting_, 1);  // sleeps only while the flag is still set
    }
    consumer_waiting_.store(0, std::memory_order_relaxed);
  }

  alignas(64) std::atomic<std::uint32_t> head_{0};
  alignas(64) std::atomic<std::uint32_t> tail_{0};
  alignas(64) std::atomic<std::uint32_t> consumer_waiting_{0};
  alignas(64) Message slots_[kSlots];
};

}  // namespace lab06
