#include "response_parser.hpp"

#include <algorithm>
#include <cstring>

namespace iolab::loadgen {

namespace {

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c; }

bool equals_lower(std::string_view text, std::string_view lowercase) {
  if (text.size() != lowercase.size()) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (lower(text[i]) != lowercase[i]) return false;
  }
  return true;
}

// True when the comma-separated header value holds `token` (lowercase), case-insensitively.
bool has_token(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    const std::size_t comma = value.find(',');
    std::string_view item = value.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (equals_lower(item, token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// A Content-Length value: 1 to 18 digits, nothing else.
bool parse_length(std::string_view text, std::uint64_t& out) {
  if (text.empty() || text.size() > 18) return false;
  std::uint64_t v = 0;
  for (char c : text) {
    if (!is_digit(c)) return false;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  out = v;
  return true;
}

}  // namespace

ResponseParser::Outcome ResponseParser::feed(std::string_view bytes, const Expectation& expect) {
  if (in_body_) return take_body(bytes, 0, expect);
  return parse_head(bytes, expect);
}

ResponseParser::Outcome ResponseParser::parse_head(std::string_view bytes,
                                                   const Expectation& expect) {
  // One pass over the head, line by line: most responses arrive whole, so the headers are
  // interpreted while the end of the head is searched for; an incomplete head is parsed again
  // from the start when more bytes arrive (rare, and heads are small).
  const Outcome error{Result::kError, 0, Problem::kParse};
  const Outcome need_more{};
  const char* const begin = bytes.data();
  const char* const end = begin + bytes.size();
  const auto line_end = [&](const char* from) {
    return static_cast<const char*>(std::memchr(from, '\n', static_cast<std::size_t>(end - from)));
  };

  // Status line: HTTP/1.x SP 3DIGIT (SP reason)? CRLF
  const char* nl = line_end(begin);
  if (nl == nullptr) {
    if (bytes.size() >= kMaxHeadBytes) return error;
    // Reject a bad status line as soon as its first bytes prove it.
    const std::string_view prefix = "HTTP/1.";
    if (std::memcmp(begin, prefix.data(), std::min(bytes.size(), prefix.size())) != 0) return error;
    return need_more;
  }
  const std::string_view status_line(begin, static_cast<std::size_t>(nl - begin));
  if (status_line.size() < 13 || status_line.back() != '\r' ||
      status_line.substr(0, 7) != "HTTP/1." || !is_digit(status_line[7]) || status_line[8] != ' ' ||
      !is_digit(status_line[9]) || !is_digit(status_line[10]) || !is_digit(status_line[11]) ||
      (status_line[12] != ' ' && status_line[12] != '\r')) {
    return error;
  }
  const bool http10 = status_line[7] == '0';
  const int status =
      (status_line[9] - '0') * 100 + (status_line[10] - '0') * 10 + (status_line[11] - '0');

  bool have_length = false;
  std::uint64_t length = 0;
  bool close = http10;
  std::size_t head_bytes = 0;
  for (const char* p = nl + 1;; p = nl + 1) {
    nl = line_end(p);
    if (nl == nullptr) return bytes.size() >= kMaxHeadBytes ? error : need_more;
    if (nl == p || nl[-1] != '\r') return error;  // lines end with CRLF
    if (nl == p + 1) {                            // the empty line: end of the head
      head_bytes = static_cast<std::size_t>(nl + 1 - begin);
      break;
    }
    const std::string_view line(p, static_cast<std::size_t>(nl - 1 - p));
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return error;
    // Only three headers matter for framing; the first letter rules out the rest cheaply.
    const char first = lower(line[0]);
    if (first != 'c' && first != 't') continue;
    const std::string_view name = line.substr(0, colon);
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (first == 'c') {
      if (equals_lower(name, "content-length")) {
        std::uint64_t v = 0;
        if (!parse_length(value, v) || (have_length && v != length)) return error;
        have_length = true;
        length = v;
      } else if (equals_lower(name, "connection")) {
        if (equals_lower(value, "keep-alive"))
          close = false;
        else if (has_token(value, "close"))
          close = true;
        else if (has_token(value, "keep-alive"))
          close = false;
      }
    } else if (equals_lower(name, "transfer-encoding")) {
      return error;
    }
  }
  if (head_bytes > kMaxHeadBytes) return error;

  if (status >= 100 && status < 200) {  // interim response (100 Continue): the real one follows
    return {Result::kProgress, head_bytes};
  }
  // A HEAD response announces the length of the body a GET would get, and sends none.
  const bool bodiless = expect.head_request || status == 204 || status == 304;
  if (!bodiless && !have_length) return error;

  Problem problem = Problem::kNone;
  if (status != expect.status) {
    problem = Problem::kStatus;
  } else if ((have_length || !bodiless) &&
             ((expect.length >= 0 && length != static_cast<std::uint64_t>(expect.length)) ||
              (expect.check_body && length != expect.body.size()))) {
    problem = Problem::kBody;
  }
  if (bodiless) length = 0;
  status_ = status;
  close_ = close;
  problem_ = problem;
  body_remaining_ = length;
  body_offset_ = 0;
  in_body_ = true;
  return take_body(bytes.substr(head_bytes), head_bytes, expect);
}

ResponseParser::Outcome ResponseParser::take_body(std::string_view bytes,
                                                  std::size_t already_consumed,
                                                  const Expectation& expect) {
  const std::size_t n =
      static_cast<std::size_t>(std::min<std::uint64_t>(body_remaining_, bytes.size()));
  if (expect.check_body && problem_ == Problem::kNone &&
      bytes.substr(0, n) != expect.body.substr(body_offset_, n)) {
    problem_ = Problem::kBody;
  }
  body_remaining_ -= n;
  body_offset_ += n;
  if (body_remaining_ > 0) return {Result::kProgress, already_consumed + n};
  in_body_ = false;
  return {Result::kComplete, already_consumed + n, problem_, status_, close_};
}

}  // namespace iolab::loadgen
