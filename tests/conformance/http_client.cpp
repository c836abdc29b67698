#include "http_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

namespace iolab::test {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<Ms>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

}  // namespace

// ---- Response ----------------------------------------------------------------------------

std::optional<std::string> Response::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) return v;
  }
  return std::nullopt;
}

std::size_t Response::header_count(std::string_view name) const {
  return static_cast<std::size_t>(std::count_if(
      headers.begin(), headers.end(), [&](const auto& kv) { return iequals(kv.first, name); }));
}

bool Response::connection_has(std::string_view token) const {
  for (const auto& [k, v] : headers) {
    if (!iequals(k, "Connection")) continue;
    std::string_view rest = v;
    while (!rest.empty()) {
      auto comma = rest.find(',');
      if (iequals(trim(rest.substr(0, comma)), token)) return true;
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return false;
}

const char* to_string(CloseKind kind) {
  switch (kind) {
    case CloseKind::Closed: return "closed (EOF)";
    case CloseKind::Reset: return "reset (ECONNRESET)";
    case CloseKind::Timeout: return "still open (timeout)";
    case CloseKind::Error: return "error";
  }
  return "?";
}

// ---- Conn --------------------------------------------------------------------------------

Conn::Conn(std::uint16_t port, Ms io_timeout) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error_ = errno_text("socket");
    return;
  }
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(io_timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((io_timeout.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);  // also bounds connect()
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    error_ = errno_text("connect to 127.0.0.1");
    ::close(fd);
    return;
  }
  fd_ = fd;
}

Conn::~Conn() { close(); }

Conn::Conn(Conn&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), buf_(std::move(other.buf_)), error_(std::move(other.error_)) {}

Conn& Conn::operator=(Conn&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    buf_ = std::move(other.buf_);
    error_ = std::move(other.error_);
  }
  return *this;
}

void Conn::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void Conn::reset() {
  if (fd_ < 0) return;
  linger lg{1, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close();
}

void Conn::set_nodelay() {
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void Conn::shutdown_write() { ::shutdown(fd_, SHUT_WR); }

bool Conn::send(std::string_view data, Ms timeout) {
  if (fd_ < 0) {
    error_ = "send on a closed connection";
    return false;
  }
  const auto deadline = Clock::now() + timeout;
  while (!data.empty()) {
    pollfd p{fd_, POLLOUT, 0};
    int r = ::poll(&p, 1, remaining_ms(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) {
      error_ = "send timed out with " + std::to_string(data.size()) + " bytes left";
      return false;
    }
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      error_ = errno_text("send");
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

bool Conn::send_byte_by_byte(std::string_view data, Ms pause) {
  set_nodelay();
  for (char c : data) {
    if (!send(std::string_view(&c, 1))) return false;
    if (pause.count() > 0) std::this_thread::sleep_for(pause);
  }
  return true;
}

Conn::Fill Conn::fill(Clock::time_point deadline) {
  if (fd_ < 0) {
    error_ = "read on a closed connection";
    return Fill::Error;
  }
  for (;;) {
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, remaining_ms(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      error_ = errno_text("poll");
      return Fill::Error;
    }
    if (r == 0) return Fill::Timeout;
    char chunk[65536];
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, MSG_DONTWAIT);
    if (n > 0) {
      buf_.append(chunk, static_cast<std::size_t>(n));
      return Fill::Data;
    }
    if (n == 0) return Fill::Eof;
    if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
    if (errno == ECONNRESET) return Fill::Reset;
    error_ = errno_text("recv");
    return Fill::Error;
  }
}

std::optional<Response> Conn::read_response(bool head_request, Ms timeout) {
  const auto deadline = Clock::now() + timeout;
  auto fail = [&](Fill why, const char* while_doing) -> std::optional<Response> {
    std::string what = why == Fill::Eof     ? "connection closed by server"
                       : why == Fill::Reset ? "connection reset by server"
                       : why == Fill::Timeout ? "timed out after " + std::to_string(timeout.count()) + " ms"
                                              : error_;
    error_ = what + " while reading " + while_doing + " (" + std::to_string(buf_.size()) +
             " bytes buffered";
    if (!buf_.empty()) error_ += ": \"" + buf_.substr(0, 200) + "\"";
    error_ += ")";
    return std::nullopt;
  };

  std::size_t head_end;
  while ((head_end = buf_.find("\r\n\r\n")) == std::string::npos) {
    Fill f = fill(deadline);
    if (f != Fill::Data) return fail(f, "a response head");
  }
  std::string_view head(buf_.data(), head_end + 2);  // keeps the last header's CRLF

  Response resp;
  auto eol = head.find("\r\n");
  std::string_view status_line = head.substr(0, eol);
  head.remove_prefix(eol + 2);
  auto sp1 = status_line.find(' ');
  auto sp2 = sp1 == std::string_view::npos ? sp1 : status_line.find(' ', sp1 + 1);
  if (sp1 == std::string_view::npos || sp2 == std::string_view::npos || sp2 - sp1 != 4) {
    error_ = "malformed status line: \"" + std::string(status_line) + "\"";
    return std::nullopt;
  }
  resp.version = std::string(status_line.substr(0, sp1));
  std::string_view code = status_line.substr(sp1 + 1, 3);
  if (!std::all_of(code.begin(), code.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    error_ = "malformed status code: \"" + std::string(status_line) + "\"";
    return std::nullopt;
  }
  resp.status = std::atoi(std::string(code).c_str());
  resp.reason = std::string(status_line.substr(sp2 + 1));

  while (!head.empty()) {
    eol = head.find("\r\n");
    std::string_view line = head.substr(0, eol);
    head.remove_prefix(eol + 2);
    auto colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos ||
        line.substr(0, colon).find_first_of(" \t") != std::string_view::npos) {
      error_ = "malformed response header line: \"" + std::string(line) + "\"";
      return std::nullopt;
    }
    resp.headers.emplace_back(std::string(line.substr(0, colon)),
                              std::string(trim(line.substr(colon + 1))));
  }
  buf_.erase(0, head_end + 4);

  bool has_body = !head_request && resp.status >= 200 && resp.status != 204 && resp.status != 304;
  if (!has_body) return resp;

  auto cl = resp.header("Content-Length");
  if (!cl) {
    error_ = "response " + std::to_string(resp.status) + " has no Content-Length";
    return std::nullopt;
  }
  if (cl->empty() || cl->size() > 12 ||
      !std::all_of(cl->begin(), cl->end(), [](char c) { return c >= '0' && c <= '9'; })) {
    error_ = "bad Content-Length \"" + *cl + "\"";
    return std::nullopt;
  }
  const std::size_t length = std::strtoull(cl->c_str(), nullptr, 10);
  while (buf_.size() < length) {
    Fill f = fill(deadline);
    if (f != Fill::Data) return fail(f, "a response body");
  }
  resp.body = buf_.substr(0, length);
  buf_.erase(0, length);
  return resp;
}

std::optional<Response> Conn::roundtrip(std::string_view req, bool head_request, Ms timeout) {
  if (!send(req, timeout)) return std::nullopt;
  return read_response(head_request, timeout);
}

std::optional<std::string> Conn::read_exact(std::size_t n, Ms timeout) {
  const auto deadline = Clock::now() + timeout;
  while (buf_.size() < n) {
    Fill f = fill(deadline);
    if (f != Fill::Data) {
      if (f != Fill::Error) error_ = "read_exact: " + std::to_string(buf_.size()) + " of " +
                                     std::to_string(n) + " bytes, then " +
                                     (f == Fill::Eof ? "EOF" : f == Fill::Reset ? "reset" : "timeout");
      return std::nullopt;
    }
  }
  std::string out = buf_.substr(0, n);
  buf_.erase(0, n);
  return out;
}

CloseResult Conn::wait_closed(Ms timeout) {
  const auto start = Clock::now();
  const auto deadline = start + timeout;
  CloseResult result;
  for (;;) {
    Fill f = fill(deadline);
    if (f == Fill::Data) continue;
    result.kind = f == Fill::Eof       ? CloseKind::Closed
                  : f == Fill::Reset   ? CloseKind::Reset
                  : f == Fill::Timeout ? CloseKind::Timeout
                                       : CloseKind::Error;
    if (f == Fill::Error) result.error = error_;
    break;
  }
  result.elapsed = std::chrono::duration_cast<Ms>(Clock::now() - start);
  result.extra = std::move(buf_);
  buf_.clear();
  return result;
}

bool Conn::looks_open() {
  if (fd_ < 0) return false;
  char c;
  ssize_t n = ::recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return false;
  if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return false;
  return true;
}

bool Conn::readable_now() {
  if (!buf_.empty()) return true;
  pollfd p{fd_, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

// ---- requests and bodies -----------------------------------------------------------------

std::string request(std::string_view method, std::string_view target,
                    std::string_view extra_headers, std::string_view body) {
  std::string r;
  r.append(method).append(" ").append(target).append(" HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  r.append(extra_headers).append("\r\n").append(body);
  return r;
}

std::string get(std::string_view target, std::string_view extra_headers) {
  return request("GET", target, extra_headers);
}

std::string pattern_bytes(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + i % 26);
  return s;
}

std::string describe_mismatch(std::string_view got, std::string_view want) {
  if (got == want) return "identical";
  std::size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  std::ostringstream out;
  out << "got " << got.size() << " bytes, want " << want.size() << "; first difference at byte "
      << i;
  auto show = [](std::string_view s, std::size_t at) {
    return "\"" + std::string(s.substr(at, 16)) + "\"";
  };
  out << ": got " << show(got, i) << ", want " << show(want, i);
  return out.str();
}

bool is_imf_fixdate(std::string_view value) {
  static const std::regex re(
      "(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-3][0-9] "
      "(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
      "[0-2][0-9]:[0-5][0-9]:[0-6][0-9] GMT");
  return std::regex_match(value.begin(), value.end(), re);
}

// ---- JSON --------------------------------------------------------------------------------

const Json* Json::find(std::string_view key) const {
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (keys[i] == key) return &items[i];
  }
  return nullptr;
}

namespace {

class JsonParser {
 public:
  explicit JsonParser(std::string_view text) : s_(text) {}

  std::optional<Json> parse_document(std::string* error) {
    Json v;
    bool ok = value(v, 0);
    skip_ws();
    if (ok && pos_ != s_.size()) ok = fail("trailing characters");
    if (!ok) {
      if (error) *error = error_ + " at offset " + std::to_string(pos_);
      return std::nullopt;
    }
    return v;
  }

 private:
  bool fail(const char* why) {
    if (error_.empty()) error_ = why;
    return false;
  }
  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' ||
                                s_[pos_] == '\r'))
      ++pos_;
  }
  bool literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return fail("bad literal");
    pos_ += word.size();
    return true;
  }
  bool string(std::string& out) {
    ++pos_;  // opening quote
    while (pos_ < s_.size()) {
      char c = s_[pos_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return fail("control character in string");
      if (c == '\\') {
        if (pos_ >= s_.size()) break;
        char e = s_[pos_++];
        switch (e) {
          case '"': case '\\': case '/': out += e; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'n': out += '\n'; break;
          case 'r': out += '\r'; break;
          case 't': out += '\t'; break;
          case 'u':
            if (pos_ + 4 > s_.size()) return fail("short \\u escape");
            out += '?';  // the suite never compares non-ASCII text
            pos_ += 4;
            break;
          default: return fail("bad escape");
        }
      } else {
        out += c;
      }
    }
    return fail("unterminated string");
  }
  bool number(Json& v) {
    std::size_t start = pos_;
    if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
    std::size_t digits = pos_;
    while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) ++pos_;
    if (pos_ == digits) return fail("bad number");
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) ++pos_;
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) ++pos_;
    }
    v.type = Json::Type::Number;
    v.number = std::strtod(std::string(s_.substr(start, pos_ - start)).c_str(), nullptr);
    return true;
  }
  bool value(Json& v, int depth) {
    if (depth > 32) return fail("nested too deep");
    skip_ws();
    if (pos_ >= s_.size()) return fail("unexpected end");
    char c = s_[pos_];
    if (c == '{') {
      v.type = Json::Type::Object;
      ++pos_;
      skip_ws();
      if (pos_ < s_.size() && s_[pos_] == '}') return ++pos_, true;
      for (;;) {
        skip_ws();
        if (pos_ >= s_.size() || s_[pos_] != '"') return fail("expected a key");
        std::string key;
        if (!string(key)) return false;
        skip_ws();
        if (pos_ >= s_.size() || s_[pos_] != ':') return fail("expected ':'");
        ++pos_;
        Json item;
        if (!value(item, depth + 1)) return false;
        v.keys.push_back(std::move(key));
        v.items.push_back(std::move(item));
        skip_ws();
        if (pos_ < s_.size() && s_[pos_] == ',') { ++pos_; continue; }
        if (pos_ < s_.size() && s_[pos_] == '}') return ++pos_, true;
        return fail("expected ',' or '}'");
      }
    }
    if (c == '[') {
      v.type = Json::Type::Array;
      ++pos_;
      skip_ws();
      if (pos_ < s_.size() && s_[pos_] == ']') return ++pos_, true;
      for (;;) {
        Json item;
        if (!value(item, depth + 1)) return false;
        v.items.push_back(std::move(item));
        skip_ws();
        if (pos_ < s_.size() && s_[pos_] == ',') { ++pos_; continue; }
        if (pos_ < s_.size() && s_[pos_] == ']') return ++pos_, true;
        return fail("expected ',' or ']'");
      }
    }
    if (c == '"') {
      v.type = Json::Type::String;
      return string(v.string);
    }
    if (c == 't') { v.type = Json::Type::Bool; v.boolean = true; return literal("true"); }
    if (c == 'f') { v.type = Json::Type::Bool; return literal("false"); }
    if (c == 'n') return literal("null");
    return number(v);
  }

  std::string_view s_;
  std::size_t pos_ = 0;
  std::string error_;
};

}  // namespace

std::optional<Json> parse_json(std::string_view text, std::string* error) {
  return JsonParser(text).parse_document(error);
}

// ---- /proc -------------------------------------------------------------------------------

std::size_t count_open_fds(int pid) {
  std::error_code ec;
  std::size_t n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    ++n;
  return n;
}

std::optional<double> cpu_seconds(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto paren = text.rfind(')');
  if (paren == std::string::npos) return std::nullopt;
  std::istringstream fields(text.substr(paren + 2));
  // After "pid (comm) " come: state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt
  // majflt cmajflt utime(14) stime(15).
  std::string skip;
  for (int i = 3; i <= 13; ++i) fields >> skip;
  unsigned long long utime = 0, stime = 0;
  if (!(fields >> utime >> stime)) return std::nullopt;
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

}  // namespace iolab::test
