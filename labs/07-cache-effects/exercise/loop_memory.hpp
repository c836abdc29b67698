// server_lab07's memory: server_pooled with its pools kept in one table. The part you change.
//
// Each event loop (--threads N: one loop per thread) gets a row of the table below: its free
// lists of blocks, one list per size class. Every request pops and pushes on its loop's lists
// (the input buffer, the request arena's blocks), so each loop thread writes its row again and
// again, and no thread ever touches another's. The server works and allocates nothing per
// request. Yet it has false sharing on its hot path: find it (the check names the lines two
// threads write, and which code wrote them), and fix it here, keeping the pooling.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <new>
#include <span>
#include <stdexcept>

#include "connection.hpp"

namespace lab07 {

inline constexpr std::size_t kMinBlock = 512, kClasses = 5;  // 512 B .. 8 KiB
struct FreeBlock {
  FreeBlock* next;
};
struct Row {  // one loop's pool: blocks it handed out again, and its free lists
  std::uint64_t hits = 0;
  FreeBlock* free[kClasses] = {};
};
alignas(64) inline Row table[16];  // row i: the pool of the i-th loop made
inline std::atomic<std::size_t> rows_taken{0};

class LoopMemory final : public std::pmr::memory_resource {
 public:
  LoopMemory() : row_(table[rows_taken.fetch_add(1) % std::size(table)]) {
    if (rows_taken > std::size(table)) throw std::length_error("lab07: more loops than rows");
  }

 private:
  static std::size_t size_class(std::size_t bytes) {
    std::size_t c = 0;
    while ((kMinBlock << c) < bytes) ++c;
    return c;
  }
  void* do_allocate(std::size_t bytes, std::size_t align) override {
    const std::size_t c = size_class(bytes);
    if (c >= kClasses || align > alignof(std::max_align_t)) return ::operator new(bytes);
    FreeBlock* b = row_.free[c];
    if (b == nullptr) return ::operator new(kMinBlock << c);
    row_.free[c] = b->next;
    ++row_.hits;
    return b;
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t align) override {
    const std::size_t c = size_class(bytes);
    if (c >= kClasses || align > alignof(std::max_align_t)) return ::operator delete(p);
    static_cast<FreeBlock*>(p)->next = row_.free[c];
    row_.free[c] = static_cast<FreeBlock*>(p);
  }
  bool do_is_equal(const std::pmr::memory_resource& o) const noexcept override {
    return this == &o;
  }
  Row& row_;
};

// A connection's memory: a request arena whose blocks come from its loop's pool, and input
// buffers straight from the pool.
class ConnectionMemory final : public iolab::ConnectionMemory {
 public:
  explicit ConnectionMemory(LoopMemory& loop) : loop_(loop), arena_(2048, &loop) {}
  std::pmr::memory_resource* request_resource() override { return &arena_; }
  void reset_request_resource() override { arena_.release(); }
  std::span<char> acquire_buffer(std::size_t n) override {
    return {static_cast<char*>(loop_.allocate(n)), n};
  }
  void release_buffer(std::span<char> b) override { loop_.deallocate(b.data(), b.size()); }

 private:
  LoopMemory& loop_;
  std::pmr::monotonic_buffer_resource arena_;
};

}  // namespace lab07

namespace iolab {  // the names servers/pooled/main.cpp uses
using LoopMemory = lab07::LoopMemory;
using ClientMemory = lab07::ConnectionMemory;
}  // namespace iolab
