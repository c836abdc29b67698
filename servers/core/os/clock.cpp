#include "clock.hpp"

#include <ctime>

namespace iolab {

TimePoint coarse_now() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return TimePoint(std::chrono::duration_cast<Clock::duration>(
      std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)));
}

std::chrono::nanoseconds coarse_resolution() {
  static const std::chrono::nanoseconds resolution = [] {
    timespec res{};
    clock_getres(CLOCK_MONOTONIC_COARSE, &res);
    return std::chrono::seconds(res.tv_sec) + std::chrono::nanoseconds(res.tv_nsec);
  }();
  return resolution;
}

std::string_view http_date() { return http_date_now().text; }

HttpDate http_date_now() {
  thread_local time_t cached_second = -1;
  thread_local char cached[40];
  thread_local std::size_t cached_len = 0;
  timespec ts{};
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  if (ts.tv_sec != cached_second) {
    tm utc{};
    gmtime_r(&ts.tv_sec, &utc);
    cached_len = strftime(cached, sizeof cached, "%a, %d %b %Y %H:%M:%S GMT", &utc);
    cached_second = ts.tv_sec;
  }
  return {{cached, cached_len}, static_cast<long long>(cached_second)};
}

}  // namespace iolab
