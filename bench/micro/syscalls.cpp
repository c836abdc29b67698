// micro_syscalls: what one trip into the kernel costs, next to a call that does not make one.
//
// What to notice:
//   - BM_Getppid (C01, C02) is the bare cost of entering and leaving the kernel: getppid does
//     no work and glibc cannot cache it. Compare ns with C02's 68 ns and tsc_cycles with C01's
//     800-1200 cycles; on a VM with Spectre/Meltdown mitigations expect several times more.
//     `perf bench syscall basic` measures the same loop: the two should agree.
//     Its user_ns and sys_ns counters are how the kernel *bills* each call: the user and system
//     CPU time charged to the thread (getrusage), per call. getppid runs a handful of user
//     instructions, so user_ns should be near zero; on some VMs it is not (on the reference
//     PVM guest about half of every kernel round trip is billed as user time), and then every
//     "user CPU per request" figure of a server carries user_ns times its system calls per
//     request. bench/compare.py measures this at the start of a run for that reason.
//   - BM_ClockGettimeVdso never enters the kernel (the vDSO reads the clock in user space).
//   - BM_PipeWriteRead is two system calls that move a byte; BM_EpollWaitZero one that checks
//     an empty ready list.
//   - BM_IoUringNop/batch:N: one io_uring_enter per N no-op requests. The per-request cost falls
//     with the batch because the kernel entry is shared: that is io_uring's lesson.
//
// Usage: build/bin/micro_syscalls [--benchmark_filter=Getppid] [--benchmark_format=json]
#include <fcntl.h>
#include <liburing.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "micro_common.hpp"

namespace {

using iolab::micro::set_tsc_counter;
using iolab::micro::tsc;

void BM_Getppid(benchmark::State& state) {
  const iolab::micro::ThreadCpu cpu_start = iolab::micro::thread_cpu();
  const std::uint64_t start = tsc();
  for (auto _ : state) {
    long ppid = syscall(SYS_getppid);
    benchmark::DoNotOptimize(ppid);
  }
  set_tsc_counter(state, tsc() - start);
  const iolab::micro::ThreadCpu cpu_end = iolab::micro::thread_cpu();
  state.counters["user_ns"] = benchmark::Counter((cpu_end.user_s - cpu_start.user_s) * 1e9,
                                                 benchmark::Counter::kAvgIterations);
  state.counters["sys_ns"] = benchmark::Counter((cpu_end.sys_s - cpu_start.sys_s) * 1e9,
                                                benchmark::Counter::kAvgIterations);
  state.SetLabel("C01 C02 raw syscall");
}
BENCHMARK(BM_Getppid);

void BM_ClockGettimeVdso(benchmark::State& state) {
  const std::uint64_t start = tsc();
  for (auto _ : state) {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    benchmark::DoNotOptimize(ts);
  }
  set_tsc_counter(state, tsc() - start);
  state.SetLabel("C02 vDSO, no kernel entry");
}
BENCHMARK(BM_ClockGettimeVdso);

void BM_PipeWriteRead(benchmark::State& state) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    state.SkipWithError("pipe2 failed");
    return;
  }
  char byte = 'x';
  const std::uint64_t start = tsc();
  for (auto _ : state) {
    if (write(fds[1], &byte, 1) != 1 || read(fds[0], &byte, 1) != 1) {
      state.SkipWithError("pipe write/read failed");
      break;
    }
    benchmark::DoNotOptimize(byte);
  }
  set_tsc_counter(state, tsc() - start);
  close(fds[0]);
  close(fds[1]);
  state.SetLabel("C01 two syscalls, 1 byte");
}
BENCHMARK(BM_PipeWriteRead);

void BM_EpollWaitZero(benchmark::State& state) {
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) {
    state.SkipWithError("epoll_create1 failed");
    return;
  }
  epoll_event events[8];
  const std::uint64_t start = tsc();
  for (auto _ : state) {
    int n = epoll_wait(ep, events, 8, 0);
    benchmark::DoNotOptimize(n);
  }
  set_tsc_counter(state, tsc() - start);
  close(ep);
  state.SetLabel("C01 empty ready list");
}
BENCHMARK(BM_EpollWaitZero);

// N no-op requests per io_uring_enter; the time is per request (items_per_second counts them).
void BM_IoUringNop(benchmark::State& state) {
  const unsigned batch = static_cast<unsigned>(state.range(0));
  io_uring ring;
  const int rc = io_uring_queue_init(64, &ring, 0);
  if (rc < 0) {
    state.SkipWithError(("io_uring_queue_init: " + std::string(std::strerror(-rc))).c_str());
    return;
  }
  const std::uint64_t start = tsc();
  std::uint64_t enters = 0;
  for (auto _ : state) {
    for (unsigned i = 0; i < batch; ++i) io_uring_prep_nop(io_uring_get_sqe(&ring));
    const int submitted = io_uring_submit_and_wait(&ring, batch);
    ++enters;
    if (submitted != static_cast<int>(batch)) {
      state.SkipWithError("io_uring_submit_and_wait submitted fewer than asked");
      break;
    }
    io_uring_cq_advance(&ring, batch);
  }
  const double requests = static_cast<double>(state.iterations()) * batch;
  state.counters["sec_per_request"] =
      benchmark::Counter(requests, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["tsc_cycles_per_request"] =
      static_cast<double>(tsc() - start) / (requests > 0 ? requests : 1);
  state.counters["enters"] = static_cast<double>(enters);
  state.SetItemsProcessed(static_cast<std::int64_t>(requests));
  io_uring_queue_exit(&ring);
  state.SetLabel("C01 one enter per batch");
}
BENCHMARK(BM_IoUringNop)->ArgName("batch")->Arg(1)->Arg(8)->Arg(32);

}  // namespace

IOLAB_MICRO_MAIN();
