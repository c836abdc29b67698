// Time for the core: a monotonic clock for deadlines and the cached HTTP Date header.
#pragma once

#include <chrono>
#include <string_view>

namespace iolab {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Millis = std::chrono::milliseconds;

// CLOCK_MONOTONIC_COARSE: a vDSO read with no system call, a few ms of resolution, which is
// plenty for header and idle timers. The I/O layer reads it once per batch of events.
TimePoint coarse_now();

// How far apart coarse_now()'s readings step (the kernel's tick: 4 ms at HZ=250). A loop that
// waits for a deadline read off the coarse clock waits at least this long, or it can wake while
// the clock still reads the same and spin on waits that are too short to let it advance.
std::chrono::nanoseconds coarse_resolution();

// "Sun, 06 Nov 1994 08:49:37 GMT", formatted at most once per second per thread.
std::string_view http_date();
// The same, with the second it names (what a cache built from the date is keyed on).
struct HttpDate {
  std::string_view text;
  long long second;
};
HttpDate http_date_now();

}  // namespace iolab
