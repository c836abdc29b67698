// Pools for the pooled server: where memory comes from is the only thing it changes.
//
// ObjectPool<T> hands out objects of one type from chunks of slots threaded on a free list: a
// connection costs no allocation once the pool has grown to the load, and the pool never grows
// past its capacity, so exhaustion is explicit (the caller refuses the connection and counts it).
// BlockPool is a std::pmr::memory_resource that keeps freed blocks on per-size-class free lists
// and gives them out again; it backs both the input buffers (held only while a connection has
// bytes to hold) and each connection's request arena (a monotonic_buffer_resource released when
// the connection's output has drained). In steady state nothing reaches operator new.
// Both are single-threaded: each event loop owns its own. Hits, misses and reserved bytes are
// counted in /stats (pool_hits, pool_misses, pool_reserved_bytes, pool_high_water).
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <memory_resource>
#include <new>
#include <span>
#include <utility>
#include <vector>

#include "connection.hpp"
#include "stats.hpp"

namespace iolab {

template <typename T>
class ObjectPool {
 public:
  explicit ObjectPool(std::size_t capacity, std::size_t chunk_slots = 256)
      : capacity_(capacity), chunk_slots_(chunk_slots) {}
  ~ObjectPool() {
    count_down(Counter::kPoolReservedBytes, allocated_ * sizeof(Slot));
  }
  ObjectPool(const ObjectPool&) = delete;
  ObjectPool& operator=(const ObjectPool&) = delete;

  // nullptr when the pool is at capacity.
  template <typename... Args>
  T* create(Args&&... args) {
    if (free_ == nullptr && !grow()) return nullptr;
    Slot* slot = free_;
    free_ = slot->next;
    T* object = ::new (static_cast<void*>(slot->storage)) T(std::forward<Args>(args)...);
    if (++in_use_ > high_water_) {
      high_water_ = in_use_;
      count(Counter::kPoolHighWater);
    }
    return object;
  }

  void destroy(T* object) {
    object->~T();
    Slot* slot = reinterpret_cast<Slot*>(object);
    slot->next = free_;
    free_ = slot;
    --in_use_;
  }

  std::size_t in_use() const { return in_use_; }
  std::size_t reserved_bytes() const { return allocated_ * sizeof(Slot); }

 private:
  union Slot {
    Slot* next;
    alignas(T) unsigned char storage[sizeof(T)];
  };

  bool grow() {
    if (allocated_ >= capacity_) return false;
    const std::size_t n = std::min(chunk_slots_, capacity_ - allocated_);
    chunks_.push_back(std::make_unique<Slot[]>(n));
    Slot* chunk = chunks_.back().get();
    for (std::size_t i = n; i-- > 0;) {
      chunk[i].next = free_;
      free_ = &chunk[i];
    }
    allocated_ += n;
    count(Counter::kPoolMisses);
    count(Counter::kPoolReservedBytes, n * sizeof(Slot));
    return true;
  }

  std::vector<std::unique_ptr<Slot[]>> chunks_;
  Slot* free_ = nullptr;
  std::size_t capacity_;
  std::size_t chunk_slots_;
  std::size_t allocated_ = 0;
  std::size_t in_use_ = 0;
  std::size_t high_water_ = 0;
};

class BlockPool final : public std::pmr::memory_resource {
 public:
  static constexpr std::size_t kMinBlock = 512;             // size classes: 512 B ...
  static constexpr std::size_t kMaxBlock = 1024 * 1024;     // ... 1 MiB; larger go to the heap
  static constexpr std::size_t kClasses = 12;               // 2^9 .. 2^20
  BlockPool() = default;
  ~BlockPool() override;
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  std::size_t reserved_bytes() const { return reserved_; }

 private:
  struct FreeBlock {
    FreeBlock* next;
  };
  void* do_allocate(std::size_t bytes, std::size_t alignment) override;
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override;
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
    return this == &other;
  }

  std::array<FreeBlock*, kClasses> free_{};
  std::size_t reserved_ = 0;
};

// A connection's memory in the pooled server: a request arena over the loop's BlockPool, and
// input buffers from the same pool.
class PooledMemory final : public ConnectionMemory {
 public:
  static constexpr std::size_t kArenaFirstBlock = 2048;
  explicit PooledMemory(BlockPool& blocks) : blocks_(blocks), arena_(kArenaFirstBlock, &blocks) {}
  std::pmr::memory_resource* request_resource() override { return &arena_; }
  void reset_request_resource() override { arena_.release(); }
  std::span<char> acquire_buffer(std::size_t min_bytes) override {
    return {static_cast<char*>(blocks_.allocate(min_bytes, alignof(std::max_align_t))), min_bytes};
  }
  void release_buffer(std::span<char> buffer) override {
    blocks_.deallocate(buffer.data(), buffer.size(), alignof(std::max_align_t));
  }

 private:
  BlockPool& blocks_;
  std::pmr::monotonic_buffer_resource arena_;
};

}  // namespace iolab
