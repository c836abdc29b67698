// Conformance cases (conformance.hpp): Faults: resets, slow and half-closed clients, slowloris,
// descriptor exhaustion, --max-conns, shutdown with open connections.

#include "conformance.hpp"

namespace iolab::test {
namespace {

// ================================ faults ==================================================

TEST_P(Conformance, ResetMidRequestServerSurvives) {
  START_SERVER();
  {
    Conn warm = connect();
    ASSERT_TRUE(roundtrip(warm, get("/ping")));
  }
  const std::size_t baseline = settled_fd_count();
  for (int i = 0; i < 10; ++i) {
    Conn a = connect();
    ASSERT_TRUE(a.send("GET /ping HTTP/1.1\r\nHo"));
    a.reset();
    Conn b = connect();
    ASSERT_TRUE(b.send(get("/ping", "Content-Length: 1000\r\n") + std::string(100, 'x')));
    b.reset();
    Conn d = connect();  // reset while the server writes a big response
    ASSERT_TRUE(d.send(get("/bytes?n=4000000")));
    ASSERT_TRUE(d.read_exact(1000));
    d.reset();
  }
  Conn c = connect();
  auto r = roundtrip(c, get("/ping"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  c.close();
  EXPECT_LE(wait_fds_at_most(baseline, 3000ms), baseline) << "server descriptors not released";
}

TEST_P(Conformance, PipelineThenResetWithoutReading) {
  START_SERVER();
  {
    Conn warm = connect();
    ASSERT_TRUE(roundtrip(warm, get("/ping")));
  }
  const std::size_t baseline = settled_fd_count();
  std::string batch;
  for (int i = 0; i < 100; ++i) batch += get(i % 2 ? "/bytes?n=100000" : "/ping");
  for (int round = 0; round < 5; ++round) {
    Conn a = connect();
    ASSERT_TRUE(a.send(batch));
    std::this_thread::sleep_for(20ms);
    a.reset();
  }
  Conn c = connect();
  auto r = roundtrip(c, get("/plaintext"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "Hello, World!");
  c.close();
  EXPECT_LE(wait_fds_at_most(baseline, 3000ms), baseline) << "server descriptors not released";
}

TEST_P(Conformance, SlowReaderDoesNotStallOthers) {
  START_SERVER({{"--idle-timeout-ms", "10000"}});
  Conn slow = connect();
  ASSERT_TRUE(slow.send(get("/bytes?n=16777216")));
  std::this_thread::sleep_for(200ms);  // let the server fill the socket buffers
  for (int client = 0; client < 3; ++client) {
    Conn c = connect();
    for (int i = 0; i < 10; ++i) {
      auto r = roundtrip(c, get(i % 2 ? "/ping" : "/bytes?n=100000"));
      ASSERT_TRUE(r) << "client " << client << " request " << i << " while another client stalls";
      EXPECT_EQ(r->status, 200);
    }
  }
  // The stalled response resumes intact once read.
  auto big = slow.read_response(false, 10000ms);
  ASSERT_TRUE(big) << slow.error();
  EXPECT_EQ(big->status, 200);
  EXPECT_TRUE(big->body == pattern_bytes(16777216)) << describe_mismatch(big->body, pattern_bytes(16777216));
}

TEST_P(Conformance, HalfCloseStillAnswered) {
  START_SERVER();
  Conn c = connect();
  ASSERT_TRUE(c.send(get("/ping") + get("/plaintext")));
  c.shutdown_write();
  auto r = c.read_response();
  ASSERT_TRUE(r) << c.error();
  EXPECT_EQ(r->body, R"({"message":"pong"})");
  r = c.read_response();
  ASSERT_TRUE(r) << c.error();
  EXPECT_EQ(r->body, "Hello, World!");
  expect_server_closes(c, "after the client's half-close");
}

TEST_P(Conformance, ManyConcurrentClients) {
  START_SERVER({{"--idle-timeout-ms", "10000"}, {"--header-timeout-ms", "10000"}});
  constexpr int kClients = 300;
  constexpr int kRounds = 3;
  std::vector<Conn> conns;
  conns.reserve(kClients);
  for (int i = 0; i < kClients; ++i) {
    conns.emplace_back(port_);
    ASSERT_TRUE(conns.back().ok()) << "client " << i << ": " << conns.back().error();
  }
  // Every round: all clients send, then all read; the server holds 300 live connections.
  for (int round = 0; round < kRounds; ++round) {
    for (auto& c : conns) ASSERT_TRUE(c.send(get(round == 1 ? "/bytes?n=1000" : "/ping"))) << c.error();
    for (int i = 0; i < kClients; ++i) {
      auto r = conns[i].read_response();
      ASSERT_TRUE(r) << "client " << i << " round " << round << ": " << conns[i].error();
      EXPECT_EQ(r->status, 200);
    }
  }
  Json s = stats(conns[0]);
  ASSERT_TRUE(s.is_object());
  EXPECT_GE(number(s, "connections_accepted"), kClients);
  EXPECT_EQ(number(s, "connections_open"), kClients);
  EXPECT_EQ(number(s, "requests"), kClients * kRounds);
}

TEST_P(Conformance, SlowlorisClosedAndFdsRecovered) {
  START_SERVER({{"--header-timeout-ms", "1000"}, {"--idle-timeout-ms", "1500"}});
  {
    Conn warm = connect();
    ASSERT_TRUE(roundtrip(warm, get("/ping")));
  }
  const std::size_t baseline = settled_fd_count();
  constexpr int kAttackers = 200;
  std::vector<Conn> conns;
  conns.reserve(kAttackers);
  const auto t0 = Clock::now();
  for (int i = 0; i < kAttackers; ++i) {
    conns.emplace_back(port_);
    ASSERT_TRUE(conns.back().ok()) << conns.back().error();
    ASSERT_TRUE(conns.back().send("GET /ping HTTP/1.1\r\nHost: x\r\nX-Slow: "));
  }
  const auto t_last = Clock::now();
  {
    SCOPED_TRACE("a normal client during the attack");
    Conn c = connect();
    auto r = roundtrip(c, get("/ping"));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
  }
  // All closed by the server within ~3x the header timeout of their last byte.
  const auto deadline = t_last + 3000ms;
  int open = 0;
  for (auto& c : conns) {
    auto left = std::chrono::duration_cast<Ms>(deadline - Clock::now());
    auto closed = c.wait_closed(std::max(left, Ms{1}));
    if (closed.kind != CloseKind::Closed && closed.kind != CloseKind::Reset) ++open;
  }
  const auto all_closed_after = std::chrono::duration_cast<Ms>(Clock::now() - t0);
  EXPECT_EQ(open, 0) << open << " of " << kAttackers << " stalled connections still open "
                     << all_closed_after.count() << " ms after the first";
  conns.clear();
  EXPECT_LE(wait_fds_at_most(baseline, 3000ms), baseline)
      << "server descriptors not back to the baseline of " << baseline;
}

TEST_P(Conformance, DescriptorExhaustionKeepsServingAndRecovers) {
  // Both limits lowered: the server raises soft to hard at start-up.
  START_SERVER({{"--idle-timeout-ms", "20000"}, {"--header-timeout-ms", "20000"}}, rlim_t{64});
  constexpr int kClients = 100;
  std::vector<Conn> conns;
  conns.reserve(kClients);
  for (int i = 0; i < kClients; ++i) {
    Conn c(port_, 2000ms);
    if (!c.ok()) break;  // the listen backlog is full: enough
    if (!c.send(get("/ping"))) break;
    conns.push_back(std::move(c));
  }
  ASSERT_GE(conns.size(), 70u) << "could not even queue 70 connections";
  std::this_thread::sleep_for(1000ms);

  // Classify: served (got its 200), refused (closed by the server, maybe after a 503), or
  // waiting in the accept queue.
  std::vector<Conn*> served, waiting;
  int refused = 0;
  for (auto& c : conns) {
    if (!c.readable_now()) {
      waiting.push_back(&c);
      continue;
    }
    auto r = c.read_response(false, 1000ms);
    if (r && r->status == 200) {
      served.push_back(&c);
    } else {
      ++refused;
      EXPECT_TRUE(!r || r->status == 503) << "unexpected status " << r->status;
    }
  }
  const std::string counts = "served " + std::to_string(served.size()) + ", refused " +
                             std::to_string(refused) + ", waiting " + std::to_string(waiting.size());
  SCOPED_TRACE(counts);
  ASSERT_GE(served.size(), 10u) << "the server serves almost nothing under a limit of 64";
  ASSERT_LT(served.size(), conns.size())
      << "every connection was served: the descriptor limit was never reached (test setup)";

  {
    SCOPED_TRACE("no busy loop while descriptors are exhausted");
    auto cpu0 = cpu_seconds(server_->pid());
    const auto w0 = Clock::now();
    std::this_thread::sleep_for(1000ms);
    auto cpu1 = cpu_seconds(server_->pid());
    const double wall = std::chrono::duration<double>(Clock::now() - w0).count();
    ASSERT_TRUE(cpu0 && cpu1);
    EXPECT_LT(*cpu1 - *cpu0, 0.3 * wall) << "server burned " << (*cpu1 - *cpu0) << " s of CPU in "
                                         << wall << " s while saturated";
  }
  {
    SCOPED_TRACE("accepted connections keep being served");
    for (Conn* c : served) {
      auto r = roundtrip(*c, get("/plaintext"));
      ASSERT_TRUE(r);
      EXPECT_EQ(r->status, 200);
    }
    Json s = stats(*served.front());
    ASSERT_TRUE(s.is_object());
    EXPECT_EQ(number(s, "fd_soft_limit"), 64);
    EXPECT_EQ(number(s, "fd_hard_limit"), 64);
  }
  {
    SCOPED_TRACE("recovery: waiting connections are served once descriptors free up");
    for (Conn* c : served) c->close();
    const auto deadline = Clock::now() + 5000ms;
    for (Conn* c : waiting) {
      auto r = c->read_response(false, std::max(std::chrono::duration_cast<Ms>(deadline - Clock::now()), Ms{1}));
      ASSERT_TRUE(r) << c->error();
      EXPECT_EQ(r->status, 200);
    }
    conns.clear();
    Conn fresh(port_, 5000ms);
    ASSERT_TRUE(fresh.ok()) << fresh.error();
    auto r = fresh.roundtrip(get("/ping"), false, 5000ms);
    ASSERT_TRUE(r) << fresh.error();
    EXPECT_EQ(r->status, 200);
  }
}

TEST_P(Conformance, MaxConnsRefusesCleanly) {
  START_SERVER({{"--max-conns", "4"}, {"--idle-timeout-ms", "10000"}, {"--header-timeout-ms", "10000"}});
  std::vector<Conn> conns;
  for (int i = 0; i < 4; ++i) {
    conns.emplace_back(port_);
    auto r = roundtrip(conns.back(), get("/ping"));
    ASSERT_TRUE(r) << "connection " << i + 1 << " of 4";
    EXPECT_EQ(r->status, 200);
  }
  {
    SCOPED_TRACE("the 5th connection");
    Conn fifth = connect();
    ASSERT_TRUE(fifth.ok());
    fifth.send(get("/ping"));  // may fail if already reset
    auto closed = fifth.wait_closed(kIoTimeout);
    EXPECT_TRUE(closed.kind == CloseKind::Closed || closed.kind == CloseKind::Reset)
        << "5th connection: " << to_string(closed.kind) << " (refusal must close it, not hang)";
    EXPECT_TRUE(closed.extra.empty() || closed.extra.rfind("HTTP/1.1 503 ", 0) == 0)
        << "5th connection got: " << printable(closed.extra);
  }
  Json s = stats(conns[0]);
  ASSERT_TRUE(s.is_object());
  EXPECT_GE(number(s, "connections_refused"), 1);
  EXPECT_EQ(number(s, "connections_open"), 4);

  conns.pop_back();  // close one: a new connection must be served
  bool served = false;
  for (auto deadline = Clock::now() + 3000ms; !served && Clock::now() < deadline;) {
    Conn c(port_);
    if (c.ok() && c.send(get("/ping"))) {
      auto r = c.read_response();
      served = r && r->status == 200;
    }
    if (!served) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(served) << "no connection served after one of the 4 closed";
}

TEST_P(Conformance, CleanShutdownWithOpenConnections) {
  START_SERVER();
  std::vector<Conn> conns;
  for (int i = 0; i < 3; ++i) {  // idle keep-alive connections
    conns.emplace_back(port_);
    ASSERT_TRUE(roundtrip(conns.back(), get("/ping")));
  }
  conns.emplace_back(port_);  // silent
  conns.emplace_back(port_);  // mid-head
  ASSERT_TRUE(conns.back().send("GET /ping HTTP/1.1\r\n"));
  std::this_thread::sleep_for(50ms);
  Json final_stats = stop_and_check();
  ASSERT_TRUE(final_stats.is_object());
  EXPECT_GE(number(final_stats, "requests"), 3);
  EXPECT_GE(number(final_stats, "connections_accepted"), 5);
  for (auto& c : conns) {
    auto closed = c.wait_closed(1000ms);
    EXPECT_TRUE(closed.kind == CloseKind::Closed || closed.kind == CloseKind::Reset);
  }
}

}  // namespace
}  // namespace iolab::test
