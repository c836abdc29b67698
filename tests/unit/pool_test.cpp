// Pools of the pooled server: capacity, reuse without allocation, arena release.
#include "pool.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace iolab {
namespace {

std::uint64_t allocations() { return counter_total(Counter::kAllocations); }

struct Widget {
  explicit Widget(int v) : value(v) {}
  int value;
  char payload[100];
};

TEST(ObjectPoolTest, RefusesBeyondCapacity) {
  ObjectPool<Widget> pool(3, 2);
  std::vector<Widget*> held;
  for (int i = 0; i < 3; ++i) held.push_back(pool.create(i));
  for (Widget* w : held) ASSERT_NE(w, nullptr);
  EXPECT_EQ(pool.create(99), nullptr);
  EXPECT_EQ(pool.in_use(), 3u);
  pool.destroy(held.back());
  held.pop_back();
  Widget* again = pool.create(7);
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->value, 7);
  held.push_back(again);
  for (Widget* w : held) pool.destroy(w);
  EXPECT_EQ(pool.in_use(), 0u);
}

TEST(ObjectPoolTest, ReusesSlotsWithoutAllocating) {
  ObjectPool<Widget> pool(64, 16);
  std::vector<Widget*> held;
  for (int i = 0; i < 16; ++i) held.push_back(pool.create(i));
  for (Widget* w : held) pool.destroy(w);
  held.clear();
  const std::uint64_t before = allocations();
  for (int round = 0; round < 1000; ++round) {
    Widget* w = pool.create(round);
    pool.destroy(w);
  }
  EXPECT_EQ(allocations(), before);
  EXPECT_GE(pool.reserved_bytes(), 16 * sizeof(Widget));
}

TEST(BlockPoolTest, FreedBlocksAreHandedOutAgain) {
  BlockPool blocks;
  void* a = blocks.allocate(3000, 16);
  blocks.deallocate(a, 3000, 16);
  const std::uint64_t hits = counter_total(Counter::kPoolHits);
  const std::uint64_t before = allocations();
  void* b = blocks.allocate(4000, 16);  // same size class (4 KiB)
  EXPECT_EQ(a, b);
  EXPECT_EQ(counter_total(Counter::kPoolHits), hits + 1);
  EXPECT_EQ(allocations(), before);
  blocks.deallocate(b, 4000, 16);
  EXPECT_EQ(blocks.reserved_bytes(), 4096u);
}

TEST(BlockPoolTest, LargeRequestsGoToTheHeapAndAreCountedAsMisses) {
  BlockPool blocks;
  const std::uint64_t misses = counter_total(Counter::kPoolMisses);
  void* big = blocks.allocate(BlockPool::kMaxBlock + 1, 16);
  EXPECT_EQ(counter_total(Counter::kPoolMisses), misses + 1);
  blocks.deallocate(big, BlockPool::kMaxBlock + 1, 16);
  EXPECT_EQ(blocks.reserved_bytes(), 0u);
}

TEST(PooledMemoryTest, ArenaReleasesItsBlocksToThePoolAndReusesThem) {
  BlockPool blocks;
  PooledMemory memory(blocks);
  auto use_arena = [&] {
    std::pmr::vector<std::pmr::string> strings(memory.request_resource());
    for (int i = 0; i < 20; ++i) strings.emplace_back(100, 'x');
  };
  use_arena();
  memory.reset_request_resource();
  const std::size_t reserved = blocks.reserved_bytes();
  EXPECT_GT(reserved, 0u);
  const std::uint64_t before = allocations();
  for (int round = 0; round < 100; ++round) {
    use_arena();
    memory.reset_request_resource();
  }
  EXPECT_EQ(allocations(), before) << "steady state reaches operator new";
  EXPECT_EQ(blocks.reserved_bytes(), reserved) << "the pool grew after warm-up";
}

TEST(PooledMemoryTest, BuffersComeFromThePool) {
  BlockPool blocks;
  PooledMemory memory(blocks);
  std::span<char> buffer = memory.acquire_buffer(Connection::kInputBufferBytes);
  ASSERT_EQ(buffer.size(), Connection::kInputBufferBytes);
  memory.release_buffer(buffer);
  const std::uint64_t before = allocations();
  std::span<char> again = memory.acquire_buffer(Connection::kInputBufferBytes);
  EXPECT_EQ(again.data(), buffer.data());
  EXPECT_EQ(allocations(), before);
  memory.release_buffer(again);
}

}  // namespace
}  // namespace iolab
