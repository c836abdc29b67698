// Unit tests of the request-head parser and the chunked-body decoder.
//
// The parser cases are one table of named cases, in the style of picohttpparser's test.c. Each
// case is parsed four ways, and every way must give the same answer:
//   Whole        the whole input in one call;
//   ByteByByte   one byte more per call, the `scanned` hint threaded through, every prefix placed
//                against a guard page; a prefix gives kIncomplete until the head is complete or
//                the error is provable (`error_from`: errors are reported as soon as the bytes
//                prove them, never before);
//   GuardPage    the input's last byte is the last byte before a PROT_NONE page, so a read past
//                the end crashes the test instead of passing by luck;
//   ReusedHead   into a RequestHead left dirty by another request (the connection reuses one).
// The chunked decoder has a table of its own, fed whole, split at every byte and byte by byte,
// always followed by a pipelined request it must not touch.
#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http_parser.hpp"
#include "stats.hpp"

namespace iolab::http {

// Readable names in failure messages (found by argument-dependent lookup).
void PrintTo(ParseStatus s, std::ostream* os) {
  *os << (s == ParseStatus::kComplete ? "kComplete"
          : s == ParseStatus::kIncomplete ? "kIncomplete" : "kError");
}
void PrintTo(BodyKind k, std::ostream* os) {
  *os << (k == BodyKind::kNone ? "kNone" : k == BodyKind::kChunked ? "kChunked" : "kContentLength");
}

namespace {

// A buffer whose last usable byte is followed by an inaccessible page.
class GuardedBuffer {
 public:
  explicit GuardedBuffer(std::size_t capacity) {
    const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    usable_ = (capacity + page) / page * page;
    void* map = mmap(nullptr, usable_ + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                     -1, 0);
    if (map == MAP_FAILED) throw std::runtime_error("mmap guarded buffer");
    base_ = static_cast<char*>(map);
    if (mprotect(base_ + usable_, page, PROT_NONE) != 0) throw std::runtime_error("mprotect");
    total_ = usable_ + page;
  }
  ~GuardedBuffer() { munmap(base_, total_); }
  GuardedBuffer(const GuardedBuffer&) = delete;
  GuardedBuffer& operator=(const GuardedBuffer&) = delete;

  // Copies `bytes` so that the last of them is the last byte before the guard page.
  std::string_view place(std::string_view bytes) {
    char* start = base_ + usable_ - bytes.size();
    std::memmove(start, bytes.data(), bytes.size());
    return {start, bytes.size()};
  }

 private:
  char* base_ = nullptr;
  std::size_t usable_ = 0;
  std::size_t total_ = 0;
};

constexpr std::size_t kAtEnd = std::numeric_limits<std::size_t>::max();
constexpr std::size_t kAtFirstLineEnd = kAtEnd - 1;
constexpr std::size_t kWholeInput = kAtEnd;

struct ParserCase {
  std::string name;
  std::string input;
  ParseStatus status = ParseStatus::kComplete;
  int error_status = 0;  // kError: the status to answer
  // kError: the smallest prefix that already gives the error (kAtEnd: the whole input;
  // kAtFirstLineEnd: up to the request line's LF).
  std::size_t error_from = kAtEnd;
  // kComplete: the rest of the fields are checked.
  std::size_t head_bytes = kWholeInput;
  std::string method = "GET";
  std::string target = "/";
  std::string path = "/";
  std::string query = "";
  int version_minor = 1;
  std::size_t header_count = 1;
  BodyKind body_kind = BodyKind::kNone;
  std::uint64_t content_length = 0;
  bool keep_alive = true;
  bool connection_keep_alive = false;
  bool expect_continue = false;
  std::vector<std::pair<std::string, std::string>> headers = {};  // the first ones, in order
};

void PrintTo(const ParserCase& c, std::ostream* os) { *os << c.name; }

std::size_t head_bytes_of(const ParserCase& c) {
  return c.head_bytes == kWholeInput ? c.input.size() : c.head_bytes;
}

std::size_t error_from_of(const ParserCase& c) {
  if (c.error_from == kAtEnd) return c.input.size();
  if (c.error_from == kAtFirstLineEnd) return c.input.find('\n') + 1;
  return c.error_from;
}

// "GET /aaa...a HTTP/1.1" of exactly `bytes` bytes.
std::string request_line_of(std::size_t bytes) {
  const std::string_view fixed = "GET / HTTP/1.1";
  return "GET /" + std::string(bytes - fixed.size(), 'a') + " HTTP/1.1";
}

// "Host: a\r\nX: bbb...b\r\n": header lines of exactly `bytes` bytes, CRLFs included.
std::string header_lines_of(std::size_t bytes) {
  const std::string_view host = "Host: a\r\n";
  return std::string(host) + "X: " + std::string(bytes - host.size() - 5, 'b') + "\r\n";
}

std::string numbered_headers(std::size_t count) {
  std::string out;
  for (std::size_t i = 0; i < count; ++i) out += "X-Header-" + std::to_string(i) + ": v\r\n";
  return out;
}

// The first bytes of a TLS handshake sent to a plain-HTTP port (embedded NULs included).
constexpr char kTlsClientHelloBytes[] =
    "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x8a\x4f\x12\x00\x00\x00\x20";
constexpr std::string_view kTlsClientHello(kTlsClientHelloBytes, sizeof kTlsClientHelloBytes - 1);

std::vector<ParserCase> parser_cases() {
  using S = ParseStatus;
  using B = BodyKind;
  const std::string host = "Host: a\r\n";
  const std::string get11 = "GET / HTTP/1.1\r\n";
  std::vector<ParserCase> cases = {
      // Complete requests.
      {.name = "SimpleGet", .input = "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
       .headers = {{"Host", "a"}}},
      {.name = "HeadRequest", .input = "HEAD /ping HTTP/1.1\r\nHost: example.com\r\n\r\n",
       .method = "HEAD", .target = "/ping", .path = "/ping", .headers = {{"Host", "example.com"}}},
      {.name = "QueryString", .input = "GET /bytes?n=42&x=y HTTP/1.1\r\nHost: a\r\n\r\n",
       .target = "/bytes?n=42&x=y", .path = "/bytes", .query = "n=42&x=y"},
      {.name = "EmptyQuery", .input = "GET /a? HTTP/1.1\r\nHost: a\r\n\r\n", .target = "/a?",
       .path = "/a", .query = ""},
      {.name = "QuestionMarkInQuery", .input = "GET /a?b?c HTTP/1.1\r\nHost: a\r\n\r\n",
       .target = "/a?b?c", .path = "/a", .query = "b?c"},
      {.name = "AbsoluteFormTarget",
       .input = "GET http://example.com/ping?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n",
       .target = "http://example.com/ping?x=1", .path = "/ping", .query = "x=1"},
      {.name = "AbsoluteFormWithoutPath",
       .input = "GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n",
       .target = "http://example.com", .path = "/"},
      {.name = "AbsoluteFormHttpsUpperCase",
       .input = "GET HTTPS://Example.com:8443/x/y HTTP/1.1\r\nHost: Example.com\r\n\r\n",
       .target = "HTTPS://Example.com:8443/x/y", .path = "/x/y"},
      {.name = "AsteriskTarget", .input = "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
       .method = "OPTIONS", .target = "*", .path = "*"},
      {.name = "CustomMethod", .input = "PURGE /x HTTP/1.1\r\nHost: a\r\n\r\n", .method = "PURGE",
       .target = "/x", .path = "/x"},
      {.name = "LowercaseMethodIsAToken", .input = "get / HTTP/1.1\r\nHost: a\r\n\r\n",
       .method = "get"},
      {.name = "LeadingEmptyLines", .input = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"},
      {.name = "LeadingEmptyLinesAtLimit",
       .input = std::string(http::kMaxLeadingEmptyBytes, '\n') + "GET / HTTP/1.1\r\nHost: a\r\n\r\n"},
      {.name = "LeadingBareLfLines", .input = "\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"},
      {.name = "BareLfLineEnds", .input = "GET / HTTP/1.1\nHost: a\nX: y\n\n", .header_count = 2,
       .headers = {{"Host", "a"}, {"X", "y"}}},
      {.name = "MixedLineEnds", .input = "GET / HTTP/1.1\r\nHost: a\nX: y\r\n\n",
       .header_count = 2, .headers = {{"Host", "a"}, {"X", "y"}}},
      {.name = "Http10DefaultClose", .input = "GET / HTTP/1.0\r\n\r\n", .version_minor = 0,
       .header_count = 0, .keep_alive = false},
      {.name = "Http10KeepAlive", .input = "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
       .version_minor = 0, .keep_alive = true, .connection_keep_alive = true},
      {.name = "Http10KeepAliveMixedCase",
       .input = "GET / HTTP/1.0\r\nconnection: Keep-Alive\r\n\r\n", .version_minor = 0,
       .keep_alive = true, .connection_keep_alive = true},
      {.name = "Http10KeepAliveAndClose",
       .input = "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", .version_minor = 0,
       .keep_alive = false, .connection_keep_alive = true},
      {.name = "Http11ConnectionClose",
       .input = "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", .header_count = 2,
       .keep_alive = false},
      {.name = "Http11ConnectionCloseUpperCase",
       .input = "GET / HTTP/1.1\r\nHost: a\r\nCONNECTION: CLOSE\r\n\r\n", .header_count = 2,
       .keep_alive = false},
      {.name = "ConnectionTokensWithClose",
       .input = "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade ,\tclose , TE\r\n\r\n",
       .header_count = 2, .keep_alive = false},
      {.name = "ConnectionTokensWithoutClose",
       .input = "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n\r\n",
       .header_count = 2, .keep_alive = true, .connection_keep_alive = true},
      {.name = "ConnectionCloseAsSubstringIsNotClose",
       .input = "GET / HTTP/1.1\r\nHost: a\r\nConnection: closed, xclose\r\n\r\n",
       .header_count = 2, .keep_alive = true},
      {.name = "ManyHeaders", .input = get11 + host + numbered_headers(30) + "\r\n",
       .header_count = 31, .headers = {{"Host", "a"}, {"X-Header-0", "v"}}},
      {.name = "ExactlyMaxHeaders", .input = get11 + host + numbered_headers(99) + "\r\n",
       .header_count = 100},
      {.name = "EmptyHeaderValue", .input = "GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\n\r\n",
       .header_count = 2, .headers = {{"Host", "a"}, {"X-Empty", ""}}},
      {.name = "BlankHeaderValue", .input = "GET / HTTP/1.1\r\nHost: a\r\nX-Blank: \t \r\n\r\n",
       .header_count = 2, .headers = {{"Host", "a"}, {"X-Blank", ""}}},
      {.name = "OwsTrimmed",
       .input = "GET / HTTP/1.1\r\nHost:a\r\nX-Ows: \t value  with inner \t \r\n\r\n",
       .header_count = 2, .headers = {{"Host", "a"}, {"X-Ows", "value  with inner"}}},
      {.name = "ObsTextAndTabInValue",
       .input = "GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\tb\r\n\r\n", .header_count = 2,
       .headers = {{"Host", "a"}, {"X", "caf\xc3\xa9\tb"}}},
      {.name = "ColonInValue", .input = "GET / HTTP/1.1\r\nHost: a:8080\r\n\r\n",
       .headers = {{"Host", "a:8080"}}},
      {.name = "LowercaseHostHeader", .input = "GET / HTTP/1.1\r\nhost: a\r\n\r\n",
       .headers = {{"host", "a"}}},
      {.name = "NoHostOnHttp10", .input = "GET /x HTTP/1.0\r\nX: y\r\n\r\n", .target = "/x",
       .path = "/x", .version_minor = 0, .keep_alive = false},
      {.name = "ContentLength",
       .input = "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
       .head_bytes = 48, .method = "POST", .target = "/a", .path = "/a", .header_count = 2,
       .body_kind = B::kContentLength, .content_length = 5},
      {.name = "ContentLengthZero",
       .input = "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", .method = "POST",
       .target = "/a", .path = "/a", .header_count = 2, .body_kind = B::kNone},
      {.name = "ContentLengthWithOws",
       .input = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \t 7 \r\n\r\n", .method = "POST",
       .header_count = 2, .body_kind = B::kContentLength, .content_length = 7},
      {.name = "ContentLengthEighteenDigits",
       .input = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 999999999999999999\r\n\r\n",
       .method = "POST", .header_count = 2, .body_kind = B::kContentLength,
       .content_length = 999999999999999999ULL},
      {.name = "ContentLengthLeadingZeros",
       .input = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n", .method = "POST",
       .header_count = 2, .body_kind = B::kContentLength, .content_length = 7},
      {.name = "TransferEncodingChunked",
       .input = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
       .method = "POST", .header_count = 2, .body_kind = B::kChunked},
      {.name = "TransferEncodingChunkedUpperCase",
       .input = "POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: CHUNKED\r\n\r\n",
       .method = "POST", .header_count = 2, .body_kind = B::kChunked},
      {.name = "ExpectContinue",
       .input = "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
       .method = "POST", .header_count = 3, .body_kind = B::kContentLength, .content_length = 3,
       .expect_continue = true},
      {.name = "ExpectContinueMixedCase",
       .input = "POST / HTTP/1.1\r\nHost: a\r\nexpect: 100-Continue\r\nContent-Length: 3\r\n\r\n",
       .method = "POST", .header_count = 3, .body_kind = B::kContentLength, .content_length = 3,
       .expect_continue = true},
      {.name = "ExpectOtherValue", .input = "GET / HTTP/1.1\r\nHost: a\r\nExpect: x\r\n\r\n",
       .header_count = 2, .expect_continue = false},
      {.name = "PipelinedBytesAfterHead",
       .input = "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /next HTTP/1.1\r\nHo", .head_bytes = 27},
      {.name = "RequestLineExactly8KiB", .input = request_line_of(8192) + "\r\nHost: a\r\n\r\n",
       .target = "/" + std::string(8192 - 14, 'a'), .path = "/" + std::string(8192 - 14, 'a')},
      {.name = "RequestLineExactly8KiBBareLf",
       .input = request_line_of(8192) + "\nHost: a\n\n",
       .target = "/" + std::string(8192 - 14, 'a'), .path = "/" + std::string(8192 - 14, 'a')},
      {.name = "HeaderSectionExactly16KiB", .input = get11 + header_lines_of(16384) + "\r\n",
       .header_count = 2},
      {.name = "LongHeaderValue",
       .input = get11 + host + "Cookie: " + std::string(8000, 'c') + "\r\n\r\n", .header_count = 2},

      // Malformed request lines: rejected as soon as the line ends, or earlier.
      {.name = "MissingVersion", .input = "GET /\r\nHost: a\r\n\r\n", .status = S::kError,
       .error_status = 400, .error_from = kAtFirstLineEnd},
      {.name = "MissingTarget", .input = "GET HTTP/1.1\r\nHost: a\r\n\r\n", .status = S::kError,
       .error_status = 400, .error_from = kAtFirstLineEnd},
      {.name = "EmptyRequestLineAfterSpace", .input = "GET \r\n\r\n", .status = S::kError,
       .error_status = 400, .error_from = kAtFirstLineEnd},
      {.name = "TrailingSpaceAfterVersion", .input = "GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
       .status = S::kError, .error_status = 400, .error_from = kAtFirstLineEnd},
      {.name = "DoubleSpace", .input = "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", .status = S::kError,
       .error_status = 400, .error_from = kAtFirstLineEnd},
      {.name = "SpaceBeforeMethod", .input = " GET / HTTP/1.1\r\nHost: a\r\n\r\n",
       .status = S::kError, .error_status = 400, .error_from = kAtFirstLineEnd},
      {.name = "BadVersionFormat", .input = "GET / HTTP/1.x\r\nHost: a\r\n\r\n",
       .status = S::kError, .error_status = 400, .error_from = kAtFirstLineEnd},
      {.name = "BadVersionTooShort", .input = "GET / HTTP/1\r\nHost: a\r\n\r\n",
       .status = S::kError, .error_status = 400, .error_from = kAtFirstLineEnd},
      {.name = "BadVersionTwoDigitMajor", .input = "GET / HTTP/11.1\r\nHost: a\r\n\r\n",
       .status = S::kError, .error_status = 400, .error_from = kAtFirstLineEnd},
      {.name = "Http20", .input = "GET / HTTP/2.0\r\nHost: a\r\n\r\n", .status = S::kError,
       .error_status = 505, .error_from = kAtFirstLineEnd},
      {.name = "Http12", .input = "GET / HTTP/1.2\r\nHost: a\r\n\r\n", .status = S::kError,
       .error_status = 505, .error_from = kAtFirstLineEnd},
      {.name = "Http09", .input = "GET / HTTP/0.9\r\n\r\n", .status = S::kError,
       .error_status = 505, .error_from = kAtFirstLineEnd},
      {.name = "LowercaseHttpVersion", .input = "GET / http/1.1\r\nHost: a\r\n\r\n",
       .status = S::kError, .error_status = 400, .error_from = kAtFirstLineEnd},
      {.name = "TargetWithoutSlash", .input = "GET foo HTTP/1.1\r\nHost: a\r\n\r\n",
       .status = S::kError, .error_status = 400, .error_from = kAtFirstLineEnd},
      {.name = "ControlCharInTarget", .input = "GET /a\x01z HTTP/1.1\r\nHost: a\r\n\r\n",
       .status = S::kError, .error_status = 400, .error_from = kAtFirstLineEnd},
      {.name = "NonAsciiInTarget", .input = "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
       .status = S::kError, .error_status = 400, .error_from = kAtFirstLineEnd},
      {.name = "BadCharInMethod", .input = "GE(T / HTTP/1.1\r\nHost: a\r\n\r\n",
       .status = S::kError, .error_status = 400, .error_from = 3},
      {.name = "TlsClientHello", .input = std::string(kTlsClientHello), .status = S::kError,
       .error_status = 400, .error_from = 1},
      {.name = "NulBytes", .input = std::string(4, '\0'), .status = S::kError,
       .error_status = 400, .error_from = 1},
      {.name = "LoneCrInRequestLine", .input = "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n",
       .status = S::kError, .error_status = 400, .error_from = kAtFirstLineEnd},
      {.name = "LoneCrAsLineEnd", .input = "GET / HTTP/1.1\rHost: a\r\n\r\n", .status = S::kError,
       .error_status = 400, .error_from = kAtFirstLineEnd},
      {.name = "LoneCrInLeadingEmptyLines", .input = "\r\n\rGET / HTTP/1.1\r\n\r\n",
       .status = S::kError, .error_status = 400, .error_from = 4},
      {.name = "RequestLineOver8KiB", .input = request_line_of(8193) + "\r\nHost: a\r\n\r\n",
       .status = S::kError, .error_status = 414, .error_from = 8193},
      {.name = "RequestLineOver8KiBIncomplete", .input = request_line_of(8193),
       .status = S::kError, .error_status = 414, .error_from = 8193},
      {.name = "MethodOver8KiBIncomplete", .input = std::string(8193, 'A'), .status = S::kError,
       .error_status = 414, .error_from = 8193},
      {.name = "LeadingEmptyLinesOverLimit",
       .input = std::string(http::kMaxLeadingEmptyBytes + 1, '\n') + "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
       .status = S::kError, .error_status = 400, .error_from = http::kMaxLeadingEmptyBytes + 1},

      // Malformed header sections: known once the blank line arrives.
      {.name = "WhitespaceBeforeColon", .input = "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
       .status = S::kError, .error_status = 400},
      {.name = "ObsFold", .input = "GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n  c\r\n\r\n",
       .status = S::kError, .error_status = 400},
      {.name = "ObsFoldWithTab", .input = "GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n\tc\r\n\r\n",
       .status = S::kError, .error_status = 400},
      {.name = "FirstHeaderLineStartsWithSpace",
       .input = "GET / HTTP/1.1\r\n Host: a\r\n\r\n", .status = S::kError, .error_status = 400},
      {.name = "BadCharInHeaderName", .input = "GET / HTTP/1.1\r\nHo(st: a\r\n\r\n",
       .status = S::kError, .error_status = 400},
      {.name = "SpaceInHeaderName", .input = "GET / HTTP/1.1\r\nHost: a\r\nX Y: z\r\n\r\n",
       .status = S::kError, .error_status = 400},
      {.name = "HeaderWithoutColon", .input = "GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n",
       .status = S::kError, .error_status = 400},
      {.name = "EmptyHeaderName", .input = "GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n",
       .status = S::kError, .error_status = 400},
      {.name = "ControlCharInValue", .input = "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01z\r\n\r\n",
       .status = S::kError, .error_status = 400},
      {.name = "DelInValue", .input = "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fz\r\n\r\n",
       .status = S::kError, .error_status = 400},
      {.name = "NulInValue", .input = std::string("GET / HTTP/1.1\r\nHost: a\r\nX: a") + '\0' + "z\r\n\r\n",
       .status = S::kError, .error_status = 400},
      {.name = "LoneCrInHeaderValue", .input = "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
       .status = S::kError, .error_status = 400},
      {.name = "LoneCrBeforeBlankLine", .input = "GET / HTTP/1.1\r\nHost: a\r\n\r\r\n\r\n",
       .status = S::kError, .error_status = 400},
      {.name = "OverMaxHeaders", .input = get11 + host + numbered_headers(100) + "\r\n",
       .status = S::kError, .error_status = 431},
      {.name = "HeaderSectionOver16KiB", .input = get11 + header_lines_of(16385) + "\r\n",
       .status = S::kError, .error_status = 431, .error_from = 16 + 16385},
      {.name = "HeaderSectionOver16KiBBareLf",
       .input = get11 + "Host: a\nX: " + std::string(16385 - 12, 'b') + "\n\n",
       .status = S::kError, .error_status = 431, .error_from = 16 + 16385},
      {.name = "HeaderSectionOver16KiBIncomplete", .input = get11 + header_lines_of(16400),
       .status = S::kError, .error_status = 431, .error_from = 16 + 16385},

      // Framing and Host.
      {.name = "ContentLengthNonNumeric",
       .input = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n", .status = S::kError,
       .error_status = 400},
      {.name = "ContentLengthNegative",
       .input = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", .status = S::kError,
       .error_status = 400},
      {.name = "ContentLengthPlusSign",
       .input = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", .status = S::kError,
       .error_status = 400},
      {.name = "ContentLengthEmpty",
       .input = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", .status = S::kError,
       .error_status = 400},
      {.name = "ContentLengthDuplicate",
       .input = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
       .status = S::kError, .error_status = 400},
      {.name = "ContentLengthList",
       .input = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", .status = S::kError,
       .error_status = 400},
      {.name = "ContentLengthTooLong",
       .input = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000000000000000\r\n\r\n",
       .status = S::kError, .error_status = 400},
      {.name = "TransferEncodingGzip",
       .input = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
       .status = S::kError, .error_status = 501},
      {.name = "TransferEncodingGzipChunked",
       .input = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
       .status = S::kError, .error_status = 501},
      {.name = "TransferEncodingTwice",
       .input = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                "Transfer-Encoding: chunked\r\n\r\n",
       .status = S::kError, .error_status = 501},
      {.name = "ChunkedWithContentLength",
       .input = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                "Content-Length: 5\r\n\r\n",
       .status = S::kError, .error_status = 400},
      {.name = "ContentLengthWithChunked",
       .input = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                "Transfer-Encoding: chunked\r\n\r\n",
       .status = S::kError, .error_status = 400},
      {.name = "TransferEncodingOnHttp10",
       .input = "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", .status = S::kError,
       .error_status = 400},
      {.name = "MissingHostOnHttp11", .input = "GET / HTTP/1.1\r\nX: y\r\n\r\n",
       .status = S::kError, .error_status = 400},
      {.name = "TwoHosts", .input = "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
       .status = S::kError, .error_status = 400},
      {.name = "TwoHostsOnHttp10", .input = "GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n",
       .status = S::kError, .error_status = 400},

      // Incomplete heads, cut at several points.
      {.name = "EmptyInput", .input = "", .status = S::kIncomplete},
      {.name = "OnlyEmptyLines", .input = "\r\n\r\n\n", .status = S::kIncomplete},
      {.name = "CutAfterLeadingCr", .input = "\r", .status = S::kIncomplete},
      {.name = "CutInMethod", .input = "GE", .status = S::kIncomplete},
      {.name = "CutAfterMethod", .input = "GET ", .status = S::kIncomplete},
      {.name = "CutInTarget", .input = "GET /pi", .status = S::kIncomplete},
      {.name = "CutInVersion", .input = "GET / HTTP/1.", .status = S::kIncomplete},
      {.name = "CutBeforeRequestLineLf", .input = "GET / HTTP/1.1\r", .status = S::kIncomplete},
      {.name = "CutAfterRequestLine", .input = "GET / HTTP/1.1\r\n", .status = S::kIncomplete},
      {.name = "CutInHeaderName", .input = "GET / HTTP/1.1\r\nHo", .status = S::kIncomplete},
      {.name = "CutInHeaderValue", .input = "GET / HTTP/1.1\r\nHost: exa",
       .status = S::kIncomplete},
      {.name = "CutAfterHeaderLine", .input = "GET / HTTP/1.1\r\nHost: a\r\n",
       .status = S::kIncomplete},
      {.name = "CutBeforeFinalLf", .input = "GET / HTTP/1.1\r\nHost: a\r\n\r",
       .status = S::kIncomplete},
      {.name = "CutInBadHeaderStillIncomplete", .input = "GET / HTTP/1.1\r\nHo st: a\r\n",
       .status = S::kIncomplete},
      {.name = "RequestLineAtLimitIncomplete", .input = request_line_of(8192),
       .status = S::kIncomplete},
      {.name = "HeaderSectionAtLimitIncomplete", .input = get11 + header_lines_of(16384),
       .status = S::kIncomplete},
  };
  return cases;
}

void expect_head(const ParserCase& c, const RequestHead& head) {
  EXPECT_EQ(head.method, c.method);
  EXPECT_EQ(head.target, c.target);
  EXPECT_EQ(head.path, c.path);
  EXPECT_EQ(head.query, c.query);
  EXPECT_EQ(head.version_minor, c.version_minor);
  EXPECT_EQ(head.header_count, c.header_count);
  EXPECT_EQ(head.body_kind, c.body_kind);
  EXPECT_EQ(head.content_length, c.content_length);
  EXPECT_EQ(head.keep_alive, c.keep_alive);
  EXPECT_EQ(head.connection_keep_alive, c.connection_keep_alive);
  EXPECT_EQ(head.expect_continue, c.expect_continue);
  for (std::size_t i = 0; i < c.headers.size() && i < head.header_count; ++i) {
    EXPECT_EQ(head.headers[i].name, c.headers[i].first) << "header " << i;
    EXPECT_EQ(head.headers[i].value, c.headers[i].second) << "header " << i;
  }
}

// The whole-input answer of case `c`.
void expect_result(const ParserCase& c, const ParseResult& r, const RequestHead& head) {
  ASSERT_EQ(r.status, c.status);
  switch (c.status) {
    case ParseStatus::kComplete:
      EXPECT_EQ(r.head_bytes, head_bytes_of(c));
      expect_head(c, head);
      break;
    case ParseStatus::kError:
      EXPECT_EQ(r.error_status, c.error_status);
      break;
    case ParseStatus::kIncomplete:
      EXPECT_LE(r.scanned, c.input.size());
      break;
  }
}

// Names each instantiated case after its table entry.
struct CaseName {
  template <class Case>
  std::string operator()(const ::testing::TestParamInfo<Case>& param_info) const {
    return param_info.param.name;
  }
};

class ParserTable : public ::testing::TestWithParam<ParserCase> {};

TEST_P(ParserTable, Whole) {
  const ParserCase& c = GetParam();
  RequestHead head;
  expect_result(c, parse_request_head(c.input, head), head);
}

TEST_P(ParserTable, GuardPage) {
  const ParserCase& c = GetParam();
  GuardedBuffer buffer(c.input.size());
  RequestHead head;
  expect_result(c, parse_request_head(buffer.place(c.input), head), head);
}

TEST_P(ParserTable, ReusedHead) {
  const ParserCase& c = GetParam();
  RequestHead head;
  const std::string dirty =
      "POST /dirty?q=1 HTTP/1.0\r\nConnection: keep-alive\r\nExpect: 100-continue\r\n"
      "Content-Length: 9\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
  ASSERT_EQ(parse_request_head(dirty, head).status, ParseStatus::kComplete);
  expect_result(c, parse_request_head(c.input, head), head);
}

TEST_P(ParserTable, ByteByByte) {
  const ParserCase& c = GetParam();
  GuardedBuffer buffer(c.input.size());
  RequestHead head;
  std::size_t scanned = 0;
  for (std::size_t n = 0; n <= c.input.size(); ++n) {
    const std::string_view prefix = buffer.place(std::string_view(c.input).substr(0, n));
    const ParseResult r = parse_request_head(prefix, head, scanned);
    ParseStatus want = ParseStatus::kIncomplete;
    if (c.status == ParseStatus::kComplete && n >= head_bytes_of(c)) want = ParseStatus::kComplete;
    if (c.status == ParseStatus::kError && n >= error_from_of(c)) want = ParseStatus::kError;
    ASSERT_EQ(r.status, want) << "after " << n << " of " << c.input.size()
                              << " bytes (error_status " << r.error_status << ")";
    if (r.status == ParseStatus::kIncomplete) {
      ASSERT_LE(r.scanned, n);
      ASSERT_GE(r.scanned, scanned) << "the hint went backwards after " << n << " bytes";
      scanned = r.scanned;
    } else if (r.status == ParseStatus::kError) {
      ASSERT_EQ(r.error_status, c.error_status) << "after " << n << " bytes";
    }
  }
  if (c.status == ParseStatus::kComplete) {
    const ParseResult r = parse_request_head(buffer.place(c.input), head, scanned);
    expect_result(c, r, head);
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, ParserTable, ::testing::ValuesIn(parser_cases()),
                         CaseName());

// The guard page is what makes GuardPage and ByteByByte meaningful: prove that it bites.
TEST(GuardedBufferDeathTest, ReadPastTheEndCrashes) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  GuardedBuffer buffer(16);
  const std::string_view placed = buffer.place("GET / HTTP/1.1\r\n");
  EXPECT_DEATH(
      {
        const volatile char* past = placed.data() + placed.size();
        static_cast<void>(*past);
      },
      "");
}

TEST(ParserTableTest, HasEnoughCases) {
  EXPECT_GE(parser_cases().size(), 45u);
}

TEST(ParserTest, NeverAllocates) {
  const auto cases = parser_cases();
  RequestHead head;
  const std::uint64_t before = counter_total(Counter::kAllocations);
  for (const ParserCase& c : cases) {
    std::size_t scanned = 0;
    for (std::size_t n = 0; n <= c.input.size(); n += 97) {
      const ParseResult r = parse_request_head(std::string_view(c.input).substr(0, n), head, scanned);
      if (r.status == ParseStatus::kIncomplete) scanned = r.scanned;
    }
    parse_request_head(c.input, head);
  }
  EXPECT_EQ(counter_total(Counter::kAllocations) - before, 0u);
}

TEST(ParserTest, HeaderLookupIsCaseInsensitive) {
  RequestHead head;
  const std::string in = "GET / HTTP/1.1\r\nHost: a\r\nX-Thing: one\r\nx-thing: two\r\n\r\n";
  ASSERT_EQ(parse_request_head(in, head).status, ParseStatus::kComplete);
  EXPECT_EQ(head.header("HOST"), "a");
  EXPECT_EQ(head.header("x-THING"), "one");
  EXPECT_EQ(head.header("missing"), "");
}

TEST(ParserTest, ViewsPointIntoTheInput) {
  RequestHead head;
  const std::string in = "GET /p?q HTTP/1.1\r\nHost: a\r\n\r\n";
  ASSERT_EQ(parse_request_head(in, head).status, ParseStatus::kComplete);
  const char* begin = in.data();
  const char* end = in.data() + in.size();
  for (std::string_view v : {head.method, head.target, head.path, head.query, head.headers[0].name,
                             head.headers[0].value}) {
    EXPECT_GE(v.data(), begin);
    EXPECT_LE(v.data() + v.size(), end);
  }
}

TEST(ParserTest, ScannedHintIsTheStartOfTheUnfinishedLine) {
  RequestHead head;
  const std::string in = "GET / HTTP/1.1\r\nHost: a\r\nX-Partial: abc";
  const ParseResult r = parse_request_head(in, head);
  ASSERT_EQ(r.status, ParseStatus::kIncomplete);
  EXPECT_EQ(r.scanned, in.find("X-Partial"));
  // Resuming from the hint finds the end of the head just as a fresh scan does.
  const std::string more = in + "\r\n\r\n";
  const ParseResult resumed = parse_request_head(more, head, r.scanned);
  ASSERT_EQ(resumed.status, ParseStatus::kComplete);
  EXPECT_EQ(resumed.head_bytes, more.size());
  EXPECT_EQ(head.header("x-partial"), "abc");
}

TEST(ParserTest, EqualsIgnoreCase) {
  EXPECT_TRUE(equals_ignore_case("Content-Length", "content-LENGTH"));
  EXPECT_FALSE(equals_ignore_case("Content-Length", "Content-Lengt"));
  EXPECT_FALSE(equals_ignore_case("a", "b"));
  EXPECT_TRUE(equals_ignore_case("", ""));
}

// ---------------------------------------------------------------------------------------------
// The chunked decoder.

constexpr std::string_view kNextRequest = "GET /next HTTP/1.1\r\nHost: a\r\n\r\n";

struct ChunkedCase {
  std::string name;
  std::string body;
  enum class Want { kDone, kNeedMore, kError } want = Want::kDone;
  std::uint64_t data_bytes = 0;  // kDone and kNeedMore: decoded so far
};

void PrintTo(const ChunkedCase& c, std::ostream* os) { *os << c.name; }

std::vector<ChunkedCase> chunked_cases() {
  using W = ChunkedCase::Want;
  return {
      {.name = "Simple", .body = "5\r\nhello\r\n0\r\n\r\n", .data_bytes = 5},
      {.name = "OnlyLastChunk", .body = "0\r\n\r\n", .data_bytes = 0},
      {.name = "MultipleChunks", .body = "5\r\nhello\r\n6\r\n world\r\n1\r\n!\r\n0\r\n\r\n",
       .data_bytes = 12},
      {.name = "Extensions", .body = "5;name=value\r\nhello\r\n3 ; a=\"b;c\"\r\nabc\r\n0;last\r\n\r\n",
       .data_bytes = 8},
      {.name = "Trailers", .body = "5\r\nhello\r\n0\r\nX-Trailer: 1\r\nChecksum: abc\r\n\r\n",
       .data_bytes = 5},
      {.name = "UppercaseHex", .body = "A\r\n0123456789\r\n1F\r\n" + std::string(31, 'x') +
                                       "\r\n0\r\n\r\n",
       .data_bytes = 41},
      {.name = "LowercaseHex", .body = "a\r\n0123456789\r\n0\r\n\r\n", .data_bytes = 10},
      {.name = "LeadingZeros", .body = "0005\r\nhello\r\n000\r\n\r\n", .data_bytes = 5},
      {.name = "BareLfLineEnds", .body = "5\nhello\n0\nX: y\n\n", .data_bytes = 5},
      {.name = "DataContainingCrlf", .body = "4\r\n\r\n\r\n\r\n0\r\n\r\n", .data_bytes = 4},
      {.name = "LargeChunk", .body = "10000\r\n" + std::string(0x10000, 'z') + "\r\n0\r\n\r\n",
       .data_bytes = 0x10000},
      {.name = "FifteenHexDigits", .body = "000000000000005\r\nhello\r\n0\r\n\r\n",
       .data_bytes = 5},
      {.name = "NeedMoreInSize", .body = "5", .want = W::kNeedMore},
      {.name = "NeedMoreInData", .body = "5\r\nhel", .want = W::kNeedMore, .data_bytes = 3},
      {.name = "NeedMoreBeforeTrailers", .body = "5\r\nhello\r\n0\r\n", .want = W::kNeedMore,
       .data_bytes = 5},
      {.name = "NeedMoreInTrailer", .body = "0\r\nX: y", .want = W::kNeedMore},
      {.name = "BadHex", .body = "xyz\r\nhello\r\n0\r\n\r\n", .want = W::kError},
      {.name = "BadHexAfterDigit", .body = "5z\r\nhello\r\n0\r\n\r\n", .want = W::kError},
      {.name = "EmptySize", .body = "\r\nhello\r\n0\r\n\r\n", .want = W::kError},
      {.name = "NegativeSize", .body = "-5\r\nhello\r\n0\r\n\r\n", .want = W::kError},
      {.name = "MissingCrlfAfterData", .body = "5\r\nhelloX\r\n0\r\n\r\n", .want = W::kError},
      {.name = "CrWithoutLfAfterData", .body = "5\r\nhello\rX0\r\n\r\n", .want = W::kError},
      {.name = "CrWithoutLfAfterSize", .body = "5\rhello\r\n0\r\n\r\n", .want = W::kError},
      {.name = "OverlongSize", .body = "1000000000000000\r\nx\r\n0\r\n\r\n", .want = W::kError},
      {.name = "OverlongExtension", .body = "5;" + std::string(5000, 'e') + "\r\nhello\r\n0\r\n\r\n",
       .want = W::kError},
      {.name = "OverlongTrailers",
       .body = "0\r\n" + std::string(17000, 't') + ": v\r\n\r\n", .want = W::kError},
      {.name = "CrWithoutLfAtEnd", .body = "0\r\n\rX", .want = W::kError},
  };
}

class ChunkedTable : public ::testing::TestWithParam<ChunkedCase> {};

// The bytes a case is fed: the body, then a pipelined request when the body is complete.
std::string chunked_input(const ChunkedCase& c) {
  return c.want == ChunkedCase::Want::kNeedMore ? c.body : c.body + std::string(kNextRequest);
}

// Feeds `input` in pieces of at most `piece` bytes; returns the total consumed and the decoder.
struct Fed {
  std::size_t consumed = 0;
  bool done = false;
  int error_status = 0;
};
Fed feed_in_pieces(ChunkedDecoder& d, std::string_view input, std::size_t first_piece,
                   std::size_t piece) {
  Fed fed;
  std::size_t offset = 0;
  std::size_t size = first_piece;
  while (offset < input.size() && !fed.done) {
    const std::string_view part = input.substr(offset, size);
    const auto r = d.feed(part);
    if (r.error_status != 0) {
      fed.error_status = r.error_status;
      return fed;
    }
    // Until the body ends, every byte offered is taken: nothing is left for the caller to keep.
    if (!r.done) {
      EXPECT_EQ(r.consumed, part.size()) << "at offset " << offset;
    }
    fed.consumed += r.consumed;
    fed.done = r.done;
    offset += r.consumed;
    size = piece;
  }
  return fed;
}

void expect_fed(const ChunkedCase& c, const ChunkedDecoder& d, const Fed& fed) {
  switch (c.want) {
    case ChunkedCase::Want::kDone:
      EXPECT_EQ(fed.error_status, 0);
      EXPECT_TRUE(fed.done);
      EXPECT_TRUE(d.done());
      EXPECT_EQ(fed.consumed, c.body.size()) << "the decoder must stop at the end of the body";
      EXPECT_EQ(d.data_bytes(), c.data_bytes);
      break;
    case ChunkedCase::Want::kNeedMore:
      EXPECT_EQ(fed.error_status, 0);
      EXPECT_FALSE(fed.done);
      EXPECT_EQ(fed.consumed, c.body.size());
      EXPECT_EQ(d.data_bytes(), c.data_bytes);
      break;
    case ChunkedCase::Want::kError:
      EXPECT_EQ(fed.error_status, 400);
      EXPECT_FALSE(d.done());
      break;
  }
}

TEST_P(ChunkedTable, Whole) {
  const ChunkedCase& c = GetParam();
  const std::string input = chunked_input(c);
  ChunkedDecoder d;
  const Fed fed = feed_in_pieces(d, input, input.size(), input.size());
  expect_fed(c, d, fed);
}

TEST_P(ChunkedTable, ByteByByte) {
  const ChunkedCase& c = GetParam();
  const std::string input = chunked_input(c);
  ChunkedDecoder d;
  const Fed fed = feed_in_pieces(d, input, 1, 1);
  expect_fed(c, d, fed);
  if (d.done()) {
    const auto after = d.feed(kNextRequest);
    EXPECT_EQ(after.consumed, 0u);
    EXPECT_TRUE(after.done);
  }
}

TEST_P(ChunkedTable, SplitAtEveryByte) {
  const ChunkedCase& c = GetParam();
  const std::string input = chunked_input(c);
  const std::size_t step = input.size() / 2048 + 1;  // every byte, except in the largest cases
  for (std::size_t split = 1; split < input.size(); split += step) {
    ChunkedDecoder d;
    const Fed fed = feed_in_pieces(d, input, split, input.size());
    SCOPED_TRACE("split at " + std::to_string(split));
    expect_fed(c, d, fed);
    if (::testing::Test::HasFailure()) return;
  }
}

TEST_P(ChunkedTable, GuardPage) {
  const ChunkedCase& c = GetParam();
  GuardedBuffer buffer(c.body.size());
  ChunkedDecoder d;
  const auto r = d.feed(buffer.place(c.body));
  switch (c.want) {
    case ChunkedCase::Want::kDone:
      EXPECT_TRUE(r.done);
      EXPECT_EQ(r.consumed, c.body.size());
      break;
    case ChunkedCase::Want::kNeedMore:
      EXPECT_FALSE(r.done);
      EXPECT_EQ(r.consumed, c.body.size());
      EXPECT_EQ(r.error_status, 0);
      break;
    case ChunkedCase::Want::kError:
      EXPECT_EQ(r.error_status, 400);
      break;
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, ChunkedTable, ::testing::ValuesIn(chunked_cases()),
                         CaseName());

}  // namespace
}  // namespace iolab::http
