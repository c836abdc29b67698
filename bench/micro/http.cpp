// micro_http: one request through the server core (parse, route, serialise), at -O2 and -O0.
//
// What to notice:
//   - BM_ServeRequest_O2 vs BM_ServeRequest_O0 is the same source compiled two ways and linked
//     into this one binary (CMakeLists.txt explains how), so the ratio comes from one run (C18).
//     The parser's byte loops and the small inline helpers are where -O0 hurts most.
//   - request_browser:0 is a GET /ping as loadgen sends it (the articles' endpoint);
//     request_browser:1 a head with the dozen headers a browser sends, mostly parser work.
//   - items_per_second is requests per second on one core for the protocol work alone: a
//     ceiling no server on this machine can beat, whatever its I/O model.
//   - BM_ParseHead_Pico vs BM_ParseHead_Iolab is the parser race: picohttpparser's
//     phr_parse_request (from Debian's libh2o-evloop0.13) and iolab::http::parse_request_head on
//     the same bytes, request:2 being the ~700-byte request of picohttpparser's own bench.c.
//     picohttpparser only tokenises; ours also checks every byte's class and derives the framing
//     (Content-Length, keep-alive, 100-continue). Each Iolab row carries `x_pico`, its time
//     divided by the Pico row's for the same request in this run (below 1: ours is faster), and
//     the run ends with one line per request on stderr saying the same. BM_ParseRace is the
//     figure to quote on a busy machine: batches of both parsers interleaved, best batch each.
//
// Usage: build/bin/micro_http [--benchmark_filter=ParseHead] [--benchmark_format=json]
#include <time.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <string_view>

#include "http_parser.hpp"

#include "micro_common.hpp"
#include "request_path.hpp"
#define iolab iolab_o0
#include "request_path.hpp"  // the -O0 copy's declaration, in namespace iolab_o0
#undef iolab

namespace {

constexpr std::string_view kPing =
    "GET /ping HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: loadgen\r\n\r\n";
constexpr std::string_view kBrowser =
    "GET /plaintext?lang=en&page=2 HTTP/1.1\r\n"
    "Host: www.example.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Referer: https://www.example.com/index.html\r\n"
    "Connection: keep-alive\r\n"
    "Cookie: session=7f3a9c2e41b84d6f; theme=dark; consent=yes\r\n"
    "Upgrade-Insecure-Requests: 1\r\n"
    "Sec-Fetch-Dest: document\r\n"
    "Sec-Fetch-Mode: navigate\r\n"
    "Sec-Fetch-Site: same-origin\r\n"
    "Cache-Control: max-age=0\r\n"
    "\r\n";
// The request of picohttpparser's bench.c (h2o/picohttpparser), byte for byte: 703 bytes.
constexpr std::string_view kPicoBench =
    "GET /wp-content/uploads/2010/03/hello-kitty-darth-vader-pink.jpg HTTP/1.1\r\n"
    "Host: www.kittyhell.com\r\n"
    "User-Agent: Mozilla/5.0 (Macintosh; U; Intel Mac OS X 10.6; ja-JP-mac; rv:1.9.2.3) "
    "Gecko/20100401 Firefox/3.6.3 Pathtraq/0.9\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    "Accept-Language: ja,en-us;q=0.7,en;q=0.3\r\n"
    "Accept-Encoding: gzip,deflate\r\n"
    "Accept-Charset: Shift_JIS,utf-8;q=0.7,*;q=0.7\r\n"
    "Keep-Alive: 115\r\n"
    "Connection: keep-alive\r\n"
    "Cookie: wp_ozh_wsa_visits=2; wp_ozh_wsa_visit_lasttime=xxxxxxxxxx; "
    "__utma=xxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.x; "
    "__utmz=xxxxxxxxx.xxxxxxxxxx.x.x.utmccn=(referral)|utmcsr=reader.livedoor.com|"
    "utmcct=/reader/|utmcmd=referral\r\n"
    "\r\n";
constexpr std::array<std::string_view, 3> kRequests = {kPing, kBrowser, kPicoBench};
constexpr std::array<const char*, 3> kRequestNames = {"ping", "browser", "pico_bench"};

template <typename Path>
void serve_loop(benchmark::State& state, const char* label) {
  Path path;
  const std::string_view request = kRequests[static_cast<std::size_t>(state.range(0))];
  for (auto _ : state) {
    std::size_t bytes = path.serve(request);
    benchmark::DoNotOptimize(bytes);
    if (bytes == 0) {
      state.SkipWithError("request did not parse");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["request_bytes"] = static_cast<double>(request.size());
  state.SetLabel(label);
}

void BM_ServeRequest_O2(benchmark::State& state) {
  serve_loop<iolab::micro::RequestPath>(state, "C18 -O2");
}
void BM_ServeRequest_O0(benchmark::State& state) {
  serve_loop<iolab_o0::micro::RequestPath>(state, "C18 -O0");
}
BENCHMARK(BM_ServeRequest_O2)->ArgName("request_browser")->Arg(0)->Arg(1);
BENCHMARK(BM_ServeRequest_O0)->ArgName("request_browser")->Arg(0)->Arg(1);

// The race. Each parse benchmark also times its own final run in thread CPU time (the CPU
// column: wall time counts whatever else the machine runs), so the Iolab row can divide by the
// Pico row measured moments before in the same process.
std::array<double, kRequests.size()> pico_ns{};
std::array<double, kRequests.size()> iolab_ns{};

double thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

template <typename Parse>
double timed_parses(benchmark::State& state, Parse parse) {
  const double start = thread_cpu_ns();
  for (auto _ : state) {
    if (!parse()) {
      state.SkipWithError("request did not parse");
      return 0;
    }
  }
  const double took = thread_cpu_ns() - start;
  state.SetItemsProcessed(state.iterations());
  return state.iterations() ? took / static_cast<double>(state.iterations()) : 0;
}

#ifdef IOLAB_HAVE_PICOHTTPPARSER
}  // namespace
// picohttpparser.h's declarations (the library ships no header).
extern "C" {
struct phr_header {
  const char* name;
  std::size_t name_len;
  const char* value;
  std::size_t value_len;
};
int phr_parse_request(const char* buf, std::size_t len, const char** method,
                      std::size_t* method_len, const char** path, std::size_t* path_len,
                      int* minor_version, phr_header* headers, std::size_t* num_headers,
                      std::size_t last_len);
}
namespace {

void BM_ParseHead_Pico(benchmark::State& state) {
  const auto i = static_cast<std::size_t>(state.range(0));
  const std::string_view request = kRequests[i];
  phr_header headers[32];  // as bench.c
  pico_ns[i] = timed_parses(state, [&] {
    const char* method;
    const char* path;
    std::size_t method_len, path_len, num_headers = std::size(headers);
    int minor_version;
    const int ret = phr_parse_request(request.data(), request.size(), &method, &method_len, &path,
                                      &path_len, &minor_version, headers, &num_headers, 0);
    benchmark::DoNotOptimize(ret);
    benchmark::DoNotOptimize(headers);
    return ret == static_cast<int>(request.size());
  });
  state.counters["request_bytes"] = static_cast<double>(request.size());
  state.SetLabel(std::string("(no claim) picohttpparser ") + kRequestNames[i]);
}
BENCHMARK(BM_ParseHead_Pico)->ArgName("request")->Arg(0)->Arg(1)->Arg(2);

// The race proper, for a shared machine: each iteration times a batch of parses by each parser,
// one right after the other, and the fastest batch of each counts (whatever else the machine
// runs only ever slows a batch down). x_pico is iolab's best batch over picohttpparser's.
std::array<double, kRequests.size()> race_pico_ns{};
std::array<double, kRequests.size()> race_iolab_ns{};

void BM_ParseRace(benchmark::State& state) {
  constexpr int kBatch = 128;
  const auto i = static_cast<std::size_t>(state.range(0));
  const std::string_view request = kRequests[i];
  phr_header headers[32];
  iolab::http::RequestHead head;
  using Clock = std::chrono::steady_clock;
  Clock::duration best_pico = Clock::duration::max(), best_iolab = Clock::duration::max();
  bool ok = true;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    for (int k = 0; k < kBatch; ++k) {
      const char* method;
      const char* path;
      std::size_t method_len, path_len, num_headers = std::size(headers);
      int minor_version;
      int ret = phr_parse_request(request.data(), request.size(), &method, &method_len, &path,
                                  &path_len, &minor_version, headers, &num_headers, 0);
      benchmark::DoNotOptimize(ret);
      benchmark::DoNotOptimize(headers);
      ok &= ret == static_cast<int>(request.size());
    }
    const auto t1 = Clock::now();
    for (int k = 0; k < kBatch; ++k) {
      const auto r = iolab::http::parse_request_head(request, head);
      benchmark::DoNotOptimize(head);
      ok &= r.status == iolab::http::ParseStatus::kComplete && r.head_bytes == request.size();
    }
    const auto t2 = Clock::now();
    best_pico = std::min(best_pico, t1 - t0);
    best_iolab = std::min(best_iolab, t2 - t1);
  }
  if (!ok) {
    state.SkipWithError("request did not parse");
    return;
  }
  const auto per_parse = [](Clock::duration d) {
    return std::chrono::duration<double, std::nano>(d).count() / kBatch;
  };
  race_pico_ns[i] = per_parse(best_pico);
  race_iolab_ns[i] = per_parse(best_iolab);
  state.SetItemsProcessed(state.iterations() * 2 * kBatch);
  state.counters["pico_ns"] = race_pico_ns[i];
  state.counters["iolab_ns"] = race_iolab_ns[i];
  state.counters["x_pico"] = race_iolab_ns[i] / race_pico_ns[i];
  state.counters["request_bytes"] = static_cast<double>(request.size());
  state.SetLabel(std::string("(no claim) best batch of each, interleaved: ") + kRequestNames[i]);
}
BENCHMARK(BM_ParseRace)->ArgName("request")->Arg(0)->Arg(1)->Arg(2);
#endif

void BM_ParseHead_Iolab(benchmark::State& state) {
  const auto i = static_cast<std::size_t>(state.range(0));
  const std::string_view request = kRequests[i];
  iolab::http::RequestHead head;  // reused, as the connection reuses its thread's head
  iolab_ns[i] = timed_parses(state, [&] {
    const auto r = iolab::http::parse_request_head(request, head);
    benchmark::DoNotOptimize(head);
    return r.status == iolab::http::ParseStatus::kComplete && r.head_bytes == request.size();
  });
  state.counters["request_bytes"] = static_cast<double>(request.size());
  if (pico_ns[i] > 0) state.counters["x_pico"] = iolab_ns[i] / pico_ns[i];
  state.SetLabel(std::string("(no claim) iolab ") + kRequestNames[i]);
}
BENCHMARK(BM_ParseHead_Iolab)->ArgName("request")->Arg(0)->Arg(1)->Arg(2);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  iolab::micro::add_cpu_context();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
#ifndef IOLAB_HAVE_PICOHTTPPARSER
  std::fprintf(stderr, "micro_http: built without libh2o-evloop0.13: BM_ParseHead_Pico skipped\n");
#endif
  for (std::size_t i = 0; i < kRequests.size(); ++i) {
    if (race_pico_ns[i] > 0 && race_iolab_ns[i] > 0) {
      std::fprintf(stderr, "parser race (best batches), %s (%zu bytes): iolab %.1f ns, picohttpparser %.1f ns, ratio %.2f\n",
                   kRequestNames[i], kRequests[i].size(), race_iolab_ns[i], race_pico_ns[i],
                   race_iolab_ns[i] / race_pico_ns[i]);
    }
  }
  for (std::size_t i = 0; i < kRequests.size(); ++i) {
    if (pico_ns[i] > 0 && iolab_ns[i] > 0) {
      std::fprintf(stderr, "parser race, %s (%zu bytes): iolab %.1f ns, picohttpparser %.1f ns CPU, ratio %.2f\n",
                   kRequestNames[i], kRequests[i].size(), iolab_ns[i], pico_ns[i],
                   iolab_ns[i] / pico_ns[i]);
    }
  }
  return 0;
}
