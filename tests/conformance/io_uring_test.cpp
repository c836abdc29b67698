// io_uring-specific checks of server_io_uring, over loopback, beyond the shared conformance
// suite: the io_uring traps (multishot accept and EMFILE, a close with a recv in
// flight, a provided-buffer ring running dry), the enter count against the kernel's tracepoint,
// the one-enter-per-request fold, exit 77 when io_uring is refused, and the mode flags.
// Each check is a mechanism (counts, closes, exit codes), not a timing.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "http_client.hpp"

namespace iolab::test {
namespace {

using namespace std::chrono_literals;

std::string bin_dir() {
  if (const char* env = std::getenv("IOLAB_BIN_DIR"); env && *env) return env;
  return IOLAB_BIN_DIR;
}

struct Spawn {
  std::vector<std::string> argv;
  std::optional<rlim_t> nofile;      // soft and hard RLIMIT_NOFILE in the child
  bool deny_io_uring_setup = false;  // a seccomp filter: io_uring_setup fails with EPERM
};

// Makes io_uring_setup(2) fail with EPERM, as Docker's default seccomp profile does.
void deny_io_uring_setup() {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog prog{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
      ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
    _exit(124);
  }
}

// A child with stdout on a pipe and stderr in a memfd; SIGKILLed and reaped if still running.
class Process {
 public:
  ~Process() {
    if (pid_ > 0 && !status_) {
      ::kill(pid_, SIGKILL);
      wait(5000ms);
    }
    if (out_ >= 0) ::close(out_);
    if (err_ >= 0) ::close(err_);
  }

  bool spawn(const Spawn& s) {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return false;
    err_ = ::memfd_create("stderr", MFD_CLOEXEC);
    std::vector<std::string> args = s.argv;
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) return false;
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) _exit(126);
      ::dup2(out[1], 1);
      ::dup2(err_, 2);
      if (s.nofile) {
        rlimit lim{*s.nofile, *s.nofile};
        if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) _exit(125);
      }
      if (s.deny_io_uring_setup) deny_io_uring_setup();
      ::execvp(argv[0], argv.data());
      _exit(127);
    }
    ::close(out[1]);
    out_ = out[0];
    return true;
  }

  // The next stdout line, or nullopt at EOF or after the timeout.
  std::optional<std::string> read_line(Ms timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      if (auto nl = buf_.find('\n'); nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return line;
      }
      const auto left = std::chrono::duration_cast<Ms>(deadline - Clock::now()).count();
      pollfd p{out_, POLLIN, 0};
      if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) return std::nullopt;
      char chunk[4096];
      const ssize_t n = ::read(out_, chunk, sizeof chunk);
      if (n <= 0) return std::nullopt;
      buf_.append(chunk, static_cast<std::size_t>(n));
    }
  }

  // Exit status (as from waitpid), or nullopt if still running after the timeout.
  std::optional<int> wait(Ms timeout) {
    const auto deadline = Clock::now() + timeout;
    while (!status_) {
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        status_ = st;
      } else if (Clock::now() >= deadline) {
        return std::nullopt;
      } else {
        std::this_thread::sleep_for(5ms);
      }
    }
    return status_;
  }

  std::string stderr_text() const {
    std::string text;
    char chunk[4096];
    off_t off = 0;
    ssize_t n;
    while ((n = ::pread(err_, chunk, sizeof chunk, off)) > 0) {
      text.append(chunk, static_cast<std::size_t>(n));
      off += n;
    }
    return text;
  }

  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  int err_ = -1;
  std::string buf_;
  std::optional<int> status_;
};

// server_io_uring under test; `launcher` goes before it on the command line (perf stat).
class Server {
 public:
  // Starts and reads the ready line; false with `skip` set when the kernel refuses io_uring.
  bool start(std::vector<std::string> flags, std::optional<rlim_t> nofile = std::nullopt,
             std::vector<std::string> launcher = {}) {
    Spawn s;
    s.argv = launcher;
    s.argv.push_back(bin_dir() + "/server_io_uring");
    s.argv.insert(s.argv.end(), {"--port", "0"});
    s.argv.insert(s.argv.end(), flags.begin(), flags.end());
    s.nofile = nofile;
    if (!proc_.spawn(s)) return false;
    const auto line = proc_.read_line(5000ms);
    if (!line) {
      const auto st = proc_.wait(2000ms);
      skip = st && WIFEXITED(*st) && WEXITSTATUS(*st) == 77;
      error = "no ready line; stderr: " + proc_.stderr_text();
      return false;
    }
    // "server_io_uring listening on 127.0.0.1:PORT threads=N pid=PID"
    const auto colon = line->find("127.0.0.1:");
    const auto at = line->find(" pid=");
    if (line->rfind("server_io_uring listening on ", 0) != 0 || colon == std::string::npos ||
        at == std::string::npos) {
      error = "bad ready line: " + *line;
      return false;
    }
    port = static_cast<std::uint16_t>(std::stoi(line->substr(colon + 10)));
    pid = std::stoi(line->substr(at + 5));
    return true;
  }

  // SIGTERM; the final stats line.
  std::optional<Json> stop() {
    ::kill(pid, SIGTERM);
    std::optional<Json> last;
    while (auto line = proc_.read_line(3000ms)) {
      if (!line->empty() && line->front() == '{') last = parse_json(*line);
    }
    const auto st = proc_.wait(3000ms);
    if (!st || !WIFEXITED(*st) || WEXITSTATUS(*st) != 0) return std::nullopt;
    return last;
  }

  Process proc_;
  std::uint16_t port = 0;
  int pid = -1;
  bool skip = false;
  std::string error;
};

#define START(server, ...)                                              \
  do {                                                                  \
    if (!(server).start(__VA_ARGS__)) {                                 \
      if ((server).skip) GTEST_SKIP() << "exit 77: " << (server).error; \
      FAIL() << (server).error;                                         \
    }                                                                   \
  } while (0)

double number(const Json& obj, std::string_view path) {
  const Json* v = &obj;
  for (std::size_t dot; v && (dot = path.find('.')) != std::string_view::npos;
       path.remove_prefix(dot + 1)) {
    v = v->find(path.substr(0, dot));
  }
  v = v ? v->find(path) : nullptr;
  EXPECT_TRUE(v && v->is_number()) << "stats key " << path;
  return v && v->is_number() ? v->number : -1;
}

Json stats(Conn& c) {
  auto r = c.roundtrip(get("/stats"));
  EXPECT_TRUE(r) << c.error();
  auto json = r ? parse_json(r->body) : std::nullopt;
  EXPECT_TRUE(json && json->is_object());
  return json ? *json : Json{};
}

const std::vector<std::string> kMultishot = {"--recv-multishot", "1"};
const std::vector<std::string> kOneShot = {"--recv-multishot", "0"};

// ---- the traps ------------------------------------------------------------------------------

// Multishot accept ends with -EMFILE and no F_MORE; the server must pause, not re-arm at once.
// Counted: back-offs happen, and the loop enters the kernel only a few times per second while
// the descriptor table is full (a spin would be thousands).
TEST(IoUring, DescriptorExhaustionMultishotAcceptDoesNotSpin) {
  Server s;
  START(s, {"--idle-timeout-ms", "20000", "--header-timeout-ms", "20000"}, rlim_t{48});
  std::vector<Conn> conns;
  for (int i = 0; i < 80; ++i) {
    Conn c(s.port, 2000ms);
    if (!c.ok() || !c.send(get("/ping"))) break;
    conns.push_back(std::move(c));
  }
  std::this_thread::sleep_for(500ms);
  Conn* served = nullptr;
  for (auto& c : conns) {
    if (!c.readable_now()) continue;
    auto r = c.read_response(false, 1000ms);
    if (r && r->status == 200 && !served) served = &c;
  }
  ASSERT_NE(served, nullptr) << "no connection was served";
  const Json a = stats(*served);
  std::this_thread::sleep_for(1000ms);
  const Json b = stats(*served);
  EXPECT_GE(number(b, "model_counters.accept_backoffs"), 1)
      << "the table never filled (test setup)";
  const double enters = number(b, "syscalls.io_uring_enter") - number(a, "syscalls.io_uring_enter");
  const double backoffs =
      number(b, "model_counters.accept_backoffs") - number(a, "model_counters.accept_backoffs");
  EXPECT_LE(enters, 60) << "io_uring_enter calls in 1 s with descriptors exhausted: a spin";
  EXPECT_LE(backoffs, 20) << "accept re-armed too often while descriptors are exhausted";
  conns.clear();
  Conn fresh(s.port, 3000ms);
  auto r = fresh.roundtrip(get("/ping"), false, 3000ms);
  ASSERT_TRUE(r) << "no recovery once descriptors were freed: " << fresh.error();
  EXPECT_EQ(r->status, 200);
}

// close() alone does not end a connection with a recv in flight; the idle timer must cancel
// the recv first, and then the peer sees FIN. In both receive modes.
class RecvMode : public ::testing::TestWithParam<std::vector<std::string>> {};

TEST_P(RecvMode, IdleCloseWithRecvPendingReachesThePeer) {
  Server s;
  std::vector<std::string> flags = GetParam();
  flags.insert(flags.end(), {"--idle-timeout-ms", "300", "--header-timeout-ms", "300"});
  START(s, flags);
  const std::size_t baseline = count_open_fds(s.pid);
  for (int i = 0; i < 5; ++i) {
    Conn c(s.port);
    auto r = c.roundtrip(get("/ping"));
    ASSERT_TRUE(r) << c.error();
    const CloseResult closed = c.wait_closed(3000ms);  // a recv is pending all this time
    EXPECT_EQ(closed.kind, CloseKind::Closed) << to_string(closed.kind) << " " << closed.error;
    EXPECT_GE(closed.elapsed, 150ms);
  }
  for (int i = 0; i < 60 && count_open_fds(s.pid) > baseline; ++i)
    std::this_thread::sleep_for(50ms);
  EXPECT_LE(count_open_fds(s.pid), baseline) << "sockets not released after the idle closes";
  auto final_stats = s.stop();
  ASSERT_TRUE(final_stats);
  EXPECT_EQ(number(*final_stats, "connections_closed"),
            number(*final_stats, "connections_accepted"));
}

// A single 64-byte buffer: every request needs several, so the multishot recv keeps ending with
// -ENOBUFS and must be re-armed after the buffer comes back; answers stay right and in order.
TEST(IoUring, OneBufferRingRunsDryAndRecovers) {
  Server s;
  START(s, {"--recv-multishot", "1", "--buffers", "1", "--buffer-bytes", "64"});
  const std::string padding = "X-Padding: " + std::string(300, 'p') + "\r\n";
  std::vector<Conn> conns;
  for (int i = 0; i < 4; ++i) conns.emplace_back(s.port);
  std::string batch;
  for (int i = 0; i < 10; ++i) batch += get(i % 2 ? "/plaintext" : "/ping", padding);
  for (auto& c : conns) ASSERT_TRUE(c.send(batch)) << c.error();
  for (auto& c : conns) {
    for (int i = 0; i < 10; ++i) {
      auto r = c.read_response();
      ASSERT_TRUE(r) << "response " << i << ": " << c.error();
      EXPECT_EQ(r->body, i % 2 ? "Hello, World!" : R"({"message":"pong"})");
    }
  }
  const Json st = stats(conns[0]);
  EXPECT_GE(number(st, "model_counters.pool_misses"), 1) << "the ring never ran dry (-ENOBUFS)";
  EXPECT_EQ(number(st, "model_counters.pool_reserved_bytes"), 64 + 16);
}

// ---- counts -----------------------------------------------------------------------------------

bool perf_permitted() {
  Process p;
  Spawn s;
  s.argv = {"perf", "stat",      "-x,", "-e",  "syscalls:sys_enter_io_uring_enter",
            "-o",   "/dev/null", "--",  "true"};
  if (!p.spawn(s)) return false;
  const auto st = p.wait(10000ms);
  return st && WIFEXITED(*st) && WEXITSTATUS(*st) == 0;
}

// liburing calls io_uring_enter() itself, so /stats counts the calls it knows liburing makes;
// the kernel's tracepoint says whether that is right. Exact with DEFER_TASKRUN, where no
// completion can appear between the loop's last look and its wait.
TEST_P(RecvMode, EnterCountMatchesTracepoint) {
  if (!perf_permitted()) GTEST_SKIP() << "perf cannot count syscalls:sys_enter_io_uring_enter here";
  const std::string out =
      std::filesystem::temp_directory_path() / ("iolab-perf-" + std::to_string(::getpid()));
  Server s;
  START(s, GetParam(), std::nullopt,
        {"perf", "stat", "-x,", "-e", "syscalls:sys_enter_io_uring_enter", "-o", out, "--"});
  std::vector<Conn> conns;
  for (int i = 0; i < 8; ++i) conns.emplace_back(s.port);
  for (int round = 0; round < 50; ++round) {
    for (auto& c : conns) ASSERT_TRUE(c.send(get(round % 5 ? "/ping" : "/file?n=100000")));
    for (auto& c : conns) ASSERT_TRUE(c.read_response()) << c.error();
  }
  conns.clear();
  auto final_stats = s.stop();
  ASSERT_TRUE(final_stats);
  std::ifstream in(out);
  std::string line;
  double traced = -1;
  while (std::getline(in, line)) {
    if (line.find("sys_enter_io_uring_enter") != std::string::npos)
      traced = std::stod(line.substr(0, line.find(',')));
  }
  std::filesystem::remove(out);
  ASSERT_GE(traced, 0) << "no count in perf's output";
  EXPECT_EQ(number(*final_stats, "syscalls.io_uring_enter"), traced);
}

// One enter per request on a keep-alive connection: the send is submitted with the wait for
// the next request, and its inline completion does not end that wait.
TEST_P(RecvMode, OneEnterPerSequentialRequest) {
  Server s;
  START(s, GetParam());
  Conn c(s.port);
  c.set_nodelay();
  const Json a = stats(c);
  constexpr int kRequests = 300;
  for (int i = 0; i < kRequests; ++i) ASSERT_TRUE(c.roundtrip(get("/ping"))) << c.error();
  const Json b = stats(c);
  const double per_request =
      (number(b, "syscalls.io_uring_enter") - number(a, "syscalls.io_uring_enter")) / kRequests;
  EXPECT_LE(per_request, 1.3) << "enters per request (2 without the fold)";
  EXPECT_GE(per_request, 0.9);
}

std::string RecvModeName(const ::testing::TestParamInfo<std::vector<std::string>>& mode) {
  return mode.param[1] == "1" ? "Multishot" : "OneShot";
}

INSTANTIATE_TEST_SUITE_P(IoUring, RecvMode, ::testing::Values(kMultishot, kOneShot), RecvModeName);

// ---- start-up -------------------------------------------------------------------------------

TEST(IoUring, RefusedByKernelExits77WithReason) {
  Process p;
  Spawn s;
  s.argv = {bin_dir() + "/server_io_uring", "--port", "0"};
  s.deny_io_uring_setup = true;
  ASSERT_TRUE(p.spawn(s));
  const auto st = p.wait(5000ms);
  ASSERT_TRUE(st) << "still running with io_uring_setup denied";
  ASSERT_TRUE(WIFEXITED(*st)) << "killed by a signal";
  EXPECT_EQ(WEXITSTATUS(*st), 77) << p.stderr_text();
  const std::string err = p.stderr_text();  // the reason: our filter, or the sysctl if set
  EXPECT_TRUE(err.find("seccomp") != std::string::npos ||
              err.find("io_uring_disabled") != std::string::npos)
      << err;
}

// --fallback makes the server act as if the kernel lacked a feature (the probe's answer, or
// DEFER_TASKRUN's -EINVAL), so each fallback runs on this kernel: it must still serve, with the
// mode it fell back to named on stderr, several connections (a one-shot accept is re-armed
// after each) and pipelined requests (a one-shot recv is re-armed after each).
TEST(IoUring, EachFallbackServes) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"1", {"multishot recv", "multishot accept", "COOP_TASKRUN"}},
      {"2", {"one-shot recv", "multishot accept", "DEFER_TASKRUN"}},
      {"4", {"multishot recv", "one-shot accept", "DEFER_TASKRUN"}},
      {"7", {"one-shot recv", "one-shot accept", "COOP_TASKRUN"}},
  };
  for (const auto& [fallback, modes] : cases) {
    SCOPED_TRACE("--fallback " + fallback);
    Server s;
    START(s, {"--fallback", fallback});
    for (int i = 0; i < 4; ++i) {
      Conn c(s.port);
      ASSERT_TRUE(c.ok()) << c.error();
      ASSERT_TRUE(c.send(get("/ping") + get("/plaintext") + get("/bytes?n=20000")));
      for (int i_response : {0, 1, 2}) {
        auto r = c.read_response();
        ASSERT_TRUE(r) << "response " << i_response << ": " << c.error();
        EXPECT_EQ(r->status, 200);
      }
    }
    const std::string err = s.proc_.stderr_text();
    for (const auto& mode : modes) EXPECT_NE(err.find(mode), std::string::npos) << err;
    EXPECT_TRUE(s.stop()) << "no clean exit";
  }
}

// Where nothing works (a needed operation missing: --fallback 8 pretends so), exit 77 naming it.
TEST(IoUring, MissingOperationExits77NamingIt) {
  Process p;
  Spawn s;
  s.argv = {bin_dir() + "/server_io_uring", "--port", "0", "--fallback", "8"};
  ASSERT_TRUE(p.spawn(s));
  const auto st = p.wait(5000ms);
  ASSERT_TRUE(st) << "still running";
  ASSERT_TRUE(WIFEXITED(*st)) << "killed by a signal";
  EXPECT_EQ(WEXITSTATUS(*st), 77) << p.stderr_text();
  EXPECT_NE(p.stderr_text().find("IORING_OP_"), std::string::npos) << p.stderr_text();
  EXPECT_NE(p.stderr_text().find("is missing"), std::string::npos) << p.stderr_text();
}

TEST(IoUring, ModeFlagConflictsRejectedByName) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--recv-multishot", "0", "--buffers", "64"}, "--buffers"},
      {{"--recv-multishot", "0", "--buffer-bytes=1024"}, "--buffer-bytes"},
      {{"--buffers", "100"}, "--buffers"},
      {{"--sqpoll", "1", "--defer-taskrun", "1"}, "--defer-taskrun"},
      {{"--sqpoll", "2"}, "--sqpoll"},
  };
  for (const auto& [flags, name] : cases) {
    Process p;
    Spawn s;
    s.argv = {bin_dir() + "/server_io_uring", "--port", "0"};
    s.argv.insert(s.argv.end(), flags.begin(), flags.end());
    ASSERT_TRUE(p.spawn(s));
    const auto st = p.wait(3000ms);
    ASSERT_TRUE(st) << name << ": still running";
    EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 2) << name;
    EXPECT_NE(p.stderr_text().find(name), std::string::npos) << p.stderr_text();
  }
}

}  // namespace
}  // namespace iolab::test
