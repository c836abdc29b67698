// Unit tests of the socket and process helpers (net.hpp) and the shared command line
// (options.hpp): CPU lists, reuseport listeners on one port, the descriptor limit, UniqueFd,
// sending a file region both ways, and flags (bad ones exit with status 2 naming the flag).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "net.hpp"
#include "options.hpp"
#include "server.hpp"
#include "stats.hpp"

namespace iolab {
namespace {

bool is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1 || errno != EBADF; }

int int_option(int fd, int level, int name) {
  int value = -1;
  socklen_t len = sizeof value;
  EXPECT_EQ(::getsockopt(fd, level, name, &value, &len), 0);
  return value;
}

// ---------------------------------------------------------------------------------------------
// CPU lists.

TEST(ParseCpuListTest, SingleCpu) { EXPECT_EQ(parse_cpu_list("1"), std::vector<int>{1}); }

TEST(ParseCpuListTest, Range) { EXPECT_EQ(parse_cpu_list("2-5"), (std::vector<int>{2, 3, 4, 5})); }

TEST(ParseCpuListTest, ListOfCpusAndRanges) {
  EXPECT_EQ(parse_cpu_list("0,2-3"), (std::vector<int>{0, 2, 3}));
  EXPECT_EQ(parse_cpu_list("7,1-1,3"), (std::vector<int>{7, 1, 3}));
}

TEST(ParseCpuListTest, RejectsMalformedLists) {
  for (const char* bad : {"", "a", "3-1", "-1", "1-", "1,,2", ",1", "1-2-3", "1.5", " 1",
                          "99999"}) {
    EXPECT_THROW(parse_cpu_list(bad), std::invalid_argument) << "'" << bad << "'";
  }
}

// ---------------------------------------------------------------------------------------------
// Listeners.

TEST(ListenTcpTest, PortZeroWithCountThreeSharesOnePort) {
  std::vector<UniqueFd> listeners = listen_tcp("127.0.0.1", 0, 3, true);
  ASSERT_EQ(listeners.size(), 3u);
  const std::uint16_t port = local_port(listeners[0].get());
  EXPECT_NE(port, 0);
  for (const UniqueFd& l : listeners) {
    ASSERT_TRUE(l);
    EXPECT_EQ(local_port(l.get()), port);
    EXPECT_EQ(int_option(l.get(), SOL_SOCKET, SO_ACCEPTCONN), 1);
    EXPECT_EQ(int_option(l.get(), SOL_SOCKET, SO_REUSEPORT), 1);
    EXPECT_NE(::fcntl(l.get(), F_GETFL) & O_NONBLOCK, 0);
    EXPECT_NE(::fcntl(l.get(), F_GETFD) & FD_CLOEXEC, 0);
  }

  // A client connects to that port and one of the three listeners has it.
  UniqueFd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  std::vector<pollfd> fds;
  for (const UniqueFd& l : listeners) fds.push_back({l.get(), POLLIN, 0});
  ASSERT_EQ(::poll(fds.data(), fds.size(), 10'000), 1) << "exactly one listener has it";
  for (const pollfd& p : fds) {
    if (p.revents & POLLIN) {
      UniqueFd accepted(::accept4(p.fd, nullptr, nullptr, SOCK_CLOEXEC));
      EXPECT_TRUE(accepted);
      set_nodelay(accepted.get());
      EXPECT_EQ(int_option(accepted.get(), IPPROTO_TCP, TCP_NODELAY), 1);
    }
  }
}

TEST(ListenTcpTest, BlockingSingleListener) {
  std::vector<UniqueFd> listeners = listen_tcp("127.0.0.1", 0, 1, false);
  ASSERT_EQ(listeners.size(), 1u);
  EXPECT_EQ(::fcntl(listeners[0].get(), F_GETFL) & O_NONBLOCK, 0);
  set_nonblocking(listeners[0].get());
  EXPECT_NE(::fcntl(listeners[0].get(), F_GETFL) & O_NONBLOCK, 0);
}

TEST(ListenTcpTest, BadAddressThrows) {
  EXPECT_THROW(listen_tcp("not-an-address", 0, 1, true), std::system_error);
}

TEST(ListenTcpTest, PortInUseThrows) {
  std::vector<UniqueFd> first = listen_tcp("127.0.0.1", 0, 1, true);
  const std::uint16_t port = local_port(first[0].get());
  EXPECT_THROW(listen_tcp("127.0.0.1", port, 1, true), std::system_error);
}

// ---------------------------------------------------------------------------------------------
// Descriptors and limits.

TEST(RaiseFdLimitTest, SoftBecomesHard) {
  rlimit lim{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &lim), 0);
  if (lim.rlim_max == RLIM_INFINITY) GTEST_SKIP() << "no finite hard limit to raise to";
  const rlim_t lowered = std::min<rlim_t>(256, lim.rlim_max);
  rlimit low = lim;
  low.rlim_cur = lowered;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);

  const FdLimits limits = raise_fd_limit();
  EXPECT_EQ(limits.soft_at_start, lowered);
  EXPECT_EQ(limits.soft, limits.hard);
  EXPECT_EQ(limits.hard, lim.rlim_max);
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &lim), 0);
  EXPECT_EQ(lim.rlim_cur, lim.rlim_max);

  const FdLimits again = raise_fd_limit();
  EXPECT_EQ(again.soft_at_start, again.hard) << "raising twice changes nothing";
  EXPECT_EQ(again.soft, again.hard);
}

TEST(UniqueFdTest, ClosesAtTheEndOfItsScope) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  const std::uint64_t closes = counter_total(Counter::kSysClose);
  {
    UniqueFd read_end(fds[0]);
    UniqueFd write_end(fds[1]);
    EXPECT_TRUE(read_end);
    EXPECT_EQ(read_end.get(), fds[0]);
  }
  EXPECT_FALSE(is_open(fds[0]));
  EXPECT_FALSE(is_open(fds[1]));
  EXPECT_EQ(counter_total(Counter::kSysClose) - closes, 2u) << "closes are counted";
}

TEST(UniqueFdTest, MoveResetAndRelease) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  UniqueFd a(fds[0]);
  UniqueFd b(std::move(a));
  EXPECT_FALSE(a);  // a moved-from UniqueFd is empty by contract
  EXPECT_EQ(a.get(), -1);
  EXPECT_EQ(b.get(), fds[0]);

  UniqueFd c(fds[1]);
  c = std::move(b);  // closes fds[1]
  EXPECT_FALSE(is_open(fds[1]));
  EXPECT_TRUE(is_open(fds[0]));
  EXPECT_EQ(c.get(), fds[0]);

  const int raw = c.release();
  EXPECT_FALSE(c);
  EXPECT_TRUE(is_open(raw)) << "release() gives the descriptor away without closing it";
  c.reset(raw);
  c.reset();
  EXPECT_FALSE(is_open(raw));
  UniqueFd empty;
  EXPECT_FALSE(empty);
}

// ---------------------------------------------------------------------------------------------
// Sending a file region.

class SendFileRegionTest : public ::testing::TestWithParam<bool> {};

TEST_P(SendFileRegionTest, SendsTheRegion) {
  const bool use_sendfile = GetParam();
  UniqueFd file(::memfd_create("iolab-net-test", MFD_CLOEXEC));
  ASSERT_TRUE(file);
  std::string data(100000, '\0');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>('A' + i % 23);
  ASSERT_EQ(::write(file.get(), data.data(), data.size()), static_cast<ssize_t>(data.size()));
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  UniqueFd sender(pair[0]);
  UniqueFd receiver(pair[1]);

  FileRegion region{file.get(), 1234, 5000};
  std::string received;
  while (region.length > 0) {
    const ssize_t n = send_file_region(sender.get(), region, use_sendfile);
    ASSERT_GT(n, 0) << std::strerror(errno);
    region.offset += static_cast<std::uint64_t>(n);
    region.length -= static_cast<std::uint64_t>(n);
    char buf[8192];
    std::size_t want = static_cast<std::size_t>(n);
    while (want > 0) {
      const ssize_t got = ::read(receiver.get(), buf, std::min(want, sizeof buf));
      ASSERT_GT(got, 0);
      received.append(buf, static_cast<std::size_t>(got));
      want -= static_cast<std::size_t>(got);
    }
  }
  EXPECT_EQ(received, data.substr(1234, 5000));
}

INSTANTIATE_TEST_SUITE_P(Modes, SendFileRegionTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& param_info) {
                           return std::string(param_info.param ? "Sendfile" : "PreadAndSend");
                         });

TEST(ReadyLineTest, IsOneFlushedLine) {
  ::testing::internal::CaptureStdout();
  print_ready_line("test", "127.0.0.1", 4242, 2);
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(out, "server_test listening on 127.0.0.1:4242 threads=2 pid=" +
                     std::to_string(::getpid()) + "\n");
}

// ---------------------------------------------------------------------------------------------
// Options.

// Builds argv for parse_options from strings.
class Argv {
 public:
  Argv(std::initializer_list<const char*> args) : strings_(args.begin(), args.end()) {
    strings_.insert(strings_.begin(), "server_test");
    for (std::string& s : strings_) pointers_.push_back(s.data());
    pointers_.push_back(nullptr);
  }
  Argv(const Argv&) = delete;  // pointers_ point into strings_
  Argv& operator=(const Argv&) = delete;
  int argc() const { return static_cast<int>(strings_.size()); }
  char** argv() { return pointers_.data(); }

 private:
  std::vector<std::string> strings_;
  std::vector<char*> pointers_;
};

const ExtraFlag kStackKb[] = {{"--stack-kb", 64, 0, 1024, "stack size"}};

Options parse(Argv args) {
  return parse_options(args.argc(), args.argv(), "test", 500, kStackKb);
}

TEST(OptionsTest, Defaults) {
  const Options o = parse({});
  EXPECT_EQ(o.bind, "127.0.0.1");
  EXPECT_EQ(o.port, 8080);
  EXPECT_EQ(o.threads, 1);
  EXPECT_TRUE(o.pin.empty());
  EXPECT_EQ(o.max_conns, 500u);
  EXPECT_EQ(o.limits.idle_timeout, Millis(60000));
  EXPECT_EQ(o.limits.header_timeout, Millis(10000));
  EXPECT_EQ(o.limits.max_body_bytes, 1048576u);
  EXPECT_EQ(o.limits.keepalive_requests, 0u) << "no limit unless asked";
  EXPECT_TRUE(o.sendfile);
  EXPECT_EQ(o.extra_value("--stack-kb"), 64);
}

TEST(OptionsTest, EveryFlag) {
  const Options o = parse({"--port", "0", "--bind", "127.0.0.2", "--threads", "4", "--pin", "0-1",
                           "--max-conns", "100", "--idle-timeout-ms", "5", "--header-timeout-ms",
                           "6", "--max-body-bytes", "7", "--sendfile", "off", "--stack-kb", "256",
                           "--keepalive-requests", "8"});
  EXPECT_EQ(o.port, 0);
  EXPECT_EQ(o.bind, "127.0.0.2");
  EXPECT_EQ(o.threads, 4);
  EXPECT_EQ(o.pin, (std::vector<int>{0, 1}));
  EXPECT_EQ(o.max_conns, 100u);
  EXPECT_EQ(o.limits.idle_timeout, Millis(5));
  EXPECT_EQ(o.limits.header_timeout, Millis(6));
  EXPECT_EQ(o.limits.max_body_bytes, 7u);
  EXPECT_EQ(o.limits.keepalive_requests, 8u);
  EXPECT_FALSE(o.sendfile);
  EXPECT_EQ(o.extra_value("--stack-kb"), 256);
}

// A model asking for a flag it never declared is a programming error: refused by name, never
// a read past the end of the map.
TEST(OptionsTest, ExtraValueRefusesAnUndeclaredFlag) {
  const Options o = parse({});
  try {
    (void)o.extra_value("--stack-kbytes");
    ADD_FAILURE() << "extra_value returned for a flag that was never declared";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("--stack-kbytes"), std::string::npos) << e.what();
  }
}

TEST(OptionsTest, EqualsSyntax) {
  const Options o = parse({"--port=9090", "--sendfile=on", "--max-body-bytes=0", "--pin=3"});
  EXPECT_EQ(o.port, 9090);
  EXPECT_TRUE(o.sendfile);
  EXPECT_EQ(o.limits.max_body_bytes, 0u);
  EXPECT_EQ(o.pin, std::vector<int>{3});
}

struct BadFlag {
  const char* name;
  std::vector<const char*> args;
  const char* message;  // a regex the message on stderr must match
};

class OptionsDeathTest : public ::testing::TestWithParam<BadFlag> {};

TEST_P(OptionsDeathTest, ExitsWithStatusTwoNamingTheFlag) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const BadFlag& bad = GetParam();
  std::vector<std::string> strings = {"server_test"};
  for (const char* a : bad.args) strings.emplace_back(a);
  std::vector<char*> argv;
  for (std::string& s : strings) argv.push_back(s.data());
  argv.push_back(nullptr);
  EXPECT_EXIT(parse_options(static_cast<int>(strings.size()), argv.data(), "test", 500, kStackKb),
              ::testing::ExitedWithCode(2), bad.message);
}

INSTANTIATE_TEST_SUITE_P(
    Flags, OptionsDeathTest,
    ::testing::Values(
        BadFlag{"UnknownFlag", {"--bogus", "1"}, "server_test: --bogus: unknown flag"},
        BadFlag{"FlagOfAnotherModel", {"--sqpoll", "on"}, "--sqpoll: unknown flag for server_test"},
        BadFlag{"PortOutOfRange", {"--port", "70000"}, "--port: expected a number"},
        BadFlag{"PortNotANumber", {"--port", "http"}, "--port: .*'http'"},
        BadFlag{"ThreadsZero", {"--threads", "0"}, "--threads: expected a number in \\[1, "},
        BadFlag{"MissingValue", {"--threads"}, "--threads: missing value"},
        BadFlag{"BadPinList", {"--pin", "3-1"}, "--pin: bad CPU range"},
        BadFlag{"BadSendfile", {"--sendfile", "maybe"}, "--sendfile: expected on or off"},
        BadFlag{"NegativeTimeout", {"--idle-timeout-ms=-5"}, "--idle-timeout-ms: expected"},
        BadFlag{"ExtraFlagOutOfRange", {"--stack-kb", "4096"}, "--stack-kb: expected a number"},
        BadFlag{"PositionalArgument", {"8080"}, "8080: unexpected argument"}),
    [](const ::testing::TestParamInfo<BadFlag>& param_info) { return param_info.param.name; });

TEST(OptionsDeathTest, HelpExitsWithStatusZero) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(parse({"--help"}), ::testing::ExitedWithCode(0), "");
}

// ---- the servers' shared boilerplate (server.hpp) -------------------------------------------

TEST(ServerBoilerplateTest, RefuseSendsThe503ClosesAndCounts) {
  const SharedState shared("test");
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  const std::uint64_t before = counter_total(Counter::kConnectionsRefused);
  refuse(shared, UniqueFd(sv[0]));
  EXPECT_EQ(counter_total(Counter::kConnectionsRefused), before + 1);
  std::string got(4096, '\0');
  const ssize_t n = ::read(sv[1], got.data(), got.size());
  ASSERT_GT(n, 0);
  got.resize(static_cast<std::size_t>(n));
  EXPECT_EQ(got, shared.refusal);
  EXPECT_EQ(got.rfind("HTTP/1.1 503 Service Unavailable\r\n", 0), 0u) << got;
  char more;
  EXPECT_EQ(::read(sv[1], &more, 1), 0) << "the refused socket was not closed";
  ::close(sv[1]);
}

TEST(ServerBoilerplateTest, ConnectionErrorIsLoggedAndCounted) {
  const std::uint64_t before = counter_total(Counter::kConnectionErrors);
  ::testing::internal::CaptureStderr();
  count_connection_error("test", "std::bad_alloc");
  EXPECT_EQ(::testing::internal::GetCapturedStderr(),
            "server_test: closing a connection: std::bad_alloc\n");
  EXPECT_EQ(counter_total(Counter::kConnectionErrors), before + 1);
}

TEST(ServerBoilerplateTest, PinWorkerWithoutPinLeavesTheThreadAlone) {
  cpu_set_t before, after;
  ASSERT_EQ(sched_getaffinity(0, sizeof before, &before), 0);
  pin_worker(Options{}, 3);
  ASSERT_EQ(sched_getaffinity(0, sizeof after, &after), 0);
  EXPECT_TRUE(CPU_EQUAL(&before, &after));
}

TEST(ServerBoilerplateTest, PinWorkerTakesTheIndexRoundRobin) {
  cpu_set_t allowed;
  ASSERT_EQ(sched_getaffinity(0, sizeof allowed, &allowed), 0);
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE && cpus.size() < 2; ++cpu) {
    if (CPU_ISSET(cpu, &allowed)) cpus.push_back(cpu);
  }
  if (cpus.size() < 2) GTEST_SKIP() << "needs two CPUs this process may run on";
  Options options;
  options.pin = {cpus[1], cpus[0]};
  cpu_set_t pinned;
  std::thread worker([&] {  // its own thread: the test's thread keeps its CPUs
    pin_worker(options, 3);  // index 3 of 2 CPUs: the second, cpus[0]
    sched_getaffinity(0, sizeof pinned, &pinned);
  });
  worker.join();
  EXPECT_EQ(CPU_COUNT(&pinned), 1);
  EXPECT_TRUE(CPU_ISSET(cpus[0], &pinned));
}

}  // namespace
}  // namespace iolab
