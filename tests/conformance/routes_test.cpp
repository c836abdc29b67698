// Conformance cases (conformance.hpp): The routes (/ping, /plaintext, /bytes, /file, /work, /sleep,
// /stats), HEAD, 404 and 405.

#include "conformance.hpp"

namespace iolab::test {
namespace {

// ================================ routes ===================================================

TEST_P(Conformance, RoutesPing) {
  START_SERVER();
  Conn c = connect();
  auto r = roundtrip(c, get("/ping"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("Content-Type").value_or(""), "application/json");
  EXPECT_EQ(r->body, R"({"message":"pong"})");
}

TEST_P(Conformance, RoutesPlaintext) {
  START_SERVER();
  Conn c = connect();
  auto r = roundtrip(c, get("/plaintext"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("Content-Type").value_or(""), "text/plain");
  EXPECT_EQ(r->body, "Hello, World!");
}

TEST_P(Conformance, RoutesBytes) {
  START_SERVER();
  Conn c = connect();
  for (std::size_t n : {0ul, 1ul, 26ul, 27ul, 1000ul, 100000ul, 16777216ul}) {
    SCOPED_TRACE("n=" + std::to_string(n));
    auto r = roundtrip(c, get("/bytes?n=" + std::to_string(n)), false, 10000ms);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_TRUE(r->body == pattern_bytes(n)) << describe_mismatch(r->body, pattern_bytes(n));
  }
}

TEST_P(Conformance, RoutesBytesBadN) {
  START_SERVER();
  for (const char* n : {"16777217", "abc", "-1", "12abc", "99999999999999999999999"}) {
    SCOPED_TRACE(std::string("n=") + n);
    Conn c = connect();
    auto r = roundtrip(c, get(std::string("/bytes?n=") + n));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400);
  }
}

TEST_P(Conformance, RoutesFile) {
  START_SERVER();
  Conn c = connect();
  for (std::size_t n : {0ul, 1ul, 4096ul, 1000000ul, 16777216ul}) {
    SCOPED_TRACE("n=" + std::to_string(n));
    auto r = roundtrip(c, get("/file?n=" + std::to_string(n)), false, 10000ms);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_TRUE(r->body == pattern_bytes(n)) << describe_mismatch(r->body, pattern_bytes(n));
  }
  for (const char* n : {"16777217", "abc"}) {
    SCOPED_TRACE(std::string("n=") + n);
    Conn bad = connect();
    auto r = roundtrip(bad, get(std::string("/file?n=") + n));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400);
  }
}

TEST_P(Conformance, FileSendfileOnAndOffIdentical) {
  std::string bodies[2];
  const char* modes[2] = {"on", "off"};
  for (int i = 0; i < 2; ++i) {
    SCOPED_TRACE(std::string("--sendfile ") + modes[i]);
    START_SERVER({{"--sendfile", modes[i]}});
    Conn c = connect();
    auto r = roundtrip(c, get("/file?n=1000000"), false, 10000ms);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    bodies[i] = r->body;
    // The mode must change the mechanism, not only leave the bytes right: with sendfile (or
    // splice) no file data passes through user space, so there are no pread calls.
    Json s = stats(c);
    const Json* calls = s.find("syscalls");
    ASSERT_TRUE(calls && calls->find("pread")) << "no syscalls.pread in /stats";
    const double preads = calls->find("pread")->number;
    if (i == 0) {
      EXPECT_EQ(preads, 0) << "--sendfile on read the file through user space";
    } else {
      EXPECT_GT(preads, 0) << "--sendfile off did not read the file (was it ignored?)";
    }
    c.close();
    stop_and_check();
  }
  EXPECT_TRUE(bodies[0] == bodies[1]) << describe_mismatch(bodies[1], bodies[0]);
  EXPECT_TRUE(bodies[0] == pattern_bytes(1000000)) << describe_mismatch(bodies[0], pattern_bytes(1000000));
}

TEST_P(Conformance, RoutesWork) {
  START_SERVER();
  Conn c = connect();
  for (const char* us : {"0", "1000", "20000"}) {
    SCOPED_TRACE(std::string("us=") + us);
    auto r = roundtrip(c, get(std::string("/work?us=") + us));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
  }
  // /work burns CPU, not wall time: the server's own CPU time must grow by about that much.
  const auto before = cpu_seconds(server_->pid());
  auto r = roundtrip(c, get("/work?us=300000"), false, 10000ms);
  const auto after = cpu_seconds(server_->pid());
  ASSERT_TRUE(r && before && after);
  EXPECT_EQ(r->status, 200);
  EXPECT_GE(*after - *before, 0.2) << "/work?us=300000 used too little CPU";
  Conn over = connect();
  r = roundtrip(over, get("/work?us=1000001"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
}

TEST_P(Conformance, RoutesSleep) {
  START_SERVER();
  Conn c = connect();
  const auto t0 = Clock::now();
  auto r = roundtrip(c, get("/sleep?ms=100"));
  const auto elapsed = Clock::now() - t0;
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_GE(elapsed, 100ms) << "/sleep?ms=100 answered before 100 ms";
  r = roundtrip(c, get("/sleep?ms=0"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  Conn over = connect();
  r = roundtrip(over, get("/sleep?ms=10001"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
}

TEST_P(Conformance, RoutesStatsKeys) {
  // Start the server with a soft descriptor limit below the hard one, as on a Debian desktop:
  // it must raise the soft limit itself.
  rlimit ours{};
  ::getrlimit(RLIMIT_NOFILE, &ours);
  const rlimit lowered{std::min<rlim_t>(ours.rlim_max, 512), ours.rlim_max};
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lowered), 0);
  start();
  ::setrlimit(RLIMIT_NOFILE, &ours);
  if (HasFatalFailure() || IsSkipped()) return;
  Conn c = connect();
  auto r = roundtrip(c, get("/stats"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("Content-Type").value_or(""), "application/json");
  std::string error;
  auto json = parse_json(r->body, &error);
  ASSERT_TRUE(json && json->is_object()) << error << ": " << printable(r->body);
  for (const char* key : {"requests", "stats_requests", "connections_accepted", "connections_open",
                          "connections_refused", "bytes_in", "bytes_out", "allocations",
                          "allocated_bytes", "cpu_user_us", "cpu_sys_us", "rss_kb",
                          "fd_soft_limit", "fd_hard_limit"}) {
    number(*json, key);
  }
  const Json* syscalls = json->find("syscalls");
  EXPECT_TRUE(syscalls && syscalls->is_object()) << "\"syscalls\" missing or not an object";
  // The server raises its soft descriptor limit to the hard one, which it inherited from us.
  EXPECT_EQ(number(*json, "fd_hard_limit"), static_cast<double>(ours.rlim_max));
  EXPECT_EQ(number(*json, "fd_soft_limit"), number(*json, "fd_hard_limit"));
  // The connection carrying this request was accepted before the request arrived: a server that
  // counts it only after handing the socket to its worker races with the worker's answer.
  EXPECT_GE(number(*json, "connections_accepted"), 1) << "this connection is not counted yet";
  EXPECT_GE(number(*json, "connections_open"), 1) << "this connection is not counted yet";
  EXPECT_GT(number(*json, "rss_kb"), 0);
}

TEST_P(Conformance, StatsCountsItselfApart) {
  START_SERVER();
  Conn c = connect();
  Json before = stats(c);
  ASSERT_TRUE(before.is_object());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(roundtrip(c, get("/ping")));
  ASSERT_TRUE(roundtrip(c, get("/nope")));  // a 404 is a request too
  Json after = stats(c);
  ASSERT_TRUE(after.is_object());
  EXPECT_EQ(number(after, "requests") - number(before, "requests"), 4);
  EXPECT_EQ(number(after, "stats_requests") - number(before, "stats_requests"), 1);
  EXPECT_GT(number(after, "bytes_in"), number(before, "bytes_in"));
  EXPECT_GT(number(after, "bytes_out"), number(before, "bytes_out"));
}

TEST_P(Conformance, HeadHasNoBody) {
  START_SERVER();
  Conn c = connect();
  for (const char* target : {"/ping", "/plaintext", "/bytes?n=1000", "/file?n=500", "/work?us=10",
                             "/sleep?ms=1"}) {
    SCOPED_TRACE(target);
    auto g = roundtrip(c, get(target));
    ASSERT_TRUE(g);
    auto h = roundtrip(c, request("HEAD", target), /*head=*/true);
    ASSERT_TRUE(h);
    EXPECT_EQ(h->status, g->status);
    EXPECT_EQ(h->header("Content-Length").value_or("?"), std::to_string(g->body.size()));
    EXPECT_EQ(h->header("Content-Type"), g->header("Content-Type"));
    // No body bytes may follow: the next response on this connection must parse cleanly.
    auto next = roundtrip(c, get("/ping"));
    ASSERT_TRUE(next) << "after HEAD " << target;
    EXPECT_EQ(next->body, R"({"message":"pong"})");
  }
}

TEST_P(Conformance, HeadOfUnknownPathHasNoBody) {
  START_SERVER();
  Conn c = connect();
  auto h = roundtrip(c, request("HEAD", "/nope"), /*head=*/true);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 404);
  auto next = roundtrip(c, get("/plaintext"));
  ASSERT_TRUE(next);
  EXPECT_EQ(next->body, "Hello, World!");
}

TEST_P(Conformance, HeadOfErrorHasNoBody) {
  // Even an error answer to HEAD carries headers only (RFC 9110 9.3.2), then the close.
  START_SERVER({{"--max-body-bytes", "1000"}});
  for (const std::string& raw : {std::string("HEAD /ping HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"),
                                std::string("HEAD /ping HTTP/1.1\r\n\r\n"),
                                std::string("HEAD /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")}) {
    SCOPED_TRACE("request: \"" + printable(raw) + "\"");
    Conn c = connect();
    ASSERT_TRUE(c.send(raw)) << c.error();
    auto r = c.read_response(/*head_request=*/true);
    ASSERT_TRUE(r) << c.error();
    EXPECT_GE(r->status, 400);
    expect_server_closes(c, "after an error answer to HEAD");
  }
}

TEST_P(Conformance, Status404UnknownPath) {
  START_SERVER();
  Conn c = connect();
  for (const char* target : {"/", "/nope", "/pingpong", "/ping/extra", "/PING"}) {
    SCOPED_TRACE(target);
    auto r = roundtrip(c, get(target));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 404);
  }
  // A 404 keeps the connection.
  auto r = roundtrip(c, get("/ping"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_P(Conformance, Status405WithAllow) {
  START_SERVER();
  Conn c = connect();
  for (const char* method : {"POST", "DELETE", "PUT", "OPTIONS", "PATCH"}) {
    for (const char* target : {"/ping", "/bytes?n=5"}) {
      SCOPED_TRACE(std::string(method) + " " + target);
      auto r = roundtrip(c, request(method, target, "Content-Length: 0\r\n"));
      ASSERT_TRUE(r);
      EXPECT_EQ(r->status, 405);
      EXPECT_EQ(r->header("Allow").value_or("(none)"), "GET, HEAD");
    }
  }
}

TEST_P(Conformance, Status405BodyDiscardedKeepAlive) {
  START_SERVER();
  Conn c = connect();
  // The body looks like a request: if it were parsed as one, a 404 would appear.
  const std::string body = "GET /nope HTTP/1.1\r\n\r\n";
  ASSERT_TRUE(c.send(request("POST", "/ping", "Content-Length: " + std::to_string(body.size()) + "\r\n", body) +
                     get("/plaintext")));
  auto r = c.read_response();
  ASSERT_TRUE(r) << c.error();
  expect_common_headers(*r);
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->header("Allow").value_or("(none)"), "GET, HEAD");
  r = c.read_response();
  ASSERT_TRUE(r) << c.error();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "Hello, World!");
}

}  // namespace
}  // namespace iolab::test
