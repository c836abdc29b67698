// loadgen's command line: what it accepts, what it refuses and what it builds.

#include "cli.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <initializer_list>
#include <ostream>
#include <string>
#include <vector>

namespace iolab::loadgen {
namespace {

struct Parsed {
  std::optional<Config> config;
  std::string error;
  bool help = false;
};

Parsed parse(std::initializer_list<const char*> args) {
  std::vector<std::string> store{"loadgen"};
  for (const char* a : args) store.emplace_back(a);
  std::vector<char*> argv;
  for (auto& s : store) argv.push_back(s.data());
  Parsed p;
  p.config = parse_command_line(static_cast<int>(argv.size()), argv.data(), p.error, p.help);
  return p;
}

TEST(Cli, Defaults) {
  const auto p = parse({"--url", "http://127.0.0.1:8080/ping"});
  ASSERT_TRUE(p.config) << p.error;
  const Config& c = *p.config;
  EXPECT_EQ(c.connections, 64);
  EXPECT_EQ(c.threads, 1);
  EXPECT_EQ(c.duration_ns, 10'000'000'000);
  EXPECT_EQ(c.pipeline, 1);
  EXPECT_EQ(c.rate, 0);
  EXPECT_EQ(c.port, 8080);
  ASSERT_EQ(c.kinds.size(), 1u);
  EXPECT_EQ(c.kinds[0].bytes, "GET /ping HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n");
  EXPECT_EQ(c.kinds[0].bytes_close,
            "GET /ping HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(c.kinds[0].expect.check_body);
  EXPECT_EQ(c.idle_kind.path, "/ping");
}

TEST(Cli, EveryFlag) {
  const auto p = parse({"--url=http://localhost:9000/x",
                        "-c",
                        "10",
                        "-t",
                        "2",
                        "-d",
                        "250ms",
                        "--warmup",
                        "1s",
                        "--requests",
                        "500",
                        "--rate",
                        "1e3",
                        "--pipeline",
                        "1",
                        "--idle-connections",
                        "30",
                        "--connect-rate",
                        "100",
                        "--source-addrs",
                        "3",
                        "--think-ms",
                        "2.5",
                        "--timeout",
                        "3s",
                        "--method",
                        "HEAD",
                        "-H",
                        "X-Test: 1",
                        "--expect-status",
                        "404",
                        "--idle-path",
                        "/ping",
                        "--pin",
                        "0",
                        "--json",
                        "-",
                        "--hist",
                        "/tmp/h.csv",
                        "--mark-fd",
                        "2",
                        "--seed",
                        "7",
                        "--setup-timeout",
                        "5s"});
  ASSERT_TRUE(p.config) << p.error;
  const Config& c = *p.config;
  EXPECT_EQ(c.connections, 10);
  EXPECT_EQ(c.threads, 2);
  EXPECT_EQ(c.duration_ns, 250'000'000);
  EXPECT_EQ(c.warmup_ns, 1'000'000'000);
  EXPECT_EQ(c.requests, 500);
  EXPECT_EQ(c.rate, 1000);
  EXPECT_EQ(c.idle_connections, 30);
  EXPECT_EQ(c.source_addresses, 3);
  EXPECT_EQ(c.think_ns, 2'500'000);
  EXPECT_EQ(c.timeout_ns, 3'000'000'000);
  EXPECT_EQ(c.kinds[0].bytes, "HEAD /x HTTP/1.1\r\nHost: localhost:9000\r\nX-Test: 1\r\n\r\n");
  EXPECT_EQ(c.kinds[0].expect.status, 404);
  EXPECT_TRUE(c.kinds[0].expect.head_request);
  EXPECT_EQ(c.idle_kind.path, "/ping");
  EXPECT_EQ(ntohl(c.address.sin_addr.s_addr), 0x7f000001u);
}

TEST(Cli, Mix) {
  const auto p =
      parse({"--url", "http://127.0.0.1:1/", "--mix", "99:/ping,1:/sleep?ms=50,2:404:/missing"});
  ASSERT_TRUE(p.config) << p.error;
  const auto& k = p.config->kinds;
  ASSERT_EQ(k.size(), 3u);
  EXPECT_EQ(k[0].path, "/ping");
  EXPECT_EQ(k[0].weight, 99u);
  EXPECT_EQ(k[1].path, "/sleep?ms=50");
  EXPECT_EQ(k[1].expect.status, 200);
  EXPECT_EQ(k[2].path, "/missing");
  EXPECT_EQ(k[2].expect.status, 404);
  EXPECT_EQ(k[2].weight, 2u);
}

TEST(Cli, Durations) {
  EXPECT_EQ(parse_duration_ns("10s"), 10'000'000'000);
  EXPECT_EQ(parse_duration_ns("10"), 10'000'000'000);
  EXPECT_EQ(parse_duration_ns("1.5ms"), 1'500'000);
  EXPECT_EQ(parse_duration_ns("2m"), 120'000'000'000);
  EXPECT_EQ(parse_duration_ns("250us"), 250'000);
  EXPECT_FALSE(parse_duration_ns("10x"));
  EXPECT_FALSE(parse_duration_ns("s"));
  EXPECT_FALSE(parse_duration_ns("-1s"));
}

TEST(Cli, RequestsWithoutDurationHaveNoTimeCap) {
  const auto p = parse({"--url", "http://127.0.0.1:1/", "--requests", "10"});
  ASSERT_TRUE(p.config) << p.error;
  EXPECT_EQ(p.config->duration_ns, 0);
}

TEST(Cli, ManyIdleConnectionsGetSeveralSourceAddresses) {
  const auto p = parse({"--url", "http://127.0.0.1:1/", "--idle-connections", "50000"});
  ASSERT_TRUE(p.config) << p.error;
  EXPECT_EQ(p.config->source_addresses, 3);
  const auto addrs = source_addresses(3);
  ASSERT_EQ(addrs.size(), 3u);
  EXPECT_EQ(ntohl(addrs[0].s_addr), 0x7f000101u);  // 127.0.1.1
  EXPECT_EQ(ntohl(addrs[2].s_addr), 0x7f000103u);
}

TEST(Cli, Help) {
  const auto p = parse({"--help"});
  EXPECT_FALSE(p.config);
  EXPECT_TRUE(p.help);
  EXPECT_NE(usage().find("--idle-connections"), std::string::npos);
}

struct Refusal {
  std::vector<const char*> args;
  const char* message;  // part of the error
};

void PrintTo(const Refusal& r, std::ostream* os) { *os << "refusal '" << r.message << "'"; }

class CliRefuses : public ::testing::TestWithParam<Refusal> {};

TEST_P(CliRefuses, WithAClearMessage) {
  std::vector<std::string> store{"loadgen"};
  for (const char* a : GetParam().args) store.emplace_back(a);
  std::vector<char*> argv;
  for (auto& s : store) argv.push_back(s.data());
  std::string error;
  bool help = false;
  EXPECT_FALSE(parse_command_line(static_cast<int>(argv.size()), argv.data(), error, help));
  EXPECT_NE(error.find(GetParam().message), std::string::npos) << "error was: " << error;
}

const Refusal kRefusals[] = {
    {{"--connections", "4"}, "--url is required"},
    {{"--url", "ftp://127.0.0.1/"}, "http://"},
    {{"--url", "http://127.0.0.1:99999/"}, "bad port"},
    {{"--url", "http://10.1.2.3:80/"}, "127.0.0.0/8"},
    {{"--url", "http://127.0.0.1:1/", "--bogus"}, "unknown flag '--bogus'"},
    {{"--url", "http://127.0.0.1:1/", "--connections", "0"}, "--connections"},
    {{"--url", "http://127.0.0.1:1/", "--connections"}, "needs a value"},
    {{"--url", "http://127.0.0.1:1/", "--duration", "soon"}, "duration"},
    {{"--url", "http://127.0.0.1:1/", "--rate", "-5"}, "--rate"},
    {{"--url", "http://127.0.0.1:1/", "-c", "2", "-t", "3"}, "more than --connections"},
    {{"--url", "http://127.0.0.1:1/", "--pipeline", "4", "--new-connection-per-request"},
     "--pipeline"},
    {{"--url", "http://127.0.0.1:1/", "--pipeline", "4", "--think-ms", "1"}, "--pipeline 1"},
    {{"--url", "http://127.0.0.1:1/", "--mix", "x:/ping"}, "WEIGHT"},
    {{"--url", "http://127.0.0.1:1/", "--mix", "1:ping"}, "must start with '/'"},
    {{"--url", "http://127.0.0.1:1/", "--method", "POST"}, "GET or HEAD"},
    {{"--url", "http://127.0.0.1:1/", "--header", "bad"}, "Name: value"},
    {{"--url", "http://127.0.0.1:1/", "--new-connection-per-request=yes"}, "takes no value"},
    {{"--url", "http://127.0.0.1:1/", "stray"}, "unexpected argument"},
};

INSTANTIATE_TEST_SUITE_P(Table, CliRefuses, ::testing::ValuesIn(kRefusals));

TEST(Cli, AllowRemote) {
  const auto p = parse({"--url", "http://10.1.2.3:80/", "--allow-remote"});
  EXPECT_TRUE(p.config) << p.error;
}

}  // namespace
}  // namespace iolab::loadgen
