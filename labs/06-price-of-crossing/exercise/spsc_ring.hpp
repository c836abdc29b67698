// A single-producer, single-consumer ring of 64-byte messages, for shared memory, that makes no
// system call while the consumer keeps up with work (lab 06's exercise).
//
// The data path, and the message: message.hpp.
//
// The wait path: an empty ring has nothing to do for the consumer, so it sleeps on a futex on
// `head` and the producer wakes it.
//
// EXERCISE (lab 06): this starter is correct, but it makes a system call for every message: the
// producer calls FUTEX_WAKE after every push, whether or not the consumer sleeps, and the
// consumer goes to sleep the moment the ring is empty (a futex wait, and a wake-up of a sleeping
// CPU, for a message that would have come a microsecond later). Make the ring cost no system
// call per message while the consumer keeps up:
//   - the consumer checks the ring kSpins times (cpu_relax() between checks) before it sleeps;
//   - before sleeping it announces it (consumer_waiting_ = 1), then checks head once more;
//   - the producer calls futex_wake only when it sees consumer_waiting_ set.
// Order those stores and loads so that no wake-up is lost (a consumer asleep with a message in
// the ring): the lab's README explains the race. `make lab-06-check`.
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
    head_.store(h + 1, std::memory_order_release);  // publish
    futex_wake(head_);  // starter: a system call per message, sleeping consumer or not
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
    // starter: sleeps at once; FUTEX_WAIT returns at once if head moved past t meanwhile
    while (head_.load(std::memory_order_acquire) == t) futex_wait(head_, t);
  }

  alignas(64) std::atomic<std::uint32_t> head_{0};
  alignas(64) std::atomic<std::uint32_t> tail_{0};
  alignas(64) std::atomic<std::uint32_t> consumer_waiting_{0};
  alignas(64) Message slots_[kSlots];
};

}  // namespace lab06
