// Unit tests of the connection state machine, driven through a fake I/O driver (fake_driver.hpp)
// with a real App and ContentSource: exact response bytes, keep-alive rules, pipelining and
// backpressure, partial writes, request bodies, 100-continue, errors, file regions, deferred
// work, timers on a fake clock, peer EOF, kernel-chosen buffers, idle buffers, and memory
// lifetime under pipelining (an arena is reset only once the output has drained).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <memory_resource>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "app.hpp"
#include "connection.hpp"
#include "fake_driver.hpp"
#include "http_parser.hpp"
#include "stats.hpp"

namespace iolab {

void PrintTo(Step s, std::ostream* os) {
  static constexpr const char* kNames[] = {"kRead", "kWrite", "kRunWork", "kWaitWork", "kClose"};
  *os << kNames[static_cast<int>(s)];
}

namespace {

using test::FakeDriver;
using test::kUnlimited;
using namespace std::chrono_literals;

const ContentSource& content() {
  static const ContentSource source;
  return source;
}

const App& app() {
  static const App application("test", content());
  return application;
}

constexpr std::string_view kPing = "GET /ping HTTP/1.1\r\nHost: a\r\n\r\n";
constexpr std::string_view kPlaintext = "GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n";
constexpr std::string_view kPingResponse =
    "HTTP/1.1 200 OK\r\nServer: iolab-test\r\nDate: <date>\r\nContent-Type: application/json\r\n"
    "Content-Length: 18\r\n\r\n{\"message\":\"pong\"}";
constexpr std::string_view kPlaintextResponse =
    "HTTP/1.1 200 OK\r\nServer: iolab-test\r\nDate: <date>\r\nContent-Type: text/plain\r\n"
    "Content-Length: 13\r\n\r\nHello, World!";
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

// Replaces every Date header value with "<date>", after checking its IMF-fixdate format
// (bytes normalized before pass through unchanged).
std::string normalize_dates(std::string_view bytes) {
  static const std::regex kDate("^[A-Z][a-z]{2}, [0-9]{2} [A-Z][a-z]{2} [0-9]{4} "
                                "[0-9]{2}:[0-9]{2}:[0-9]{2} GMT$");
  std::string out;
  std::size_t pos = 0;
  for (;;) {
    const std::size_t at = bytes.find("\r\nDate: ", pos);
    if (at == std::string_view::npos) break;
    const std::size_t value = at + 8;
    const std::size_t end = bytes.find("\r\n", value);
    EXPECT_NE(end, std::string_view::npos);
    const std::string date(bytes.substr(value, end - value));
    if (date != "<date>") {
      EXPECT_TRUE(std::regex_match(date, kDate)) << "Date: " << date;
    }
    out.append(bytes.substr(pos, value - pos));
    out.append("<date>");
    pos = end;
  }
  out.append(bytes.substr(pos));
  return out;
}

struct HttpResponse {
  int status = 0;
  std::string head;  // status line and headers, Date normalized
  std::string body;
  std::string header(std::string_view name) const {
    const std::string key = "\r\n" + std::string(name) + ": ";
    const std::size_t at = head.find(key);
    if (at == std::string::npos) return {};
    const std::size_t value = at + key.size();
    return head.substr(value, head.find("\r\n", value) - value);
  }
  bool has_header(std::string_view name) const {
    return head.find("\r\n" + std::string(name) + ": ") != std::string::npos;
  }
};

// Splits a byte stream into responses. `no_body[i]` marks response i as an answer to HEAD.
std::vector<HttpResponse> parse_responses(std::string_view bytes,
                                          const std::vector<bool>& no_body = {}) {
  std::vector<HttpResponse> out;
  while (!bytes.empty()) {
    const std::size_t end = bytes.find("\r\n\r\n");
    if (end == std::string_view::npos || bytes.substr(0, 9) != "HTTP/1.1 ") {
      ADD_FAILURE() << "not a response head: " << bytes.substr(0, 80);
      break;
    }
    HttpResponse r;
    r.head = normalize_dates(bytes.substr(0, end + 4));
    bytes.remove_prefix(end + 4);
    r.status = std::stoi(r.head.substr(9, 3));
    std::size_t length = 0;
    const bool head_only = out.size() < no_body.size() && no_body[out.size()];
    if (r.status >= 200 && !head_only) length = std::stoull(r.header("Content-Length"));
    if (bytes.size() < length) {
      ADD_FAILURE() << "response body cut short: " << bytes.size() << " of " << length;
      break;
    }
    r.body = std::string(bytes.substr(0, length));
    bytes.remove_prefix(length);
    out.push_back(std::move(r));
  }
  return out;
}

// A ConnectionMemory that checks the lifetime rules: an arena (with a fixed first block that is
// poisoned on every reset, so a view that outlived its reset shows up in the bytes written), a
// count of live objects allocated from it, and a count of buffers held.
class TrackingMemory final : public ConnectionMemory {
 public:
  static constexpr std::size_t kArenaBytes = 256 * 1024;

  std::pmr::memory_resource* request_resource() override { return &counting_; }
  void reset_request_resource() override {
    ++resets;
    if (counting_.live != 0) ++resets_with_live_objects;
    arena_.release();
    std::memset(storage_.data(), '#', storage_.size());
  }
  std::span<char> acquire_buffer(std::size_t min_bytes) override {
    ++buffers_acquired;
    ++buffers_held;
    return {new char[min_bytes], min_bytes};
  }
  void release_buffer(std::span<char> buffer) override {
    --buffers_held;
    delete[] buffer.data();
  }
  long live_objects() const { return counting_.live; }

  int resets = 0;
  int resets_with_live_objects = 0;
  int buffers_acquired = 0;
  int buffers_held = 0;

 private:
  class Counting final : public std::pmr::memory_resource {
   public:
    explicit Counting(std::pmr::memory_resource* upstream) : upstream_(upstream) {}
    long live = 0;

   private:
    void* do_allocate(std::size_t bytes, std::size_t align) override {
      ++live;
      return upstream_->allocate(bytes, align);
    }
    void do_deallocate(void* p, std::size_t bytes, std::size_t align) override {
      --live;
      upstream_->deallocate(p, bytes, align);
    }
    bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
      return this == &other;
    }
    std::pmr::memory_resource* upstream_;
  };

  std::vector<char> storage_ = std::vector<char>(kArenaBytes);
  std::pmr::monotonic_buffer_resource arena_{storage_.data(), storage_.size(),
                                             std::pmr::new_delete_resource()};
  Counting counting_{&arena_};
};

class ConnectionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { app(); }  // map the 16 MiB content once, outside any count

  ConnectionLimits limits{Millis(1000), Millis(5000), 1024 * 1024};
  HeapMemory memory;
  const TimePoint t0 = FakeDriver::kStart;

  // The normalized bytes a fresh connection answers to `input`, fed in one piece.
  std::string reference_output(std::string_view input) {
    FakeDriver d(app(), limits, memory);
    d.run(input);
    return normalize_dates(d.written());
  }
};

std::uint64_t requests_counted() { return counter_total(Counter::kRequests); }

// ---------------------------------------------------------------------------------------------
// Responses and keep-alive.

TEST_F(ConnectionTest, SingleRequestGetsExactResponse) {
  FakeDriver d(app(), limits, memory);
  EXPECT_EQ(d.conn().next(), Step::kRead);
  EXPECT_EQ(d.read(kPing), kPing.size());
  EXPECT_EQ(d.conn().next(), Step::kWrite);
  const Output out = d.conn().output();
  EXPECT_EQ(out.iovcnt, 1);
  EXPECT_EQ(out.file.length, 0u);
  const std::size_t flushed = d.flush();
  EXPECT_EQ(flushed, d.written().size());
  EXPECT_EQ(normalize_dates(d.written()), kPingResponse);
  EXPECT_EQ(d.writes(), 1);
  EXPECT_EQ(d.conn().next(), Step::kRead);
  EXPECT_TRUE(d.conn().output().empty());
}

// /ping and /plaintext answer with bytes App::fixed_response() keeps per thread: they must be
// what append_head() formats, and one App's bytes must never reach another's connection (each
// App below lives on the stack in turn, most likely at the same address as the one before).
TEST_F(ConnectionTest, FixedRouteBytesAreEachAppsOwn) {
  for (const std::string model : {"one", "two", "one"}) {
    const App own(model, content());
    FakeDriver d(own, limits, memory);
    d.run(std::string(kPing) + std::string(kPlaintext));
    const auto r = parse_responses(d.written());
    ASSERT_EQ(r.size(), 2u);
    EXPECT_EQ(r[0].header("Server"), "iolab-" + model);
    EXPECT_EQ(r[1].header("Server"), "iolab-" + model);
    Response resp(std::pmr::new_delete_resource());
    resp.content_type = "application/json";
    resp.text = R"({"message":"pong"})";
    ASSERT_TRUE(resp.fixed());
    std::pmr::string formatted;
    own.append_head(resp, true, false, formatted);
    formatted.append(resp.text);
    EXPECT_EQ(normalize_dates(own.fixed_response(resp)), normalize_dates(formatted));
  }
}

TEST_F(ConnectionTest, RoutesAnswerAsTheDesignSays) {
  FakeDriver d(app(), limits, memory);
  d.run(std::string(kPlaintext) + "GET /missing HTTP/1.1\r\nHost: a\r\n\r\n" +
        "POST /ping HTTP/1.1\r\nHost: a\r\n\r\n" + "GET /bytes?n=5 HTTP/1.1\r\nHost: a\r\n\r\n" +
        "GET /bytes?n=x HTTP/1.1\r\nHost: a\r\n\r\n");
  const auto r = parse_responses(d.written());
  ASSERT_EQ(r.size(), 5u);
  EXPECT_EQ(r[0].head + r[0].body, kPlaintextResponse);
  EXPECT_EQ(r[1].status, 404);
  EXPECT_EQ(r[2].status, 405);
  EXPECT_EQ(r[2].header("Allow"), "GET, HEAD");
  EXPECT_EQ(r[3].status, 200);
  EXPECT_EQ(r[3].body, "abcde");
  EXPECT_EQ(r[4].status, 400);
  for (const auto& resp : r) {
    EXPECT_EQ(resp.header("Server"), "iolab-test");
    EXPECT_TRUE(resp.has_header("Date"));
    EXPECT_EQ(resp.header("Content-Length"), std::to_string(resp.body.size()));
    EXPECT_FALSE(resp.has_header("Connection"));
  }
  EXPECT_EQ(d.conn().next(), Step::kRead);
}

TEST_F(ConnectionTest, KeepAliveServesManyRequests) {
  FakeDriver d(app(), limits, memory);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(d.run(kPing), Step::kRead);
    EXPECT_EQ(normalize_dates(d.take_written()), kPingResponse) << "request " << i;
  }
}

TEST_F(ConnectionTest, ConnectionCloseClosesAfterTheOutputDrains) {
  FakeDriver d(app(), limits, memory);
  d.read("GET /ping HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(d.conn().next(), Step::kWrite);
  EXPECT_TRUE(d.conn().read_space().empty()) << "no more requests are read after close";
  d.write(10);
  EXPECT_EQ(d.conn().next(), Step::kWrite);
  d.flush();
  EXPECT_EQ(d.conn().next(), Step::kClose);
  const auto r = parse_responses(d.written());
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].header("Connection"), "close");
}

TEST_F(ConnectionTest, RequestsAfterConnectionCloseAreNotAnswered) {
  FakeDriver d(app(), limits, memory);
  const std::uint64_t before = requests_counted();
  EXPECT_EQ(d.run("GET /ping HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" +
                  std::string(kPing)),
            Step::kClose);
  EXPECT_EQ(parse_responses(d.written()).size(), 1u);
  EXPECT_EQ(requests_counted() - before, 1u);
}

TEST_F(ConnectionTest, Http10ClosesByDefault) {
  FakeDriver d(app(), limits, memory);
  EXPECT_EQ(d.run("GET /ping HTTP/1.0\r\n\r\n"), Step::kClose);
  const auto r = parse_responses(d.written());
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, 200);
  EXPECT_EQ(r[0].header("Connection"), "close");
  EXPECT_EQ(r[0].head.substr(0, 9), "HTTP/1.1 ");
}

TEST_F(ConnectionTest, Http10KeepAliveIsHonouredAndEchoed) {
  FakeDriver d(app(), limits, memory);
  const std::string request = "GET /ping HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
  EXPECT_EQ(d.run(request), Step::kRead);
  EXPECT_EQ(d.run(request), Step::kRead);
  const auto r = parse_responses(d.written());
  ASSERT_EQ(r.size(), 2u);
  for (const auto& resp : r) EXPECT_EQ(resp.header("Connection"), "keep-alive");
  // A later HTTP/1.0 request without it closes.
  EXPECT_EQ(d.run("GET /ping HTTP/1.0\r\n\r\n"), Step::kClose);
}

// --keepalive-requests N: the Nth response says "Connection: close", and the connection closes
// once it is written; requests pipelined behind it are not answered.
TEST_F(ConnectionTest, KeepAliveRequestsLimitClosesAfterTheNthResponse) {
  limits.keepalive_requests = 3;
  FakeDriver d(app(), limits, memory);
  EXPECT_EQ(d.run(kPing), Step::kRead);
  EXPECT_EQ(d.run(kPing), Step::kRead);
  d.read(kPing);
  EXPECT_TRUE(d.conn().read_space().empty()) << "no request is read after the last one";
  d.write(10);
  EXPECT_EQ(d.conn().next(), Step::kWrite) << "the last response is sent whole";
  d.flush();
  EXPECT_EQ(d.conn().next(), Step::kClose);
  const auto r = parse_responses(d.written());
  ASSERT_EQ(r.size(), 3u);
  EXPECT_FALSE(r[0].has_header("Connection"));
  EXPECT_FALSE(r[1].has_header("Connection"));
  EXPECT_EQ(r[2].header("Connection"), "close");
  EXPECT_EQ(r[2].body, R"({"message":"pong"})");
}

TEST_F(ConnectionTest, KeepAliveRequestsLimitLeavesPipelinedRequestsUnanswered) {
  limits.keepalive_requests = 2;
  FakeDriver d(app(), limits, memory);
  const std::uint64_t before = requests_counted();
  EXPECT_EQ(d.run(std::string(kPing) + std::string(kPlaintext) + std::string(kPing)), Step::kClose);
  const auto r = parse_responses(d.written());
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[1].header("Connection"), "close");
  EXPECT_EQ(requests_counted() - before, 2u);
  EXPECT_TRUE(d.conn().may_have_unread_input())
      << "the unanswered request asks for a lingering close";
}

TEST_F(ConnectionTest, KeepAliveRequestsZeroIsNoLimit) {
  limits.keepalive_requests = 0;
  FakeDriver d(app(), limits, memory);
  for (int i = 0; i < 1100; ++i) ASSERT_EQ(d.run(kPing), Step::kRead) << "request " << i;
  EXPECT_EQ(parse_responses(d.take_written()).size(), 1100u);
}

// ---------------------------------------------------------------------------------------------
// Pipelining, partial writes, backpressure.

// 32 pipelined requests of four kinds; `no_body` marks the HEAD ones.
std::string pipelined_requests(std::vector<bool>* no_body = nullptr) {
  std::string in;
  for (int i = 0; i < 32; ++i) {
    switch (i % 4) {
      case 0: in += kPing; break;
      case 1: in += kPlaintext; break;
      case 2: in += "GET /missing/" + std::to_string(i) + " HTTP/1.1\r\nHost: a\r\n\r\n"; break;
      case 3: in += "HEAD /ping HTTP/1.1\r\nHost: a\r\nX-Index: " + std::to_string(i) + "\r\n\r\n";
    }
    if (no_body) no_body->push_back(i % 4 == 3);
  }
  return in;
}

void expect_pipelined_responses(std::string_view written, const std::vector<bool>& no_body) {
  const auto r = parse_responses(written, no_body);
  ASSERT_EQ(r.size(), 32u);
  for (std::size_t i = 0; i < r.size(); ++i) {
    SCOPED_TRACE("response " + std::to_string(i));
    switch (i % 4) {
      case 0: EXPECT_EQ(r[i].head + r[i].body, kPingResponse); break;
      case 1: EXPECT_EQ(r[i].head + r[i].body, kPlaintextResponse); break;
      case 2: EXPECT_EQ(r[i].status, 404); break;
      case 3:
        EXPECT_EQ(r[i].status, 200);
        EXPECT_EQ(r[i].header("Content-Length"), "18");
        EXPECT_EQ(r[i].body, "");
    }
  }
}

TEST_F(ConnectionTest, ThirtyTwoPipelinedRequestsAnsweredInOrderInOneOutput) {
  FakeDriver d(app(), limits, memory);
  std::vector<bool> no_body;
  const std::string in = pipelined_requests(&no_body);
  EXPECT_EQ(d.read_once(in), in.size());
  const Output out = d.conn().output();
  EXPECT_EQ(out.iovcnt, 1) << "all 32 responses in one buffer";
  EXPECT_EQ(d.run(), Step::kRead);
  EXPECT_EQ(d.writes(), 1);
  expect_pipelined_responses(d.written(), no_body);
}

TEST_F(ConnectionTest, PipelinedRequestsInSmallReadsStillShareOneWrite) {
  FakeDriver d(app(), limits, memory);
  std::vector<bool> no_body;
  EXPECT_EQ(d.run(pipelined_requests(&no_body), 7), Step::kRead);
  EXPECT_EQ(d.writes(), 1) << "the loop reads on while its output is small";
  expect_pipelined_responses(d.written(), no_body);
}

TEST_F(ConnectionTest, OneByteWritesGiveTheSameBytes) {
  std::vector<bool> no_body;
  const std::string in = pipelined_requests(&no_body);
  const std::string whole = reference_output(in);
  FakeDriver d(app(), limits, memory);
  EXPECT_EQ(d.run(in, kUnlimited, 1), Step::kRead);
  EXPECT_EQ(static_cast<std::size_t>(d.writes()), d.written().size());
  EXPECT_EQ(normalize_dates(d.written()), whole);
  expect_pipelined_responses(d.written(), no_body);
}

TEST_F(ConnectionTest, OneByteReadsAndWritesGiveTheSameBytes) {
  std::vector<bool> no_body;
  const std::string in = pipelined_requests(&no_body);
  FakeDriver d(app(), limits, memory);
  EXPECT_EQ(d.run(in, 1, 1), Step::kRead);
  EXPECT_EQ(normalize_dates(d.written()), reference_output(in));
}

TEST_F(ConnectionTest, LargeResponseHoldsBackPipelinedRequestsUntilDrained) {
  FakeDriver d(app(), limits, memory);
  const std::string in = std::string(kPing) + "GET /bytes?n=1000000 HTTP/1.1\r\nHost: a\r\n\r\n" +
                         std::string(kPlaintext) + std::string(kPing);
  const std::uint64_t before = requests_counted();
  EXPECT_EQ(d.read_once(in), in.size());
  EXPECT_EQ(requests_counted() - before, 2u) << "parsing stops behind the large body";
  EXPECT_FALSE(d.conn().wants_read());
  Output out = d.conn().output();
  ASSERT_EQ(out.iovcnt, 2);
  EXPECT_EQ(out.iov[1].iov_len, 1000000u) << "the body is sent from the content, not copied";
  EXPECT_EQ(out.iov[1].iov_base, content().bytes().data());
  std::size_t remaining = out.iov[0].iov_len + out.iov[1].iov_len;
  while (remaining > 0) {
    ASSERT_EQ(requests_counted() - before, 2u) << "parsed before the output drained";
    remaining -= d.write(std::min<std::size_t>(64 * 1024, remaining));
  }
  // The last write drained the output; the held-back requests are answered now, in order.
  EXPECT_EQ(requests_counted() - before, 4u);
  EXPECT_EQ(d.run(), Step::kRead);
  const auto r = parse_responses(d.written());
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0].head + r[0].body, kPingResponse);
  EXPECT_EQ(r[1].status, 200);
  EXPECT_EQ(r[1].header("Content-Type"), "application/octet-stream");
  EXPECT_EQ(r[1].body, content().bytes().substr(0, 1000000));
  EXPECT_EQ(r[2].head + r[2].body, kPlaintextResponse);
  EXPECT_EQ(r[3].head + r[3].body, kPingResponse);
}

TEST_F(ConnectionTest, WantsReadWhileOutputIsSmall) {
  FakeDriver d(app(), limits, memory);
  d.read(kPing);
  EXPECT_EQ(d.conn().next(), Step::kWrite);
  EXPECT_TRUE(d.conn().wants_read());
  EXPECT_FALSE(d.conn().read_space().empty());
}

// ---------------------------------------------------------------------------------------------
// Request bodies.

constexpr std::string_view kContentLengthPost =
    "POST /ping HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world";
constexpr std::string_view kChunkedPost =
    "POST /ping HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n";

void expect_body_then_plaintext(std::string_view written) {
  const auto r = parse_responses(written);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].status, 405) << "POST /ping";
  EXPECT_EQ(r[1].head + r[1].body, kPlaintextResponse);
}

TEST_F(ConnectionTest, ContentLengthBodyIsDiscardedAtEverySplit) {
  const std::string in = std::string(kContentLengthPost) + std::string(kPlaintext);
  const std::string whole = reference_output(in);
  expect_body_then_plaintext(whole);
  for (std::size_t split = 1; split < in.size(); ++split) {
    FakeDriver d(app(), limits, memory);
    d.run(std::string_view(in).substr(0, split));
    EXPECT_EQ(d.run(std::string_view(in).substr(split)), Step::kRead);
    ASSERT_EQ(normalize_dates(d.written()), whole) << "split at " << split;
  }
}

TEST_F(ConnectionTest, ChunkedBodyIsDiscardedAtEveryPairOfSplits) {
  const std::string in = std::string(kChunkedPost) + std::string(kPlaintext);
  const std::string whole = reference_output(in);
  expect_body_then_plaintext(whole);
  for (std::size_t a = 1; a < in.size(); ++a) {
    for (std::size_t b = a; b < in.size(); ++b) {
      FakeDriver d(app(), limits, memory);
      d.run(std::string_view(in).substr(0, a));
      d.run(std::string_view(in).substr(a, b - a));
      EXPECT_EQ(d.run(std::string_view(in).substr(b)), Step::kRead);
      ASSERT_EQ(normalize_dates(d.written()), whole) << "split at " << a << " and " << b;
    }
  }
}

TEST_F(ConnectionTest, BodiesFedOneByteAtATime) {
  const std::string in = std::string(kContentLengthPost) + std::string(kChunkedPost) +
                         std::string(kPlaintext);
  FakeDriver d(app(), limits, memory);
  EXPECT_EQ(d.run(in, 1), Step::kRead);
  EXPECT_EQ(normalize_dates(d.written()), reference_output(in));
  EXPECT_EQ(parse_responses(d.written()).size(), 3u);
}

TEST_F(ConnectionTest, ExpectContinueIsSentBeforeTheBodyIsRead) {
  FakeDriver d(app(), limits, memory);
  const std::string head =
      "POST /ping HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n";
  const std::uint64_t before = requests_counted();
  EXPECT_EQ(d.run(head), Step::kRead);
  EXPECT_EQ(d.written(), kContinue);
  EXPECT_EQ(requests_counted() - before, 0u) << "the request waits for its body";
  EXPECT_EQ(d.run("hello"), Step::kRead);
  const auto r = parse_responses(d.written());
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].status, 100);
  EXPECT_EQ(r[1].status, 405);
  EXPECT_EQ(d.written().find(kContinue, 1), std::string::npos) << "sent once";
}

TEST_F(ConnectionTest, ExpectContinueOnlyWhenABodyIsExpected) {
  FakeDriver d(app(), limits, memory);
  d.run("GET /ping HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n");
  EXPECT_EQ(normalize_dates(d.take_written()), kPingResponse);
  d.run("POST /ping HTTP/1.0\r\nConnection: keep-alive\r\nExpect: 100-continue\r\n"
        "Content-Length: 2\r\n\r\nhi");
  const auto r = parse_responses(d.written());
  ASSERT_EQ(r.size(), 1u) << "no 100 Continue to an HTTP/1.0 client";
  EXPECT_EQ(r[0].status, 405);
}

TEST_F(ConnectionTest, ContentLengthOverMaxBodyGets413AndCloses) {
  limits.max_body_bytes = 100;
  FakeDriver d(app(), limits, memory);
  EXPECT_EQ(d.run("POST /ping HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n"), Step::kClose);
  const auto r = parse_responses(d.written());
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, 413);
  EXPECT_EQ(r[0].header("Connection"), "close");
}

// Lingering close (servers/core/os/linger.hpp) asks the socket only when the core says the peer
// may still be sending: after an error, with bytes buffered past the last request, or mid-body;
// never when the client asked to close or has closed.
TEST_F(ConnectionTest, MayHaveUnreadInputOnlyWhenThePeerMayStillSend) {
  {
    FakeDriver d(app(), limits, memory);
    EXPECT_EQ(d.run("GET /ping HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"), Step::kClose);
    EXPECT_FALSE(d.conn().may_have_unread_input()) << "the client asked to close";
  }
  {
    FakeDriver d(app(), limits, memory);
    EXPECT_EQ(d.run("GET /ping HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" +
                    std::string(kPing)),
              Step::kClose);
    EXPECT_TRUE(d.conn().may_have_unread_input()) << "a request is buffered past the close";
  }
  {
    limits.max_body_bytes = 100;
    FakeDriver d(app(), limits, memory);
    EXPECT_EQ(d.run("POST /ping HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n"),
              Step::kClose);
    EXPECT_TRUE(d.conn().may_have_unread_input()) << "a 413: the body may still be arriving";
    d.eof();
    EXPECT_FALSE(d.conn().may_have_unread_input()) << "the peer closed: nothing more comes";
  }
}

TEST_F(ConnectionTest, ContentLengthAtMaxBodyIsAccepted) {
  limits.max_body_bytes = 100;
  FakeDriver d(app(), limits, memory);
  EXPECT_EQ(d.run("POST /ping HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n" +
                  std::string(100, 'x') + std::string(kPing)),
            Step::kRead);
  const auto r = parse_responses(d.written());
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].status, 405);
  EXPECT_EQ(r[1].head + r[1].body, kPingResponse);
}

TEST_F(ConnectionTest, ChunkedBodyGrowingOverMaxBodyGets413AndCloses) {
  limits.max_body_bytes = 100;
  FakeDriver d(app(), limits, memory);
  const std::string chunk = "3c\r\n" + std::string(60, 'x') + "\r\n";
  EXPECT_EQ(d.run("POST /ping HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk),
            Step::kRead);
  EXPECT_EQ(d.written(), "") << "60 bytes are within the limit";
  EXPECT_EQ(d.run(chunk), Step::kClose);
  const auto r = parse_responses(d.written());
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, 413);
  EXPECT_EQ(r[0].header("Connection"), "close");
}

TEST_F(ConnectionTest, ChunkedBodyAtMaxBodyIsAccepted) {
  limits.max_body_bytes = 100;
  FakeDriver d(app(), limits, memory);
  const std::string body = "32\r\n" + std::string(50, 'x') + "\r\n32\r\n" + std::string(50, 'y') +
                           "\r\n0\r\n\r\n";
  EXPECT_EQ(d.run("POST /ping HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + body),
            Step::kRead);
  const auto r = parse_responses(d.written());
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, 405);
}

// ---------------------------------------------------------------------------------------------
// Protocol errors: each one answers its status and closes, ignoring what follows.

struct ErrorCase {
  std::string name;
  std::string input;
  int status;
};

void PrintTo(const ErrorCase& c, std::ostream* os) { *os << c.name; }

class ConnectionErrorTest : public ConnectionTest,
                            public ::testing::WithParamInterface<ErrorCase> {};

TEST_P(ConnectionErrorTest, AnswersTheStatusAndCloses) {
  const ErrorCase& c = GetParam();
  FakeDriver d(app(), limits, memory);
  const std::uint64_t before = requests_counted();
  EXPECT_EQ(d.run(c.input + std::string(kPing)), Step::kClose);
  const auto r = parse_responses(d.written());
  ASSERT_EQ(r.size(), 1u) << "the pipelined request after the error is not answered";
  EXPECT_EQ(r[0].status, c.status);
  EXPECT_EQ(r[0].header("Connection"), "close");
  EXPECT_EQ(r[0].header("Server"), "iolab-test");
  EXPECT_TRUE(r[0].has_header("Date"));
  EXPECT_EQ(r[0].body, std::string(reason_phrase(c.status)) + "\n");
  EXPECT_EQ(requests_counted() - before, 0u);
}

std::vector<ErrorCase> error_cases() {
  return {
      {"MalformedHeader400", "GET /ping HTTP/1.1\r\nHost : a\r\n\r\n", 400},
      {"MissingHost400", "GET /ping HTTP/1.1\r\n\r\n", 400},
      {"ContentLengthAndChunked400",
       "POST /ping HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
       400},
      {"TlsHandshake400", std::string("\x16\x03\x01\x02\x00\x01", 6), 400},
      {"BadChunk400",
       "POST /ping HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
      {"LongRequestLine414", "GET /" + std::string(9000, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n", 414},
      {"BodyTooLarge413", "POST /ping HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n", 413},
      {"TooManyHeaders431", [] {
         std::string in = "GET /ping HTTP/1.1\r\nHost: a\r\n";
         for (int i = 0; i < 100; ++i) in += "X-" + std::to_string(i) + ": v\r\n";
         return in + "\r\n";
       }(), 431},
      {"HugeHeaderSection431",
       "GET /ping HTTP/1.1\r\nHost: a\r\nCookie: " + std::string(17000, 'c') + "\r\n\r\n", 431},
      {"GzipTransferEncoding501",
       "POST /ping HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
      {"Http2Version505", "GET /ping HTTP/2.0\r\nHost: a\r\n\r\n", 505},
  };
}

INSTANTIATE_TEST_SUITE_P(Statuses, ConnectionErrorTest, ::testing::ValuesIn(error_cases()),
                         [](const ::testing::TestParamInfo<ErrorCase>& param_info) {
                           return param_info.param.name;
                         });

TEST_F(ConnectionTest, ErrorAfterAGoodPipelinedRequestKeepsOrder) {
  FakeDriver d(app(), limits, memory);
  EXPECT_EQ(d.run(std::string(kPing) + "GET / HTTP/9.9\r\n\r\n" + std::string(kPing)),
            Step::kClose);
  const auto r = parse_responses(d.written());
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].head + r[0].body, kPingResponse);
  EXPECT_EQ(r[1].status, 505);
}

// ---------------------------------------------------------------------------------------------
// File regions and HEAD.

TEST_F(ConnectionTest, FileRouteGivesAFileRegion) {
  FakeDriver d(app(), limits, memory);
  d.read("GET /file?n=100000 HTTP/1.1\r\nHost: a\r\n\r\n" + std::string(kPing));
  Output out = d.conn().output();
  ASSERT_EQ(out.iovcnt, 1);
  const std::size_t head_bytes = out.iov[0].iov_len;
  const std::string head(static_cast<const char*>(out.iov[0].iov_base), head_bytes);
  EXPECT_NE(head.find("\r\nContent-Length: 100000\r\n"), std::string::npos);
  EXPECT_EQ(head.substr(head.size() - 4), "\r\n\r\n") << "only the head goes through writev";
  EXPECT_EQ(out.file.fd, content().fd());
  EXPECT_EQ(out.file.offset, 0u);
  EXPECT_EQ(out.file.length, 100000u);
  EXPECT_FALSE(d.conn().wants_read());

  d.write(head_bytes + 1000);
  out = d.conn().output();
  EXPECT_EQ(out.iovcnt, 0);
  EXPECT_EQ(out.file.offset, 1000u);
  EXPECT_EQ(out.file.length, 99000u);
  EXPECT_EQ(d.run({}, kUnlimited, 30000), Step::kRead);
  const auto r = parse_responses(d.written());
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].body, content().bytes().substr(0, 100000));
  EXPECT_EQ(r[1].head + r[1].body, kPingResponse) << "answered after the file, in order";
}

TEST_F(ConnectionTest, HeadOfFileHasNoBodyAndNoFileRegion) {
  FakeDriver d(app(), limits, memory);
  d.read("HEAD /file?n=100000 HTTP/1.1\r\nHost: a\r\n\r\n");
  const Output out = d.conn().output();
  EXPECT_EQ(out.iovcnt, 1);
  EXPECT_EQ(out.file.length, 0u);
  EXPECT_EQ(d.run(), Step::kRead);
  const auto r = parse_responses(d.written(), {true});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].header("Content-Length"), "100000");
  EXPECT_EQ(r[0].body, "");
}

TEST_F(ConnectionTest, HeadOfBytesHasNoBody) {
  FakeDriver d(app(), limits, memory);
  d.read("HEAD /bytes?n=5000 HTTP/1.1\r\nHost: a\r\n\r\n");
  const Output out = d.conn().output();
  EXPECT_EQ(out.iovcnt, 1);
  EXPECT_EQ(d.run(std::string(kPing)), Step::kRead);
  const auto r = parse_responses(d.written(), {true});
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].header("Content-Length"), "5000");
  EXPECT_EQ(r[1].head + r[1].body, kPingResponse);
}

// ---------------------------------------------------------------------------------------------
// Deferred work.

TEST_F(ConnectionTest, SleepIsHandedOutAsDeferredWork) {
  FakeDriver d(app(), limits, memory);
  d.read("GET /sleep?ms=25 HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(d.conn().next(), Step::kRunWork);
  EXPECT_TRUE(d.conn().output().empty());
  EXPECT_FALSE(d.conn().wants_read());
  const DeferredWork work = d.conn().take_work();
  EXPECT_EQ(work.sleep_ms, 25u);
  EXPECT_EQ(d.conn().next(), Step::kWaitWork);
  EXPECT_TRUE(d.conn().output().empty()) << "nothing is sent before the work is done";
  d.advance(25ms);
  EXPECT_EQ(d.conn().on_work_done(d.now()), Step::kWrite);
  d.flush();
  const auto r = parse_responses(d.written());
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, 200);
  EXPECT_EQ(r[0].body, "slept\n");
  EXPECT_EQ(d.conn().next(), Step::kRead);
}

TEST_F(ConnectionTest, PipelinedRequestsWaitBehindDeferredWork) {
  FakeDriver d(app(), limits, memory);
  d.set_run_work(false);
  const std::uint64_t before = requests_counted();
  EXPECT_EQ(d.run(std::string(kPing) + "GET /sleep?ms=1 HTTP/1.1\r\nHost: a\r\n\r\n" +
                  std::string(kPlaintext)),
            Step::kRunWork);
  EXPECT_EQ(requests_counted() - before, 2u) << "/plaintext is not parsed yet";
  EXPECT_EQ(normalize_dates(d.take_written()), kPingResponse);
  d.conn().take_work();
  EXPECT_EQ(d.run(kPing), Step::kWaitWork) << "input arriving during the work waits too";
  EXPECT_EQ(d.written(), "");
  EXPECT_EQ(requests_counted() - before, 2u);
  EXPECT_EQ(d.conn().on_work_done(d.now()), Step::kWrite);
  EXPECT_EQ(d.run(), Step::kRead);
  const auto r = parse_responses(d.written());
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].body, "slept\n");
  EXPECT_EQ(r[1].head + r[1].body, kPlaintextResponse);
  EXPECT_EQ(r[2].head + r[2].body, kPingResponse);
}

TEST_F(ConnectionTest, HeadOfSleepHasNoBody) {
  FakeDriver d(app(), limits, memory);
  EXPECT_EQ(d.run("HEAD /sleep?ms=0 HTTP/1.1\r\nHost: a\r\n\r\n"), Step::kRead);
  ASSERT_EQ(d.work_done().size(), 1u);
  const auto r = parse_responses(d.written(), {true});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].header("Content-Length"), "6");
  EXPECT_EQ(r[0].body, "");
}

// ---------------------------------------------------------------------------------------------
// Timers, on the fake clock.

TEST_F(ConnectionTest, HeaderTimeoutRunsFromConstruction) {
  FakeDriver d(app(), limits, memory);
  EXPECT_EQ(d.conn().next_deadline(), t0 + 1000ms);
  d.advance(999ms);
  EXPECT_EQ(d.conn().on_timeout(d.now()), Step::kRead);
  EXPECT_FALSE(d.conn().timed_out());
  d.advance(1ms);
  EXPECT_EQ(d.conn().on_timeout(d.now()), Step::kClose);
  EXPECT_TRUE(d.conn().timed_out());
}

TEST_F(ConnectionTest, HeaderTimerIsNotExtendedByASlowHead) {
  FakeDriver d(app(), limits, memory);
  d.advance(300ms);
  d.read("GET /ping HT");
  EXPECT_EQ(d.conn().next_deadline(), t0 + 1000ms);
  d.advance(600ms);
  d.read("TP/1.1\r\nHost: a\r\n");
  EXPECT_EQ(d.conn().next_deadline(), t0 + 1000ms);
  d.advance(100ms);
  EXPECT_EQ(d.conn().on_timeout(d.now()), Step::kClose);
  EXPECT_EQ(d.written(), "") << "a timed-out connection is dropped, not answered";
}

TEST_F(ConnectionTest, IdleTimeoutRunsFromTheEndOfTheResponse) {
  FakeDriver d(app(), limits, memory);
  d.advance(100ms);
  d.read(kPing);
  d.advance(200ms);
  d.write(10);
  EXPECT_EQ(d.conn().next_deadline(), t0 + 300ms + 5000ms) << "a send stall is bounded too";
  d.advance(300ms);
  d.flush();
  const TimePoint end_of_response = t0 + 600ms;
  EXPECT_EQ(d.conn().next_deadline(), end_of_response + 5000ms);
  d.advance(4999ms);
  EXPECT_EQ(d.conn().on_timeout(d.now()), Step::kRead);
  d.advance(1ms);
  EXPECT_EQ(d.conn().on_timeout(d.now()), Step::kClose);
  EXPECT_TRUE(d.conn().timed_out());
}

TEST_F(ConnectionTest, HeaderTimerRestartsAtTheFirstByteOfTheNextRequest) {
  FakeDriver d(app(), limits, memory);
  d.run(kPing);
  EXPECT_EQ(d.conn().next_deadline(), t0 + 5000ms);
  d.advance(2000ms);
  d.read("G");
  EXPECT_EQ(d.conn().next_deadline(), t0 + 2000ms + 1000ms);
  d.advance(500ms);
  d.read("ET /ping HTTP/1.1\r\n");
  EXPECT_EQ(d.conn().next_deadline(), t0 + 3000ms) << "not restarted by later bytes";
  d.advance(499ms);
  EXPECT_EQ(d.conn().on_timeout(d.now()), Step::kRead);
  d.advance(1ms);
  EXPECT_EQ(d.conn().on_timeout(d.now()), Step::kClose);
}

TEST_F(ConnectionTest, HeaderTimerStartsForAPipelinedPartialHead) {
  FakeDriver d(app(), limits, memory);
  d.advance(700ms);
  d.read(std::string(kPing) + "GET /pi");
  d.flush();
  EXPECT_EQ(d.conn().next_deadline(), t0 + 700ms + 1000ms);
}

TEST_F(ConnectionTest, BodyReadIsBoundedByTheIdleTimeout) {
  FakeDriver d(app(), limits, memory);
  d.advance(100ms);
  d.read("POST /ping HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
  EXPECT_EQ(d.conn().next_deadline(), t0 + 100ms + 5000ms);
  d.advance(1000ms);
  d.read("def");
  EXPECT_EQ(d.conn().next_deadline(), t0 + 1100ms + 5000ms);
}

TEST_F(ConnectionTest, NoTimerWhileDeferredWorkRuns) {
  FakeDriver d(app(), limits, memory);
  d.read("GET /sleep?ms=9000 HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(d.conn().next(), Step::kRunWork);
  EXPECT_EQ(d.conn().next_deadline(), TimePoint::max());
  d.conn().take_work();
  EXPECT_EQ(d.conn().next_deadline(), TimePoint::max());
  d.advance(9000ms);
  EXPECT_EQ(d.conn().on_timeout(d.now()), Step::kWaitWork);
  EXPECT_FALSE(d.conn().timed_out());
  EXPECT_EQ(d.conn().on_work_done(d.now()), Step::kWrite);
  EXPECT_EQ(d.conn().next_deadline(), d.now() + 5000ms);
}

// ---------------------------------------------------------------------------------------------
// End of input.

TEST_F(ConnectionTest, PeerEofAfterAFullRequestStillGetsTheResponse) {
  FakeDriver d(app(), limits, memory);
  d.read(kPing);
  EXPECT_EQ(d.eof(), Step::kWrite);
  EXPECT_TRUE(d.conn().read_space().empty());
  d.flush();
  EXPECT_EQ(normalize_dates(d.written()), kPingResponse);
  EXPECT_EQ(d.conn().next(), Step::kClose);
}

TEST_F(ConnectionTest, PeerEofAnswersEveryBufferedRequest) {
  FakeDriver d(app(), limits, memory);
  d.read("GET /bytes?n=200000 HTTP/1.1\r\nHost: a\r\n\r\n" + std::string(kPing) +
         std::string(kPlaintext));
  EXPECT_EQ(d.eof(), Step::kWrite);
  EXPECT_EQ(d.run({}, kUnlimited, 4096), Step::kClose);
  const auto r = parse_responses(d.written());
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[1].head + r[1].body, kPingResponse);
  EXPECT_EQ(r[2].head + r[2].body, kPlaintextResponse);
}

TEST_F(ConnectionTest, PeerEofMidHeadCloses) {
  FakeDriver d(app(), limits, memory);
  d.read("GET /ping HTTP/1.1\r\nHo");
  EXPECT_EQ(d.eof(), Step::kClose);
  EXPECT_EQ(d.written(), "");
}

TEST_F(ConnectionTest, PeerEofMidBodyCloses) {
  FakeDriver d(app(), limits, memory);
  d.read("POST /ping HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
  EXPECT_EQ(d.eof(), Step::kClose);
  EXPECT_EQ(d.written(), "");
}

// ---------------------------------------------------------------------------------------------
// Input in buffers the kernel chose (on_input).

TEST_F(ConnectionTest, KernelBufferIsParsedInPlace) {
  FakeDriver d(app(), limits, memory);
  EXPECT_EQ(d.input(kPing), Step::kWrite);
  EXPECT_FALSE(d.conn().holds_buffer()) << "a whole request needs no buffer of the connection";
  d.flush();
  EXPECT_EQ(normalize_dates(d.written()), kPingResponse);
}

TEST_F(ConnectionTest, KernelBufferLeftoverIsKept) {
  FakeDriver d(app(), limits, memory);
  EXPECT_EQ(d.input("GET /ping HTTP/1.1\r\nHo"), Step::kRead);
  EXPECT_TRUE(d.conn().holds_buffer()) << "the incomplete head is copied out";
  EXPECT_EQ(d.input("st: a\r\n\r\n"), Step::kWrite);
  d.flush();
  EXPECT_EQ(normalize_dates(d.written()), kPingResponse);
}

TEST_F(ConnectionTest, KernelBuffersAtEverySplit) {
  const std::string in = std::string(kPing) + std::string(kContentLengthPost) +
                         std::string(kPlaintext);
  const std::string whole = reference_output(in);
  for (std::size_t split = 1; split < in.size(); ++split) {
    FakeDriver d(app(), limits, memory);
    d.input(std::string_view(in).substr(0, split));
    d.flush();
    d.input(std::string_view(in).substr(split));
    d.flush();
    ASSERT_EQ(normalize_dates(d.written()), whole) << "split at " << split;
    EXPECT_EQ(d.conn().next(), Step::kRead);
  }
}

TEST_F(ConnectionTest, KernelBufferWithPipelinedRequestsBehindDeferredWork) {
  FakeDriver d(app(), limits, memory);
  EXPECT_EQ(d.input("GET /sleep?ms=1 HTTP/1.1\r\nHost: a\r\n\r\n" + std::string(kPing)),
            Step::kRunWork);
  d.conn().take_work();
  EXPECT_EQ(d.conn().on_work_done(d.now()), Step::kWrite);
  d.flush();
  const auto r = parse_responses(d.written());
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].body, "slept\n");
  EXPECT_EQ(r[1].head + r[1].body, kPingResponse);
}

// ---------------------------------------------------------------------------------------------
// Buffers.

TEST_F(ConnectionTest, ReleaseIdleBuffers) {
  FakeDriver d(app(), limits, memory);
  EXPECT_FALSE(d.conn().holds_buffer());
  EXPECT_TRUE(d.conn().release_idle_buffers());
  d.run(kPing);
  EXPECT_TRUE(d.conn().holds_buffer());
  EXPECT_TRUE(d.conn().release_idle_buffers());
  EXPECT_FALSE(d.conn().holds_buffer());
  d.run("GET /ping HTTP/1.1\r\n");
  EXPECT_FALSE(d.conn().release_idle_buffers()) << "a partial request is buffered";
  EXPECT_TRUE(d.conn().holds_buffer());
  d.run("Host: a\r\n\r\n");
  EXPECT_TRUE(d.conn().release_idle_buffers());
  EXPECT_FALSE(d.conn().holds_buffer());
  EXPECT_EQ(parse_responses(d.written()).size(), 2u);
}

TEST_F(ConnectionTest, ReadSpaceGrowsForALargeHead) {
  FakeDriver d(app(), limits, memory);
  // A 6 KiB request line and a 14 KiB header section: legal, and larger than the first buffer.
  std::string head = "GET /ping?" + std::string(6 * 1024, 'q') + " HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; head.size() < 20 * 1024; ++i) {
    head += "X-Filler-" + std::to_string(i) + ": " + std::string(200, 'f') + "\r\n";
  }
  head += "\r\n";
  EXPECT_EQ(d.conn().read_space().size(), Connection::kInputBufferBytes);
  EXPECT_EQ(d.read_once(head), Connection::kInputBufferBytes);
  EXPECT_GE(d.conn().read_space().size(), head.size() - Connection::kInputBufferBytes);
  EXPECT_EQ(d.run(std::string_view(head).substr(Connection::kInputBufferBytes)), Step::kRead);
  EXPECT_EQ(normalize_dates(d.written()), kPingResponse);
}

// The parser accepts up to 8 KiB of empty lines before a request line, so a legal head can be
// longer than kLargeInputBufferBytes. While the connection waits for the rest of a head
// (next() == kRead), it must offer read space, or a server can neither read nor answer.
TEST_F(ConnectionTest, ReadSpaceIsOfferedWhileALegalHeadIsIncomplete) {
  const std::string request_line =
      "GET /ping?" + std::string(8192 - 19, 'q') + " HTTP/1.1\r\n";  // 8192 bytes and CRLF
  const std::string headers = "Host: a\r\nX: " + std::string(16384 - 9 - 5, 'x') + "\r\n\r\n";
  const std::string in = std::string(http::kMaxLeadingEmptyBytes, '\n') + request_line + headers;
  http::RequestHead head;
  ASSERT_EQ(http::parse_request_head(in, head).status, http::ParseStatus::kComplete)
      << "the parser accepts this head";
  FakeDriver d(app(), limits, memory);
  const Step step = d.run(in);
  EXPECT_EQ(d.pending_input(), 0u) << "next() is " << ::testing::PrintToString(d.conn().next())
                                   << " but read_space() has "
                                   << d.conn().read_space().size() << " bytes";
  EXPECT_EQ(step, Step::kRead);
  EXPECT_EQ(normalize_dates(d.written()), kPingResponse);
}

// ---------------------------------------------------------------------------------------------
// Memory lifetime under pipelining.

TEST_F(ConnectionTest, ArenaIsResetOnlyAfterTheOutputDrains) {
  const std::string in = "GET /ping HTTP/1.1\r\nHost: a\r\nUser-Agent: test/1.0\r\n\r\n" +
                         std::string(kPlaintext) +
                         "GET /ping HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n";
  TrackingMemory arena;
  FakeDriver d(app(), limits, arena);
  d.read_once(in);
  ASSERT_FALSE(d.conn().output().empty());
  EXPECT_GT(arena.live_objects(), 0) << "the pending output lives in the arena";
  while (!d.conn().output().empty()) {
    ASSERT_EQ(arena.resets, 0) << "reset before the last byte was written, after "
                               << d.written().size() << " bytes";
    d.write(1);
  }
  EXPECT_EQ(arena.resets, 1);
  EXPECT_EQ(arena.resets_with_live_objects, 0);
  EXPECT_EQ(normalize_dates(d.written()), reference_output(in));
}

TEST_F(ConnectionTest, ArenaIsNotResetWhileARequestAwaitsItsBody) {
  TrackingMemory arena;
  FakeDriver d(app(), limits, arena);
  d.run("POST /ping HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
  EXPECT_EQ(d.written(), kContinue);
  EXPECT_EQ(arena.resets, 0) << "the request is still alive";
  d.run("hel");
  d.run("lo");
  EXPECT_EQ(arena.resets, 1);
  EXPECT_EQ(arena.resets_with_live_objects, 0);
  EXPECT_EQ(parse_responses(d.written()).back().status, 405);
}

TEST_F(ConnectionTest, ArenaIsNotResetWhileDeferredWorkIsPending) {
  TrackingMemory arena;
  FakeDriver d(app(), limits, arena);
  d.set_run_work(false);
  const std::string in = std::string(kPing) +
                         "GET /sleep?ms=1 HTTP/1.1\r\nHost: a\r\nUser-Agent: test\r\n\r\n" +
                         std::string(kPlaintext);
  EXPECT_EQ(d.run(in, kUnlimited, 3), Step::kRunWork);
  EXPECT_EQ(arena.resets, 0) << "the /sleep response waits in the arena";
  d.conn().take_work();
  d.conn().on_work_done(d.now());
  EXPECT_EQ(d.run({}, kUnlimited, 3), Step::kRead);
  EXPECT_GE(arena.resets, 1);
  EXPECT_EQ(arena.resets_with_live_objects, 0);
  EXPECT_EQ(normalize_dates(d.written()), reference_output(in));
}

TEST_F(ConnectionTest, ArenaSurvivesManyPipelinedRoundsWithPartialWrites) {
  TrackingMemory arena;
  std::vector<bool> no_body;
  const std::string in = pipelined_requests(&no_body) + std::string(kChunkedPost) +
                         std::string(kContentLengthPost) + "GET /bytes?n=3000 HTTP/1.1\r\nHost: a\r\n\r\n";
  FakeDriver d(app(), limits, arena);
  EXPECT_EQ(d.run(in, 100, 37), Step::kRead);
  EXPECT_EQ(arena.resets_with_live_objects, 0);
  EXPECT_GE(arena.resets, 1);
  EXPECT_EQ(normalize_dates(d.written()), reference_output(in));
}

TEST_F(ConnectionTest, DestroyingAConnectionFreesEverything) {
  TrackingMemory arena;
  {
    FakeDriver d(app(), limits, arena);
    d.read(std::string(kPing) + "POST /ping HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\nab");
    EXPECT_GT(arena.live_objects(), 0);
    EXPECT_EQ(arena.buffers_held, 1);
  }
  EXPECT_EQ(arena.live_objects(), 0);
  EXPECT_EQ(arena.resets_with_live_objects, 0);
  EXPECT_EQ(arena.buffers_held, 0);
}

// ---------------------------------------------------------------------------------------------
// Allocations per request (counted by the replaced operator new).

// Serves `request` `n` times on one keep-alive connection through the Connection API directly
// (the fake driver's own strings would allocate); returns the allocations of each request.
std::vector<std::uint64_t> allocations_per_request(ConnectionMemory& memory,
                                                   const ConnectionLimits& limits,
                                                   std::string_view request, int n) {
  std::vector<std::uint64_t> counts(static_cast<std::size_t>(n));
  Connection conn(app(), limits, memory, FakeDriver::kStart);
  for (int i = -3; i < n; ++i) {  // three warm-up requests
    const std::uint64_t before = counter_total(Counter::kAllocations);
    const std::span<char> space = conn.read_space();
    std::memcpy(space.data(), request.data(), request.size());
    conn.on_read(request.size(), FakeDriver::kStart);
    while (conn.next() == Step::kWrite) {
      const Output out = conn.output();
      std::size_t bytes = static_cast<std::size_t>(out.file.length);
      for (int j = 0; j < out.iovcnt; ++j) bytes += out.iov[static_cast<std::size_t>(j)].iov_len;
      conn.on_written(bytes, FakeDriver::kStart);
    }
    const std::uint64_t after = counter_total(Counter::kAllocations);
    if (i >= 0) counts[static_cast<std::size_t>(i)] = after - before;
  }
  return counts;
}

constexpr std::string_view kCurlPing =
    "GET /ping HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";

TEST_F(ConnectionTest, AllocationsPerRequestWithHeapMemoryAreFewAndConstant) {
  for (std::string_view request : {kPlaintext, kPing, kCurlPing}) {
    const auto counts = allocations_per_request(memory, limits, request, 1000);
    for (std::uint64_t c : counts) ASSERT_EQ(c, counts[0]) << "every request allocates alike";
    EXPECT_GT(counts[0], 0u) << "HeapMemory allocates the way typical servers do";
    EXPECT_LE(counts[0], 10u);
    std::cout << "[ measured ] HeapMemory allocations per request for "
              << request.substr(0, request.find('\r')) << " with "
              << std::count(request.begin(), request.end(), '\n') - 2
              << " headers: " << counts[0] << "\n";
    RecordProperty("heap_allocations_per_request_" + std::to_string(request.size()) + "_bytes",
                   static_cast<int>(counts[0]));
  }
}

TEST_F(ConnectionTest, AllocationsPerRequestWithAnArenaAreZero) {
  TrackingMemory arena;
  for (std::string_view request : {kPlaintext, kPing, kCurlPing}) {
    const auto counts = allocations_per_request(arena, limits, request, 1000);
    for (std::uint64_t c : counts) ASSERT_EQ(c, 0u) << request.substr(0, request.find('\r'));
  }
}

}  // namespace
}  // namespace iolab
