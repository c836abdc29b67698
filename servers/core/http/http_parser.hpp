// The HTTP/1.1 request-head parser and the chunked-body decoder.
//
// Contract of parse_request_head(input, head, scanned):
//   - stateless: call it again with the same buffer plus whatever arrived since; `scanned` (0 on
//     the first call) is how many leading bytes earlier calls already searched for the end of
//     the head, so byte-by-byte arrival costs O(n), not O(n^2);
//   - it never allocates and never reads outside input[0, input.size());
//   - kComplete: `head` holds views into `input` and the derived framing (body kind and length,
//     keep-alive, 100-continue); result.head_bytes is where the body or the next request starts;
//   - kIncomplete: nothing is wrong yet, more bytes are needed; result.scanned is the hint for
//     the next call;
//   - kError: result.error_status is the status to answer (400, 414, 431, 501, 505), after
//     which the connection closes. Errors are reported as soon as the bytes prove them: a bad
//     request line is rejected before the headers arrive, an over-long line before it ends.
// Line ends may be CRLF or a bare LF (as nginx and picohttpparser accept); a lone CR is an error.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace iolab::http {

inline constexpr std::size_t kMaxRequestLineBytes = 8 * 1024;     // beyond: 414
inline constexpr std::size_t kMaxHeaderSectionBytes = 16 * 1024;  // beyond: 431
inline constexpr std::size_t kMaxHeaders = 100;                   // beyond: 431
inline constexpr std::size_t kMaxLeadingEmptyBytes = 16;          // CR/LF before a request
// The largest head that can parse: empty lines, the request line, the header section and the
// blank line, each with its CRLF.
inline constexpr std::size_t kMaxHeadBytes =
    kMaxLeadingEmptyBytes + kMaxRequestLineBytes + 2 + kMaxHeaderSectionBytes + 2;

struct HeaderView {
  std::string_view name;
  std::string_view value;  // optional whitespace trimmed on both sides
};

enum class BodyKind { kNone, kContentLength, kChunked };

struct RequestHead {
  std::string_view method;
  std::string_view target;  // as sent
  std::string_view path;    // target without the query (origin-form; absolute-form reduced)
  std::string_view query;   // after '?', without it
  int version_minor = 1;    // HTTP/1.x
  std::array<HeaderView, kMaxHeaders> headers;
  std::size_t header_count = 0;
  BodyKind body_kind = BodyKind::kNone;
  std::uint64_t content_length = 0;
  bool keep_alive = true;           // after the version default and the Connection header
  bool connection_keep_alive = false;  // "Connection: keep-alive" was sent (HTTP/1.0 echo)
  bool expect_continue = false;

  // First header with this name (case-insensitive), or an empty view.
  std::string_view header(std::string_view name) const;
};

enum class ParseStatus { kComplete, kIncomplete, kError };

struct ParseResult {
  ParseStatus status;
  std::size_t head_bytes = 0;  // kComplete: bytes the head took, leading empty lines included
  std::size_t scanned = 0;     // kIncomplete: pass back as `scanned` next time
  int error_status = 0;        // kError: status to answer
};

ParseResult parse_request_head(std::string_view input, RequestHead& head, std::size_t scanned = 0);

namespace detail {
bool equal_bytes_ignore_case(const char* a, const char* b, std::size_t n);
}
// ASCII case-insensitive equality. Inline so that the usual answer, different lengths, costs a
// comparison rather than a call.
inline bool equals_ignore_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && detail::equal_bytes_ignore_case(a.data(), b.data(), a.size());
}

// Decodes a chunked body and discards its data (the application reads no bodies). Chunk
// extensions are skipped; trailer fields are read and dropped. Feed it whatever bytes arrive;
// it consumes up to the end of the body and no further, so pipelined requests keep their framing.
class ChunkedDecoder {
 public:
  static constexpr std::size_t kMaxLineBytes = 4096;  // a chunk-size line with its extensions
  static constexpr std::size_t kMaxTrailerBytes = kMaxHeaderSectionBytes;

  struct Result {
    std::size_t consumed = 0;
    bool done = false;
    int error_status = 0;  // 400 on malformed framing
  };

  Result feed(std::string_view input);
  std::uint64_t data_bytes() const { return data_bytes_; }  // decoded body size so far
  bool done() const { return state_ == State::kDone; }

 private:
  enum class State {
    kSize, kExtension, kSizeLf, kData, kDataCr, kDataLf, kTrailerStart, kTrailerLine,
    kFinalLf, kDone
  };
  State state_ = State::kSize;
  std::uint64_t chunk_size_ = 0;
  std::uint64_t remaining_ = 0;
  std::uint64_t data_bytes_ = 0;
  std::size_t size_digits_ = 0;
  std::size_t line_bytes_ = 0;
  std::size_t trailer_bytes_ = 0;
};

}  // namespace iolab::http
