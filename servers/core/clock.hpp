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

// "Sun, 06 Nov 1994 08:49:37 GMT", formatted at most once per second per thread.
std::string_view http_date();

}  // namespace iolab
