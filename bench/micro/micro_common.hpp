// Shared helpers of the micro suites: CPU choice and pinning, the TSC, context-switch counts.
//
// "same_core" runs both threads of a ping-pong on one CPU; "cross_core" puts them on two CPUs
// that are not SMT siblings when the machine has such a pair (read from
// /sys/devices/system/cpu/*/topology), else on any two. The choice is written into the JSON
// context (cpu_a, cpu_b, cpu_b_kind) so a reader knows what "cross" meant on that machine.
// Context switches are the process's voluntary + involuntary switches from getrusage(), which
// sum over all its threads: divided by round trips they test C06's "1.8 per round trip".
#pragma once

#include <benchmark/benchmark.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <string>
#include <utility>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define IOLAB_HAVE_TSC 1
#endif

namespace iolab::micro {

enum class Placement { kSameCore, kCrossCore };

inline const char* placement_name(Placement p) {
  return p == Placement::kSameCore ? "same_core" : "cross_core";
}

inline std::string read_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// The two CPUs the suites use: {a, b} with b != a when the process may run on two CPUs, and
// whether b is an SMT sibling of a ("sibling") or another core ("core").
struct CpuPair {
  int a = 0;
  int b = 0;
  std::string b_kind = "none";
};

inline CpuPair choose_cpus() {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  sched_getaffinity(0, sizeof(allowed), &allowed);
  CpuPair pair;
  pair.a = -1;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (!CPU_ISSET(c, &allowed)) continue;
    if (pair.a < 0) {
      pair.a = pair.b = c;
      continue;
    }
    const std::string core_a =
        read_line("/sys/devices/system/cpu/cpu" + std::to_string(pair.a) + "/topology/core_id");
    const std::string core_c =
        read_line("/sys/devices/system/cpu/cpu" + std::to_string(c) + "/topology/core_id");
    const bool sibling = !core_a.empty() && core_a == core_c;
    if (pair.b == pair.a || (pair.b_kind == "sibling" && !sibling)) {
      pair.b = c;
      pair.b_kind = sibling ? "sibling" : "core";
    }
  }
  if (pair.a < 0) pair.a = pair.b = 0;
  return pair;
}

inline const CpuPair& cpus() {
  static const CpuPair pair = choose_cpus();
  return pair;
}

inline void add_cpu_context() {
  benchmark::AddCustomContext("cpu_a", std::to_string(cpus().a));
  benchmark::AddCustomContext("cpu_b", std::to_string(cpus().b));
  benchmark::AddCustomContext("cpu_b_kind", cpus().b_kind);
}

// Pins the calling thread to one CPU; false when the kernel refuses (cpuset, container).
inline bool pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
}

// Null when the placement can be honoured, else why not (a process allowed on one CPU only has
// no cross_core: the benchmark reports that instead of quietly running on one CPU).
inline const char* placement_unavailable(Placement p) {
  return p == Placement::kCrossCore && cpus().a == cpus().b
             ? "cross_core needs two CPUs; this process may use only one"
             : nullptr;
}

// The CPUs of the two sides of a ping-pong for a placement.
inline std::pair<int, int> placement_cpus(Placement p) {
  return {cpus().a, p == Placement::kSameCore ? cpus().a : cpus().b};
}

// Restores the calling thread's affinity when it goes out of scope (the benchmark thread is
// reused for the next benchmark).
class AffinityGuard {
 public:
  AffinityGuard() { pthread_getaffinity_np(pthread_self(), sizeof(saved_), &saved_); }
  ~AffinityGuard() { pthread_setaffinity_np(pthread_self(), sizeof(saved_), &saved_); }
  AffinityGuard(const AffinityGuard&) = delete;
  AffinityGuard& operator=(const AffinityGuard&) = delete;

 private:
  cpu_set_t saved_;
};

inline std::uint64_t tsc() {
#ifdef IOLAB_HAVE_TSC
  return __rdtsc();
#else
  return 0;
#endif
}

// Adds "tsc_cycles" per iteration when the CPU has a time-stamp counter. The TSC ticks at a
// constant rate (the nominal frequency), so this is cycles at that rate, not core cycles.
inline void set_tsc_counter(benchmark::State& state, std::uint64_t ticks) {
#ifdef IOLAB_HAVE_TSC
  state.counters["tsc_cycles"] =
      benchmark::Counter(static_cast<double>(ticks), benchmark::Counter::kAvgIterations);
#else
  (void)state;
  (void)ticks;
#endif
}

// The user and system CPU time the kernel has billed to the calling thread so far, in seconds
// (getrusage RUSAGE_THREAD: the same accounting /proc/PID/stat and the harness read).
struct ThreadCpu {
  double user_s = 0;
  double sys_s = 0;
};
inline ThreadCpu thread_cpu() {
  rusage ru{};
  getrusage(RUSAGE_THREAD, &ru);
  return {static_cast<double>(ru.ru_utime.tv_sec) + static_cast<double>(ru.ru_utime.tv_usec) / 1e6,
          static_cast<double>(ru.ru_stime.tv_sec) + static_cast<double>(ru.ru_stime.tv_usec) / 1e6};
}

// Voluntary + involuntary context switches of the whole process so far.
inline long context_switches() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_nvcsw + ru.ru_nivcsw;
}

inline void set_switch_counter(benchmark::State& state, long switches) {
  state.counters["ctx_switches"] =
      benchmark::Counter(static_cast<double>(switches), benchmark::Counter::kAvgIterations);
}

}  // namespace iolab::micro

// BENCHMARK_MAIN() with the CPU choice recorded in the JSON context; use as `IOLAB_MICRO_MAIN();`.
#define IOLAB_MICRO_MAIN()                                            \
  int main(int argc, char** argv) {                                   \
    benchmark::Initialize(&argc, argv);                               \
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1; \
    iolab::micro::add_cpu_context();                                  \
    benchmark::RunSpecifiedBenchmarks();                              \
    benchmark::Shutdown();                                            \
    return 0;                                                         \
  }                                                                   \
  int main(int, char**)
