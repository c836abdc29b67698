// loadgen as a black box: build/bin/loadgen driven against build/bin/server_threads on
// 127.0.0.1 (port 0), against a tiny in-process server that answers wrongly on purpose, and
// against nginx with servers/reference/nginx when it is installed.
//
// The tests judge counts and mechanisms, not speed: the request count equals the server's own
// /stats delta exactly; a stalled server shows in the corrected latency and hides in the raw
// one; a connection per request leaves TIME_WAIT on the server's side only; idle connections
// really come from the 127.0.1.x source addresses. Every load is bounded in time and count.
//
// Another build's binaries: IOLAB_BIN_DIR=/path/to/bin loadgen_run_test

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace iolab::test {
namespace {

using namespace std::chrono_literals;
using Ms = std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

std::string bin_dir() {
  if (const char* env = std::getenv("IOLAB_BIN_DIR"); env && *env) return env;
  return IOLAB_BIN_DIR;
}

// ---- child processes ----------------------------------------------------------------------

// A child with stdout and stderr on pipes. The destructor SIGKILLs and reaps it if it still
// runs, so nothing outlives a failed test.
class Child {
 public:
  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    if (pid_ > 0 && !exit_code_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    for (int fd : {out_fd_, err_fd_}) {
      if (fd >= 0) ::close(fd);
    }
  }

  // `pass_fd`, when >= 0, becomes descriptor 3 in the child.
  bool spawn(const std::vector<std::string>& args, int pass_fd = -1) {
    std::vector<std::string> store = args;
    std::vector<char*> argv;
    for (auto& a : store) argv.push_back(a.data());
    argv.push_back(nullptr);
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) return false;
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) return false;
    if (pid_ == 0) {  // async-signal-safe calls only
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) _exit(126);
      const int null_fd = ::open("/dev/null", O_RDONLY);
      ::dup2(null_fd, 0);
      ::dup2(out[1], 1);
      ::dup2(err[1], 2);
      if (pass_fd >= 0) ::dup2(pass_fd, 3);  // dup2 clears FD_CLOEXEC on the copy
      ::execv(argv[0], argv.data());
      _exit(127);
    }
    ::close(out[1]);
    ::close(err[1]);
    out_fd_ = out[0];
    err_fd_ = err[0];
    return true;
  }

  // Collects output until `done()` holds, both pipes end, or the timeout passes.
  bool pump_until(const std::function<bool()>& done, Ms timeout) {
    const auto deadline = Clock::now() + timeout;
    while (!done()) {
      pollfd fds[2];
      int n = 0;
      if (out_fd_ >= 0) fds[n++] = {out_fd_, POLLIN, 0};
      if (err_fd_ >= 0) fds[n++] = {err_fd_, POLLIN, 0};
      if (n == 0) return done();
      const auto left = std::chrono::duration_cast<Ms>(deadline - Clock::now()).count();
      if (left <= 0) return done();
      if (::poll(fds, static_cast<nfds_t>(n), static_cast<int>(left)) <= 0) continue;
      for (int i = 0; i < n; ++i) {
        if (fds[i].revents == 0) continue;
        int& fd = fds[i].fd == out_fd_ ? out_fd_ : err_fd_;
        std::string& text = fds[i].fd == out_fd_ ? out_ : err_;
        char chunk[8192];
        const ssize_t got = ::read(fd, chunk, sizeof chunk);
        if (got > 0) {
          text.append(chunk, static_cast<std::size_t>(got));
        } else if (got == 0 || errno != EINTR) {
          ::close(fd);
          fd = -1;
        }
      }
    }
    return true;
  }

  // Drains the output and waits for the exit: the exit code, or -signal.
  std::optional<int> wait(Ms timeout) {
    const auto deadline = Clock::now() + timeout;
    pump_until([&] { return out_fd_ < 0 && err_fd_ < 0; }, timeout);
    while (!exit_code_) {
      int status = 0;
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
      } else if (r < 0 || Clock::now() >= deadline) {
        return std::nullopt;
      } else {
        std::this_thread::sleep_for(2ms);
      }
    }
    return exit_code_;
  }

  void signal(int sig) const {
    if (pid_ > 0 && !exit_code_) ::kill(pid_, sig);
  }
  pid_t pid() const { return pid_; }
  const std::string& out() const { return out_; }
  const std::string& err() const { return err_; }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::string out_;
  std::string err_;
  std::optional<int> exit_code_;
};

// ---- a flat view of loadgen's JSON ----------------------------------------------------------

// {"a":{"b":1},"c":[{"d":"x"}]} -> {"a.b": "1", "c.0.d": "x"}: enough to read a report.
class Json {
 public:
  static std::optional<Json> parse(std::string_view text) {
    Json j;
    std::size_t pos = 0;
    if (!j.value(text, pos, "")) return std::nullopt;
    return j;
  }
  bool has(const std::string& key) const { return values_.count(key) != 0; }
  std::string str(const std::string& key) const {
    const auto it = values_.find(key);
    return it == values_.end() ? "<missing " + key + ">" : it->second;
  }
  double num(const std::string& key) const {
    const auto it = values_.find(key);
    return it == values_.end() ? -1e300 : std::strtod(it->second.c_str(), nullptr);
  }

 private:
  static void skip(std::string_view t, std::size_t& p) {
    while (p < t.size() && std::isspace(static_cast<unsigned char>(t[p]))) ++p;
  }
  static std::optional<std::string> string(std::string_view t, std::size_t& p) {
    if (p >= t.size() || t[p] != '"') return std::nullopt;
    std::string s;
    for (++p; p < t.size() && t[p] != '"'; ++p) {
      if (t[p] == '\\' && p + 1 < t.size()) ++p;
      s += t[p];
    }
    if (p >= t.size()) return std::nullopt;
    ++p;
    return s;
  }
  bool value(std::string_view t, std::size_t& p, const std::string& key) {
    skip(t, p);
    if (p >= t.size()) return false;
    const std::string prefix = key.empty() ? "" : key + ".";
    if (t[p] == '{' || t[p] == '[') {
      const bool object = t[p] == '{';
      const char close = object ? '}' : ']';
      ++p;
      skip(t, p);
      for (int i = 0; p < t.size() && t[p] != close; ++i) {
        std::string name = std::to_string(i);
        if (object) {
          auto s = string(t, p);
          if (!s) return false;
          name = *s;
          skip(t, p);
          if (p >= t.size() || t[p++] != ':') return false;
        }
        if (!value(t, p, prefix + name)) return false;
        skip(t, p);
        if (p < t.size() && t[p] == ',') ++p;
        skip(t, p);
      }
      if (p >= t.size()) return false;
      ++p;
      return true;
    }
    if (t[p] == '"') {
      auto s = string(t, p);
      if (!s) return false;
      values_[key] = *s;
      return true;
    }
    const std::size_t start = p;
    while (p < t.size() && t[p] != ',' && t[p] != '}' && t[p] != ']' &&
           !std::isspace(static_cast<unsigned char>(t[p]))) {
      ++p;
    }
    values_[key] = std::string(t.substr(start, p - start));
    return p > start;
  }
  std::map<std::string, std::string> values_;
};

// ---- the servers ------------------------------------------------------------------------------

// server_threads on 127.0.0.1, port 0; stopped with SIGTERM at the end.
class ThreadsServer {
 public:
  bool start() {
    if (!child_.spawn({bin_dir() + "/server_threads", "--port", "0"})) return false;
    child_.pump_until([&] { return child_.out().find('\n') != std::string::npos; }, 5000ms);
    const std::string& line = child_.out();
    const std::size_t at = line.find("127.0.0.1:");
    if (at == std::string::npos) return false;
    port_ = static_cast<std::uint16_t>(std::atoi(line.c_str() + at + 10));
    return port_ != 0;
  }
  ~ThreadsServer() {
    child_.signal(SIGTERM);
    child_.wait(4000ms);
  }
  std::uint16_t port() const { return port_; }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  const Child& child() const { return child_; }

 private:
  Child child_;
  std::uint16_t port_ = 0;
};

int connect_to(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// The server's /stats JSON ("requests" counts everything but /stats itself).
std::optional<Json> server_stats(std::uint16_t port) {
  const int fd = connect_to(port);
  if (fd < 0) return std::nullopt;
  const timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  const std::string req = "GET /stats HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return std::nullopt;
  }
  std::string all;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) all.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  const std::size_t body = all.find("\r\n\r\n");
  if (body == std::string::npos) return std::nullopt;
  return Json::parse(std::string_view(all).substr(body + 4));
}

// ---- running loadgen ----------------------------------------------------------------------

struct RunResult {
  std::optional<int> code;
  std::string out;
  std::string err;
  Json json;
};

RunResult run_loadgen(std::vector<std::string> args, Ms timeout = 20000ms, Child* keep = nullptr) {
  Child local;
  Child& child = keep ? *keep : local;
  args.insert(args.begin(), bin_dir() + "/loadgen");
  RunResult r;
  if (!child.spawn(args)) return r;
  r.code = child.wait(timeout);
  r.out = child.out();
  r.err = child.err();
  if (auto j = Json::parse(r.out)) r.json = *j;
  return r;
}

std::string describe(const RunResult& r) {
  return "exit " + (r.code ? std::to_string(*r.code) : std::string("none")) + "\nstdout: " + r.out +
         "\nstderr: " + r.err;
}

// Counts /proc/net/tcp sockets in `state` (hex, "01" ESTABLISHED, "06" TIME_WAIT) matching `keep`.
int count_tcp(const std::string& state,
              const std::function<bool(std::uint32_t local_ip, std::uint16_t local_port,
                                       std::uint16_t remote_port)>& keep) {
  std::ifstream in("/proc/net/tcp");
  std::string line;
  std::getline(in, line);  // header
  int n = 0;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, st;
    fields >> slot >> local >> remote >> st;
    if (st != state) continue;
    // "0101007F:1F90": the address as the kernel's __be32 printed in host order, then the port.
    const auto ip = static_cast<std::uint32_t>(std::stoul(local.substr(0, 8), nullptr, 16));
    const auto lport = static_cast<std::uint16_t>(std::stoul(local.substr(9), nullptr, 16));
    const auto rport = static_cast<std::uint16_t>(std::stoul(remote.substr(9), nullptr, 16));
    if (keep(ntohl(ip), lport, rport)) ++n;
  }
  return n;
}

class Loadgen : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(server_.start()) << "server_threads did not start"; }
  ThreadsServer server_;
};

void expect_clean(const RunResult& r) {
  ASSERT_EQ(r.code, 0) << describe(r);
  ASSERT_TRUE(r.json.has("requests")) << describe(r);
  EXPECT_EQ(r.json.num("errors.total"), 0) << describe(r);
  EXPECT_GT(r.json.num("requests"), 0) << describe(r);
}

// ---- counts -------------------------------------------------------------------------------

TEST_F(Loadgen, RequestCountEqualsTheServersDeltaExactly) {
  const auto before = server_stats(server_.port());
  ASSERT_TRUE(before);
  const RunResult r =
      run_loadgen({"--url", server_.url("/ping"), "-c", "8", "--requests", "5000", "--json", "-"});
  expect_clean(r);
  const auto after = server_stats(server_.port());
  ASSERT_TRUE(after);
  EXPECT_EQ(r.json.num("requests"), 5000);
  EXPECT_EQ(r.json.num("mix.0.requests"), 5000);
  EXPECT_EQ(after->num("requests") - before->num("requests"), 5000);
}

TEST_F(Loadgen, PipelinedRequestsOnTwoThreadsAreCountedExactly) {
  const auto before = server_stats(server_.port());
  ASSERT_TRUE(before);
  const RunResult r = run_loadgen({"--url", server_.url("/plaintext"), "-c", "4", "-t", "2",
                                   "--pipeline", "16", "--requests", "7777", "--json", "-"});
  expect_clean(r);
  const auto after = server_stats(server_.port());
  ASSERT_TRUE(after);
  EXPECT_EQ(r.json.num("requests"), 7777);
  EXPECT_EQ(r.json.num("pipeline"), 16);
  EXPECT_EQ(after->num("requests") - before->num("requests"), 7777);
}

// ---- open loop and coordinated omission ------------------------------------------------------

// The server is stopped (SIGSTOP) for 400 ms in the middle of a 1000 req/s open-loop run on two
// connections. Only the two requests in flight at the stall wait in the raw series (0.1%:
// invisible at p99); the ~400 requests whose intended send time fell in the stall owe their
// wait to it in the corrected series, which puts p99 near the stall's length.
TEST_F(Loadgen, OpenLoopCorrectedLatencyShowsAStallThatRawLatencyHides) {
  Child lg;
  ASSERT_TRUE(lg.spawn({bin_dir() + "/loadgen", "--url", server_.url("/ping"), "-c", "2", "--rate",
                        "1000", "-d", "2s", "--json", "-"}));
  ASSERT_TRUE(
      lg.pump_until([&] { return lg.err().find("window start") != std::string::npos; }, 5000ms))
      << lg.err();
  std::this_thread::sleep_for(600ms);
  server_.child().signal(SIGSTOP);
  std::this_thread::sleep_for(400ms);
  server_.child().signal(SIGCONT);
  ASSERT_EQ(lg.wait(10000ms), 0) << lg.err();
  const auto j = Json::parse(lg.out());
  ASSERT_TRUE(j) << lg.out();
  EXPECT_EQ(j->str("mode"), "open");
  EXPECT_EQ(j->str("corrected"), "true");
  EXPECT_EQ(j->num("errors.total"), 0);
  const double corrected_p99 = j->num("latency_us.p99");
  const double raw_p99 = j->num("latency_raw_us.p99");
  EXPECT_GT(corrected_p99, 250'000) << lg.out();  // microseconds
  EXPECT_LT(raw_p99, 100'000) << lg.out();
  EXPECT_GT(j->num("latency_raw_us.max"), 300'000) << "the stalled requests themselves";
  // After the stall the backlog goes out at once, so the run still achieves its rate.
  EXPECT_NEAR(j->num("requests"), 2000, 60) << lg.out();
}

TEST_F(Loadgen, OpenLoopHoldsItsRate) {
  const RunResult r = run_loadgen(
      {"--url", server_.url("/ping"), "-c", "4", "--rate", "2000", "-d", "1s", "--json", "-"});
  expect_clean(r);
  EXPECT_EQ(r.json.num("rate"), 2000);
  EXPECT_NEAR(r.json.num("requests"), 2000, 40) << describe(r);
  EXPECT_NEAR(r.json.num("achieved_rate"), 2000, 40) << describe(r);
}

// ---- modes ---------------------------------------------------------------------------------

TEST_F(Loadgen, ClosedLoop) {
  const RunResult r =
      run_loadgen({"--url", server_.url("/ping"), "-c", "4", "-d", "300ms", "--json", "-"});
  expect_clean(r);
  EXPECT_EQ(r.json.str("mode"), "closed");
  EXPECT_EQ(r.json.str("corrected"), "false");
  EXPECT_EQ(r.json.str("rate"), "null");
  EXPECT_NEAR(r.json.num("duration_s"), 0.3, 0.001);
  EXPECT_EQ(r.json.num("connects"), 4);
  EXPECT_GT(r.json.num("latency_us.p50"), 0);
  EXPECT_LE(r.json.num("latency_us.p50"), r.json.num("latency_us.p99"));
  EXPECT_LE(r.json.num("latency_us.p99"), r.json.num("latency_us.max"));
  EXPECT_GE(r.json.num("client_cpu_s.user") + r.json.num("client_cpu_s.sys"), 0);
}

TEST_F(Loadgen, TwoThreadsWithHeadRequests) {
  const RunResult r = run_loadgen({"--url", server_.url("/ping"), "-c", "4", "-t", "2", "--method",
                                   "HEAD", "-d", "300ms", "--json", "-"});
  expect_clean(r);
  EXPECT_EQ(r.json.num("threads"), 2);
}

// The server closes first (the request says Connection: close and loadgen waits for its FIN),
// so TIME_WAIT piles up on the server's side and never on the client's ephemeral ports.
TEST_F(Loadgen, NewConnectionPerRequestLeavesTimeWaitOnTheServerSide) {
  const RunResult r = run_loadgen({"--url", server_.url("/ping"), "-c", "2",
                                   "--new-connection-per-request", "-d", "400ms", "--json", "-"});
  expect_clean(r);
  EXPECT_EQ(r.json.str("connection_mode"), "new-connection-per-request");
  EXPECT_GE(r.json.num("connects"), r.json.num("requests"));
  const std::uint16_t port = server_.port();
  const int client_side =
      count_tcp("06", [&](std::uint32_t, std::uint16_t local, std::uint16_t remote) {
        return remote == port && local != port;
      });
  const int server_side = count_tcp(
      "06", [&](std::uint32_t, std::uint16_t local, std::uint16_t) { return local == port; });
  EXPECT_EQ(client_side, 0);
  EXPECT_GT(server_side, 0);
}

// Idle connections spread over 127.0.1.1-3 (IP_BIND_ADDRESS_NO_PORT), checked in the kernel's
// socket table while the window runs.
TEST_F(Loadgen, IdleConnectionsAreHeldFromSeveralSourceAddresses) {
  Child lg;
  ASSERT_TRUE(lg.spawn({bin_dir() + "/loadgen", "--url", server_.url("/ping"), "-c", "2",
                        "--idle-connections", "300", "--source-addrs", "3", "--connect-rate",
                        "5000", "-d", "800ms", "--json", "-"}));
  ASSERT_TRUE(
      lg.pump_until([&] { return lg.err().find("window start") != std::string::npos; }, 10000ms))
      << lg.err();
  const std::uint16_t port = server_.port();
  int per_address[3] = {0, 0, 0};
  for (int i = 0; i < 3; ++i) {
    const std::uint32_t want = (127u << 24) | (1u << 8) | static_cast<std::uint32_t>(i + 1);
    per_address[i] = count_tcp("01", [&](std::uint32_t ip, std::uint16_t, std::uint16_t remote) {
      return ip == want && remote == port;
    });
  }
  ASSERT_EQ(lg.wait(10000ms), 0) << lg.err();
  EXPECT_EQ(per_address[0], 100);
  EXPECT_EQ(per_address[1], 100);
  EXPECT_EQ(per_address[2], 100);
  const auto j = Json::parse(lg.out());
  ASSERT_TRUE(j) << lg.out();
  EXPECT_EQ(j->num("idle_connections.requested"), 300);
  EXPECT_EQ(j->num("idle_connections.ready"), 300);
  EXPECT_EQ(j->num("idle_connections.lost"), 0);
  EXPECT_EQ(j->num("errors.total"), 0);
  EXPECT_GT(j->num("requests"), 0);
}

TEST_F(Loadgen, RequestMixIsFollowedAndVerified) {
  const RunResult r = run_loadgen({"--url", server_.url("/"), "-c", "4", "--mix",
                                   "3:/ping,1:/plaintext,1:404:/missing,1:/bytes?n=3000", "-d",
                                   "300ms", "--json", "-"});
  expect_clean(r);
  const double total = r.json.num("requests");
  double sum = 0;
  for (int i = 0; i < 4; ++i) {
    const double n = r.json.num("mix." + std::to_string(i) + ".requests");
    EXPECT_GT(n, 0) << i;
    sum += n;
  }
  EXPECT_EQ(sum, total);
  EXPECT_EQ(r.json.num("mix.2.expected_status"), 404);
  // Weight 3 of 6 for /ping: about half, far from a uniform quarter.
  EXPECT_NEAR(r.json.num("mix.0.requests") / total, 0.5, 0.05);
}

TEST_F(Loadgen, ThinkTimePacesEachConnection) {
  const RunResult r = run_loadgen(
      {"--url", server_.url("/ping"), "-c", "2", "--think-ms", "20", "-d", "600ms", "--json", "-"});
  expect_clean(r);
  // 2 connections x 600 ms / (20 ms + a round trip): at most 60.
  EXPECT_LE(r.json.num("requests"), 62);
  EXPECT_GE(r.json.num("requests"), 40);
  EXPECT_NEAR(r.json.num("think_ms"), 20, 0.001);
}

TEST_F(Loadgen, WarmupIsNotCounted) {
  const RunResult r = run_loadgen({"--url", server_.url("/ping"), "-c", "2", "--warmup", "200ms",
                                   "-d", "200ms", "--json", "-"});
  expect_clean(r);
  EXPECT_GT(r.json.num("warmup_requests"), 0);
  const double window_ns = r.json.num("window.end_unix_ns") - r.json.num("window.start_unix_ns");
  EXPECT_NEAR(window_ns / 1e9, 0.2, 0.05);
}

TEST_F(Loadgen, HistogramFileHoldsEveryCountedRequest) {
  const std::string path =
      ::testing::TempDir() + "loadgen_hist_" + std::to_string(::getpid()) + ".csv";
  const RunResult r = run_loadgen({"--url", server_.url("/ping"), "-c", "2", "--rate", "1000", "-d",
                                   "400ms", "--hist", path, "--json", "-"});
  expect_clean(r);
  std::ifstream in(path);
  ASSERT_TRUE(in) << path;
  std::string line;
  bool header = false;
  std::map<std::string, double> counts;
  std::map<std::string, double> last_to;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (!header) {
      EXPECT_EQ(line, "series,value_from_us,value_to_us,count");
      header = true;
      continue;
    }
    std::istringstream f(line);
    std::string series, from, to, count;
    std::getline(f, series, ',');
    std::getline(f, from, ',');
    std::getline(f, to, ',');
    std::getline(f, count, ',');
    EXPECT_LT(std::stod(from), std::stod(to)) << line;
    EXPECT_GE(std::stod(from), last_to[series]) << line;  // increasing, no overlap
    last_to[series] = std::stod(to);
    counts[series] += std::stod(count);
  }
  std::filesystem::remove(path);
  EXPECT_TRUE(header);
  EXPECT_EQ(counts["latency"], r.json.num("requests"));
  EXPECT_EQ(counts["raw"], r.json.num("requests"));
  EXPECT_EQ(r.json.str("histogram_file"), path);
}

TEST_F(Loadgen, WindowMarksGoToTheGivenDescriptor) {
  int marks[2];
  ASSERT_EQ(::pipe2(marks, O_CLOEXEC), 0);
  Child lg;
  ASSERT_TRUE(lg.spawn({bin_dir() + "/loadgen", "--url", server_.url("/ping"), "-c", "2", "-d",
                        "300ms", "--mark-fd", "3"},
                       marks[1]));
  ::close(marks[1]);
  ASSERT_EQ(lg.wait(10000ms), 0) << lg.err();
  std::string text;
  char buf[512];
  ssize_t n;
  while ((n = ::read(marks[0], buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
  ::close(marks[0]);
  long long start = 0, end = 0;
  ASSERT_EQ(std::sscanf(text.c_str(), "loadgen: window start %lld\nloadgen: window end %lld\n",
                        &start, &end),
            2)
      << text;
  EXPECT_NEAR(static_cast<double>(end - start) / 1e9, 0.3, 0.05);
  EXPECT_EQ(lg.err().find("window"), std::string::npos) << lg.err();
  EXPECT_NE(lg.out().find("Requests/sec:"), std::string::npos) << "the readable summary";
}

// ---- errors --------------------------------------------------------------------------------

TEST_F(Loadgen, UnexpectedStatusIsCountedAsAnError) {
  const RunResult r =
      run_loadgen({"--url", server_.url("/missing"), "-c", "2", "-d", "200ms", "--json", "-"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_GT(r.json.num("errors.status"), 0);
  EXPECT_EQ(r.json.num("errors.status"), r.json.num("errors.total"));
  EXPECT_EQ(r.json.num("requests"), 0);
  EXPECT_NE(r.json.str("first_error").find("status"), std::string::npos);
}

TEST_F(Loadgen, SlowResponsesTimeOut) {
  const RunResult r = run_loadgen({"--url", server_.url("/sleep?ms=700"), "-c", "2", "--timeout",
                                   "150ms", "-d", "500ms", "--json", "-"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_GE(r.json.num("errors.timeout"), 2) << describe(r);
  EXPECT_EQ(r.json.num("requests"), 0);
}

TEST(LoadgenCommandLine, UnknownFlagIsRefused) {
  const RunResult r = run_loadgen({"--url", "http://127.0.0.1:1/ping", "--bogus"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("unknown flag '--bogus'"), std::string::npos) << r.err;
}

TEST(LoadgenCommandLine, MissingUrlIsRefused) {
  const RunResult r = run_loadgen({"-c", "4"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--url is required"), std::string::npos) << r.err;
}

TEST(LoadgenCommandLine, RemoteTargetIsRefusedWithoutAllowRemote) {
  const RunResult r = run_loadgen({"--url", "http://192.0.2.1:80/ping", "-d", "1s"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("127.0.0.0/8"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--allow-remote"), std::string::npos) << r.err;
}

TEST(LoadgenCommandLine, UnreachableServerIsAClearError) {
  // A port that was just free: bind it, note it, close it.
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  const RunResult r = run_loadgen(
      {"--url", "http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/ping", "-d", "1s"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("cannot connect"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Connection refused"), std::string::npos) << r.err;
}

// A one-thread poll server answering every request head with the same canned bytes, closing
// the connection after each answer when asked: wrong answers on purpose.
class CannedServer {
 public:
  CannedServer(std::string answer, bool close_after)
      : answer_(std::move(answer)), close_after_(close_after) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(listen_fd_, 64);
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~CannedServer() {
    stop_ = true;
    thread_.join();
    for (auto& [fd, buffer] : clients_) ::close(fd);
    ::close(listen_fd_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/ping"; }

 private:
  void serve() {
    while (!stop_) {
      std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}};
      for (auto& [fd, buffer] : clients_) fds.push_back({fd, POLLIN, 0});
      if (::poll(fds.data(), fds.size(), 20) <= 0) continue;
      if (fds[0].revents) {
        int fd;
        while ((fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC)) >= 0) clients_[fd];
      }
      for (std::size_t i = 1; i < fds.size(); ++i) {
        if (!fds[i].revents) continue;
        const int fd = fds[i].fd;
        char buf[4096];
        const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n <= 0) {
          ::close(fd);
          clients_.erase(fd);
          continue;
        }
        std::string& pending = clients_[fd];
        pending.append(buf, static_cast<std::size_t>(n));
        bool closed = false;
        for (std::size_t end; !closed && (end = pending.find("\r\n\r\n")) != std::string::npos;) {
          pending.erase(0, end + 4);
          ::send(fd, answer_.data(), answer_.size(), MSG_NOSIGNAL);
          if (close_after_) {
            ::close(fd);
            clients_.erase(fd);
            closed = true;
          }
        }
      }
    }
  }
  std::string answer_;
  bool close_after_;
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::map<int, std::string> clients_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

struct Wrong {
  const char* name;
  const char* answer;
  bool close_after;
  const char* kind;  // the error kind it must count
};

void PrintTo(const Wrong& w, std::ostream* os) { *os << w.name; }

class LoadgenAgainstWrongAnswers : public ::testing::TestWithParam<Wrong> {};

TEST_P(LoadgenAgainstWrongAnswers, CountsTheRightErrorKind) {
  CannedServer server(GetParam().answer, GetParam().close_after);
  const RunResult r = run_loadgen({"--url", server.url(), "-c", "1", "-d", "200ms", "--json", "-"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const std::string kind = GetParam().kind;
  EXPECT_GT(r.json.num("errors." + kind), 0) << describe(r);
  EXPECT_EQ(r.json.num("errors." + kind), r.json.num("errors.total")) << describe(r);
  EXPECT_EQ(r.json.num("requests"), 0) << describe(r);
}

const Wrong kWrongAnswers[] = {
    {"WrongBody", "HTTP/1.1 200 OK\r\nContent-Length: 18\r\n\r\n{\"message\":\"pang\"}", false,
     "body"},
    {"WrongLength", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false, "body"},
    {"Chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false, "parse"},
    {"Garbage", "hello\r\n\r\n", false, "parse"},
    {"ClosedMidBody", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"mess", true, "read"},
};

INSTANTIATE_TEST_SUITE_P(Table, LoadgenAgainstWrongAnswers, ::testing::ValuesIn(kWrongAnswers),
                         [](const auto& case_info) { return std::string(case_info.param.name); });

// ---- nginx with the reference configuration ------------------------------------------------

TEST(LoadgenAgainstNginx, ReferenceConfigServesTheRoutes) {
  const std::string nginx = "/usr/sbin/nginx";
  if (::access(nginx.c_str(), X_OK) != 0) GTEST_SKIP() << "nginx is not installed";
  namespace fs = std::filesystem;
  const fs::path prefix =
      fs::path(::testing::TempDir()) / ("iolab-nginx-" + std::to_string(::getpid()));
  fs::create_directories(prefix / "tmp");
  // A port that was just free.
  const int probe = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(probe, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(probe, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(probe);
  const std::uint16_t port = ntohs(a.sin_port);

  std::ifstream in(std::string(IOLAB_SOURCE_DIR) + "/servers/reference/nginx/nginx.conf.in");
  ASSERT_TRUE(in);
  std::stringstream conf;
  conf << in.rdbuf();
  std::string text = conf.str();
  for (const auto& [key, value] :
       {std::pair<std::string, std::string>{"@PORT@", std::to_string(port)},
        {"@NOFILE@", "4096"}}) {
    for (std::size_t at; (at = text.find(key)) != std::string::npos;)
      text.replace(at, key.size(), value);
  }
  std::ofstream((prefix / "nginx.conf").string()) << text;

  Child server;
  ASSERT_TRUE(
      server.spawn({nginx, "-p", prefix.string() + "/", "-e", (prefix / "error.log").string(), "-c",
                    (prefix / "nginx.conf").string()}));
  bool up = false;
  for (int i = 0; i < 150 && !up; ++i) {
    const int fd = connect_to(port);
    up = fd >= 0;
    if (fd >= 0)
      ::close(fd);
    else
      std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(up) << "nginx did not listen on " << port;
  const RunResult r =
      run_loadgen({"--url", "http://127.0.0.1:" + std::to_string(port) + "/", "-c", "4", "--mix",
                   "2:/ping,1:/plaintext,1:404:/missing", "-d", "300ms", "--json", "-"});
  server.signal(SIGTERM);
  const auto code = server.wait(5000ms);
  fs::remove_all(prefix);
  expect_clean(r);
  EXPECT_GT(r.json.num("mix.0.requests"), 0);
  EXPECT_GT(r.json.num("mix.1.requests"), 0);
  EXPECT_GT(r.json.num("mix.2.requests"), 0);
  EXPECT_EQ(code, 0) << server.err();
}

}  // namespace
}  // namespace iolab::test
