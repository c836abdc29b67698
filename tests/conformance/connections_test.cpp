// Conformance cases (conformance.hpp): Connection management: HTTP/1.1 keep-alive, Connection:
// close, HTTP/1.0.

#include "conformance.hpp"

namespace iolab::test {
namespace {

// ================================ connection management ====================================

TEST_P(Conformance, Http11KeepAliveByDefault) {
  START_SERVER();
  Conn c = connect();
  for (int i = 0; i < 5; ++i) {
    auto r = roundtrip(c, get("/ping"));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_FALSE(r->connection_has("close"));
  }
  EXPECT_TRUE(c.looks_open());
}

TEST_P(Conformance, Http11ConnectionCloseHonoured) {
  START_SERVER();
  Conn c = connect();
  auto r = roundtrip(c, get("/ping", "Connection: close\r\n"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(r->connection_has("close")) << "response lacks Connection: close";
  expect_server_closes(c, "after Connection: close");

  SCOPED_TRACE("Connection: close in the middle of a pipeline: later requests are not answered");
  Conn p = connect();
  ASSERT_TRUE(p.send(get("/ping") + get("/plaintext", "Connection: close\r\n") + get("/ping")));
  for (const char* body : {R"({"message":"pong"})", "Hello, World!"}) {
    r = p.read_response();
    ASSERT_TRUE(r) << p.error();
    EXPECT_EQ(r->body, body);
  }
  EXPECT_TRUE(r->connection_has("close"));
  expect_server_closes(p, "after the Connection: close request of a pipeline");
}

TEST_P(Conformance, KeepAliveRequestsLimitEndsTheConnection) {
  START_SERVER({{"--keepalive-requests", "3"}});
  Conn c = connect();
  for (int i = 1; i <= 3; ++i) {
    auto r = roundtrip(c, get("/ping"));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->connection_has("close"), i == 3) << "response " << i << " of 3";
  }
  expect_server_closes(c, "after the third response of --keepalive-requests 3");

  SCOPED_TRACE("pipelined past the limit: the third is sent whole, the fourth not answered");
  Conn p = connect();
  ASSERT_TRUE(p.send(get("/ping") + get("/plaintext") + get("/bytes?n=3000000") + get("/ping")));
  std::optional<Response> r;
  for (int i = 0; i < 3; ++i) {
    r = p.read_response();
    ASSERT_TRUE(r) << p.error();
  }
  EXPECT_EQ(r->body, pattern_bytes(3000000));
  EXPECT_TRUE(r->connection_has("close"));
  expect_server_closes(p, "after the third response of a pipeline of four");
}

TEST_P(Conformance, HeaderNamesCaseInsensitive) {
  START_SERVER();
  Conn c = connect();
  // Lower- and upper-case names, no space after the colon, trailing spaces (OWS) in values.
  ASSERT_TRUE(c.send("GET /ping HTTP/1.1\r\nhost:x\r\ncontent-length:   3  \r\n\r\nabc"
                     "GET /plaintext HTTP/1.1\r\nHOST: x\r\nTRANSFER-ENCODING: Chunked\r\n\r\n"
                     "3\r\nabc\r\n0\r\n\r\n"
                     "GET /bytes?n=4 HTTP/1.1\r\nHost: x\r\nconnection: Close\r\n\r\n"));
  for (const char* body : {R"({"message":"pong"})", "Hello, World!", "abcd"}) {
    auto r = c.read_response();
    ASSERT_TRUE(r) << c.error();
    expect_common_headers(*r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, body);
  }
  expect_server_closes(c, "after \"connection: Close\"");
}

TEST_P(Conformance, Http10ClosesByDefault) {
  START_SERVER();
  Conn c = connect();
  auto r = roundtrip(c, "GET /ping HTTP/1.0\r\n\r\n");  // no Host needed in 1.0
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, R"({"message":"pong"})");
  expect_server_closes(c, "after an HTTP/1.0 request");
}

TEST_P(Conformance, Http10KeepAliveEchoed) {
  START_SERVER();
  Conn c = connect();
  for (int i = 0; i < 3; ++i) {
    auto r = roundtrip(c, "GET /plaintext HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_TRUE(r->connection_has("keep-alive")) << "response lacks Connection: keep-alive";
  }
  auto r = roundtrip(c, "GET /plaintext HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(r);
  expect_server_closes(c, "after an HTTP/1.0 request without keep-alive");
}

}  // namespace
}  // namespace iolab::test
