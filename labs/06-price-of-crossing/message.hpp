// Lab 06's ring, the part that is no exercise: the message, and the data path of
// spsc_ring.hpp (exercise/ and solution/ include this).
//
// The data path is two counters and an array. `head` counts messages published by the producer,
// `tail` messages taken by the consumer; slot i % kSlots holds message i. Each side writes only
// its own counter, so no lock and no read-modify-write is needed: the producer fills the slot,
// then publishes it with a release store of head; the consumer reads head with acquire, so the
// slot's bytes are visible before it reads them, then frees the slot with a release store of
// tail. The counters sit on their own cache lines (a line both sides write would bounce between
// the CPUs on every message: false sharing).
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

static_assert(std::atomic<std::uint32_t>::is_always_lock_free &&
              sizeof(std::atomic<std::uint32_t>) == 4,
              "a futex is a plain 32-bit word");

}  // namespace lab06
