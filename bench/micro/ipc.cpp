// micro_ipc: a 64-byte request and a 64-byte reply between two processes, by five mechanisms.
//
// What to notice:
//   - BM_UnixSocketRoundTrip, BM_PipeRoundTrip and BM_EventfdRoundTrip all go through the
//     kernel and wake the other process: their cost is mostly the two wake-ups, so they land
//     close together (C05 claims 8.7 us for a Unix domain socket).
//   - BM_ShmRingSpin never enters the kernel on two CPUs: each side polls a single-producer
//     single-consumer ring in shared memory, so a round trip is two cache-line transfers (C05
//     claims 0.4 us). On one CPU polling is useless (the other side cannot run until the
//     poller gives up the CPU), so after a few polls it calls sched_yield(): compare same_core.
//   - BM_ShmRingFutex polls briefly, then sleeps on a futex: the ring's data path with the
//     kernel's wake-up path, the usual compromise.
//   - ctx_switches is per round trip, both processes together (C06 claims 1.8).
//
// Usage: build/bin/micro_ipc [--benchmark_filter=ShmRing] [--benchmark_format=json]
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <new>
#include <string>

#include "micro_common.hpp"

namespace {

using iolab::micro::AffinityGuard;
using iolab::micro::context_switches;
using iolab::micro::pin_to;
using iolab::micro::Placement;
using iolab::micro::placement_cpus;
using iolab::micro::placement_name;
using iolab::micro::set_switch_counter;

constexpr std::size_t kMessageBytes = 64;
using Message = std::array<char, kMessageBytes>;

bool write_all(int fd, const void* data, std::size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool read_all(int fd, void* data, std::size_t n) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    const ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

// A byte-stream channel: a socketpair or two pipes. The child's read fails at EOF (stop).
struct StreamChannel {
  int parent_rd = -1, parent_wr = -1, child_rd = -1, child_wr = -1;
  bool send(const Message& m) { return write_all(parent_wr, m.data(), m.size()); }
  bool receive(Message& m) { return read_all(parent_rd, m.data(), m.size()); }
  bool child_receive(Message& m) { return read_all(child_rd, m.data(), m.size()); }
  bool child_send(const Message& m) { return write_all(child_wr, m.data(), m.size()); }
  // After fork each side closes the other's ends, so that closing the parent's ends is an EOF
  // the child sees.
  void child_start() { close_pair(parent_rd, parent_wr); }
  void parent_start() { close_pair(child_rd, child_wr); }
  void stop() { close_pair(parent_rd, parent_wr); }
  static void close_pair(int rd, int wr) {
    close(rd);
    if (wr != rd) close(wr);
  }
};

StreamChannel unix_socket_channel() {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return {};
  return {sv[0], sv[0], sv[1], sv[1]};
}

StreamChannel pipe_channel() {
  int down[2], up[2];
  if (pipe2(down, O_CLOEXEC) != 0 || pipe2(up, O_CLOEXEC) != 0) return {};
  return {up[0], down[1], down[0], up[1]};
}

// An eventfd carries a count, not bytes: the message goes through shared memory and the
// eventfd is only the doorbell (which is how it is used in practice).
struct EventfdChannel {
  int to_child = eventfd(0, EFD_CLOEXEC);
  int to_parent = eventfd(0, EFD_CLOEXEC);
  Message* shared = nullptr;
  static bool ring(int fd, std::uint64_t v) { return write_all(fd, &v, sizeof v); }
  static std::uint64_t wait(int fd) {
    std::uint64_t v = 0;
    return read_all(fd, &v, sizeof v) ? v : 0;
  }
  bool send(const Message& m) {
    *shared = m;
    return ring(to_child, 1);
  }
  bool receive(Message& m) {
    if (wait(to_parent) != 1) return false;
    m = *shared;
    return true;
  }
  bool child_receive(Message& m) {
    if (wait(to_child) != 1) return false;
    m = *shared;
    return true;
  }
  bool child_send(const Message& m) {
    *shared = m;
    return ring(to_parent, 1);
  }
  void child_start() {}
  void parent_start() {}
  void stop() { ring(to_child, 2); }
};

// A single-producer single-consumer ring of 64-byte slots in shared memory. The futex word is
// the head index itself; `waiting` tells the producer whether a wake-up system call is needed.
// Both sides use seq_cst for head and waiting, so either the producer sees waiting == 1 or the
// consumer sees the new head before it sleeps (FUTEX_WAIT rechecks the head in the kernel).
struct Ring {
  static constexpr std::uint32_t kSlots = 64;
  alignas(64) std::atomic<std::uint32_t> head{0};
  alignas(64) std::atomic<std::uint32_t> tail{0};
  alignas(64) std::atomic<std::uint32_t> waiting{0};
  alignas(64) Message slots[kSlots];
};

struct ShmRings {
  Ring down;  // parent -> child
  Ring up;    // child -> parent
  std::atomic<bool> stop{false};
};

long futex_shared(std::atomic<std::uint32_t>& word, int op, std::uint32_t val) {
  return syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), op, val, nullptr, nullptr, 0);
}

constexpr int kPollsBeforeBackoff = 64;

template <bool kFutex>
struct RingChannel {
  ShmRings* rings = nullptr;
  static void push(Ring& r, const Message& m) {
    const std::uint32_t h = r.head.load(std::memory_order_relaxed);
    r.slots[h % Ring::kSlots] = m;
    r.head.store(h + 1);
    if (kFutex && r.waiting.load()) futex_shared(r.head, FUTEX_WAKE, 1);
  }
  // False when stop was set while waiting.
  bool pop(Ring& r, Message& m) {
    const std::uint32_t t = r.tail.load(std::memory_order_relaxed);
    for (int polls = 0;; ++polls) {
      const std::uint32_t h = r.head.load();
      if (h != t) break;
      if (rings->stop.load(std::memory_order_relaxed)) return false;
      if (polls < kPollsBeforeBackoff) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        continue;
      }
      if (!kFutex) {
        sched_yield();
        continue;
      }
      r.waiting.store(1);
      if (r.head.load() == t && !rings->stop.load()) futex_shared(r.head, FUTEX_WAIT, t);
      r.waiting.store(0);
    }
    m = r.slots[t % Ring::kSlots];
    r.tail.store(t + 1, std::memory_order_release);
    return true;
  }
  bool send(const Message& m) {
    push(rings->down, m);
    return true;
  }
  bool receive(Message& m) { return pop(rings->up, m); }
  bool child_receive(Message& m) { return pop(rings->down, m); }
  bool child_send(const Message& m) {
    push(rings->up, m);
    return true;
  }
  void child_start() {}
  void parent_start() {}
  void stop() {
    rings->stop.store(true);
    futex_shared(rings->down.head, FUTEX_WAKE, 1);
  }
};

void* shared_memory(std::size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

// Voluntary + involuntary context switches of a (live) child, from /proc.
long child_switches(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  long total = 0;
  std::string key;
  long value = 0;
  while (status >> key) {
    if (key == "voluntary_ctxt_switches:" || key == "nonvoluntary_ctxt_switches:") {
      status >> value;
      total += value;
    }
  }
  return total;
}

// Forks the echoing child, pinned, and runs the round trips from the parent, pinned.
template <typename Channel>
void round_trips(benchmark::State& state, Channel& ch, Placement placement, const char* what) {
  if (const char* why = iolab::micro::placement_unavailable(placement)) {
    ch.parent_start();  // closes everything a child would have used
    ch.stop();
    state.SkipWithError(why);
    return;
  }
  AffinityGuard guard;
  const auto [cpu_parent, cpu_child] = placement_cpus(placement);
  const pid_t child = fork();
  if (child < 0) {
    state.SkipWithError("fork failed");
    return;
  }
  if (child == 0) {
    ch.child_start();
    pin_to(cpu_child);
    Message m;
    while (ch.child_receive(m)) {
      m[0] = static_cast<char>(m[0] + 1);
      if (!ch.child_send(m)) break;
    }
    _exit(0);
  }
  ch.parent_start();
  const bool pinned = pin_to(cpu_parent);
  Message m{};
  bool ok = ch.send(m) && ch.receive(m);  // one round trip to get both sides placed
  const long switches = context_switches() + child_switches(child);
  for (auto _ : state) {
    if (!ok || !ch.send(m) || !ch.receive(m)) {
      ok = false;
      break;
    }
  }
  set_switch_counter(state, context_switches() + child_switches(child) - switches);
  benchmark::DoNotOptimize(m);
  ch.stop();
  int status = 0;
  waitpid(child, &status, 0);
  if (!ok) state.SkipWithError("round trip failed");
  if (!pinned) state.SkipWithError("could not pin to the chosen CPUs");
  state.counters["round_trips_per_second"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.SetLabel(std::string("C05 C06 ") + what + " " + placement_name(placement));
}

void stream_round_trips(benchmark::State& state, StreamChannel ch, Placement p, const char* what) {
  if (ch.parent_rd < 0) {
    state.SkipWithError("channel setup failed");
    return;
  }
  round_trips(state, ch, p, what);
}

void BM_UnixSocketRoundTrip(benchmark::State& state, Placement p) {
  stream_round_trips(state, unix_socket_channel(), p, "unix socket");
}
void BM_PipeRoundTrip(benchmark::State& state, Placement p) {
  stream_round_trips(state, pipe_channel(), p, "pipe");
}

void BM_EventfdRoundTrip(benchmark::State& state, Placement p) {
  EventfdChannel ch;
  ch.shared = static_cast<Message*>(shared_memory(sizeof(Message)));
  if (ch.to_child < 0 || ch.to_parent < 0 || ch.shared == nullptr) {
    state.SkipWithError("eventfd or shared memory setup failed");
    return;
  }
  round_trips(state, ch, p, "eventfd");
  close(ch.to_child);
  close(ch.to_parent);
  munmap(ch.shared, sizeof(Message));
}

template <bool kFutex>
void ring_round_trips(benchmark::State& state, Placement p, const char* what) {
  void* mem = shared_memory(sizeof(ShmRings));
  if (mem == nullptr) {
    state.SkipWithError("shared memory setup failed");
    return;
  }
  RingChannel<kFutex> ch{new (mem) ShmRings};
  round_trips(state, ch, p, what);
  munmap(mem, sizeof(ShmRings));
}

void BM_ShmRingSpin(benchmark::State& state, Placement p) {
  ring_round_trips<false>(state, p, "shared-memory ring, polling");
}
void BM_ShmRingFutex(benchmark::State& state, Placement p) {
  ring_round_trips<true>(state, p, "shared-memory ring, futex wait");
}

BENCHMARK_CAPTURE(BM_UnixSocketRoundTrip, same_core, Placement::kSameCore)->UseRealTime();
BENCHMARK_CAPTURE(BM_UnixSocketRoundTrip, cross_core, Placement::kCrossCore)->UseRealTime();
BENCHMARK_CAPTURE(BM_PipeRoundTrip, same_core, Placement::kSameCore)->UseRealTime();
BENCHMARK_CAPTURE(BM_PipeRoundTrip, cross_core, Placement::kCrossCore)->UseRealTime();
BENCHMARK_CAPTURE(BM_EventfdRoundTrip, same_core, Placement::kSameCore)->UseRealTime();
BENCHMARK_CAPTURE(BM_EventfdRoundTrip, cross_core, Placement::kCrossCore)->UseRealTime();
BENCHMARK_CAPTURE(BM_ShmRingSpin, same_core, Placement::kSameCore)->UseRealTime();
BENCHMARK_CAPTURE(BM_ShmRingSpin, cross_core, Placement::kCrossCore)->UseRealTime();
BENCHMARK_CAPTURE(BM_ShmRingFutex, same_core, Placement::kSameCore)->UseRealTime();
BENCHMARK_CAPTURE(BM_ShmRingFutex, cross_core, Placement::kCrossCore)->UseRealTime();

}  // namespace

IOLAB_MICRO_MAIN();
