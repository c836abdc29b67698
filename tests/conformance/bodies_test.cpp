// Conformance cases (conformance.hpp): Request bodies: Content-Length and chunked bodies read and
// discarded, 100-continue, 413, 501.

#include "conformance.hpp"

namespace iolab::test {
namespace {

// ================================ request bodies ==========================================

TEST_P(Conformance, ContentLengthBodyDiscarded) {
  START_SERVER();
  Conn c = connect();
  const std::string tricky = "GET /nope HTTP/1.1\r\n\r\n";  // a body that looks like a request
  const std::string big(500000, 'x');
  ASSERT_TRUE(c.send(get("/ping", "Content-Length: " + std::to_string(tricky.size()) + "\r\n") + tricky +
                     get("/plaintext") +
                     get("/bytes?n=3", "Content-Length: " + std::to_string(big.size()) + "\r\n") + big +
                     get("/ping")));
  const char* want[] = {R"({"message":"pong"})", "Hello, World!", "abc", R"({"message":"pong"})"};
  for (const char* body : want) {
    auto r = c.read_response();
    ASSERT_TRUE(r) << c.error();
    expect_common_headers(*r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, body);
  }
}

const std::string kChunkedBody =
    "5;name=value\r\nhello\r\n"
    "1a\r\nabcdefghijklmnopqrstuvwxyz\r\n"
    "A;ext\r\n0123456789\r\n"
    "0\r\nX-Trailer: yes\r\nAnother-Trailer: 1\r\n\r\n";

TEST_P(Conformance, ChunkedBodyDiscarded) {
  START_SERVER();
  Conn c = connect();
  ASSERT_TRUE(c.send(get("/ping", "Transfer-Encoding: chunked\r\n") + kChunkedBody + get("/plaintext") +
                     request("POST", "/ping", "Transfer-Encoding: chunked\r\n", "3\r\nabc\r\n0\r\n\r\n") +
                     get("/bytes?n=2")));
  auto r = c.read_response();
  ASSERT_TRUE(r) << c.error();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, R"({"message":"pong"})");
  r = c.read_response();
  ASSERT_TRUE(r) << c.error();
  EXPECT_EQ(r->body, "Hello, World!");
  r = c.read_response();
  ASSERT_TRUE(r) << c.error();
  EXPECT_EQ(r->status, 405);
  r = c.read_response();
  ASSERT_TRUE(r) << c.error();
  EXPECT_EQ(r->body, "ab");
}

TEST_P(Conformance, ChunkedBodyInPieces) {
  START_SERVER();
  Conn c = connect();
  c.set_nodelay();
  const std::string all = get("/ping", "Transfer-Encoding: chunked\r\n") + kChunkedBody + get("/plaintext");
  const std::size_t body_at = all.find("5;name");
  // Split inside the size line, between CR and LF, inside data and inside a trailer line.
  const std::size_t trailer_at = all.find("X-Trailer");
  std::vector<std::size_t> cuts = {body_at + 1, body_at + 13, body_at + 16, body_at + 27,
                                   body_at + 40, body_at + 70, trailer_at + 4};
  std::size_t from = 0;
  for (std::size_t cut : cuts) {
    ASSERT_TRUE(c.send(std::string_view(all).substr(from, cut - from)));
    from = cut;
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(c.send(std::string_view(all).substr(from)));
  auto r = c.read_response();
  ASSERT_TRUE(r) << c.error();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, R"({"message":"pong"})");
  r = c.read_response();
  ASSERT_TRUE(r) << c.error();
  EXPECT_EQ(r->body, "Hello, World!");
}

TEST_P(Conformance, Status501OtherTransferEncoding) {
  START_SERVER();
  expect_status_then_close(get("/ping", "Transfer-Encoding: gzip\r\n"), 501);
  expect_status_then_close(get("/ping", "Transfer-Encoding: identity\r\n"), 501);
  expect_status_then_close(get("/ping", "Transfer-Encoding: gzip, chunked\r\n"), 501);
}

TEST_P(Conformance, Status400MalformedChunkedBody) {
  START_SERVER();
  const std::string head = get("/ping", "Transfer-Encoding: chunked\r\n");
  expect_status_then_close(head + "zz\r\nhello\r\n0\r\n\r\n", 400);     // size not hex
  expect_status_then_close(head + "5\r\nhelloXX0\r\n\r\n", 400);        // no CRLF after data
  expect_status_then_close(head + "\r\nhello\r\n0\r\n\r\n", 400);      // empty size line
}

TEST_P(Conformance, ExpectContinue) {
  START_SERVER();
  Conn c = connect();
  ASSERT_TRUE(c.send(get("/ping", "Content-Length: 5\r\nExpect: 100-continue\r\n")));
  const std::string cont = "HTTP/1.1 100 Continue\r\n\r\n";
  auto interim = c.read_exact(cont.size());
  ASSERT_TRUE(interim) << "no 100 Continue before the body was sent: " << c.error()
                       << " (got \"" << printable(c.buffered()) << "\")";
  EXPECT_EQ(*interim, cont);
  ASSERT_TRUE(c.send("hello"));
  auto r = c.read_response();
  ASSERT_TRUE(r) << c.error();
  expect_common_headers(*r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, R"({"message":"pong"})");
  // The connection is still in step.
  r = roundtrip(c, get("/plaintext"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "Hello, World!");
}

TEST_P(Conformance, Status413BodyTooLarge) {
  START_SERVER({{"--max-body-bytes", "1000"}});
  {
    SCOPED_TRACE("exactly the limit is accepted");
    Conn c = connect();
    auto r = roundtrip(c, get("/ping", "Content-Length: 1000\r\n") + std::string(1000, 'x'));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    r = roundtrip(c, get("/ping", "Transfer-Encoding: chunked\r\n") + "1f4\r\n" + std::string(500, 'y') +
                         "\r\n1f4\r\n" + std::string(500, 'z') + "\r\n0\r\n\r\n");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
  }
  {
    SCOPED_TRACE("Content-Length over the limit (head only)");
    expect_status_then_close(get("/ping", "Content-Length: 1001\r\n"), 413);
  }
  {
    SCOPED_TRACE("Expect: 100-continue with a body over the limit: 413 at once, no 100 (as nginx)");
    expect_status_then_close(get("/ping", "Content-Length: 5000\r\nExpect: 100-continue\r\n"), 413);
  }
  {
    SCOPED_TRACE("chunked, three chunks adding up over the limit");
    std::string chunks;
    for (int i = 0; i < 3; ++i) chunks += "190\r\n" + std::string(400, 'q') + "\r\n";
    expect_status_then_close(get("/ping", "Transfer-Encoding: chunked\r\n") + chunks, 413);
  }
}

// An uploading client keeps sending its body for a while before it looks at the answer. The
// server answers 413 and closes; if it closed with that input unread, Linux would send RST at
// once and drop whatever the socket had not transmitted yet: here the end of a large response
// the client was still to read, and the 413 behind it. A lingering close (half-close, drain for
// a bounded time and byte count, then close; RFC 9112 section 9.6, nginx's lingering_close)
// delivers both.
TEST_P(Conformance, Status413ReachesAClientStillSending) {
  START_SERVER({{"--max-body-bytes", "1000"}});
  constexpr std::size_t kBig = 4 << 20;
  Conn c = connect();
  ASSERT_TRUE(c.send(get("/bytes?n=" + std::to_string(kBig)) +
                     get("/ping", "Content-Length: 10000000\r\n")));
  const std::string chunk(16 * 1024, 'u');
  for (int i = 0; i < 20; ++i) {
    if (!c.send(chunk, 100ms)) break;  // the server may stop reading: that is fine
    std::this_thread::sleep_for(5ms);
  }
  std::this_thread::sleep_for(200ms);  // not reading yet: the response waits in the socket
  auto r = c.read_response();
  ASSERT_TRUE(r) << "the large response was cut short: " << c.error();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body.size(), kBig);
  r = c.read_response();
  ASSERT_TRUE(r) << "the 413 was lost: " << c.error();
  EXPECT_EQ(r->status, 413);
  EXPECT_TRUE(r->connection_has("close"));
}

}  // namespace
}  // namespace iolab::test
