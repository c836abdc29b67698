// Conformance cases (conformance.hpp): The header and idle timers, checked as mechanisms with
// generous bounds.

#include "conformance.hpp"

namespace iolab::test {
namespace {

// ================================ timers ==================================================
// Mechanism checks with generous bounds: a close is accepted between 0.5x and 3x the timeout.

// Accepts a close, possibly preceded by a 408 (some servers say why before closing).
void expect_closed_in(const CloseResult& closed, Ms low, Ms high, std::string_view what) {
  EXPECT_TRUE(closed.kind == CloseKind::Closed || closed.kind == CloseKind::Reset)
      << what << ": connection " << to_string(closed.kind) << " after " << closed.elapsed.count() << " ms";
  EXPECT_TRUE(closed.extra.empty() || closed.extra.rfind("HTTP/1.1 408 ", 0) == 0)
      << what << ": unexpected bytes before the close: " << printable(closed.extra);
  EXPECT_GE(closed.elapsed, low) << what << ": closed too early";
  EXPECT_LE(closed.elapsed, high) << what << ": closed too late";
}

TEST_P(Conformance, HeaderTimeoutClosesPartialHead) {
  START_SERVER({{"--header-timeout-ms", "500"}, {"--idle-timeout-ms", "5000"}});
  Conn c = connect();
  ASSERT_TRUE(c.send("GET /ping HTTP/1.1\r\nHost: x\r\n"));
  expect_closed_in(c.wait_closed(5000ms), 250ms, 1500ms, "partial head");
}

TEST_P(Conformance, HeaderTimeoutNotExtendedByDrippedBytes) {
  // Slowloris proper: a byte every 200 ms keeps the connection busy but the head never ends.
  // The header timer runs from the first byte; arriving bytes must not push it back.
  START_SERVER({{"--header-timeout-ms", "800"}, {"--idle-timeout-ms", "5000"}});
  Conn c = connect();
  c.set_nodelay();
  const std::string head = "GET /ping HTTP/1.1\r\nHost: x\r\nX-Drip: aaaaaaaaaaaaaaaaaaaaaaaaaaaa";
  const auto t0 = Clock::now();
  bool closed = false;
  for (char ch : head) {
    if (!c.send(std::string_view(&ch, 1))) {
      closed = true;
      break;
    }
    std::this_thread::sleep_for(200ms);
    if (!c.looks_open()) {
      closed = true;
      break;
    }
    if (Clock::now() - t0 > 3000ms) break;
  }
  const auto elapsed = std::chrono::duration_cast<Ms>(Clock::now() - t0);
  EXPECT_TRUE(closed) << "a head dripped for " << elapsed.count() << " ms was never closed";
  EXPECT_LT(elapsed, 2000ms) << "the header timer was pushed back by arriving bytes";
}

TEST_P(Conformance, HeaderTimeoutClosesSilentConnection) {
  START_SERVER({{"--header-timeout-ms", "500"}, {"--idle-timeout-ms", "5000"}});
  Conn c = connect();
  expect_closed_in(c.wait_closed(5000ms), 250ms, 1500ms, "connection that sends nothing");
}

TEST_P(Conformance, HeaderTimerStartsAtFirstByteOfLaterRequest) {
  START_SERVER({{"--header-timeout-ms", "500"}, {"--idle-timeout-ms", "5000"}});
  Conn c = connect();
  ASSERT_TRUE(roundtrip(c, get("/ping")));
  // Idle for longer than the header timeout: the idle timer governs now, not the header timer.
  std::this_thread::sleep_for(900ms);
  ASSERT_TRUE(c.looks_open()) << "closed while idle, before the idle timeout";
  ASSERT_TRUE(c.send("GET /ping HTTP/1.1\r\n"));
  expect_closed_in(c.wait_closed(5000ms), 250ms, 1500ms, "partial second request");
}

TEST_P(Conformance, IdleTimeoutClosesIdleConnection) {
  START_SERVER({{"--header-timeout-ms", "400"}, {"--idle-timeout-ms", "1200"}});
  Conn c = connect();
  ASSERT_TRUE(roundtrip(c, get("/ping")));
  expect_closed_in(c.wait_closed(5000ms), 600ms, 3600ms, "idle keep-alive connection");
}

TEST_P(Conformance, IdleTimerStopsAtFirstByte) {
  START_SERVER({{"--header-timeout-ms", "3000"}, {"--idle-timeout-ms", "1000"}});
  Conn c = connect();
  ASSERT_TRUE(roundtrip(c, get("/ping")));
  std::this_thread::sleep_for(500ms);
  ASSERT_TRUE(c.send("GET /plain"));
  // Past the idle timeout now, but a request has begun: the header timer (3 s) governs.
  std::this_thread::sleep_for(1200ms);
  ASSERT_TRUE(c.looks_open()) << "closed by the idle timer while a request head was arriving";
  auto r = roundtrip(c, "text HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "Hello, World!");
}

TEST_P(Conformance, IdleTimerRestartsWithEachResponse) {
  START_SERVER({{"--header-timeout-ms", "3000"}, {"--idle-timeout-ms", "600"}});
  Conn c = connect();
  // Eight requests 200 ms apart: 1.6 s in all, well past the idle timeout, each within it.
  for (int i = 1; i <= 8; ++i) {
    ASSERT_TRUE(roundtrip(c, get("/ping"))) << "request " << i << " of a busy connection";
    std::this_thread::sleep_for(200ms);
  }
}

TEST_P(Conformance, IdleTimeoutDropsAPeerThatStopsReading) {
  START_SERVER({{"--header-timeout-ms", "3000"}, {"--idle-timeout-ms", "500"}});
  Conn c = connect();
  ASSERT_TRUE(c.send(get("/bytes?n=16000000")));
  std::this_thread::sleep_for(2000ms);  // not reading: the server's sends stall
  const CloseResult closed = c.wait_closed(5000ms);
  EXPECT_TRUE(closed.kind == CloseKind::Closed || closed.kind == CloseKind::Reset)
      << "a peer that stopped reading for 2 s (the idle timeout is 0.5 s) was not dropped: "
      << "connection " << to_string(closed.kind) << " after " << closed.extra.size() << " bytes";
  EXPECT_LT(closed.extra.size(), 16000000u) << "the whole response was sent after the stall";
}

}  // namespace
}  // namespace iolab::test
