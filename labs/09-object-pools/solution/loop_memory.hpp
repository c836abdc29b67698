// Where lab09_server's memory comes from: the reference, from the standard library alone.
//
// LoopMemory belongs to the event loop (one thread: nothing here needs a lock); each connection
// has a ConnectionMemory built on it. The Connection state machine (servers/core/http/connection.hpp)
// asks it for two things: request_resource() for everything one request needs (what a Request
// keeps while its body arrives, the Response, the output buffer), reset by
// reset_request_resource() once all of it is destroyed; and the input buffer
// (acquire_buffer/release_buffer).
//
// The design, in two layers:
//   - LoopMemory is a std::pmr::unsynchronized_pool_resource: free lists of blocks per size
//     class, filled from operator new in chunks and never handed back while the loop lives.
//     Once it has grown to the load, an allocate() is a pop from a free list. Unsynchronized:
//     one loop, one thread, no lock (a shared pool would need one, and its line would bounce
//     between CPUs: lab 07).
//   - Each connection's request arena is a std::pmr::monotonic_buffer_resource whose first
//     block lives inside the connection object (kInlineArena bytes) and whose later blocks come
//     from the loop's pool. Allocating is a pointer bump; deallocate does nothing;
//     reset_request_resource() calls release(), which gives the later blocks back to the pool
//     and rewinds to the inline block. A /ping fits in the inline block: no pool call at all.
//   - Input buffers come straight from the loop's pool.
// What it costs: the pool keeps its high-water mark of memory for good, and each connection
// carries kInlineArena bytes even while idle (servers/core/os/pool.hpp's PooledMemory instead
// takes its arena blocks from the pool on demand, so idle connections hold nothing).
#pragma once

#include <array>
#include <cstddef>
#include <memory_resource>
#include <span>

#include "connection.hpp"

namespace lab09 {

class LoopMemory {
 public:
  LoopMemory() : pool_(pool_options(), std::pmr::new_delete_resource()) {}
  LoopMemory(const LoopMemory&) = delete;
  LoopMemory& operator=(const LoopMemory&) = delete;
  std::pmr::memory_resource* pool() { return &pool_; }

 private:
  static std::pmr::pool_options pool_options() {
    std::pmr::pool_options o;
    // Blocks up to this size are pooled; larger ones go to operator new every time. The input
    // buffer grows to Connection::kMaxBufferedInput and the output to about
    // kOutputHighWater plus one response: pool all of them.
    o.largest_required_pool_block = iolab::Connection::kMaxBufferedInput;
    return o;
  }
  std::pmr::unsynchronized_pool_resource pool_;
};

class ConnectionMemory final : public iolab::ConnectionMemory {
 public:
  static constexpr std::size_t kInlineArena = 2048;
  explicit ConnectionMemory(LoopMemory& loop)
      : loop_(loop), arena_(inline_.data(), inline_.size(), loop.pool()) {}

  std::pmr::memory_resource* request_resource() override { return &arena_; }
  void reset_request_resource() override { arena_.release(); }
  std::span<char> acquire_buffer(std::size_t min_bytes) override {
    return {static_cast<char*>(loop_.pool()->allocate(min_bytes, alignof(std::max_align_t))),
            min_bytes};
  }
  void release_buffer(std::span<char> buffer) override {
    loop_.pool()->deallocate(buffer.data(), buffer.size(), alignof(std::max_align_t));
  }

 private:
  LoopMemory& loop_;
  alignas(std::max_align_t) std::array<std::byte, kInlineArena> inline_;
  std::pmr::monotonic_buffer_resource arena_;
};

}  // namespace lab09

// The names server_pooled's main.cpp uses (servers/core/os/loop_memory.hpp gives them its own).
namespace iolab {
using LoopMemory = lab09::LoopMemory;
using ClientMemory = lab09::ConnectionMemory;
}  // namespace iolab
