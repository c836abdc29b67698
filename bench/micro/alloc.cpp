// micro_alloc: where a request's memory comes from, and what that costs.
//
// What to notice:
//   - BM_MallocFree/bytes:N is glibc's fast path (its per-thread cache): a few nanoseconds.
//     With threads:2 each thread mostly hits its own cache, so "contended" malloc stays cheap
//     until blocks cross threads.
//   - BM_ObjectPool is servers/core/os/pool.hpp's free list (what the pooled server takes a
//     connection from); BM_ObjectPoolLocked is one pool shared by threads behind a mutex, the
//     shape of a global pool: with threads:2 the lock line bounces between the CPUs.
//   - BM_RequestMemory/arena:0 builds one request and response the way the plain servers do
//     (the response string from operator new; the Request's views need none); arena:1 builds the
//     same objects from the pooled server's per-request arena over its BlockPool, released
//     after each request. heap_allocs_per_request and heap_bytes_per_request count what reached
//     operator new (servers/core/os/alloc_counter.cpp is linked in): C09/C10 claim pooling nearly
//     doubles throughput and cuts bytes per operation 16x; here is the allocator's share of it.
//
// Usage: build/bin/micro_alloc [--benchmark_filter=Request] [--benchmark_format=json]
#include <cstdlib>
#include <memory_resource>
#include <mutex>
#include <string_view>

#include "app.hpp"
#include "http_parser.hpp"
#include "micro_common.hpp"
#include "pool.hpp"
#include "stats.hpp"

namespace {

void BM_MallocFree(benchmark::State& state) {
  const std::size_t bytes = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    void* p = std::malloc(bytes);
    benchmark::DoNotOptimize(p);
    std::free(p);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel("C09 C10 malloc+free");
}
BENCHMARK(BM_MallocFree)->ArgName("bytes")->Arg(64)->Arg(512)->Arg(4096)->Threads(1)->Threads(2);

struct Object {
  char bytes[256];
};

void BM_ObjectPool(benchmark::State& state) {
  iolab::ObjectPool<Object> pool(1024);
  for (auto _ : state) {
    Object* o = pool.create();
    benchmark::DoNotOptimize(o);
    pool.destroy(o);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel("C09 C10 free-list pool, one thread");
}
BENCHMARK(BM_ObjectPool);

iolab::ObjectPool<Object> shared_pool(1024);
std::mutex shared_pool_mutex;

void BM_ObjectPoolLocked(benchmark::State& state) {
  for (auto _ : state) {
    Object* o;
    {
      std::lock_guard lock(shared_pool_mutex);
      o = shared_pool.create();
    }
    benchmark::DoNotOptimize(o);
    std::lock_guard lock(shared_pool_mutex);
    shared_pool.destroy(o);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel("C09 C10 shared pool behind a mutex");
}
BENCHMARK(BM_ObjectPoolLocked)->Threads(1)->Threads(2)->UseRealTime();

// This thread's own allocation counters (alloc_counter.cpp counts per thread), so that with
// threads:2 each thread reports only what its own requests allocated.
std::uint64_t this_thread(iolab::Counter c) {
  iolab::count(c, 0);  // makes sure the thread's block exists
  return iolab::detail::tls_counters->values[static_cast<unsigned>(c)].load(
      std::memory_order_relaxed);
}

constexpr std::string_view kRequest =
    "GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: loadgen\r\n"
    "Accept: */*\r\nConnection: keep-alive\r\n\r\n";

// One request's memory life as the servers live it: parse, own the request, route, serialise.
void BM_RequestMemory(benchmark::State& state) {
  const bool arena = state.range(0) != 0;
  iolab::ContentSource content;
  const iolab::App app("micro", content);
  iolab::http::RequestHead head;
  if (iolab::http::parse_request_head(kRequest, head).status !=
      iolab::http::ParseStatus::kComplete) {
    state.SkipWithError("request did not parse");
    return;
  }
  iolab::BlockPool blocks;
  std::pmr::monotonic_buffer_resource request_arena(iolab::PooledMemory::kArenaFirstBlock, &blocks);
  std::pmr::memory_resource* mr = arena ? &request_arena : std::pmr::new_delete_resource();
  auto serve_one = [&] {
    const iolab::Request req(head, mr);
    iolab::Response resp(mr);
    app.handle(req, resp);
    std::pmr::string out(mr);
    app.append_head(resp, true, false, out);
    out.append(resp.body);
    out.append(resp.text);
    benchmark::DoNotOptimize(out.data());
  };
  serve_one();  // the arena's first blocks come from the pool once
  request_arena.release();
  const std::uint64_t allocs = this_thread(iolab::Counter::kAllocations);
  const std::uint64_t bytes = this_thread(iolab::Counter::kAllocatedBytes);
  for (auto _ : state) {
    serve_one();
    if (arena) request_arena.release();
  }
  const auto per_request = [&](std::uint64_t v) {
    return benchmark::Counter(static_cast<double>(v), benchmark::Counter::kAvgIterations);
  };
  state.counters["heap_allocs_per_request"] =
      per_request(this_thread(iolab::Counter::kAllocations) - allocs);
  state.counters["heap_bytes_per_request"] =
      per_request(this_thread(iolab::Counter::kAllocatedBytes) - bytes);
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(arena ? "C09 C10 per-request arena over a block pool"
                       : "C09 C10 operator new, as the plain servers");
}
BENCHMARK(BM_RequestMemory)->ArgName("arena")->Arg(0)->Arg(1)->Threads(1)->Threads(2);

}  // namespace

IOLAB_MICRO_MAIN();
