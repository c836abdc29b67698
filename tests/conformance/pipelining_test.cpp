// Conformance cases (conformance.hpp): Pipelining and framing: answers in order, an error answered
// then closed, a request byte by byte.

#include "conformance.hpp"

namespace iolab::test {
namespace {

// ================================ pipelining and framing ==================================

TEST_P(Conformance, Pipelined32InOrder) {
  START_SERVER();
  struct Expected {
    bool head;
    int status;
    std::optional<std::string> body;
  };
  std::string batch;
  std::vector<Expected> expected;
  for (int i = 0; i < 32; ++i) {
    const std::string n = std::to_string(i * 37);
    switch (i % 6) {
      case 0: batch += get("/ping"); expected.push_back({false, 200, R"({"message":"pong"})"}); break;
      case 1: batch += get("/plaintext"); expected.push_back({false, 200, "Hello, World!"}); break;
      case 2: batch += get("/bytes?n=" + n); expected.push_back({false, 200, pattern_bytes(i * 37)}); break;
      case 3: batch += get("/nope" + n); expected.push_back({false, 404, std::nullopt}); break;
      case 4: batch += request("HEAD", "/plaintext"); expected.push_back({true, 200, ""}); break;
      case 5: batch += get("/file?n=" + n); expected.push_back({false, 200, pattern_bytes(i * 37)}); break;
    }
  }
  Conn c = connect();
  ASSERT_TRUE(c.send(batch));  // one write
  for (std::size_t i = 0; i < expected.size(); ++i) {
    SCOPED_TRACE("response " + std::to_string(i));
    auto r = c.read_response(expected[i].head);
    ASSERT_TRUE(r) << c.error();
    expect_common_headers(*r);
    EXPECT_EQ(r->status, expected[i].status);
    if (expected[i].body) {
      EXPECT_EQ(r->body, *expected[i].body);
    }
  }
  EXPECT_TRUE(c.buffered().empty()) << "extra bytes: " << printable(c.buffered());
}

TEST_P(Conformance, PipelinedErrorAnsweredThenClosed) {
  START_SERVER();
  Conn c = connect();
  // The bad request is answered after the good one before it, then nothing more.
  ASSERT_TRUE(c.send(get("/ping") + "GET /ping HTTP/1.1\r\nHost : x\r\n\r\n" + get("/plaintext")));
  auto r = c.read_response();
  ASSERT_TRUE(r) << c.error();
  EXPECT_EQ(r->status, 200);
  r = c.read_response();
  ASSERT_TRUE(r) << c.error();
  expect_common_headers(*r);
  EXPECT_EQ(r->status, 400);
  expect_server_closes(c, "after a 400 in a pipeline");
}

TEST_P(Conformance, ByteByByteRequest) {
  START_SERVER();
  Conn c = connect();
  ASSERT_TRUE(c.send_byte_by_byte(get("/ping", "Content-Length: 3\r\n") + "abc" + get("/plaintext")));
  auto r = c.read_response();
  ASSERT_TRUE(r) << c.error();
  expect_common_headers(*r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, R"({"message":"pong"})");
  r = c.read_response();
  ASSERT_TRUE(r) << c.error();
  EXPECT_EQ(r->body, "Hello, World!");
}

}  // namespace
}  // namespace iolab::test
