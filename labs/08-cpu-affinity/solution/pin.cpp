// Where lab08_pingpong's threads may run: the reference.
#include "pin.hpp"

#include <pthread.h>
#include <sched.h>

#include <cstring>
#include <stdexcept>
#include <string>

// The process keeps the mask it was started with: each thread sets its own, below.
void pin_process(std::span<const int>) {}

// Called by thread `index` (0 ping, 1 pong) first thing after it starts. The affinity mask
// is per thread (sched_setaffinity(0, ...) and pthread_setaffinity_np act on the caller only),
// and a thread inherits its creator's mask: so each thread sets its own, to one CPU, and main()
// leaves its own mask (and so the process's default) alone.
void pin_thread(std::span<const int> cpus, int index) {
  if (cpus.empty()) return;  // no --pin: the scheduler decides
  cpu_set_t set;
  CPU_ZERO(&set);
  const int cpu = cpus[static_cast<std::size_t>(index) % cpus.size()];
  CPU_SET(cpu, &set);
  const int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
  // EINVAL: the CPU is offline or outside this process's cpuset (taskset, a container).
  if (rc != 0)
    throw std::runtime_error("pin to CPU " + std::to_string(cpu) + ": " + std::strerror(rc));
}
