// lab06_ring: drives spsc_ring.hpp with a producer and a consumer thread, for lab 06's check.
//
//   lab06_ring --mode correctness
//     1. flood: 300,000 messages as fast as the producer can push them;
//     2. sleepy: 3,000 messages with a 20 us pause before each, so the consumer empties the ring
//        and goes to sleep before almost every one: the wait and wake path, over and over.
//     Every message is checked (sequence and payload, in order). A watchdog fails the run when
//     the consumer makes no progress for 3 s: a lost wake-up (the consumer asleep with a message
//     in the ring) shows up as that, never as a hung check.
//   lab06_ring --mode busy [--messages N] [--work-ns N]
//     The consumer spends --work-ns of CPU on each message (default 2000), so it is the slower
//     side and the ring stays non-empty; the producer spins while the ring is full. Reports
//     the futex calls (futex.hpp's counter) per message.
//   lab06_ring --mode late
//     A late producer, made to happen: a hardware watchpoint (perf_event_open, a breakpoint on
//     writes to the ring's head counter, found by watching which word a push increments) stops
//     the producer right after it publishes, for 15 ms, before it looks at the consumer's flag;
//     and futex_wait holds the consumer 10 ms between its last look and its sleep (futex.hpp's
//     g_wait_delay_ns). The producer publishes 1 ms into such a hold, so the consumer takes the
//     message, sets its flag again, finds the ring empty and is held again before the producer
//     looks: the producer clears the flag and wakes while the consumer is about to sleep. A ring
//     whose sleep does not re-check that flag in the kernel loses the wake and hangs (the
//     watchdog reports it). 20 rounds of two messages, about 0.7 s. Where the watchpoint cannot
//     be set, prints {"mode":"late","skipped":"why"}.
// Producer and consumer run pinned to two different CPUs when the process may use two.
// Both print one JSON line on stdout; exit 0 when the run was correct, 1 when it was not.
#include <linux/hw_breakpoint.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "futex.hpp"
#include "spsc_ring.hpp"

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::uint64_t kStop = ~0ULL;

lab06::Message make(std::uint64_t seq) {
  lab06::Message m{};
  m.seq = seq;
  for (std::uint64_t i = 0; i < 7; ++i) m.payload[i] = seq * (i + 3) + 0x9e3779b97f4a7c15ULL;
  return m;
}

bool intact(const lab06::Message& m) {
  for (std::uint64_t i = 0; i < 7; ++i) {
    if (m.payload[i] != m.seq * (i + 3) + 0x9e3779b97f4a7c15ULL) return false;
  }
  return true;
}

void busy_for(std::chrono::nanoseconds d) {
  const auto until = Clock::now() + d;
  while (Clock::now() < until) {
  }
}

struct Outcome {
  std::uint64_t received = 0;
  std::string error;  // empty: correct
};

std::atomic<std::uint64_t> g_progress{0};

// The first two CPUs this process may use (-1 when it has only one): producer and consumer each
// get their own, so "the consumer is busy" means busy on its own CPU, not taking turns with the
// producer on one (there every empty ring ends in a sleep and a wake).
std::pair<int, int> two_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return {-1, -1};
  int found[2] = {-1, -1};
  int n = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE && n < 2; ++cpu) {
    if (CPU_ISSET(cpu, &set)) found[n++] = cpu;
  }
  return n == 2 ? std::pair{found[0], found[1]} : std::pair{-1, -1};
}

void pin_self(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  ::sched_setaffinity(0, sizeof set, &set);  // 0: the calling thread
}

// One stream through a ring in shared memory (MAP_SHARED: as two processes would share it).
Outcome stream(std::uint64_t count, std::chrono::nanoseconds pause, std::chrono::nanoseconds work) {
  void* mem = ::mmap(nullptr, sizeof(lab06::SpscRing), PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return {0, "mmap failed"};
  auto* ring = new (mem) lab06::SpscRing;
  Outcome out;
  const auto [producer_cpu, consumer_cpu] = two_cpus();
  std::thread consumer([&, cpu = consumer_cpu] {
    pin_self(cpu);
    for (std::uint64_t expect = 0;; ++expect) {
      lab06::Message m;
      ring->pop(m);
      if (m.seq == kStop) {
        if (expect != count) out.error = "the stream ended early";
        return;
      }
      if (m.seq != expect || !intact(m)) {
        out.error = "message " + std::to_string(expect) + " arrived as seq " +
                    std::to_string(m.seq) + (intact(m) ? "" : " with a damaged payload");
        return;
      }
      if (work.count() > 0) busy_for(work);
      out.received = expect + 1;
      g_progress.fetch_add(1, std::memory_order_relaxed);
    }
  });
  pin_self(producer_cpu);
  for (std::uint64_t seq = 0; seq <= count; ++seq) {
    if (pause.count() > 0 && seq < count) busy_for(pause);
    const lab06::Message m = make(seq == count ? kStop : seq);
    while (!ring->try_push(m)) lab06::cpu_relax();  // full: the consumer is busy, wait for it
  }
  consumer.join();
  ring->~SpscRing();
  ::munmap(mem, sizeof(lab06::SpscRing));
  return out;
}

// ---- --mode late -----------------------------------------------------------------------------

// The consumer is held kConsumerHeld before each sleep; the producer publishes kSettle into
// that hold and is then held kProducerHeld, so it looks at the flag in the consumer's *next*
// hold: after the consumer took that message, set its flag again and found the ring empty.
constexpr auto kConsumerHeld = std::chrono::milliseconds(10);  // before each futex_wait
constexpr auto kSettle = std::chrono::milliseconds(1);
constexpr auto kProducerHeld = std::chrono::milliseconds(15);  // between 1 and 2 holds
constexpr int kLateRounds = 20;

std::atomic<bool> g_hold_next_publish{false};
std::atomic<int> g_held{0};

void on_watchpoint(int, siginfo_t*, void*) {
  if (g_hold_next_publish.exchange(false)) {
    g_held.fetch_add(1);
    busy_for(kProducerHeld);  // clock_gettime through the vDSO: safe in a signal handler
  }
}

// The 32-bit word a push increments outside the slot it fills: the ring's head counter,
// whatever the student named it. Pushes one message into a fresh ring and pops it back.
std::uint32_t* find_head_word(lab06::SpscRing* ring) {
  std::vector<unsigned char> before(sizeof *ring);
  std::memcpy(before.data(), static_cast<void*>(ring), sizeof *ring);
  ring->try_push(make(0));
  std::vector<std::size_t> found;
  const auto* now = reinterpret_cast<const unsigned char*>(ring);
  for (std::size_t off = 0; off + 4 <= sizeof *ring; off += 4) {
    std::uint32_t a, b;
    std::memcpy(&a, before.data() + off, 4);
    std::memcpy(&b, now + off, 4);
    if (b == a + 1) found.push_back(off);
  }
  lab06::Message m;
  ring->pop(m);
  if (found.size() != 1) return nullptr;
  return reinterpret_cast<std::uint32_t*>(reinterpret_cast<unsigned char*>(ring) + found[0]);
}

// A watchpoint on writes to `word` by the calling thread, delivering SIGTRAP; "" or why not.
std::string watch_writes(std::uint32_t* word) {
  struct sigaction sa {};
  sa.sa_sigaction = on_watchpoint;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  ::sigaction(SIGTRAP, &sa, nullptr);
  perf_event_attr a{};
  a.type = PERF_TYPE_BREAKPOINT;
  a.size = sizeof a;
  a.bp_type = HW_BREAKPOINT_W;
  a.bp_addr = reinterpret_cast<std::uintptr_t>(word);
  a.bp_len = HW_BREAKPOINT_LEN_4;
  a.sample_period = 1;
  a.sigtrap = 1;
  a.remove_on_exec = 1;
  a.exclude_kernel = 1;
  a.exclude_hv = 1;
  const long fd = ::syscall(SYS_perf_event_open, &a, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
  if (fd < 0) return std::string("perf_event_open(breakpoint): ") + std::strerror(errno);
  return "";
}

// Returns {outcome, why skipped}.
std::pair<Outcome, std::string> late_producer() {
  void* mem = ::mmap(nullptr, sizeof(lab06::SpscRing), PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return {{0, "mmap failed"}, ""};
  auto* ring = new (mem) lab06::SpscRing;
  std::uint32_t* head = find_head_word(ring);
  if (head == nullptr) return {{}, "no single word of the ring counts the pushes"};
  const auto [producer_cpu, consumer_cpu] = two_cpus();
  pin_self(producer_cpu);
  if (std::string why = watch_writes(head); !why.empty()) return {{}, why};
  lab06::g_wait_delay_ns.store(std::chrono::nanoseconds(kConsumerHeld).count());
  const std::uint64_t count = 2 * kLateRounds;
  Outcome out;
  std::thread consumer([&, cpu = consumer_cpu] {
    pin_self(cpu);
    for (std::uint64_t expect = 0;; ++expect) {
      lab06::Message m;
      ring->pop(m);
      if (m.seq == kStop) return;
      if (m.seq != expect || !intact(m)) {
        out.error = "message " + std::to_string(expect) + " arrived as seq " +
                    std::to_string(m.seq);
        return;
      }
      out.received = expect + 1;
      g_progress.fetch_add(1, std::memory_order_relaxed);
    }
  });
  for (std::uint64_t seq = 0; seq <= count; ++seq) {
    if (seq % 2 == 1) {
      // The consumer took seq - 1 and is on its way to sleep (held before it): publish into
      // that hold, and be held in turn right after publishing.
      while (g_progress.load() < seq) lab06::cpu_relax();  // the watchdog bounds this
      busy_for(kSettle);
      g_hold_next_publish = true;
    }
    const lab06::Message m = make(seq == count ? kStop : seq);
    while (!ring->try_push(m)) lab06::cpu_relax();
    // Then nothing until the consumer has slept: a push now would change head under it.
    if (seq % 2 == 1) busy_for(kConsumerHeld);
  }
  consumer.join();
  lab06::g_wait_delay_ns.store(0);
  return {out, ""};
}

// Fails the process if the consumer stops making progress (a lost wake-up hangs it).
void start_watchdog(std::chrono::seconds limit) {
  std::thread([limit] {
    std::uint64_t last = g_progress.load();
    auto since = Clock::now();
    for (;;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      const std::uint64_t now = g_progress.load();
      if (now != last) {
        last = now;
        since = Clock::now();
      } else if (Clock::now() - since > limit) {
        std::printf("{\"mode\":\"hang\",\"ok\":false,\"received_total\":%llu,\"error\":\"the "
                    "consumer made no progress for %lld s: asleep with a message in the ring (a "
                    "lost wake-up)?\"}\n",
                    static_cast<unsigned long long>(now), static_cast<long long>(limit.count()));
        std::fflush(stdout);
        std::_Exit(1);
      }
    }
  }).detach();
}

long long arg(int argc, char** argv, std::string_view name, long long fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (name == argv[i]) return std::atoll(argv[i + 1]);
  }
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace std::chrono_literals;
  std::string mode = "correctness";
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string_view(argv[i]) == "--mode") mode = argv[i + 1];
  }
  start_watchdog(3s);
  if (mode == "correctness") {
    const auto t0 = Clock::now();
    const Outcome flood = stream(300'000, 0ns, 0ns);
    const std::uint64_t flood_calls = lab06::futex_calls();
    const Outcome sleepy = flood.error.empty() ? stream(3'000, 20us, 0ns) : Outcome{};
    const bool ok = flood.error.empty() && sleepy.error.empty();
    std::printf("{\"mode\":\"correctness\",\"ok\":%s,\"flood_received\":%llu,\"flood_error\":\"%s\","
                "\"flood_futex_calls\":%llu,\"sleepy_received\":%llu,\"sleepy_error\":\"%s\","
                "\"sleepy_futex_calls\":%llu,\"seconds\":%.2f}\n",
                ok ? "true" : "false", static_cast<unsigned long long>(flood.received),
                flood.error.c_str(), static_cast<unsigned long long>(flood_calls),
                static_cast<unsigned long long>(sleepy.received), sleepy.error.c_str(),
                static_cast<unsigned long long>(lab06::futex_calls() - flood_calls),
                std::chrono::duration<double>(Clock::now() - t0).count());
    return ok ? 0 : 1;
  }
  if (mode == "late") {
    const auto [late, skipped] = late_producer();
    if (!skipped.empty()) {
      std::printf("{\"mode\":\"late\",\"ok\":true,\"skipped\":\"%s\"}\n", skipped.c_str());
      return 0;
    }
    std::printf("{\"mode\":\"late\",\"ok\":%s,\"received\":%llu,\"held\":%d,\"error\":\"%s\"}\n",
                late.error.empty() ? "true" : "false",
                static_cast<unsigned long long>(late.received), g_held.load(),
                late.error.c_str());
    return late.error.empty() ? 0 : 1;
  }
  if (mode == "busy") {
    const auto messages = static_cast<std::uint64_t>(arg(argc, argv, "--messages", 200'000));
    const auto work = std::chrono::nanoseconds(arg(argc, argv, "--work-ns", 2000));
    const std::uint64_t before = lab06::futex_calls();
    const Outcome busy = stream(messages, 0ns, work);
    const std::uint64_t calls = lab06::futex_calls() - before;
    std::printf("{\"mode\":\"busy\",\"ok\":%s,\"messages\":%llu,\"received\":%llu,\"error\":\"%s\","
                "\"futex_calls\":%llu,\"futex_calls_per_message\":%.4f}\n",
                busy.error.empty() ? "true" : "false", static_cast<unsigned long long>(messages),
                static_cast<unsigned long long>(busy.received), busy.error.c_str(),
                static_cast<unsigned long long>(calls),
                messages ? static_cast<double>(calls) / static_cast<double>(messages) : 0.0);
    return busy.error.empty() ? 0 : 1;
  }
  std::fprintf(stderr, "lab06_ring: --mode correctness|busy|late [--messages N] [--work-ns N]\n");
  return 2;
}
