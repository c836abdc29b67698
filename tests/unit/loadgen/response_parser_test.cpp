// The load generator's response framing and verification, as a table of named cases (the
// picohttpparser test style). Each case is fed whole and then byte by byte, the way the engine
// feeds it: bytes that did not complete a head are kept and fed again with the next ones.

#include "response_parser.hpp"

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

#include "cli.hpp"

namespace iolab::loadgen {
namespace {

using R = ResponseParser::Result;

constexpr std::string_view kPong = R"({"message":"pong"})";

Expectation ping() {
  Expectation e;
  e.check_body = true;
  e.body = kPong;
  return e;
}

struct Seen {
  int responses = 0;
  std::vector<Problem> problems;
  std::vector<int> statuses;
  std::vector<bool> closes;
  bool error = false;
  std::size_t leftover = 0;  // bytes kept waiting for more
};

// Feeds `input` in pieces of `step` bytes (0: all at once) through one parser.
Seen run(std::string_view input, const Expectation& expect, std::size_t step) {
  ResponseParser parser;
  Seen seen;
  std::string pending;
  std::size_t offset = 0;
  while (offset < input.size() && !seen.error) {
    const std::size_t n = step == 0 ? input.size() : std::min(step, input.size() - offset);
    pending.append(input.substr(offset, n));
    offset += n;
    while (!pending.empty()) {
      const auto o = parser.feed(pending, expect);
      if (o.result == R::kNeedMore) break;
      if (o.result == R::kError) {
        seen.error = true;
        break;
      }
      pending.erase(0, o.consumed);
      if (o.result == R::kComplete) {
        ++seen.responses;
        seen.problems.push_back(o.problem);
        seen.statuses.push_back(o.status);
        seen.closes.push_back(o.close);
      }
    }
  }
  seen.leftover = pending.size();
  return seen;
}

struct Case {
  const char* name;
  std::string input;
  Expectation expect;
  int responses;                  // complete responses expected
  std::vector<Problem> problems;  // their verdicts
  bool error = false;             // framing broken at the end
  bool close = false;             // the last response announces a close
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

std::string pong(std::string_view extra_headers = "") {
  return "HTTP/1.1 200 OK\r\nServer: iolab-threads\r\nContent-Type: application/json\r\n" +
         std::string(extra_headers) + "Content-Length: 18\r\n\r\n" + std::string(kPong);
}

Expectation with_status(int status) {
  Expectation e;
  e.status = status;
  return e;
}

Expectation head_request() {
  Expectation e = ping();
  e.head_request = true;
  return e;
}

Expectation length(std::int64_t n) {
  Expectation e;
  e.length = n;
  return e;
}

const Case kCases[] = {
    {"Pong", pong(), ping(), 1, {Problem::kNone}},
    {"PongFromNginx",
     "HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Mon, 23 Nov 2026 16:31:21 GMT\r\nContent-Type: "
     "application/json\r\nContent-Length: 18\r\nConnection: keep-alive\r\n\r\n" +
         std::string(kPong),
     ping(),
     1,
     {Problem::kNone}},
    {"Pipelined",
     pong() + pong() + pong(),
     ping(),
     3,
     {Problem::kNone, Problem::kNone, Problem::kNone}},
    {"LowercaseHeaderNames",
     "HTTP/1.1 200 OK\r\ncontent-length: 18\r\nCONNECTION: Keep-Alive\r\n\r\n" + std::string(kPong),
     ping(),
     1,
     {Problem::kNone}},
    {"WrongBodySameLength",
     "HTTP/1.1 200 OK\r\nContent-Length: 18\r\n\r\n{\"message\":\"pang\"}" + pong(),
     ping(),
     2,
     {Problem::kBody, Problem::kNone}},
    {"WrongLength",
     "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\npong" + pong(),
     ping(),
     2,
     {Problem::kBody, Problem::kNone}},
    {"UnexpectedStatusKeepsFraming",
     "HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\n\r\nNot Found\n" + pong(),
     ping(),
     2,
     {Problem::kStatus, Problem::kNone}},
    {"ExpectedNotFound",
     "HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\n\r\nNot Found\n",
     with_status(404),
     1,
     {Problem::kNone}},
    {"ExpectedLength",
     "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabcde",
     length(5),
     1,
     {Problem::kNone}},
    {"ExpectedLengthMismatch",
     "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd",
     length(5),
     1,
     {Problem::kBody}},
    {"EmptyBody",
     "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
     with_status(200),
     1,
     {Problem::kNone}},
    {"ConnectionClose", pong("Connection: close\r\n"), ping(), 1, {Problem::kNone}, false, true},
    {"ConnectionCloseAmongTokens",
     pong("Connection: foo, Close\r\n"),
     ping(),
     1,
     {Problem::kNone},
     false,
     true},
    {"Http10ClosesByDefault",
     "HTTP/1.0 200 OK\r\nContent-Length: 18\r\n\r\n" + std::string(kPong),
     ping(),
     1,
     {Problem::kNone},
     false,
     true},
    {"Http10KeepAlive",
     "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 18\r\n\r\n" + std::string(kPong),
     ping(),
     1,
     {Problem::kNone}},
    {"InterimContinueSkipped",
     "HTTP/1.1 100 Continue\r\n\r\n" + pong(),
     ping(),
     1,
     {Problem::kNone}},
    {"HeadResponseHasNoBody",
     "HTTP/1.1 200 OK\r\nContent-Length: 18\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 18\r\n\r\n",
     head_request(),
     2,
     {Problem::kNone, Problem::kNone}},
    {"HeadResponseWithWrongLength",
     "HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n",
     head_request(),
     1,
     {Problem::kBody}},
    {"HeadResponseWithoutLength",
     "HTTP/1.1 200 OK\r\nServer: x\r\n\r\n",
     head_request(),
     1,
     {Problem::kNone}},
    {"NoContentWithoutLength",
     "HTTP/1.1 204 No Content\r\n\r\n",
     with_status(204),
     1,
     {Problem::kNone}},
    {"DuplicateEqualLengths",
     "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
     with_status(200),
     1,
     {Problem::kNone}},
    {"DuplicateDifferentLengths",
     "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
     with_status(200),
     0,
     {},
     true},
    {"MissingLength", "HTTP/1.1 200 OK\r\nServer: x\r\n\r\nok", with_status(200), 0, {}, true},
    {"InvalidLength",
     "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\nok",
     with_status(200),
     0,
     {},
     true},
    {"NegativeLength",
     "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok",
     with_status(200),
     0,
     {},
     true},
    {"Chunked",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
     with_status(200),
     0,
     {},
     true},
    {"NotHttp", "SSH-2.0-OpenSSH_9.2\r\n\r\n", ping(), 0, {}, true},
    {"NotHttpDetectedEarly", "HTTP/2", ping(), 0, {}, true},
    {"BadStatusCode", "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n", ping(), 0, {}, true},
    {"HeaderWithoutColon",
     "HTTP/1.1 200 OK\r\nbroken\r\nContent-Length: 0\r\n\r\n",
     ping(),
     0,
     {},
     true},
    {"GoodThenGarbage", pong() + "garbage\r\n\r\n", ping(), 1, {Problem::kNone}, true},
    {"IncompleteBodyWaits", "HTTP/1.1 200 OK\r\nContent-Length: 18\r\n\r\n{\"mess", ping(), 0, {}},
};

class ResponseParserCases : public ::testing::TestWithParam<Case> {};

void check(const Case& c, const Seen& seen, const char* how) {
  EXPECT_EQ(seen.error, c.error) << how;
  EXPECT_EQ(seen.responses, c.responses) << how;
  EXPECT_EQ(seen.problems, c.problems) << how;
  if (c.responses > 0 && !seen.closes.empty()) {
    EXPECT_EQ(seen.closes.back(), c.close) << how;
  }
}

TEST_P(ResponseParserCases, Whole) {
  const Case& c = GetParam();
  check(c, run(c.input, c.expect, 0), "fed whole");
}

TEST_P(ResponseParserCases, ByteByByte) {
  const Case& c = GetParam();
  check(c, run(c.input, c.expect, 1), "fed byte by byte");
}

TEST_P(ResponseParserCases, InPiecesOfSeven) {
  const Case& c = GetParam();
  check(c, run(c.input, c.expect, 7), "fed 7 bytes at a time");
}

INSTANTIATE_TEST_SUITE_P(Table, ResponseParserCases, ::testing::ValuesIn(kCases),
                         [](const auto& case_info) { return std::string(case_info.param.name); });

TEST(ResponseParser, OversizedHeadIsAnError) {
  ResponseParser p;
  std::string head = "HTTP/1.1 200 OK\r\n";
  while (head.size() < ResponseParser::kMaxHeadBytes) head += "X-Filler: aaaaaaaaaaaaaaaaaaaa\r\n";
  EXPECT_EQ(p.feed(head, ping()).result, R::kError);
}

TEST(ResponseParser, BodyIsStreamedNotBuffered) {
  // A large body is taken as it arrives; nothing has to be kept between reads.
  ResponseParser p;
  const Expectation e = length(1'000'000);
  auto o = p.feed("HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n", e);
  EXPECT_EQ(o.result, R::kProgress);
  EXPECT_TRUE(p.in_body());
  const std::string chunk(64 * 1024, 'a');
  std::size_t left = 1'000'000;
  while (left > chunk.size()) {
    o = p.feed(chunk, e);
    ASSERT_EQ(o.result, R::kProgress);
    ASSERT_EQ(o.consumed, chunk.size());
    left -= chunk.size();
  }
  o = p.feed(std::string(left, 'a') + "HTTP/1.1", e);
  EXPECT_EQ(o.result, R::kComplete);
  EXPECT_EQ(o.consumed, left);
  EXPECT_EQ(o.problem, Problem::kNone);
}

TEST(Expectations, KnownRoutes) {
  auto e = expectation_for("/ping", 200, false);
  EXPECT_TRUE(e.check_body);
  EXPECT_EQ(e.body, kPong);
  e = expectation_for("/plaintext", 200, false);
  EXPECT_EQ(e.body, "Hello, World!");
  e = expectation_for("/bytes?n=4096", 200, false);
  EXPECT_FALSE(e.check_body);
  EXPECT_EQ(e.length, 4096);
  e = expectation_for("/file?n=7", 200, false);
  EXPECT_EQ(e.length, 7);
  e = expectation_for("/ping", 200, true);  // HEAD: the announced length is checked
  EXPECT_TRUE(e.check_body);
  EXPECT_TRUE(e.head_request);
  e = expectation_for("/ping", 404, false);  // another status: its body is not /ping's
  EXPECT_FALSE(e.check_body);
  e = expectation_for("/sleep?ms=5", 200, false);
  EXPECT_FALSE(e.check_body);
  EXPECT_EQ(e.length, -1);
}

}  // namespace
}  // namespace iolab::loadgen
