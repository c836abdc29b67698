// A worker's run queue: a bounded ring of coroutine handles, Go's runq (runtime/proc.go).
//
// One producer, many consumers. Only the owning worker pushes (at the tail); the owner pops and
// idle workers steal (at the head), both by compare-and-swap on head. A thief copies half of
// the victim's queue into its own ring, then claims those slots with one CAS; if the CAS fails
// someone else took them first and the copy is thrown away. The owner can only overwrite a slot
// that every reader has already given up (tail - head < capacity), so a thief that read a slot
// the owner is rewriting always loses its CAS. Slots are atomics (relaxed) so that the benign
// race is not undefined behaviour and ThreadSanitizer agrees.
//
// The tail is published with a seq_cst store and the parking worker re-reads it with seq_cst
// loads: together with the scheduler's seq_cst counters of idle and spinning workers this is
// the Dekker pattern that makes "push, then check for idle workers" and "announce idle, then
// check the queues" impossible to miss each other (no lost wake-ups; no fences, which
// ThreadSanitizer does not model).
#pragma once

#include <atomic>
#include <coroutine>
#include <cstdint>

namespace iolab::coro::detail {

class RunQueue {
 public:
  static constexpr std::uint32_t kCapacity = 256;

  // Owner only. False when full (the caller moves half of it to the global queue).
  // `publish` is seq_cst when other workers may park (see above); a lone worker only ever
  // parks after looking at its own queue, so release is enough there.
  bool push(std::coroutine_handle<> h, std::memory_order publish = std::memory_order_seq_cst) {
    const std::uint32_t t = tail_.load(std::memory_order_relaxed);
    const std::uint32_t h0 = head_.load(std::memory_order_acquire);
    if (t - h0 >= kCapacity) return false;
    slots_[t % kCapacity].store(h.address(), std::memory_order_relaxed);
    tail_.store(t + 1, publish);
    return true;
  }

  // Owner only: the oldest handle, or a null handle.
  std::coroutine_handle<> pop() {
    std::uint32_t h0 = head_.load(std::memory_order_acquire);
    for (;;) {
      const std::uint32_t t = tail_.load(std::memory_order_relaxed);
      if (t == h0) return {};
      void* p = slots_[h0 % kCapacity].load(std::memory_order_relaxed);
      if (head_.compare_exchange_weak(h0, h0 + 1, std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
        return std::coroutine_handle<>::from_address(p);
      }
    }
  }

  // Owner only, when push() failed: takes the older half out into `out` (at least
  // kCapacity / 2 entries) and returns how many, or 0 if thieves emptied it meanwhile.
  std::uint32_t take_half(std::coroutine_handle<>* out) {
    for (;;) {
      std::uint32_t h0 = head_.load(std::memory_order_acquire);
      const std::uint32_t t = tail_.load(std::memory_order_relaxed);
      const std::uint32_t n = (t - h0) / 2;
      if (n == 0) return 0;
      for (std::uint32_t i = 0; i < n; ++i) {
        out[i] = std::coroutine_handle<>::from_address(
            slots_[(h0 + i) % kCapacity].load(std::memory_order_relaxed));
      }
      if (head_.compare_exchange_strong(h0, h0 + n, std::memory_order_acq_rel,
                                        std::memory_order_acquire)) {
        return n;
      }
    }
  }

  // Called by the owner of *this (which must be empty) on another worker's queue: moves half
  // of the victim's handles here. Returns how many.
  std::uint32_t steal_from(RunQueue& victim) {
    const std::uint32_t my_tail = tail_.load(std::memory_order_relaxed);
    for (;;) {
      std::uint32_t h0 = victim.head_.load(std::memory_order_acquire);
      const std::uint32_t t = victim.tail_.load(std::memory_order_acquire);
      std::uint32_t n = t - h0;
      n -= n / 2;
      if (n == 0) return 0;
      if (n > kCapacity / 2) continue;  // head and tail read at different moments: again
      for (std::uint32_t i = 0; i < n; ++i) {
        void* p = victim.slots_[(h0 + i) % kCapacity].load(std::memory_order_relaxed);
        slots_[(my_tail + i) % kCapacity].store(p, std::memory_order_relaxed);
      }
      if (victim.head_.compare_exchange_strong(h0, h0 + n, std::memory_order_acq_rel,
                                               std::memory_order_acquire)) {
        tail_.store(my_tail + n, std::memory_order_seq_cst);
        return n;
      }
    }
  }

  // For the parking check (seq_cst: see the header comment).
  bool looks_empty() const {
    return tail_.load(std::memory_order_seq_cst) == head_.load(std::memory_order_seq_cst);
  }
  std::uint32_t size() const {
    return tail_.load(std::memory_order_acquire) - head_.load(std::memory_order_acquire);
  }

 private:
  alignas(64) std::atomic<std::uint32_t> head_{0};  // consumers CAS it
  alignas(64) std::atomic<std::uint32_t> tail_{0};  // written by the owner only
  std::atomic<void*> slots_[kCapacity] = {};
};

}  // namespace iolab::coro::detail
