// A small, strict HTTP/1.1 test client for the conformance suite.
//
// Every call is bounded in time: sockets carry SO_RCVTIMEO/SO_SNDTIMEO and every read waits
// with poll() against a deadline, so a server that hangs makes a test fail fast, never hang.
// The client talks to 127.0.0.1 only. It parses responses strictly (status line, headers,
// Content-Length body) because checking the server's framing is the point of the suite.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace iolab::test {

using Clock = std::chrono::steady_clock;
using Ms = std::chrono::milliseconds;

inline constexpr Ms kIoTimeout{3000};  // per call; also the sockets' SO_RCVTIMEO/SO_SNDTIMEO

// ---- responses ---------------------------------------------------------------------------

struct Response {
  std::string version;  // "HTTP/1.1"
  int status = 0;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;  // in order, values trimmed
  std::string body;

  // First value of a header (name compared case-insensitively).
  std::optional<std::string> header(std::string_view name) const;
  std::size_t header_count(std::string_view name) const;
  // True if the Connection header lists this token (case-insensitive), e.g. "close".
  bool connection_has(std::string_view token) const;
};

// ---- connection --------------------------------------------------------------------------

enum class CloseKind { Closed, Reset, Timeout, Error };
const char* to_string(CloseKind kind);

struct CloseResult {
  CloseKind kind = CloseKind::Error;
  std::string extra;  // bytes received before the close
  Ms elapsed{0};      // from the call to the close
  std::string error;  // for Error
};

// One client connection with its own read buffer (pipelined responses may arrive together).
class Conn {
 public:
  explicit Conn(std::uint16_t port, Ms io_timeout = kIoTimeout);
  ~Conn();
  Conn(Conn&& other) noexcept;
  Conn& operator=(Conn&& other) noexcept;
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  bool ok() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  const std::string& error() const { return error_; }

  bool send(std::string_view data, Ms timeout = kIoTimeout);
  // One send() call per byte (TCP_NODELAY set), with a small pause between bytes.
  bool send_byte_by_byte(std::string_view data, Ms pause = Ms{1});
  void set_nodelay();
  void shutdown_write();
  // SO_LINGER {1, 0} then close: the kernel sends RST instead of FIN.
  void reset();
  void close();

  // Reads one complete response. `head_request` means the response has no body whatever its
  // Content-Length says. 1xx responses are returned as they are (the caller reads the next).
  std::optional<Response> read_response(bool head_request = false, Ms timeout = kIoTimeout);
  // send + read_response.
  std::optional<Response> roundtrip(std::string_view request, bool head_request = false,
                                    Ms timeout = kIoTimeout);
  // Reads exactly n bytes (raw, no parsing).
  std::optional<std::string> read_exact(std::size_t n, Ms timeout = kIoTimeout);
  // Reads (and keeps) whatever arrives until the peer closes or resets, or the timeout.
  CloseResult wait_closed(Ms timeout = kIoTimeout);
  // True if nothing says the peer has closed: no EOF or reset is pending right now.
  bool looks_open();
  // True if at least one byte (or EOF) is ready to be read right now.
  bool readable_now();
  // Bytes received but not yet consumed by a read_* call.
  const std::string& buffered() const { return buf_; }

 private:
  enum class Fill { Data, Eof, Reset, Timeout, Error };
  Fill fill(Clock::time_point deadline);

  int fd_ = -1;
  std::string buf_;
  std::string error_;
};

// ---- requests and expected bodies --------------------------------------------------------

// "GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n<extra>\r\n". `extra_headers` lines end in \r\n.
std::string get(std::string_view target, std::string_view extra_headers = {});
std::string request(std::string_view method, std::string_view target,
                    std::string_view extra_headers = {}, std::string_view body = {});
// The body of /bytes?n=N and /file?n=N: byte i is 'a' + i % 26.
std::string pattern_bytes(std::size_t n);
// Describes where two strings first differ (for readable failures on big bodies).
std::string describe_mismatch(std::string_view got, std::string_view want);
// "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110 IMF-fixdate).
bool is_imf_fixdate(std::string_view value);

// ---- a minimal JSON reader (for /stats and the final stats line) -------------------------

struct Json {
  enum class Type { Null, Bool, Number, String, Array, Object };
  Type type = Type::Null;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<Json> items;         // array elements, or object values
  std::vector<std::string> keys;   // object keys, parallel to items

  const Json* find(std::string_view key) const;
  bool is_number() const { return type == Type::Number; }
  bool is_object() const { return type == Type::Object; }
};

// Parses one JSON value filling the whole text (surrounding whitespace allowed).
std::optional<Json> parse_json(std::string_view text, std::string* error = nullptr);

// ---- the server process, seen from outside -----------------------------------------------

std::size_t count_open_fds(int pid);              // entries in /proc/PID/fd
std::optional<double> cpu_seconds(int pid);       // utime + stime from /proc/PID/stat

}  // namespace iolab::test
