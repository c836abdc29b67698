// The command line every server shares (flags and --help text: options.cpp). A flag a model
// adds (--stack-kb) is declared as an ExtraFlag; anything unknown or malformed is rejected with
// a message that names the flag, and the process exits with status 2.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "connection.hpp"

namespace iolab {

struct ExtraFlag {
  std::string_view name;  // "--stack-kb"
  long default_value;
  long min;
  long max;
  std::string_view help;
};

struct Options {
  std::string bind = "127.0.0.1";
  std::uint16_t port = 8080;
  int threads = 1;
  std::vector<int> pin;  // empty: not pinned
  std::size_t max_conns = 0;
  ConnectionLimits limits;
  bool sendfile = true;
  std::map<std::string, long, std::less<>> extra;

  // The value of an ExtraFlag the model declared. A name it never declared is a programming
  // error: std::logic_error naming it.
  long extra_value(std::string_view name) const;
};

// Exits the process on --help (status 0) and on errors (status 2).
Options parse_options(int argc, char** argv, std::string_view model, std::size_t default_max_conns,
                      std::span<const ExtraFlag> extra_flags = {});

}  // namespace iolab
