// Lab 09, a known wrong solution: every request's objects come from one static arena that is
// never released. No call into malloc after start-up, so the check before issue 30 passed it;
// but every request leaves its objects behind (the arena only grows: resident memory rises by
// each request's bytes, and after 256 MiB of requests the server fails), and one arena is
// shared by every connection of every loop.
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
    o.largest_required_pool_block = iolab::Connection::kMaxBufferedInput;
    return o;
  }
  std::pmr::unsynchronized_pool_resource pool_;
};

class ConnectionMemory final : public iolab::ConnectionMemory {
 public:
  explicit ConnectionMemory(LoopMemory& loop) : loop_(loop) {}

  std::pmr::memory_resource* request_resource() override { return &arena(); }
  void reset_request_resource() override {}  // the mistake: nothing is ever given back
  std::span<char> acquire_buffer(std::size_t min_bytes) override {
    return {static_cast<char*>(loop_.pool()->allocate(min_bytes, alignof(std::max_align_t))),
            min_bytes};
  }
  void release_buffer(std::span<char> buffer) override {
    loop_.pool()->deallocate(buffer.data(), buffer.size(), alignof(std::max_align_t));
  }

 private:
  static std::pmr::monotonic_buffer_resource& arena() {
    alignas(std::max_align_t) static std::array<std::byte, std::size_t{256} << 20> storage;
    static std::pmr::monotonic_buffer_resource resource(storage.data(), storage.size(),
                                                        std::pmr::null_memory_resource());
    return resource;
  }
  LoopMemory& loop_;
};

}  // namespace lab09

namespace iolab {
using LoopMemory = lab09::LoopMemory;
using ClientMemory = lab09::ConnectionMemory;
}  // namespace iolab
