// The operating-system side of the handlers' work (declared in http/app.hpp): /work burns this
// thread's CPU time, /sleep blocks this thread.
#include <time.h>

#include <chrono>
#include <cstdint>
#include <thread>

#include "app.hpp"

namespace iolab {

void DeferredWork::run() const {
  std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
}

// The thread clock is a system call, so it is read only every ~20 us of spinning on the
// vDSO's monotonic clock.
void burn_cpu_us(std::uint64_t us) {
  auto nanos = [](clockid_t clock) {
    timespec ts{};
    clock_gettime(clock, &ts);
    return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
  };
  const std::int64_t end = nanos(CLOCK_THREAD_CPUTIME_ID) + static_cast<std::int64_t>(us) * 1000;
  while (nanos(CLOCK_THREAD_CPUTIME_ID) < end) {
    const std::int64_t spin_until = nanos(CLOCK_MONOTONIC) + 20'000;
    while (nanos(CLOCK_MONOTONIC) < spin_until) {
    }
  }
}

}  // namespace iolab
