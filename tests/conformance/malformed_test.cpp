// Conformance cases (conformance.hpp): Malformed requests and their status codes: 400, 414, 431,
// 505.

#include "conformance.hpp"

namespace iolab::test {
namespace {

// ================================ malformed requests ======================================

TEST_P(Conformance, Status400MalformedRequestLine) {
  START_SERVER();
  for (const char* raw : {
           "GET /ping\r\nHost: x\r\n\r\n",            // missing version
           "HELLO\r\n\r\n",                           // not a request line
           "GET /ping HTTX/1.1\r\nHost: x\r\n\r\n",   // not an HTTP version
           "GET /ping HTTP/1.1 extra\r\nHost: x\r\n\r\n",
       }) {
    expect_status_then_close(raw, 400);
  }
}

TEST_P(Conformance, Status400MalformedHeader) {
  START_SERVER();
  for (const char* raw : {
           "GET /ping HTTP/1.1\r\nHost : x\r\n\r\n",               // space before colon
           "GET /ping HTTP/1.1\r\nHost: x\r\nBad(Name): y\r\n\r\n", // bad name character
           "GET /ping HTTP/1.1\r\nHost: x\r\nX-A: b\r\n  folded\r\n\r\n",  // obs-fold
           "GET /ping HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n",
           "GET /ping HTTP/1.1\r\nHost: x\r\n: empty-name\r\n\r\n",
       }) {
    expect_status_then_close(raw, 400);
  }
}

TEST_P(Conformance, Status400FramingConflicts) {
  START_SERVER();
  for (const char* raw : {
           "GET /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
           "GET /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
           "GET /ping HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
           "GET /ping HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
           "GET /ping HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n",
           "GET /ping HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n",
       }) {
    expect_status_then_close(raw, 400);
  }
}

TEST_P(Conformance, Status400Http11WithoutHost) {
  START_SERVER();
  expect_status_then_close("GET /ping HTTP/1.1\r\n\r\n", 400);
}

TEST_P(Conformance, Status414LongRequestLine) {
  START_SERVER();
  {
    SCOPED_TRACE("a 8000-byte request line is fine");
    Conn c = connect();
    auto r = roundtrip(c, get("/ping?pad=" + std::string(8000 - 30, 'a')));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
  }
  expect_status_then_close(get("/ping?pad=" + std::string(9000, 'a')), 414);
}

TEST_P(Conformance, Status431TooManyHeaders) {
  START_SERVER();
  auto headers = [](int n) {  // n header lines in all, Host included
    std::string h;
    for (int i = 1; i < n; ++i) h += "X-H" + std::to_string(i) + ": v\r\n";
    return h;
  };
  {
    SCOPED_TRACE("100 headers are fine");
    Conn c = connect();
    auto r = roundtrip(c, get("/ping", headers(100)));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
  }
  expect_status_then_close(get("/ping", headers(101)), 431);
}

TEST_P(Conformance, Status431HeaderSectionTooLarge) {
  START_SERVER();
  auto headers = [](std::size_t total) {  // about `total` bytes of header lines
    std::string h;
    for (int i = 0; h.size() < total; ++i) h += "X-Big" + std::to_string(i) + ": " + std::string(1000, 'v') + "\r\n";
    return h;
  };
  {
    SCOPED_TRACE("a 12 KiB header section is fine");
    Conn c = connect();
    auto r = roundtrip(c, get("/ping", headers(12 * 1024)));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
  }
  expect_status_then_close(get("/ping", headers(17 * 1024)), 431);
}

TEST_P(Conformance, Status505UnsupportedVersion) {
  START_SERVER();
  for (const char* version : {"HTTP/2.0", "HTTP/1.2", "HTTP/0.9", "HTTP/3.0"}) {
    expect_status_then_close(std::string("GET /ping ") + version + "\r\nHost: x\r\n\r\n", 505);
  }
}

}  // namespace
}  // namespace iolab::test
