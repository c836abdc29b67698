// loadgen's command line: what to load, how hard, and how to report it.
//
// Design. Parsing produces a Config or a message naming the bad flag (main prints it and exits
// with status 2). Everything a worker needs per request is computed here once: the target's
// address, and for each entry of the request mix its serialized request bytes and what its
// response must look like, so the hot path only copies bytes and compares.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "response_parser.hpp"

namespace iolab::loadgen {

// One kind of request: `weight` of every sum-of-weights requests use it.
struct RequestKind {
  std::string path;  // "/ping", "/sleep?ms=50"
  std::uint32_t weight = 1;
  std::string bytes;        // the whole request, keep-alive
  std::string bytes_close;  // the same with "Connection: close"
  Expectation expect;
};

struct Config {
  std::string url;
  std::string host;  // as written in the URL (the Host header)
  std::uint16_t port = 80;
  sockaddr_in address{};
  std::string method = "GET";
  std::vector<std::string> headers;  // extra "Name: value" lines
  std::vector<RequestKind> kinds;    // the mix; one entry without --mix
  RequestKind idle_kind;             // the request each idle connection sends

  int connections = 64;
  int threads = 1;
  std::int64_t duration_ns = 10'000'000'000;
  bool duration_given = false;
  std::int64_t warmup_ns = 0;
  std::int64_t requests = 0;  // 0: run for the duration
  double rate = 0;            // requests per second over all connections; 0: closed loop
  int pipeline = 1;
  bool new_connection_per_request = false;
  int idle_connections = 0;
  double connect_rate = 5000;  // connections opened per second before the window
  int source_addresses = 0;    // 0: chosen from idle_connections
  std::int64_t think_ns = 0;
  std::int64_t timeout_ns = 10'000'000'000;
  std::int64_t setup_timeout_ns = 0;  // 0: derived from the connection count and rate
  std::vector<int> pin;
  bool allow_remote = false;
  std::string json_path;  // empty: none; "-": stdout
  std::string hist_path;
  int mark_fd = 2;
  std::uint64_t seed = 1;
};

// Parses argv. On failure returns nullopt and sets `error` to a one-line message; on --help sets
// `help` and returns nullopt with an empty error.
std::optional<Config> parse_command_line(int argc, char** argv, std::string& error, bool& help);

std::string usage();

// "10s", "250ms", "1m", "500us", "2h"; a bare number is seconds. nullopt when malformed.
std::optional<std::int64_t> parse_duration_ns(std::string_view text);

// What a path's response must be: /ping and /plaintext have known bodies, /bytes?n=N and
// /file?n=N a known length.
Expectation expectation_for(std::string_view path, int status, bool head_request);

// The source addresses for idle connections: 127.0.0.1 alone, or `count` addresses from
// 127.0.1.1 up, each good for ~28k ports to one server port.
std::vector<in_addr> source_addresses(int count);

}  // namespace iolab::loadgen
