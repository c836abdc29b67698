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
//
// Usage: build/bin/micro_http [--benchmark_filter=O0] [--benchmark_format=json]
#include <array>
#include <string_view>

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
constexpr std::array<std::string_view, 2> kRequests = {kPing, kBrowser};

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

}  // namespace

IOLAB_MICRO_MAIN();
