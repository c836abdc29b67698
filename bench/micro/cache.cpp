// micro_cache: what the memory hierarchy does to the same instructions.
//
// What to notice:
//   - BM_PointerChase/bytes:N follows a random cycle through N bytes, one 64-byte line per hop,
//     so every load waits for the previous one: the time per load steps up as N outgrows L1,
//     L2, the last-level cache and the TLB's reach. This VM has no hardware counters (perf says
//     "not supported"); these steps are the cache sizes, measured. For simulated miss counts of
//     a server use bench/perf/cachegrind.sh.
//   - BM_SumSequential vs BM_SumRandom read the same bytes; only the order differs. Sequential
//     order lets the prefetcher stream lines in.
//   - BM_CountersAdjacent vs BM_CountersPadded: two threads each bump their own counter. When
//     the counters share a cache line and the threads run on two CPUs, the line bounces between
//     them (false sharing); on one CPU there is nothing to bounce (C12: where threads run
//     changes what the cache does). servers/core/http/stats.hpp pads per-thread counters for this.
//     locked:1 uses fetch_add, which shows it most. In a VM the bouncing also depends on the
//     host: two vCPUs that are SMT siblings of one host core share their L1 and barely bounce.
//   - BM_ConnTableScan: finding the next deadline among N connections, with the deadline inside
//     a 256-byte connection object (one line per connection) or split into a hot array of
//     deadlines (eight per line): layout decides how many lines a loop touches (C12).
//
// Usage: build/bin/micro_cache [--benchmark_filter=PointerChase] [--benchmark_format=json]
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "micro_common.hpp"

namespace {

using iolab::micro::AffinityGuard;
using iolab::micro::pin_to;
using iolab::micro::Placement;
using iolab::micro::placement_cpus;
using iolab::micro::placement_name;

constexpr std::size_t kLine = 64;
constexpr int kHopsPerIteration = 256;

struct alignas(kLine) Node {
  Node* next;
  char pad[kLine - sizeof(Node*)];
};

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

// The cycle for one size, kept between the calls Google Benchmark makes while it settles the
// iteration count (building 256 MiB of it takes longer than measuring it). One size at a time.
class ChaseBuffer {
 public:
  static Node* get(std::size_t bytes) {
    static ChaseBuffer current;
    if (current.bytes_ != bytes) current.build(bytes);
    return current.mem_.get();
  }

 private:
  void build(std::size_t bytes) {
    mem_.reset();
    const std::size_t nodes = bytes / sizeof(Node);
    mem_.reset(static_cast<Node*>(std::aligned_alloc(kLine, nodes * sizeof(Node))));
    // Sattolo's algorithm: a random permutation that is a single cycle through every node.
    std::vector<std::uint32_t> order(nodes);
    std::iota(order.begin(), order.end(), 0u);
    std::mt19937_64 rng(42);
    for (std::size_t i = nodes - 1; i > 0; --i) std::swap(order[i], order[rng() % i]);
    for (std::size_t i = 0; i < nodes; ++i) mem_[i].next = &mem_[order[i]];
    bytes_ = bytes;
  }
  std::unique_ptr<Node[], FreeDeleter> mem_;
  std::size_t bytes_ = 0;
};

void BM_PointerChase(benchmark::State& state) {
  const std::size_t bytes = static_cast<std::size_t>(state.range(0));
  const std::size_t nodes = bytes / sizeof(Node);
  Node* p = ChaseBuffer::get(bytes);
  // Warm up: bring in what fits in the caches (and no more than that: a cold 256 MiB is cold).
  for (std::size_t i = 0; i < std::min<std::size_t>(nodes, 1 << 16); ++i) p = p->next;
  for (auto _ : state) {
    for (int i = 0; i < kHopsPerIteration; ++i) p = p->next;
    benchmark::DoNotOptimize(p);
  }
  const double loads = static_cast<double>(state.iterations()) * kHopsPerIteration;
  state.counters["sec_per_load"] =
      benchmark::Counter(loads, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.SetItemsProcessed(static_cast<std::int64_t>(loads));
  state.SetLabel("C12 dependent loads, random order");
}
BENCHMARK(BM_PointerChase)->ArgName("bytes")->RangeMultiplier(4)->Range(4 << 10, 256 << 20);

std::vector<std::uint64_t> filled(std::size_t words) {
  std::vector<std::uint64_t> v(words);
  std::iota(v.begin(), v.end(), 1u);
  return v;
}

void BM_SumSequential(benchmark::State& state) {
  const std::vector<std::uint64_t> data = filled(static_cast<std::size_t>(state.range(0)) / 8);
  for (auto _ : state) {
    std::uint64_t sum = 0;
    for (std::uint64_t v : data) sum += v;
    benchmark::DoNotOptimize(sum);
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
  state.SetLabel("C12 sequential");
}
BENCHMARK(BM_SumSequential)->ArgName("bytes")->Arg(32 << 10)->Arg(64 << 20);

void BM_SumRandom(benchmark::State& state) {
  const std::size_t words = static_cast<std::size_t>(state.range(0)) / 8;
  const std::vector<std::uint64_t> data = filled(words);
  std::vector<std::uint32_t> index(words);
  std::iota(index.begin(), index.end(), 0u);
  std::shuffle(index.begin(), index.end(), std::mt19937_64(7));
  for (auto _ : state) {
    std::uint64_t sum = 0;
    for (std::uint32_t i : index) sum += data[i];
    benchmark::DoNotOptimize(sum);
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
  state.SetLabel("C12 random order (plus the index array)");
}
BENCHMARK(BM_SumRandom)->ArgName("bytes")->Arg(32 << 10)->Arg(64 << 20);

// Two counters, each written by one thread only. The benchmark thread bumps its counter and is
// timed in its own CPU time; a partner thread bumps the other counter non-stop on the same CPU
// or on the other one. Same CPU: the two take turns, the line stays put. Other CPU: with one
// shared line each write must first take the line back from the other CPU.
// locked:0 is a relaxed load and store (the way stats.hpp counts: the store buffer hides part
// of the bouncing); locked:1 is fetch_add, a locked read-modify-write, which waits for the line
// every time (a shared std::atomic counter).
template <std::size_t kStride>
struct Counters {
  alignas(128) std::atomic<std::uint64_t> words[2 * kStride];
  std::atomic<std::uint64_t>& of(int thread) {
    return words[static_cast<std::size_t>(thread) * kStride];
  }
};

inline void bump(std::atomic<std::uint64_t>& c, bool locked) {
  if (locked)
    c.fetch_add(1, std::memory_order_relaxed);
  else
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

template <std::size_t kStride>
void bump_counters(benchmark::State& state, Placement placement, const char* what) {
  const bool locked = state.range(0) != 0;
  Counters<kStride> counters{};
  alignas(128) std::atomic<bool> stop{false};
  if (const char* why = iolab::micro::placement_unavailable(placement)) {
    state.SkipWithError(why);
    return;
  }
  AffinityGuard guard;
  // Not a structured binding: clang 14 cannot capture one in the lambda below.
  const auto cpus = placement_cpus(placement);
  const int cpu_main = cpus.first;
  const int cpu_partner = cpus.second;
  std::thread partner([&] {
    pin_to(cpu_partner);
    std::atomic<std::uint64_t>& theirs = counters.of(1);
    while (!stop.load(std::memory_order_relaxed)) {
      for (int i = 0; i < 64; ++i) bump(theirs, locked);
    }
  });
  if (!pin_to(cpu_main)) state.SkipWithError("could not pin");
  std::atomic<std::uint64_t>& mine = counters.of(0);
  if (locked) {
    for (auto _ : state) bump(mine, true);
  } else {
    for (auto _ : state) bump(mine, false);
  }
  stop = true;
  partner.join();
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(std::string("C12 ") + what + " " + placement_name(placement));
}

void BM_CountersAdjacent(benchmark::State& state, Placement p) {
  bump_counters<1>(state, p, "one line (8 bytes apart)");
}
void BM_CountersPadded(benchmark::State& state, Placement p) {
  bump_counters<16>(state, p, "own lines (128 bytes apart)");
}
// Timed in the benchmark thread's CPU time (the default): on one CPU the partner's turns are
// not the benchmark thread's cost.
BENCHMARK_CAPTURE(BM_CountersAdjacent, same_core, Placement::kSameCore)
    ->ArgName("locked")
    ->Arg(0)
    ->Arg(1);
BENCHMARK_CAPTURE(BM_CountersAdjacent, cross_core, Placement::kCrossCore)
    ->ArgName("locked")
    ->Arg(0)
    ->Arg(1);
BENCHMARK_CAPTURE(BM_CountersPadded, same_core, Placement::kSameCore)
    ->ArgName("locked")
    ->Arg(0)
    ->Arg(1);
BENCHMARK_CAPTURE(BM_CountersPadded, cross_core, Placement::kCrossCore)
    ->ArgName("locked")
    ->Arg(0)
    ->Arg(1);

// A connection as a plain server might lay it out: hot fields next to buffers and bookkeeping.
struct FatConnection {
  int fd;
  std::uint32_t state;
  std::uint64_t deadline_ms;
  char input[160];
  std::uint64_t bytes_in, bytes_out, requests;
  void* app_data;
  char padding[48];
};
static_assert(sizeof(FatConnection) == 256);

void BM_ConnTableScan_Fat(benchmark::State& state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  std::vector<FatConnection> table(n);
  std::mt19937_64 rng(1);
  for (auto& c : table) c.deadline_ms = 1'000'000 + rng() % 60'000;
  for (auto _ : state) {
    std::uint64_t next = UINT64_MAX;
    for (const auto& c : table) next = std::min(next, c.deadline_ms);
    benchmark::DoNotOptimize(next);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.SetLabel("C12 deadline inside a 256-byte object");
}
void BM_ConnTableScan_Split(benchmark::State& state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  std::vector<std::uint64_t> deadlines(n);
  std::mt19937_64 rng(1);
  for (auto& d : deadlines) d = 1'000'000 + rng() % 60'000;
  for (auto _ : state) {
    std::uint64_t next = UINT64_MAX;
    for (std::uint64_t d : deadlines) next = std::min(next, d);
    benchmark::DoNotOptimize(next);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.SetLabel("C12 deadlines in their own array");
}
BENCHMARK(BM_ConnTableScan_Fat)->ArgName("connections")->Arg(1000)->Arg(100000);
BENCHMARK(BM_ConnTableScan_Split)->ArgName("connections")->Arg(1000)->Arg(100000);

}  // namespace

IOLAB_MICRO_MAIN();
