// What loadgen says about a run: one JSON document (--json), a readable summary like wrk's, and
// the latency buckets as CSV (--hist).
//
// JSON keys (times in microseconds unless the key says otherwise):
//   requests, duration_s, rps, achieved_rate, rate (null in closed loop), mode ("closed" or
//   "open"), corrected (true when latency_us is measured from intended send times),
//   connection_mode ("keep-alive" or "new-connection-per-request"), connections, threads,
//   pipeline, errors {connect, read, write, timeout, status, parse, body, total}, latency_us and
//   latency_raw_us {p50, p75, p90, p99, p999, p9999, max, min, mean, stdev}, client_cpu_s {user,
//   sys} over the window, client_cpu_total_s over the whole process, client_cpu_us_per_request,
//   window {start_unix_ns, end_unix_ns}, idle_connections, mix, and a few counters.
//
// Histogram CSV: comment lines start with '#'; then the header
// "series,value_from_us,value_to_us,count" and one line per non-empty bucket, bucket
// [value_from_us, value_to_us), in increasing order. Series "latency" is the reported latency
// (corrected in open loop); open loop adds series "raw" (from the actual send).
#pragma once

#include <cstdint>
#include <string>

#include "cli.hpp"
#include "engine.hpp"

namespace iolab::loadgen {

struct CpuTimes {
  double user_s = 0;
  double sys_s = 0;
};

struct RunInfo {
  double duration_s = 0;
  double warmup_s = 0;
  std::int64_t window_start_unix_ns = 0;
  std::int64_t window_end_unix_ns = 0;
  CpuTimes window_cpu;
  CpuTimes total_cpu;
  bool interrupted = false;
};

std::string json_report(const Config& config, const Results& results, const RunInfo& run);
std::string text_summary(const Config& config, const Results& results, const RunInfo& run);
// Writes the CSV; false with `error` set when the file cannot be written.
bool write_histogram_csv(const std::string& path, const Config& config, const Results& results,
                         std::string& error);

}  // namespace iolab::loadgen
