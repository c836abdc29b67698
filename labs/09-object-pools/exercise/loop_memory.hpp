// Where lab09_server's memory comes from: the part you change.
//
// LoopMemory belongs to the event loop (one thread: nothing here needs a lock); each connection
// has a ConnectionMemory built on it. The Connection state machine (servers/core/http/connection.hpp)
// asks it for two things:
//   request_resource()        a std::pmr::memory_resource for everything one request needs:
//                             the copy a Request keeps while its body arrives, the Response and
//                             its body, and the output buffer (the response string). The
//                             connection calls reset_request_resource() once every object
//                             allocated from it has been destroyed (the output has drained), so
//                             a resource that frees everything at once is allowed there.
//   acquire_buffer(n) / release_buffer(b)   the input buffer (at least n bytes).
//
// As written, everything goes to operator new and delete, like server_epoll_et's HeapMemory:
// every request costs several trips into the allocator (see /stats "allocations").
//
// Exercise: make a steady stream of keep-alive requests allocation-free: after warm-up, not one
// call of operator new per request. Change only this file (keep the two class names, the
// constructors' parameters and the aliases at the bottom). The standard library has what you need (<memory_resource>); the
// project's own answer is servers/core/os/pool.hpp.
#pragma once

#include <cstddef>
#include <memory_resource>
#include <span>

#include "connection.hpp"

namespace lab09 {

class LoopMemory {
 public:
  LoopMemory() = default;
  LoopMemory(const LoopMemory&) = delete;
  LoopMemory& operator=(const LoopMemory&) = delete;
};

class ConnectionMemory final : public iolab::ConnectionMemory {
 public:
  explicit ConnectionMemory(LoopMemory& loop) : loop_(loop) {}

  std::pmr::memory_resource* request_resource() override { return std::pmr::new_delete_resource(); }
  void reset_request_resource() override {}
  std::span<char> acquire_buffer(std::size_t min_bytes) override {
    return {new char[min_bytes], min_bytes};
  }
  void release_buffer(std::span<char> buffer) override { delete[] buffer.data(); }

 private:
  [[maybe_unused]] LoopMemory& loop_;
};

}  // namespace lab09

// The names server_pooled's main.cpp uses (servers/core/os/loop_memory.hpp gives them its own).
namespace iolab {
using LoopMemory = lab09::LoopMemory;
using ClientMemory = lab09::ConnectionMemory;
}  // namespace iolab
