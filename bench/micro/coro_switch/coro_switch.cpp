// micro_coro_switch: what does it cost to switch to another coroutine, and to another thread?
//
// Both are measured the same way: two parties on ONE CPU hand a baton back and forth, and the
// time of many round trips is divided by the number of switches (two per round trip).
//   - BM_CoroutinePingPong: two tasks on a one-worker scheduler, handing over through
//     coro::Event: set() puts the other task on the run queue, co_await wait() suspends, the
//     worker loop pops and resumes the other. A switch is a queue push, a function return and
//     a function call: no system call, no kernel.
//   - BM_ThreadPingPong: two threads pinned to the same CPU, handing over through a futex
//     (what a mutex/condition variable does underneath): FUTEX_WAKE, FUTEX_WAIT, and the kernel
//     scheduler switching stacks and registers. With /cpus:2 the threads are on two CPUs and
//     each switch is a cross-CPU wake-up instead (25-58 us on these VMs).
// And what a bare suspend/resume costs without any scheduler (BM_CoroutineResume), and what
// starting one costs: a coroutine frame against a thread (BM_TaskCreateAwait, BM_TaskSpawn,
// BM_ThreadCreateJoin).
//
// Usage:  build/bin/micro_coro_switch [--benchmark_format=json] [--benchmark_repetitions=5]
// The CPU used is the last one this process may run on (printed as the "cpu" counter).
#include <benchmark/benchmark.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <thread>
#include <vector>

#include "scheduler.hpp"
#include "task.hpp"

namespace {

using iolab::coro::Event;
using iolab::coro::Scheduler;
using iolab::coro::SchedulerOptions;
using iolab::coro::Task;
using SteadyClock = std::chrono::steady_clock;

constexpr int kRounds = 10'000;  // round trips per benchmark iteration (two switches each)

// The CPUs this process may use, in order.
std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  sched_getaffinity(0, sizeof set, &set);
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  }
  return cpus;
}

void pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

// Restores the benchmark thread's affinity when a benchmark that pinned it ends.
class AffinityGuard {
 public:
  AffinityGuard() { pthread_getaffinity_np(pthread_self(), sizeof saved_, &saved_); }
  ~AffinityGuard() { pthread_setaffinity_np(pthread_self(), sizeof saved_, &saved_); }
  AffinityGuard(const AffinityGuard&) = delete;
  AffinityGuard& operator=(const AffinityGuard&) = delete;

 private:
  cpu_set_t saved_;
};

void set_switch_counters(benchmark::State& state, int cpu) {
  const auto switches = static_cast<double>(state.iterations()) * kRounds * 2;
  state.SetItemsProcessed(static_cast<std::int64_t>(switches));
  // Seconds per switch (printed with its unit, e.g. "41.2ns").
  state.counters["time_per_switch"] =
      benchmark::Counter(switches, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["cpu"] = cpu;
}

// ---- coroutines ---------------------------------------------------------------------------

Task<void> pong(Event& mine, Event& theirs, int rounds) {
  for (int i = 0; i < rounds; ++i) {
    co_await mine.wait();
    theirs.set();
  }
}

// Runs on the worker; times itself so the benchmark thread's hand-in is not counted.
Task<double> ping_pong(int rounds) {
  Event mine, theirs;
  iolab::coro::spawn(pong(theirs, mine, rounds));
  const auto t0 = SteadyClock::now();
  for (int i = 0; i < rounds; ++i) {
    theirs.set();
    co_await mine.wait();
  }
  co_return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

void BM_CoroutinePingPong(benchmark::State& state) {
  const int cpu = allowed_cpus().back();
  SchedulerOptions options;
  options.workers = 1;
  options.pin = {cpu};
  Scheduler scheduler(options);
  for (auto _ : state) state.SetIterationTime(scheduler.block_on(ping_pong(kRounds)));
  set_switch_counters(state, cpu);
}
BENCHMARK(BM_CoroutinePingPong)->UseManualTime();

// A coroutine that suspends forever: resume() runs it to its next suspension and returns.
struct Spinner {
  struct promise_type {
    Spinner get_return_object() {
      return {std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    std::suspend_always final_suspend() noexcept { return {}; }
    void return_void() {}
    void unhandled_exception() {}
  };
  std::coroutine_handle<promise_type> handle;
};

Spinner spin(std::uint64_t& resumes) {
  for (;;) {
    ++resumes;
    co_await std::suspend_always{};
  }
}

// The language-level cost alone: one resume + one suspend, no queue, no scheduler.
void BM_CoroutineResume(benchmark::State& state) {
  std::uint64_t resumes = 0;
  Spinner s = spin(resumes);
  for (auto _ : state) s.handle.resume();
  s.handle.destroy();
  benchmark::DoNotOptimize(resumes);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CoroutineResume);

Task<int> one() { co_return 1; }

Task<double> create_and_await(int n) {
  int sum = 0;
  const auto t0 = SteadyClock::now();
  for (int i = 0; i < n; ++i) sum += co_await one();
  benchmark::DoNotOptimize(sum);
  co_return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

// A task's whole life inline: allocate the frame, run it, free it.
void BM_TaskCreateAwait(benchmark::State& state) {
  Scheduler scheduler;
  for (auto _ : state) state.SetIterationTime(scheduler.block_on(create_and_await(kRounds)));
  state.SetItemsProcessed(state.iterations() * kRounds);
}
BENCHMARK(BM_TaskCreateAwait)->UseManualTime();

Task<void> tiny(int& left, Event& done) {
  if (--left == 0) done.set();
  co_return;
}

Task<double> spawn_many(int n) {
  int left = n;
  Event done;
  const auto t0 = SteadyClock::now();
  for (int i = 0; i < n; ++i) iolab::coro::spawn(tiny(left, done));
  co_await done.wait();
  co_return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

// A detached task through the scheduler: frame, run queue (and its overflow), run, free.
void BM_TaskSpawn(benchmark::State& state) {
  Scheduler scheduler;
  for (auto _ : state) state.SetIterationTime(scheduler.block_on(spawn_many(kRounds)));
  state.SetItemsProcessed(state.iterations() * kRounds);
}
BENCHMARK(BM_TaskSpawn)->UseManualTime();

// ---- threads ------------------------------------------------------------------------------

long futex(std::atomic<std::uint32_t>& word, int op, std::uint32_t value) {
  return syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), op | FUTEX_PRIVATE_FLAG, value,
                 nullptr, nullptr, 0);
}

// A binary semaphore on a futex: post() always makes the system call, like a condition
// variable's signal with a waiter, so every hand-off goes through the kernel.
class Baton {
 public:
  void post() {
    word_.store(1, std::memory_order_release);
    futex(word_, FUTEX_WAKE, 1);
  }
  void wait() {
    while (word_.exchange(0, std::memory_order_acquire) == 0) futex(word_, FUTEX_WAIT, 0);
  }

 private:
  std::atomic<std::uint32_t> word_{0};
};

void BM_ThreadPingPong(benchmark::State& state) {
  const std::vector<int> cpus = allowed_cpus();
  const bool two_cpus = state.range(0) == 2 && cpus.size() >= 2;
  const int my_cpu = cpus.back();
  const int other_cpu = two_cpus ? cpus[cpus.size() - 2] : my_cpu;
  AffinityGuard guard;
  pin_to(my_cpu);
  Baton to_other, to_me;
  std::atomic<bool> stop{false};
  std::thread other([&] {
    pin_to(other_cpu);
    for (;;) {
      to_other.wait();
      if (stop.load(std::memory_order_acquire)) return;
      to_me.post();
    }
  });
  for (auto _ : state) {
    const auto t0 = SteadyClock::now();
    for (int i = 0; i < kRounds; ++i) {
      to_other.post();
      to_me.wait();
    }
    state.SetIterationTime(std::chrono::duration<double>(SteadyClock::now() - t0).count());
  }
  stop.store(true, std::memory_order_release);
  to_other.post();
  other.join();
  set_switch_counters(state, my_cpu);
  if (two_cpus) state.counters["other_cpu"] = other_cpu;
}
BENCHMARK(BM_ThreadPingPong)->ArgName("cpus")->Arg(1)->Arg(2)->UseManualTime();

void BM_ThreadCreateJoin(benchmark::State& state) {
  for (auto _ : state) {
    std::thread t([] {});
    t.join();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ThreadCreateJoin);

}  // namespace

BENCHMARK_MAIN();
