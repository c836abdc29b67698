// micro_switch: what it costs to hand the CPU from one kernel thread to another.
//
// What to notice:
//   - BM_PipePingPong/same_core is a round trip between two threads pinned to one CPU: two
//     context switches, each a direct hand-off on that CPU. It runs the same loop as
//     `taskset -c 0 perf bench sched pipe -T` and should agree with it.
//   - /cross_core puts the partner on another CPU: every message is a wake-up of a sleeping CPU
//     (an inter-processor interrupt; in a VM a trip through the hypervisor). On small VMs this
//     is several times the same-CPU figure: C12's "pinning" cuts both ways.
//   - futex and eventfd do the same hand-off with less machinery than a pipe: the switch, not
//     the channel, dominates (C04: a user-space switch avoids exactly this).
//   - ctx_switches is context switches per round trip for the process (C06 claims 1.8).
//   - BM_ThreadCreateJoin is what a thread-per-connection server pays per connection before any
//     I/O; stack_reserved_bytes is the virtual stack each thread reserves (C03: "2 MB"; glibc
//     takes `ulimit -s`, usually 8 MiB, of which only touched pages become resident).
//     Coroutine creation, resume and frame size are measured by bench/micro/coro_switch.
//
// Usage: build/bin/micro_switch [--benchmark_filter=PingPong] [--benchmark_format=json]
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <thread>

#include "micro_common.hpp"

namespace {

using iolab::micro::AffinityGuard;
using iolab::micro::context_switches;
using iolab::micro::pin_to;
using iolab::micro::Placement;
using iolab::micro::placement_cpus;
using iolab::micro::placement_name;
using iolab::micro::set_switch_counter;

// Each channel carries a "ping" from the benchmark thread to the partner and a "pong" back.
// stop() makes the partner's next wait_ping() return false.
class PipeChannel {
 public:
  PipeChannel() { ok_ = pipe2(ping_, O_CLOEXEC) == 0 && pipe2(pong_, O_CLOEXEC) == 0; }
  ~PipeChannel() {
    for (int fd : {ping_[0], ping_[1], pong_[0], pong_[1]}) close(fd);
  }
  bool ok() const { return ok_; }
  void ping() { send(ping_[1], 'p'); }
  void wait_pong() { receive(pong_[0]); }
  bool wait_ping() { return receive(ping_[0]) == 'p'; }
  void pong() { send(pong_[1], 'p'); }
  void stop() { send(ping_[1], 'q'); }

 private:
  static void send(int fd, char c) {
    while (write(fd, &c, 1) != 1 && errno == EINTR) {
    }
  }
  static char receive(int fd) {
    char c = 0;
    while (read(fd, &c, 1) != 1 && errno == EINTR) {
    }
    return c;
  }
  int ping_[2] = {-1, -1};
  int pong_[2] = {-1, -1};
  bool ok_ = false;
};

class EventfdChannel {
 public:
  EventfdChannel() : ping_(eventfd(0, EFD_CLOEXEC)), pong_(eventfd(0, EFD_CLOEXEC)) {}
  ~EventfdChannel() {
    close(ping_);
    close(pong_);
  }
  bool ok() const { return ping_ >= 0 && pong_ >= 0; }
  void ping() { add(ping_, 1); }
  void wait_pong() { take(pong_); }
  bool wait_ping() { return take(ping_) == 1; }  // stop() adds 2
  void pong() { add(pong_, 1); }
  void stop() { add(ping_, 2); }

 private:
  static void add(int fd, std::uint64_t v) {
    while (write(fd, &v, sizeof v) != sizeof v && errno == EINTR) {
    }
  }
  static std::uint64_t take(int fd) {
    std::uint64_t v = 0;
    while (read(fd, &v, sizeof v) != sizeof v && errno == EINTR) {
    }
    return v;
  }
  int ping_;
  int pong_;
};

// Two futex words, each a sequence number: the waiter sleeps while the word still holds the
// value it last saw (FUTEX_WAIT checks that atomically, so a wake-up cannot be lost).
class FutexChannel {
 public:
  bool ok() const { return true; }
  void ping() { bump(ping_); }
  void wait_pong() { pong_seen_ = wait_change(pong_, pong_seen_); }
  bool wait_ping() {
    ping_seen_ = wait_change(ping_, ping_seen_);
    return !stop_.load(std::memory_order_acquire);
  }
  void pong() { bump(pong_); }
  void stop() {
    stop_.store(true, std::memory_order_release);
    bump(ping_);
  }

 private:
  static long futex(std::atomic<std::uint32_t>& word, int op, std::uint32_t val) {
    return syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), op | FUTEX_PRIVATE_FLAG, val,
                   nullptr, nullptr, 0);
  }
  static void bump(std::atomic<std::uint32_t>& word) {
    word.fetch_add(1, std::memory_order_release);
    futex(word, FUTEX_WAKE, 1);
  }
  static std::uint32_t wait_change(std::atomic<std::uint32_t>& word, std::uint32_t seen) {
    std::uint32_t now;
    while ((now = word.load(std::memory_order_acquire)) == seen) futex(word, FUTEX_WAIT, seen);
    return now;
  }
  alignas(64) std::atomic<std::uint32_t> ping_{0};
  alignas(64) std::atomic<std::uint32_t> pong_{0};
  alignas(64) std::atomic<bool> stop_{false};
  std::uint32_t ping_seen_ = 0;  // the partner's
  std::uint32_t pong_seen_ = 0;  // the benchmark thread's
};

template <typename Channel>
void ping_pong(benchmark::State& state, Placement placement) {
  Channel channel;
  if (!channel.ok()) {
    state.SkipWithError("channel setup failed");
    return;
  }
  if (const char* why = iolab::micro::placement_unavailable(placement)) {
    state.SkipWithError(why);
    return;
  }
  AffinityGuard guard;
  // Not a structured binding: clang 14 cannot capture one in the lambda below.
  const auto cpus = placement_cpus(placement);
  const int cpu_main = cpus.first;
  const int cpu_partner = cpus.second;
  std::atomic<bool> partner_pinned{true};
  std::thread partner([&] {
    if (!pin_to(cpu_partner)) partner_pinned = false;
    while (channel.wait_ping()) channel.pong();
  });
  const bool pinned = pin_to(cpu_main);
  // One round trip outside the measurement so both threads are placed and running.
  channel.ping();
  channel.wait_pong();
  const long switches = context_switches();
  for (auto _ : state) {
    channel.ping();
    channel.wait_pong();
  }
  set_switch_counter(state, context_switches() - switches);
  channel.stop();
  partner.join();
  if (!pinned || !partner_pinned) state.SkipWithError("could not pin to the chosen CPUs");
  state.counters["round_trips_per_second"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.SetLabel(std::string("C04 C06 C12 ") + placement_name(placement));
}

void BM_PipePingPong(benchmark::State& state, Placement p) { ping_pong<PipeChannel>(state, p); }
void BM_FutexPingPong(benchmark::State& state, Placement p) { ping_pong<FutexChannel>(state, p); }
void BM_EventfdPingPong(benchmark::State& state, Placement p) {
  ping_pong<EventfdChannel>(state, p);
}

BENCHMARK_CAPTURE(BM_PipePingPong, same_core, Placement::kSameCore)->UseRealTime();
BENCHMARK_CAPTURE(BM_PipePingPong, cross_core, Placement::kCrossCore)->UseRealTime();
BENCHMARK_CAPTURE(BM_FutexPingPong, same_core, Placement::kSameCore)->UseRealTime();
BENCHMARK_CAPTURE(BM_FutexPingPong, cross_core, Placement::kCrossCore)->UseRealTime();
BENCHMARK_CAPTURE(BM_EventfdPingPong, same_core, Placement::kSameCore)->UseRealTime();
BENCHMARK_CAPTURE(BM_EventfdPingPong, cross_core, Placement::kCrossCore)->UseRealTime();

void* do_nothing(void*) { return nullptr; }

// stack_kb 0 is glibc's default (from `ulimit -s`); 64 is what a careful thread-per-connection
// server asks for (servers/threads has --stack-kb).
void BM_ThreadCreateJoin(benchmark::State& state) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  if (state.range(0) > 0) pthread_attr_setstacksize(&attr, state.range(0) * 1024);
  std::size_t stack_bytes = 0;
  pthread_attr_getstacksize(&attr, &stack_bytes);
  const long switches = context_switches();
  for (auto _ : state) {
    pthread_t thread;
    if (pthread_create(&thread, &attr, do_nothing, nullptr) != 0) {
      state.SkipWithError("pthread_create failed");
      break;
    }
    pthread_join(thread, nullptr);
  }
  set_switch_counter(state, context_switches() - switches);
  pthread_attr_destroy(&attr);
  state.counters["stack_reserved_bytes"] = static_cast<double>(stack_bytes);
  state.SetLabel("C03 C04 thread create+join");
}
BENCHMARK(BM_ThreadCreateJoin)->ArgName("stack_kb")->Arg(0)->Arg(64)->UseRealTime();

}  // namespace

IOLAB_MICRO_MAIN();
