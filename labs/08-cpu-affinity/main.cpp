// lab08_pingpong: two threads hand a token back and forth; where they run decides the cost.
//
//   lab08_pingpong [--pin LIST] [--rounds N] [--wait]
//
// Thread "ping" writes an eventfd that thread "pong" sleeps on, and pong answers through a
// second one: every round trip is two wake-ups of a sleeping thread. With both threads on one
// CPU a wake-up is a context switch there; on two CPUs the waker must also interrupt the other
// CPU (an IPI) to get the sleeper running, which on a VM goes through the hypervisor and is
// much dearer. Unpinned, the scheduler moves the threads as it likes (count the migrations).
//
// --pin LIST follows the servers' rule: thread i (ping 0, pong 1) runs on pin[i % size], so
// "--pin 1" puts both on CPU 1 and "--pin 0,1" one on each.
// --wait: after both threads have started (and pinned themselves), print the ready line and
// wait for a line on stdin before the first round, so a checker can read /proc meanwhile.
//
// Output: `ready pid=P ping=TID pong=TID`, then one JSON line: the time per round trip, and per
// thread its CPU at the end, migrations (se.nr_migrations from /proc, when the kernel has
// CONFIG_SCHED_DEBUG) and context switches.
//
// The exercise is pin.cpp (exercise/ and solution/): where the threads are allowed to run.
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "net.hpp"  // iolab::parse_cpu_list
#include "pin.hpp"

namespace {

constexpr int kThreads = 2;
const char* const kNames[kThreads] = {"ping", "pong"};

struct ThreadReport {
  pid_t tid = 0;
  int cpu_at_end = -1;
  long migrations = -1;
  long voluntary = -1;
  long involuntary = -1;
};

// Fields of the calling thread's /proc/thread-self/sched and status files (read by the thread
// itself before it exits: a finished thread's /proc entry is gone, joined or not).
long sched_field(std::string_view field) {
  std::ifstream in("/proc/thread-self/sched");
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, field.size(), field) == 0) {
      return std::atol(line.substr(line.find(':') + 1).c_str());
    }
  }
  return -1;  // no CONFIG_SCHED_DEBUG: unknown
}

long status_field(std::string_view field) {
  std::ifstream in("/proc/thread-self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, field.size(), field) == 0)
      return std::atol(line.c_str() + field.size() + 1);
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> pin;
  long rounds = 100'000;
  bool wait = false;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string_view flag = argv[i];
      if (flag == "--wait") {
        wait = true;
      } else if (flag == "--pin" && i + 1 < argc) {
        pin = iolab::parse_cpu_list(argv[++i]);
      } else if (flag == "--rounds" && i + 1 < argc) {
        rounds = std::atol(argv[++i]);
        if (rounds < 1) throw std::invalid_argument("--rounds must be positive");
      } else {
        throw std::invalid_argument("unknown flag '" + std::string(flag) + "'");
      }
    }
    pin_process(pin);
  } catch (const std::exception& e) {
    std::fprintf(stderr,
                 "lab08_pingpong: %s\nusage: lab08_pingpong [--pin LIST] [--rounds N] [--wait]\n",
                 e.what());
    return 2;
  }

  // Two eventfds: to_pong wakes pong, to_ping wakes ping. A blocking read sleeps until the
  // counter is non-zero, then returns it and resets it to zero.
  const int to_pong = eventfd(0, EFD_CLOEXEC);
  const int to_ping = eventfd(0, EFD_CLOEXEC);
  if (to_pong < 0 || to_ping < 0) {
    std::perror("lab08_pingpong: eventfd");
    return 1;
  }
  std::barrier started(kThreads + 1);
  std::barrier go(kThreads + 1);
  ThreadReport reports[kThreads];
  std::atomic<bool> failed{false};
  std::chrono::steady_clock::time_point t0, t1;

  auto body = [&](int index) {
    pthread_setname_np(pthread_self(), kNames[index]);
    reports[index].tid = gettid();
    try {
      pin_thread(pin, index);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "lab08_pingpong: %s: %s\n", kNames[index], e.what());
      failed = true;
    }
    started.arrive_and_wait();
    go.arrive_and_wait();
    std::uint64_t v = 1;
    const int mine = index == 0 ? to_ping : to_pong;
    const int theirs = index == 0 ? to_pong : to_ping;
    for (long r = 0; r < rounds && !failed; ++r) {
      if (index == 0) {
        if (write(theirs, &v, sizeof v) != sizeof v || read(mine, &v, sizeof v) != sizeof v)
          failed = true;
      } else {
        if (read(mine, &v, sizeof v) != sizeof v || write(theirs, &v, sizeof v) != sizeof v)
          failed = true;
      }
    }
    if (index == 0) t1 = std::chrono::steady_clock::now();
    ThreadReport& me = reports[index];
    me.cpu_at_end = sched_getcpu();
    me.migrations = sched_field("se.nr_migrations");
    me.voluntary = status_field("voluntary_ctxt_switches:");
    me.involuntary = status_field("nonvoluntary_ctxt_switches:");
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) threads.emplace_back(body, i);
  started.arrive_and_wait();
  if (!failed) {
    std::printf("ready pid=%d ping=%d pong=%d\n", getpid(), reports[0].tid, reports[1].tid);
    std::fflush(stdout);
  }
  if (wait && !failed) {
    std::string line;
    std::getline(std::cin, line);
  }
  t0 = std::chrono::steady_clock::now();
  go.arrive_and_wait();
  for (auto& t : threads) t.join();
  if (failed) return 1;
  const double us = std::chrono::duration<double, std::micro>(t1 - t0).count();
  std::printf("{\"pin\":\"");
  for (std::size_t i = 0; i < pin.size(); ++i) std::printf("%s%d", i ? "," : "", pin[i]);
  std::printf("\",\"rounds\":%ld,\"us_per_round_trip\":%.3f,\"threads\":[", rounds,
              us / static_cast<double>(rounds));
  for (int i = 0; i < kThreads; ++i) {
    std::printf(
        "%s{\"name\":\"%s\",\"cpu_at_end\":%d,\"migrations\":%ld,\"voluntary_switches\":%ld,"
        "\"involuntary_switches\":%ld}",
        i ? "," : "", kNames[i], reports[i].cpu_at_end, reports[i].migrations, reports[i].voluntary,
        reports[i].involuntary);
  }
  std::printf("]}\n");
  return 0;
}
