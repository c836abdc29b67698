#include "options.hpp"

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include "net.hpp"

namespace iolab {

long Options::extra_value(std::string_view name) const {
  const auto it = extra.find(name);
  if (it == extra.end()) {
    throw std::logic_error("Options::extra_value: " + std::string(name) +
                           " is not a flag this server declared");
  }
  return it->second;
}

namespace {

struct Parser {
  std::string_view program;

  [[noreturn]] void fail(std::string_view flag, const std::string& why) const {
    std::fprintf(stderr, "%.*s: %.*s: %s (see --help)\n", static_cast<int>(program.size()),
                 program.data(), static_cast<int>(flag.size()), flag.data(), why.c_str());
    std::exit(2);
  }

  long number(std::string_view flag, std::string_view text, long min, long max) const {
    long v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size() || v < min || v > max) {
      fail(flag, "expected a number in [" + std::to_string(min) + ", " + std::to_string(max) +
                     "], got '" + std::string(text) + "'");
    }
    return v;
  }
};

void print_usage(std::string_view program, std::size_t default_max_conns,
                 std::span<const ExtraFlag> extra) {
  std::printf(
      "usage: %.*s [flags]\n"
      "  --port N               port, 0 picks a free one (8080)\n"
      "  --bind ADDR            IPv4 address (127.0.0.1)\n"
      "  --threads N            event loops / workers / acceptor threads (1)\n"
      "  --pin LIST             pin threads to CPUs, e.g. 1 or 2-5 (not pinned)\n"
      "  --max-conns N          refuse connections beyond N (%zu)\n"
      "  --idle-timeout-ms N    keep-alive idle time (60000)\n"
      "  --keepalive-requests N responses per connection, the last says close (0: no limit)\n"
      "  --header-timeout-ms N  time for a request head to arrive (10000)\n"
      "  --max-body-bytes N     larger bodies get 413 (1048576)\n"
      "  --sendfile on|off      how /file is sent (on)\n",
      static_cast<int>(program.size()), program.data(), default_max_conns);
  for (const ExtraFlag& f : extra) {
    std::printf("  %-22.*s %.*s (%ld)\n", static_cast<int>(f.name.size()), f.name.data(),
                static_cast<int>(f.help.size()), f.help.data(), f.default_value);
  }
}

}  // namespace

Options parse_options(int argc, char** argv, std::string_view model, std::size_t default_max_conns,
                      std::span<const ExtraFlag> extra_flags) {
  const std::string program = "server_" + std::string(model);
  const Parser p{program};
  Options o;
  o.max_conns = default_max_conns;
  for (const ExtraFlag& f : extra_flags) o.extra[std::string(f.name)] = f.default_value;

  for (int i = 1; i < argc; ++i) {
    std::string_view flag = argv[i];
    std::string_view value;
    bool has_value = false;
    if (const std::size_t eq = flag.find('='); eq != std::string_view::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
      has_value = true;
    }
    if (flag == "--help" || flag == "-h") {
      print_usage(program, default_max_conns, extra_flags);
      std::exit(0);
    }
    if (flag.substr(0, 2) != "--") p.fail(flag, "unexpected argument");
    auto take_value = [&]() -> std::string_view {
      if (has_value) return value;
      if (i + 1 >= argc) p.fail(flag, "missing value");
      return argv[++i];
    };
    if (flag == "--port") {
      o.port = static_cast<std::uint16_t>(p.number(flag, take_value(), 0, 65535));
    } else if (flag == "--bind") {
      o.bind = std::string(take_value());
    } else if (flag == "--threads") {
      o.threads = static_cast<int>(p.number(flag, take_value(), 1, 1024));
    } else if (flag == "--pin") {
      const std::string_view list = take_value();
      try {
        o.pin = parse_cpu_list(list);
      } catch (const std::invalid_argument& e) {
        p.fail(flag, e.what());
      }
    } else if (flag == "--keepalive-requests") {
      o.limits.keepalive_requests =
          static_cast<std::uint64_t>(p.number(flag, take_value(), 0, 1'000'000'000));
    } else if (flag == "--max-conns") {
      o.max_conns = static_cast<std::size_t>(p.number(flag, take_value(), 1, 10'000'000));
    } else if (flag == "--idle-timeout-ms") {
      o.limits.idle_timeout = Millis(p.number(flag, take_value(), 1, 86'400'000));
    } else if (flag == "--header-timeout-ms") {
      o.limits.header_timeout = Millis(p.number(flag, take_value(), 1, 86'400'000));
    } else if (flag == "--max-body-bytes") {
      o.limits.max_body_bytes =
          static_cast<std::uint64_t>(p.number(flag, take_value(), 0, 1L << 40));
    } else if (flag == "--sendfile") {
      const std::string_view v = take_value();
      if (v != "on" && v != "off") p.fail(flag, "expected on or off, got '" + std::string(v) + "'");
      o.sendfile = v == "on";
    } else {
      const ExtraFlag* extra = nullptr;
      for (const ExtraFlag& f : extra_flags) {
        if (f.name == flag) extra = &f;
      }
      if (extra == nullptr) p.fail(flag, "unknown flag for " + program);
      o.extra[std::string(flag)] = p.number(flag, take_value(), extra->min, extra->max);
    }
  }
  return o;
}

}  // namespace iolab
