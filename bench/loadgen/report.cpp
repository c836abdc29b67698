#include "report.hpp"

#include <cstdio>
#include <numeric>

namespace iolab::loadgen {

namespace {

std::string fixed(double v, int decimals = 3) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string quoted(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

double us(std::int64_t ns) { return static_cast<double>(ns) / 1000.0; }

std::string latency_json(const Histogram& h) {
  std::string o = "{";
  o += "\"p50\":" + fixed(us(h.value_at_percentile(50)));
  o += ",\"p75\":" + fixed(us(h.value_at_percentile(75)));
  o += ",\"p90\":" + fixed(us(h.value_at_percentile(90)));
  o += ",\"p99\":" + fixed(us(h.value_at_percentile(99)));
  o += ",\"p999\":" + fixed(us(h.value_at_percentile(99.9)));
  o += ",\"p9999\":" + fixed(us(h.value_at_percentile(99.99)));
  o += ",\"max\":" + fixed(us(h.max()));
  o += ",\"min\":" + fixed(us(h.min()));
  o += ",\"mean\":" + fixed(h.mean() / 1000.0);
  o += ",\"stdev\":" + fixed(h.stddev() / 1000.0);
  o += ",\"count\":" + std::to_string(h.total_count());
  o += ",\"saturated\":" + std::to_string(h.saturated_count());
  return o + "}";
}

std::uint64_t total_errors(const Results& r) {
  return std::accumulate(r.errors.begin(), r.errors.end(), std::uint64_t{0});
}

// "45.1us", "1.23ms", "2.50s": wrk's style.
std::string human_time(std::int64_t ns) {
  const double v = static_cast<double>(ns);
  if (v < 1e6) return fixed(v / 1e3, 2) + "us";
  if (v < 1e9) return fixed(v / 1e6, 2) + "ms";
  return fixed(v / 1e9, 2) + "s";
}

std::string latency_row(const char* name, const Histogram& h) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "  %-9s %9s %9s %9s %9s %9s %9s\n", name,
                human_time(h.value_at_percentile(50)).c_str(),
                human_time(h.value_at_percentile(90)).c_str(),
                human_time(h.value_at_percentile(99)).c_str(),
                human_time(h.value_at_percentile(99.9)).c_str(), human_time(h.max()).c_str(),
                human_time(static_cast<std::int64_t>(h.mean())).c_str());
  return buf;
}

}  // namespace

std::string json_report(const Config& c, const Results& r, const RunInfo& run) {
  const bool open = c.rate > 0;
  const double rps = run.duration_s > 0 ? static_cast<double>(r.requests) / run.duration_s : 0;
  const double per_request = r.requests > 0 ? 1e6 / static_cast<double>(r.requests) : 0;
  std::string o = "{";
  o += "\"tool\":\"loadgen\"";
  o += ",\"url\":" + quoted(c.url);
  o += ",\"mode\":\"" + std::string(open ? "open" : "closed") + "\"";
  o += ",\"connection_mode\":\"" +
       std::string(c.new_connection_per_request ? "new-connection-per-request" : "keep-alive") +
       "\"";
  o += ",\"connections\":" + std::to_string(c.connections);
  o += ",\"threads\":" + std::to_string(c.threads);
  o += ",\"pipeline\":" + std::to_string(c.pipeline);
  o += ",\"rate\":" + (open ? fixed(c.rate) : std::string("null"));
  o += ",\"achieved_rate\":" + fixed(rps);
  o += ",\"corrected\":" + std::string(open ? "true" : "false");
  o += ",\"requests\":" + std::to_string(r.requests);
  o += ",\"requests_limit\":" + (c.requests > 0 ? std::to_string(c.requests) : "null");
  o += ",\"duration_s\":" + fixed(run.duration_s, 6);
  o += ",\"warmup_s\":" + fixed(run.warmup_s, 6);
  o += ",\"rps\":" + fixed(rps);
  o += ",\"errors\":{";
  for (unsigned i = 0; i < kErrorKinds; ++i) {
    o += (i ? ",\"" : "\"") + std::string(error_name(static_cast<ErrorKind>(i))) +
         "\":" + std::to_string(r.errors[i]);
  }
  o += ",\"total\":" + std::to_string(total_errors(r)) + "}";
  o += ",\"first_error\":" + (r.first_error.empty() ? std::string("null") : quoted(r.first_error));
  o += ",\"latency_us\":" + latency_json(r.latency);
  o += ",\"latency_raw_us\":" + latency_json(open ? r.raw : r.latency);
  o += ",\"client_cpu_s\":{\"user\":" + fixed(run.window_cpu.user_s, 6) +
       ",\"sys\":" + fixed(run.window_cpu.sys_s, 6) + "}";
  o += ",\"client_cpu_total_s\":{\"user\":" + fixed(run.total_cpu.user_s, 6) +
       ",\"sys\":" + fixed(run.total_cpu.sys_s, 6) + "}";
  o += ",\"client_cpu_us_per_request\":{\"user\":" + fixed(run.window_cpu.user_s * per_request) +
       ",\"sys\":" + fixed(run.window_cpu.sys_s * per_request) +
       ",\"total\":" + fixed((run.window_cpu.user_s + run.window_cpu.sys_s) * per_request) + "}";
  o += ",\"warmup_requests\":" + std::to_string(r.warmup_requests);
  o += ",\"after_window_requests\":" + std::to_string(r.after_window);
  o += ",\"bytes_read\":" + std::to_string(r.bytes_read);
  o += ",\"bytes_written\":" + std::to_string(r.bytes_written);
  o += ",\"connects\":" + std::to_string(r.connects);
  o += ",\"think_ms\":" + fixed(static_cast<double>(c.think_ns) / 1e6);
  o += ",\"idle_connections\":{\"requested\":" + std::to_string(c.idle_connections) +
       ",\"ready\":" + std::to_string(r.idle_ready) + ",\"lost\":" + std::to_string(r.idle_lost) +
       ",\"source_addresses\":" + std::to_string(c.source_addresses) + "}";
  o += ",\"mix\":[";
  for (std::size_t i = 0; i < c.kinds.size(); ++i) {
    const auto& k = c.kinds[i];
    o += (i ? ",{" : "{");
    o += "\"path\":" + quoted(k.path) + ",\"weight\":" + std::to_string(k.weight) +
         ",\"expected_status\":" + std::to_string(k.expect.status) +
         ",\"requests\":" + std::to_string(i < r.per_kind.size() ? r.per_kind[i] : 0) + "}";
  }
  o += "]";
  o += ",\"window\":{\"start_unix_ns\":" + std::to_string(run.window_start_unix_ns) +
       ",\"end_unix_ns\":" + std::to_string(run.window_end_unix_ns) + "}";
  o += ",\"interrupted\":" + std::string(run.interrupted ? "true" : "false");
  o += ",\"histogram_file\":" + (c.hist_path.empty() ? std::string("null") : quoted(c.hist_path));
  o += "}\n";
  return o;
}

std::string text_summary(const Config& c, const Results& r, const RunInfo& run) {
  const bool open = c.rate > 0;
  std::string o;
  o += "Running " + fixed(run.duration_s, 2) + "s " + (open ? "open-loop" : "closed-loop") +
       " test @ " + c.url + "\n";
  o += "  " + std::to_string(c.threads) + " threads and " + std::to_string(c.connections) +
       " connections";
  if (c.pipeline > 1) o += ", pipeline " + std::to_string(c.pipeline);
  if (c.new_connection_per_request) o += ", a new connection per request";
  if (c.idle_connections > 0) {
    o += ", " + std::to_string(r.idle_ready) + "/" + std::to_string(c.idle_connections) + " idle";
  }
  o += "\n";
  char head[160];
  std::snprintf(head, sizeof head, "  %-9s %9s %9s %9s %9s %9s %9s\n", "Latency", "p50", "p90",
                "p99", "p99.9", "max", "mean");
  o += head;
  o += latency_row(open ? "corrected" : "", r.latency);
  if (open) o += latency_row("raw", r.raw);
  o += "  " + std::to_string(r.requests) + " requests in " + fixed(run.duration_s, 2) + "s, " +
       fixed(static_cast<double>(r.bytes_read) / 1e6, 2) + " MB read\n";
  const double rps = run.duration_s > 0 ? static_cast<double>(r.requests) / run.duration_s : 0;
  o += "Requests/sec: " + fixed(rps, 2);
  if (open) o += " (offered " + fixed(c.rate, 2) + ")";
  o += "\n";
  if (total_errors(r) == 0) {
    o += "Errors: none\n";
  } else {
    o += "Errors:";
    for (unsigned i = 0; i < kErrorKinds; ++i) {
      if (r.errors[i] != 0) {
        o += std::string(" ") + error_name(static_cast<ErrorKind>(i)) + " " +
             std::to_string(r.errors[i]);
      }
    }
    o += " (first: " + r.first_error + ")\n";
  }
  const double cpu = run.window_cpu.user_s + run.window_cpu.sys_s;
  o += "Client CPU: user " + fixed(run.window_cpu.user_s, 2) + "s, sys " +
       fixed(run.window_cpu.sys_s, 2) + "s";
  if (r.requests > 0)
    o += " (" + fixed(cpu * 1e6 / static_cast<double>(r.requests), 2) + " us/request)";
  o += "\n";
  if (run.interrupted) o += "Interrupted before the end of the window.\n";
  return o;
}

bool write_histogram_csv(const std::string& path, const Config& c, const Results& r,
                         std::string& error) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) {
    error = "cannot write --hist " + path;
    return false;
  }
  const bool open = c.rate > 0;
  std::fprintf(f,
               "# loadgen latency histogram: HdrHistogram log-linear buckets, %d significant "
               "figures\n"
               "# series latency: %s; series raw: from the actual send (open loop only)\n"
               "# each line: bucket [value_from_us, value_to_us) and its count\n"
               "series,value_from_us,value_to_us,count\n",
               kHistogramFigures,
               open ? "from the intended send time (corrected)" : "from the send");
  const auto dump = [&](const char* series, const Histogram& h) {
    h.for_each_slot([&](std::int64_t from, std::int64_t to, std::int64_t count) {
      std::fprintf(f, "%s,%.3f,%.3f,%lld\n", series, us(from), us(to),
                   static_cast<long long>(count));
    });
  };
  dump("latency", r.latency);
  if (open) dump("raw", r.raw);
  const bool ok = std::fclose(f) == 0;
  if (!ok) error = "cannot write --hist " + path;
  return ok;
}

}  // namespace iolab::loadgen
