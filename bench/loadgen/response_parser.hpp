// Framing and verification of HTTP/1.1 responses, for the load generator.
//
// Design. A client that counts requests must know exactly where each response ends, or one
// bad response silently shifts every later one on the connection. ResponseParser frames one
// response at a time with Content-Length (every iolab server and nginx send it) and checks it
// against what the request expects, in one pass and without copying:
//
//   feed(bytes, expectation) -> {kNeedMore, consumed 0}   the head is not complete yet: keep
//                                                         these bytes and feed them again with
//                                                         what arrives next
//                            -> {kComplete, consumed n}   one response ended after n bytes;
//                                                         verdict says whether it was right
//                            -> {kProgress, consumed n}   a 1xx head or part of a body was
//                                                         taken, no response ended yet
//                            -> {kError, ...}             the framing is broken: close
//
// Verdicts (Problem) keep the connection usable: a wrong status (kStatus), a body that differs
// from the expected one or a length other than the expected one (kBody). Broken framing is a
// kParse error: a malformed status line, a missing, duplicate or invalid Content-Length, a head
// over kMaxHeadBytes, or Transfer-Encoding (not supported: no iolab server or reference sends a
// chunked response to the requests loadgen makes). 1xx interim responses are skipped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace iolab::loadgen {

// What a request expects of its response.
struct Expectation {
  int status = 200;
  bool head_request = false;  // HEAD: Content-Length announces a body that is not sent
  bool check_body = false;    // compare the body (HEAD: its announced length) with `body`
  std::string_view body;
  std::int64_t length = -1;  // >= 0: Content-Length must equal it
};

enum class Problem { kNone, kStatus, kBody, kParse };

class ResponseParser {
 public:
  static constexpr std::size_t kMaxHeadBytes = 64 * 1024;

  enum class Result { kNeedMore, kProgress, kComplete, kError };
  struct Outcome {
    Result result = Result::kNeedMore;
    std::size_t consumed = 0;
    Problem problem = Problem::kNone;  // kComplete: the verdict; kError: kParse
    int status = 0;                    // kComplete: the status received
    bool close = false;                // kComplete: the server will close after this response
  };

  Outcome feed(std::string_view bytes, const Expectation& expect);
  bool in_body() const { return in_body_; }
  void reset() { *this = ResponseParser(); }

 private:
  Outcome parse_head(std::string_view bytes, const Expectation& expect);
  Outcome take_body(std::string_view bytes, std::size_t already_consumed,
                    const Expectation& expect);

  bool in_body_ = false;
  std::uint64_t body_remaining_ = 0;
  std::uint64_t body_offset_ = 0;
  int status_ = 0;
  bool close_ = false;
  Problem problem_ = Problem::kNone;
};

}  // namespace iolab::loadgen
