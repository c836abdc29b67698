// Conformance cases (conformance.hpp): Blocking work (/sleep) and the connections it must not
// delay.

#include "conformance.hpp"

namespace iolab::test {
namespace {

// ================================ blocking work ============================================

// A blocking handler (/sleep) must not delay other connections in the models that hand it off
// (threads: the connection's own thread; coro: the blocking pool). Event loops that run it
// inline stall every connection of the loop (lab 11's lesson): for them the worst /ping
// latency is printed for contrast, not judged.
TEST_P(Conformance, BlockingSleepDoesNotDelayPing) {
  START_SERVER();
  const bool hands_off = model() == "threads" || model() == "coro";
  Conn pinger = connect();
  ASSERT_TRUE(roundtrip(pinger, get("/ping")));  // accepted and served before the sleeps
  std::vector<Conn> sleepers;
  for (int i = 0; i < 4; ++i) {
    sleepers.emplace_back(port_);
    ASSERT_TRUE(sleepers.back().send(get("/sleep?ms=400"))) << sleepers.back().error();
  }
  std::this_thread::sleep_for(20ms);  // the server has the four sleeps now
  Ms worst{0};
  int pings = 0;
  for (const auto end = Clock::now() + 300ms; Clock::now() < end; ++pings) {
    const auto t0 = Clock::now();
    auto r = roundtrip(pinger, get("/ping"));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    worst = std::max(worst, std::chrono::duration_cast<Ms>(Clock::now() - t0));
  }
  for (auto& c : sleepers) {
    auto r = c.read_response();
    ASSERT_TRUE(r) << c.error();
    EXPECT_EQ(r->status, 200);
  }
  if (hands_off) {
    EXPECT_LT(worst, 100ms) << "worst /ping latency while four /sleep?ms=400 ran (" << pings
                            << " pings)";
  } else {
    std::printf("[   NOTE   ] %s: worst /ping latency %lld ms while four /sleep?ms=400 ran "
                "(%d pings): this model runs blocking work inline\n",
                spec().name.c_str(), static_cast<long long>(worst.count()), pings);
  }
}

}  // namespace
}  // namespace iolab::test
