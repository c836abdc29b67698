#include "cli.hpp"

#include <arpa/inet.h>
#include <netdb.h>

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <stdexcept>

#include "net.hpp"

namespace iolab::loadgen {

namespace {

constexpr int kMaxConnections = 1'000'000;
constexpr int kMaxPipeline = 1024;
constexpr int kMaxSourceAddresses = 250;
constexpr int kIdlePerSourceAddress = 20'000;  // below the ~28k ephemeral ports of one address

template <typename T>
std::optional<T> parse_integer(std::string_view text) {
  T value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<double> parse_number(std::string_view text) {
  if (text.empty()) return std::nullopt;
  const std::string s(text);
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

// "http://HOST[:PORT][/PATH]" into host, port and path.
bool split_url(std::string_view url, std::string& host, std::uint16_t& port, std::string& path,
               std::string& error) {
  constexpr std::string_view kScheme = "http://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    error = "--url must start with http:// (got '" + std::string(url) + "')";
    return false;
  }
  url.remove_prefix(kScheme.size());
  const std::size_t slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  path = slash == std::string_view::npos ? "/" : std::string(url.substr(slash));
  port = 80;
  if (const std::size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    const auto p = parse_integer<unsigned>(authority.substr(colon + 1));
    if (!p || *p == 0 || *p > 65535) {
      error = "bad port in --url '" + std::string(kScheme) + std::string(url) + "'";
      return false;
    }
    port = static_cast<std::uint16_t>(*p);
    authority = authority.substr(0, colon);
  }
  if (authority.empty()) {
    error = "no host in --url";
    return false;
  }
  host = std::string(authority);
  return true;
}

bool resolve(const std::string& host, std::uint16_t port, sockaddr_in& out, std::string& error) {
  out = sockaddr_in{};
  out.sin_family = AF_INET;
  out.sin_port = htons(port);
  if (inet_pton(AF_INET, host.c_str(), &out.sin_addr) == 1) return true;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &result);
  if (rc != 0 || result == nullptr) {
    error = "cannot resolve host '" + host + "': " + gai_strerror(rc);
    return false;
  }
  out.sin_addr = reinterpret_cast<sockaddr_in*>(result->ai_addr)->sin_addr;
  freeaddrinfo(result);
  return true;
}

std::string build_request(const Config& config, std::string_view path, bool close) {
  std::string r;
  r.reserve(64 + path.size());
  r.append(config.method).append(" ").append(path).append(" HTTP/1.1\r\nHost: ");
  r.append(config.host);
  if (config.port != 80) r.append(":").append(std::to_string(config.port));
  r.append("\r\n");
  for (const auto& h : config.headers) r.append(h).append("\r\n");
  if (close) r.append("Connection: close\r\n");
  r.append("\r\n");
  return r;
}

// "99:/ping,1:/sleep?ms=50,1:404:/missing": WEIGHT:[STATUS:]PATH entries.
bool parse_mix(std::string_view spec, int default_status, std::vector<RequestKind>& kinds,
               std::string& error) {
  while (!spec.empty()) {
    const std::size_t comma = spec.find(',');
    const std::string_view entry = spec.substr(0, comma);
    spec = comma == std::string_view::npos ? std::string_view() : spec.substr(comma + 1);
    const std::size_t colon = entry.find(':');
    const auto weight = colon == std::string_view::npos
                            ? std::nullopt
                            : parse_integer<std::uint32_t>(entry.substr(0, colon));
    if (!weight || *weight == 0) {
      error = "--mix entry '" + std::string(entry) +
              "' is not WEIGHT:[STATUS:]PATH with a weight of at least 1";
      return false;
    }
    std::string_view rest = entry.substr(colon + 1);
    int status = default_status;
    if (!rest.empty() && rest.front() != '/' && rest.find(':') != std::string_view::npos) {
      const std::size_t second = rest.find(':');
      const auto s = second == std::string_view::npos ? std::nullopt
                                                      : parse_integer<int>(rest.substr(0, second));
      if (!s || *s < 100 || *s > 599) {
        error = "--mix entry '" + std::string(entry) + "': expected STATUS:/PATH after the weight";
        return false;
      }
      status = *s;
      rest.remove_prefix(second + 1);
    }
    if (rest.empty() || rest.front() != '/') {
      error = "--mix entry '" + std::string(entry) + "': the path must start with '/'";
      return false;
    }
    RequestKind kind;
    kind.path = std::string(rest);
    kind.weight = *weight;
    kind.expect.status = status;
    kinds.push_back(std::move(kind));
  }
  if (kinds.empty()) {
    error = "--mix is empty";
    return false;
  }
  return true;
}

}  // namespace

std::optional<std::int64_t> parse_duration_ns(std::string_view text) {
  std::size_t digits = 0;
  while (digits < text.size() &&
         ((text[digits] >= '0' && text[digits] <= '9') || text[digits] == '.')) {
    ++digits;
  }
  const auto number = parse_number(text.substr(0, digits));
  if (!number || *number < 0) return std::nullopt;
  const std::string_view unit = text.substr(digits);
  double scale;
  if (unit.empty() || unit == "s")
    scale = 1e9;
  else if (unit == "ms")
    scale = 1e6;
  else if (unit == "us")
    scale = 1e3;
  else if (unit == "ns")
    scale = 1;
  else if (unit == "m")
    scale = 60e9;
  else if (unit == "h")
    scale = 3600e9;
  else
    return std::nullopt;
  const double ns = *number * scale;
  if (ns > 1e18) return std::nullopt;
  return static_cast<std::int64_t>(ns);
}

Expectation expectation_for(std::string_view path, int status, bool head_request) {
  Expectation e;
  e.status = status;
  e.head_request = head_request;
  if (status != 200) return e;
  std::string_view query;
  if (const std::size_t q = path.find('?'); q != std::string_view::npos) {
    query = path.substr(q + 1);
    path = path.substr(0, q);
  }
  if (path == "/ping" || path == "/plaintext") {
    e.check_body = true;
    e.body = path == "/ping" ? std::string_view(R"({"message":"pong"})") : "Hello, World!";
  } else if ((path == "/bytes" || path == "/file") && query.substr(0, 2) == "n=") {
    if (const auto n = parse_integer<std::int64_t>(query.substr(2))) e.length = *n;
  }
  return e;
}

std::vector<in_addr> source_addresses(int count) {
  std::vector<in_addr> out;
  for (int i = 0; i < count; ++i) {
    in_addr a{};
    a.s_addr = htonl((127u << 24) | (1u << 8) | static_cast<std::uint32_t>(1 + i));  // 127.0.1.x
    out.push_back(a);
  }
  return out;
}

std::string usage() {
  return R"(usage: loadgen --url http://HOST:PORT/PATH [options]

Load:
  --connections N       connections that carry the load (default 64)
  --threads N           event-loop threads, connections spread over them (default 1)
  --duration D          measured window, e.g. 10s, 500ms (default 10s)
  --warmup D            load before the window, not measured (default 0)
  --requests N          measure exactly N requests instead of a duration (with --duration: a cap)
  --rate R              open loop: R requests/s in total, on a fixed schedule per connection;
                        latency from each request's intended send time (default: closed loop)
  --pipeline D          requests in flight per connection (default 1)
  --new-connection-per-request
                        connect, send one request with Connection: close, read, wait for the
                        server to close first (no TIME_WAIT on the client), repeat
  --idle-connections K  K more connections opened before the window, each sends one request and
                        then stays idle until the end
  --connect-rate R      connections opened per second before the window (default 5000)
  --source-addrs N      spread idle connections over N source addresses 127.0.1.x
                        (default: one per 20000 idle connections when more than 20000)
  --mix SPEC            request mix, e.g. '99:/ping,1:/sleep?ms=50'; WEIGHT:[STATUS:]PATH
  --think-ms T          wait T ms after each response before the next request on a connection
  --method M            GET (default) or HEAD
  --header 'N: V'       extra request header (repeatable)
  --expect-status N     status the URL's responses must have (default 200)
  --idle-path PATH      request of the idle connections (default: the URL's path)
  --timeout D           a request without its response after D is an error (default 10s)
  --setup-timeout D     limit for opening connections before the window
  --pin LIST            pin the threads to these CPUs, round robin (e.g. 0 or 0-1)
  --allow-remote        allow a target outside 127.0.0.0/8
Report:
  --json FILE|-         one JSON document (to stdout with -); without it a readable summary
  --hist FILE           latency histogram buckets as CSV: series,value_from_us,value_to_us,count
  --mark-fd N           write the window marks to descriptor N instead of stderr
  --seed N              seed of the request-mix choice (default 1)
Exit status: 0 the run completed (errors, if any, are in the report), 1 it could not run
(unreachable server, setup failure), 2 bad command line.
)";
}

std::optional<Config> parse_command_line(int argc, char** argv, std::string& error, bool& help) {
  Config c;
  help = false;
  std::string mix;
  std::optional<int> expect_status;
  std::string idle_path;
  bool think_given = false;
  std::vector<std::string_view> args(argv + 1, argv + argc);
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view flag = args[i];
    std::string_view value;
    bool has_value = false;
    if (flag.substr(0, 2) == "--") {
      if (const std::size_t eq = flag.find('='); eq != std::string_view::npos) {
        value = flag.substr(eq + 1);
        flag = flag.substr(0, eq);
        has_value = true;
      }
    } else if (flag.size() == 2 && flag[0] == '-') {
      // short forms wrk users type: -c -t -d -n -R -H -h
    } else if (c.url.empty() && flag.substr(0, 7) == "http://") {
      c.url = std::string(flag);  // wrk-style positional URL
      continue;
    } else {
      error = "unexpected argument '" + std::string(flag) + "' (see --help)";
      return std::nullopt;
    }
    auto take = [&]() -> std::optional<std::string_view> {
      if (has_value) return value;
      if (i + 1 >= args.size()) {
        error = std::string(flag) + " needs a value";
        return std::nullopt;
      }
      return args[++i];
    };
    auto bad = [&](std::string_view v, std::string_view what) {
      error = std::string(flag) + ": '" + std::string(v) + "' is not " + std::string(what);
      return std::nullopt;
    };
    auto int_in = [&](int lo, int hi, int& out) -> bool {
      const auto v = take();
      if (!v) return false;
      const auto n = parse_integer<int>(*v);
      if (!n || *n < lo || *n > hi) {
        bad(*v, "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
        return false;
      }
      out = *n;
      return true;
    };
    auto duration = [&](std::int64_t& out) -> bool {
      const auto v = take();
      if (!v) return false;
      const auto d = parse_duration_ns(*v);
      if (!d) {
        bad(*v, "a duration like 10s, 250ms or 1m");
        return false;
      }
      out = *d;
      return true;
    };
    auto flag_without_value = [&]() -> bool {
      if (has_value) {
        error = std::string(flag) + " takes no value";
        return false;
      }
      return true;
    };

    if (flag == "--help" || flag == "-h") {
      help = true;
      return std::nullopt;
    } else if (flag == "--url") {
      const auto v = take();
      if (!v) return std::nullopt;
      c.url = std::string(*v);
    } else if (flag == "--connections" || flag == "-c") {
      if (!int_in(1, kMaxConnections, c.connections)) return std::nullopt;
    } else if (flag == "--threads" || flag == "-t") {
      if (!int_in(1, 256, c.threads)) return std::nullopt;
    } else if (flag == "--duration" || flag == "-d") {
      if (!duration(c.duration_ns)) return std::nullopt;
      if (c.duration_ns <= 0) return bad(args[i], "a positive duration");
      c.duration_given = true;
    } else if (flag == "--warmup") {
      if (!duration(c.warmup_ns)) return std::nullopt;
    } else if (flag == "--requests" || flag == "-n") {
      const auto v = take();
      if (!v) return std::nullopt;
      const auto n = parse_integer<std::int64_t>(*v);
      if (!n || *n < 1) return bad(*v, "a positive number of requests");
      c.requests = *n;
    } else if (flag == "--rate" || flag == "-R") {
      const auto v = take();
      if (!v) return std::nullopt;
      const auto r = parse_number(*v);
      if (!r || *r <= 0 || *r > 1e8) return bad(*v, "a rate in requests per second");
      c.rate = *r;
    } else if (flag == "--pipeline") {
      if (!int_in(1, kMaxPipeline, c.pipeline)) return std::nullopt;
    } else if (flag == "--new-connection-per-request") {
      if (!flag_without_value()) return std::nullopt;
      c.new_connection_per_request = true;
    } else if (flag == "--idle-connections") {
      if (!int_in(0, kMaxConnections, c.idle_connections)) return std::nullopt;
    } else if (flag == "--connect-rate") {
      const auto v = take();
      if (!v) return std::nullopt;
      const auto r = parse_number(*v);
      if (!r || *r < 1) return bad(*v, "a rate of at least 1 connection per second");
      c.connect_rate = *r;
    } else if (flag == "--source-addrs") {
      if (!int_in(1, kMaxSourceAddresses, c.source_addresses)) return std::nullopt;
    } else if (flag == "--mix") {
      const auto v = take();
      if (!v) return std::nullopt;
      mix = std::string(*v);
    } else if (flag == "--think-ms") {
      const auto v = take();
      if (!v) return std::nullopt;
      const auto t = parse_number(*v);
      if (!t || *t < 0 || *t > 3.6e6) return bad(*v, "a number of milliseconds");
      c.think_ns = static_cast<std::int64_t>(*t * 1e6);
      think_given = true;
    } else if (flag == "--timeout") {
      if (!duration(c.timeout_ns)) return std::nullopt;
      if (c.timeout_ns <= 0) return bad(args[i], "a positive duration");
    } else if (flag == "--setup-timeout") {
      if (!duration(c.setup_timeout_ns)) return std::nullopt;
    } else if (flag == "--method") {
      const auto v = take();
      if (!v) return std::nullopt;
      if (*v != "GET" && *v != "HEAD") return bad(*v, "GET or HEAD");
      c.method = std::string(*v);
    } else if (flag == "--header" || flag == "-H") {
      const auto v = take();
      if (!v) return std::nullopt;
      const std::size_t colon = v->find(':');
      if (colon == std::string_view::npos || colon == 0 ||
          v->find_first_of("\r\n") != std::string_view::npos) {
        return bad(*v, "a header line 'Name: value'");
      }
      c.headers.emplace_back(*v);
    } else if (flag == "--expect-status") {
      int s = 0;
      if (!int_in(100, 599, s)) return std::nullopt;
      expect_status = s;
    } else if (flag == "--idle-path") {
      const auto v = take();
      if (!v) return std::nullopt;
      if (v->empty() || v->front() != '/') return bad(*v, "a path starting with '/'");
      idle_path = std::string(*v);
    } else if (flag == "--pin") {
      const auto v = take();
      if (!v) return std::nullopt;
      try {
        c.pin = parse_cpu_list(*v);
      } catch (const std::exception&) {
        return bad(*v, "a CPU list like 0 or 0-1,3");
      }
    } else if (flag == "--allow-remote") {
      if (!flag_without_value()) return std::nullopt;
      c.allow_remote = true;
    } else if (flag == "--json") {
      const auto v = take();
      if (!v) return std::nullopt;
      c.json_path = std::string(*v);
    } else if (flag == "--hist") {
      const auto v = take();
      if (!v) return std::nullopt;
      c.hist_path = std::string(*v);
    } else if (flag == "--mark-fd") {
      if (!int_in(0, 1 << 20, c.mark_fd)) return std::nullopt;
    } else if (flag == "--seed") {
      const auto v = take();
      if (!v) return std::nullopt;
      const auto s = parse_integer<std::uint64_t>(*v);
      if (!s) return bad(*v, "a number");
      c.seed = *s;
    } else {
      error = "unknown flag '" + std::string(flag) + "' (see --help)";
      return std::nullopt;
    }
  }

  if (c.url.empty()) {
    error = "--url is required, e.g. --url http://127.0.0.1:8080/ping";
    return std::nullopt;
  }
  std::string path;
  if (!split_url(c.url, c.host, c.port, path, error)) return std::nullopt;
  if (!resolve(c.host, c.port, c.address, error)) return std::nullopt;
  const bool loopback = (ntohl(c.address.sin_addr.s_addr) >> 24) == 127;
  if (!loopback && !c.allow_remote) {
    char text[INET_ADDRSTRLEN] = "?";
    inet_ntop(AF_INET, &c.address.sin_addr, text, sizeof text);
    error = "refusing to load " + c.host + " (" + text +
            "): loadgen targets 127.0.0.0/8 only; pass --allow-remote to load another machine";
    return std::nullopt;
  }

  if (c.threads > c.connections) {
    error = "--threads " + std::to_string(c.threads) + " is more than --connections " +
            std::to_string(c.connections);
    return std::nullopt;
  }
  if (c.pipeline > 1 && c.new_connection_per_request) {
    error =
        "--pipeline needs keep-alive connections; it cannot be used with "
        "--new-connection-per-request";
    return std::nullopt;
  }
  if (think_given && c.pipeline > 1) {
    error = "--think-ms waits between a response and the next request: it needs --pipeline 1";
    return std::nullopt;
  }
  if (c.source_addresses > 0 && !loopback) {
    error = "--source-addrs uses 127.0.1.x addresses: the target must be on loopback";
    return std::nullopt;
  }
  if (c.source_addresses == 0 && loopback && c.idle_connections > kIdlePerSourceAddress) {
    c.source_addresses = (c.idle_connections + kIdlePerSourceAddress - 1) / kIdlePerSourceAddress;
  }
  if (c.requests > 0 && !c.duration_given) c.duration_ns = 0;  // no cap: ends after N requests

  const bool head = c.method == "HEAD";
  if (mix.empty()) {
    RequestKind kind;
    kind.path = path;
    kind.expect.status = expect_status.value_or(200);
    c.kinds.push_back(std::move(kind));
  } else if (!parse_mix(mix, expect_status.value_or(200), c.kinds, error)) {
    return std::nullopt;
  }
  for (auto& kind : c.kinds) {
    kind.bytes = build_request(c, kind.path, false);
    kind.bytes_close = build_request(c, kind.path, true);
    kind.expect = expectation_for(kind.path, kind.expect.status, head);
  }
  c.idle_kind = idle_path.empty() ? c.kinds.front() : RequestKind{};
  if (!idle_path.empty()) {
    c.idle_kind.path = idle_path;
    c.idle_kind.bytes = build_request(c, idle_path, false);
    c.idle_kind.expect = expectation_for(idle_path, 200, head);
  }
  return c;
}

}  // namespace iolab::loadgen
