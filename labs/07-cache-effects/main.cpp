// lab07_counters: false sharing between per-thread counters, measured and laid out.
//
//   lab07_counters layout                      where each thread's counters sit (JSON, for the
//   check) lab07_counters run [--threads N] [--increments M]   N threads bump their own slot M
//   times
//
// `layout` places a CounterTable at every offset from a cache-line boundary that the table's
// alignment allows (0 only, once the type is line-aligned; 0, 16, 32, 48 for a 16-byte
// alignment) and prints the byte ranges of each slot's counters, so the check can see whether
// two threads' counters share a line wherever a program might put the table.
// `run` pins thread i to the i-th CPU this process may use (round robin), so that on a
// multi-CPU machine the threads really write from different cores, and prints nanoseconds per
// increment: the timing is advice, the layout is the verdict. --locked increments with
// fetch_add (a locked read-modify-write, which must own the line every time) instead of
// count_request()'s load and store (whose stores the store buffer can absorb).
// This file is the same for exercise/ and solution/; the exercise is in counters.hpp.
#include <pthread.h>
#include <sched.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string_view>
#include <thread>
#include <vector>

#include "counters.hpp"

namespace {

using lab07::CounterTable;
using lab07::kCacheLine;
using lab07::kMaxThreads;

int usage() {
  std::fprintf(stderr,
               "usage: lab07_counters layout | run [--threads N] [--increments M] [--locked]\n");
  return 2;
}

int print_layout() {
  // A buffer aligned well beyond a line; the table goes at each allowed offset inside it.
  constexpr std::size_t kBase = 4 * kCacheLine;
  alignas(kBase) static unsigned char arena[sizeof(CounterTable) + kBase];
  const auto base = reinterpret_cast<std::uintptr_t>(arena);
  std::printf(
      "{\"line\":%zu,\"sizeof_slot\":%zu,\"alignof_slot\":%zu,\"alignof_table\":%zu,"
      "\"slots\":%d,\"placements\":[",
      kCacheLine, sizeof(lab07::ThreadCounters), alignof(lab07::ThreadCounters),
      alignof(CounterTable), kMaxThreads);
  const std::size_t step = alignof(CounterTable);
  for (std::size_t offset = 0; offset < kCacheLine; offset += step) {
    auto* table = ::new (arena + offset) CounterTable;
    std::printf("%s{\"offset\":%zu,\"counters\":[", offset ? "," : "", offset);
    for (int i = 0; i < kMaxThreads; ++i) {
      const auto& s = table->slot[i];
      const auto req = reinterpret_cast<std::uintptr_t>(&s.requests) - base;
      const auto bytes = reinterpret_cast<std::uintptr_t>(&s.bytes) - base;
      // [first, last] byte of each counter, relative to a line-aligned base.
      std::printf("%s[[%zu,%zu],[%zu,%zu]]", i ? "," : "", static_cast<std::size_t>(req),
                  static_cast<std::size_t>(req + sizeof s.requests - 1),
                  static_cast<std::size_t>(bytes),
                  static_cast<std::size_t>(bytes + sizeof s.bytes - 1));
    }
    std::printf("]}");
    table->~CounterTable();
  }
  std::printf("]}\n");
  return 0;
}

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  }
  return cpus;
}

int run(int threads, long increments, bool locked) {
  if (threads < 1 || threads > kMaxThreads || increments < 1) return usage();
  auto table = std::make_unique<CounterTable>();
  const std::vector<int> cpus = allowed_cpus();
  std::vector<std::thread> workers;
  const auto start = std::chrono::steady_clock::now();
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      if (!cpus.empty()) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpus[static_cast<std::size_t>(t) % cpus.size()], &one);
        pthread_setaffinity_np(pthread_self(), sizeof one, &one);
      }
      auto& mine = table->slot[t];
      if (locked) {
        for (long i = 0; i < increments; ++i) {
          mine.requests.fetch_add(1, std::memory_order_relaxed);
          mine.bytes.fetch_add(100, std::memory_order_relaxed);
        }
      } else {
        for (long i = 0; i < increments; ++i) lab07::count_request(mine, 100);
      }
    });
  }
  for (auto& w : workers) w.join();
  const double ns =
      std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
  std::uint64_t requests = 0, bytes = 0;
  for (const auto& s : table->slot) {
    requests += s.requests.load(std::memory_order_relaxed);
    bytes += s.bytes.load(std::memory_order_relaxed);
  }
  const auto want = static_cast<std::uint64_t>(threads) * static_cast<std::uint64_t>(increments);
  std::printf(
      "{\"threads\":%d,\"cpus_used\":%zu,\"increments\":%ld,\"ns_per_increment\":%.3f,"
      "\"requests\":%llu,\"bytes\":%llu,\"expected_requests\":%llu}\n",
      threads, cpus.empty() ? 0 : std::min<std::size_t>(cpus.size(), threads), increments,
      ns / static_cast<double>(increments), static_cast<unsigned long long>(requests),
      static_cast<unsigned long long>(bytes), static_cast<unsigned long long>(want));
  return requests == want && bytes == want * 100 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  const std::string_view mode = argv[1];
  if (mode == "layout") return print_layout();
  if (mode != "run") return usage();
  int threads = 2;
  long increments = 50'000'000;
  bool locked = false;
  for (int i = 2; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "--locked") {
      locked = true;
    } else if (flag == "--threads" && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else if (flag == "--increments" && i + 1 < argc) {
      increments = std::atol(argv[++i]);
    } else {
      return usage();
    }
  }
  return run(threads, increments, locked);
}
