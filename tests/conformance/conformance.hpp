// The fixture of the black-box HTTP/1.1 conformance suite: every server binary against what all
// servers share (README.md, "Run a server"; flags in servers/core/os/options.cpp).
//
// One value-parameterized suite (googletest's sample7 shape): each test starts its own server
// process on port 0 with short timeouts, talks to it over loopback with a strict client
// (http_client.hpp), then stops it with SIGTERM and checks the clean exit and the final stats
// line. The cases are split by topic over *_test.cpp files, all on this fixture; servers.cpp
// lists the servers under test (a new server or mode joins with one line there) and
// instantiates the suite once for all of them.
//
// Run one server only:   conformance_test --gtest_filter='*/threads'
// Another build's bins:  IOLAB_BIN_DIR=/path/to/bin conformance_test
// A lab's server only:   IOLAB_SERVER_UNDER_TEST=/path/to/server_x conformance_test (named "lab")
//
// Everything here is in iolab::test (not an anonymous namespace): the fixture must be one type
// across the files, or googletest would see one suite name on several fixture classes.
#pragma once

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <ostream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "http_client.hpp"

namespace iolab::test {

using namespace std::chrono_literals;

// ---- the servers under test ---------------------------------------------------------------

struct ServerSpec {
  std::string name;               // shown in test names: Servers/Conformance.RoutesPing/<name>
  std::string binary;             // file name in the bin directory
  std::vector<std::string> args;  // extra flags selecting the mode
};


inline void PrintTo(const ServerSpec& spec, std::ostream* os) {
  *os << spec.name << " (" << spec.binary;
  for (const auto& a : spec.args) *os << ' ' << a;
  *os << ')';
}

inline std::string bin_dir() {
  if (const char* lab = std::getenv("IOLAB_SERVER_UNDER_TEST"); lab && *lab) {
    return std::filesystem::absolute(lab).parent_path().string();
  }
  if (const char* env = std::getenv("IOLAB_BIN_DIR"); env && *env) return env;
  return IOLAB_BIN_DIR;
}

// Makes a request readable in failure messages: CR LF and control bytes escaped, long runs cut.
inline std::string printable(std::string_view raw, std::size_t max = 300) {
  std::string out;
  for (char c : raw.substr(0, max)) {
    if (c == '\r') out += "\\r";
    else if (c == '\n') out += "\\n";
    else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", static_cast<unsigned char>(c));
      out += hex;
    } else out += c;
  }
  if (raw.size() > max) out += "...(" + std::to_string(raw.size()) + " bytes)";
  return out;
}

// ---- the server process -----------------------------------------------------------------

struct ExitInfo {
  bool exited = false;  // else killed by `signal`
  int code = -1;
  int signal = 0;
  std::string describe() const {
    return exited ? "exit code " + std::to_string(code)
                  : "killed by signal " + std::to_string(signal) + " (" + strsignal(signal) + ")";
  }
};

// A child process with stdout on a pipe and stderr in a memfd (never blocks the child).
// The destructor SIGKILLs and reaps it if it still runs, so nothing outlives a failed test.
class ServerProcess {
 public:
  ServerProcess() = default;
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;
  ~ServerProcess() {
    kill_and_reap();
    if (out_fd_ >= 0) ::close(out_fd_);
    if (err_fd_ >= 0) ::close(err_fd_);
  }

  // fork + exec; `nofile` sets both soft and hard RLIMIT_NOFILE in the child.
  bool spawn(const std::string& path, const std::vector<std::string>& args,
             std::optional<rlim_t> nofile, std::string& error) {
    std::vector<std::string> argv_store{path};
    argv_store.insert(argv_store.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_store) argv.push_back(a.data());
    argv.push_back(nullptr);

    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return error = "pipe2 failed", false;
    err_fd_ = ::memfd_create("server-stderr", MFD_CLOEXEC);
    int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (err_fd_ < 0 || null_fd < 0) return error = "memfd_create or /dev/null failed", false;
    const pid_t parent = ::getpid();

    pid_t pid = ::fork();
    if (pid < 0) return error = std::string("fork: ") + std::strerror(errno), false;
    if (pid == 0) {  // child: async-signal-safe calls only
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test process
      if (::getppid() != parent) _exit(126);
      ::dup2(null_fd, 0);
      ::dup2(out[1], 1);
      ::dup2(err_fd_, 2);
      if (nofile) {
        rlimit lim{*nofile, *nofile};
        if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) _exit(125);
      }
      ::execv(path.c_str(), argv.data());
      const char msg[] = "conformance_test: execv failed\n";
      ssize_t ignored = ::write(2, msg, sizeof msg - 1);
      (void)ignored;
      _exit(127);
    }
    ::close(out[1]);
    ::close(null_fd);
    pid_ = pid;
    out_fd_ = out[0];
    return true;
  }

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0 && !exit_; }
  const std::string& stdout_seen() const { return out_all_; }

  // The next stdout line (without '\n'); nullopt on EOF or timeout (`eof` tells which).
  std::optional<std::string> read_line(Ms timeout, bool* eof = nullptr) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      if (auto nl = out_buf_.find('\n'); nl != std::string::npos) {
        std::string line = out_buf_.substr(0, nl);
        out_buf_.erase(0, nl + 1);
        return line;
      }
      int r = read_some(deadline);
      if (r <= 0) {
        if (eof) *eof = r == 0;
        return std::nullopt;
      }
    }
  }

  // All remaining stdout until EOF (true) or timeout (false).
  bool read_to_eof(Ms timeout, std::string& out) {
    const auto deadline = Clock::now() + timeout;
    int r;
    while ((r = read_some(deadline)) > 0) {
    }
    out = std::move(out_buf_);
    out_buf_.clear();
    return r == 0;
  }

  std::optional<ExitInfo> wait_exit(Ms timeout) {
    if (exit_) return exit_;
    if (pid_ <= 0) return std::nullopt;
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      int status = 0;
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        ExitInfo info;
        info.exited = WIFEXITED(status);
        info.code = info.exited ? WEXITSTATUS(status) : -1;
        info.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
        exit_ = info;
        return exit_;
      }
      if (r < 0 || Clock::now() >= deadline) return std::nullopt;
      std::this_thread::sleep_for(5ms);
    }
  }

  std::string stderr_text() const {
    std::string text;
    char chunk[4096];
    off_t off = 0;
    ssize_t n;
    while ((n = ::pread(err_fd_, chunk, sizeof chunk, off)) > 0) {
      text.append(chunk, static_cast<std::size_t>(n));
      off += n;
    }
    return text;
  }

  void signal(int sig) {
    if (running()) ::kill(pid_, sig);
  }

  void kill_and_reap() {
    if (!running()) return;
    ::kill(pid_, SIGKILL);
    wait_exit(5000ms);
  }

 private:
  // >0 bytes appended, 0 EOF, -1 timeout or error.
  int read_some(Clock::time_point deadline) {
    for (;;) {
      auto left = std::chrono::duration_cast<Ms>(deadline - Clock::now()).count();
      pollfd p{out_fd_, POLLIN, 0};
      int r = ::poll(&p, 1, left < 0 ? 0 : static_cast<int>(left));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return -1;
      char chunk[4096];
      ssize_t n = ::read(out_fd_, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return -1;
      if (n == 0) return 0;
      out_buf_.append(chunk, static_cast<std::size_t>(n));
      out_all_.append(chunk, static_cast<std::size_t>(n));
      return 1;
    }
  }

  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::string out_buf_;
  std::string out_all_;
  std::optional<ExitInfo> exit_;
};

// ---- the fixture ------------------------------------------------------------------------

constexpr Ms kReadyTimeout{5000};
constexpr Ms kStopTimeout{3000};

using Flags = std::vector<std::pair<std::string, std::string>>;

// The flags every test starts with unless it overrides them. The timeouts are long on purpose:
// a test that expects the server to close a connection must not be rescued by a timer (the
// mutation campaign caught a server that never closed passing with 1 s timeouts). Timer tests
// set their own.
const Flags kDefaultFlags = {
    {"--port", "0"},
    {"--header-timeout-ms", "10000"},
    {"--idle-timeout-ms", "10000"},
};

class Conformance : public ::testing::TestWithParam<ServerSpec> {
 public:
  static void SetUpTestSuite() {
    // Many-client tests need a few hundred descriptors here (the servers raise their own).
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < 8192 && lim.rlim_cur < lim.rlim_max) {
      lim.rlim_cur = std::min<rlim_t>(lim.rlim_max, 8192);
      ::setrlimit(RLIMIT_NOFILE, &lim);
    }
  }

 protected:
  void TearDown() override {
    if (server_ && server_->running()) stop_and_check();
  }

  const ServerSpec& spec() const { return GetParam(); }
  std::string binary_path() const { return bin_dir() + "/" + spec().binary; }
  // "server_epoll_et" -> "epoll_et": the <model> of the Server header.
  std::string model() const {
    const std::string& b = spec().binary;
    return b.rfind("server_", 0) == 0 ? b.substr(7) : b;
  }

  std::vector<std::string> command_line(const Flags& overrides) const {
    std::vector<std::string> args = spec().args;
    Flags flags = kDefaultFlags;
    for (const auto& override_flag : overrides) {
      const std::string& flag = override_flag.first;  // clang 14 cannot capture a binding
      auto it = std::find_if(flags.begin(), flags.end(),
                             [&](const auto& kv) { return kv.first == flag; });
      if (it != flags.end()) it->second = override_flag.second;
      else flags.emplace_back(flag, override_flag.second);
    }

    for (const auto& [flag, value] : flags) {
      args.push_back(flag);
      args.push_back(value);
    }
    return args;
  }

  // Starts the server and waits for its ready line. Exit 77 skips the test (the kernel cannot
  // run this model); a missing binary or any other early exit fails it. Use START_SERVER.
  void start(const Flags& overrides = {}, std::optional<rlim_t> nofile = std::nullopt) {
    const std::string path = binary_path();
    ASSERT_TRUE(std::filesystem::exists(path))
        << "server binary not built: " << path << " (build it, or set IOLAB_BIN_DIR)";
    server_ = std::make_unique<ServerProcess>();
    std::string error;
    ASSERT_TRUE(server_->spawn(path, command_line(overrides), nofile, error)) << error;

    bool eof = false;
    auto line = server_->read_line(kReadyTimeout, &eof);
    if (!line) {
      auto ended = server_->wait_exit(eof ? 2000ms : 0ms);
      if (ended && ended->exited && ended->code == 77) {
        GTEST_SKIP() << spec().binary << " cannot run here (exit 77): " << server_->stderr_text();
      }
      FAIL() << "no ready line within " << kReadyTimeout.count() << " ms; "
             << (ended ? ended->describe() : std::string("still running"))
             << "; stdout: \"" << printable(server_->stdout_seen())
             << "\"; stderr: " << server_->stderr_text();
    }
    static const std::regex ready(R"((\S+) listening on 127\.0\.0\.1:(\d+) threads=(\d+) pid=(\d+))");
    std::smatch m;
    ASSERT_TRUE(std::regex_match(*line, m, ready)) << "bad ready line: \"" << printable(*line) << "\"";
    EXPECT_EQ(m[1].str(), spec().binary) << "ready line names the wrong binary";
    EXPECT_EQ(std::stol(m[4].str()), static_cast<long>(server_->pid())) << "ready line pid";
    std::string threads = "1";
    const auto args = command_line(overrides);
    for (std::size_t i = 0; i + 1 < args.size(); ++i)
      if (args[i] == "--threads") threads = args[i + 1];
    EXPECT_EQ(m[3].str(), threads) << "ready line threads=";
    const long port = std::stol(m[2].str());
    ASSERT_TRUE(port > 0 && port < 65536) << "port " << port;
    port_ = static_cast<std::uint16_t>(port);
  }

  // SIGTERM: exit 0 within 3 s, and the last stdout line is the final stats JSON object.
  // Returns that object (Null if checks failed).
  Json stop_and_check() {
    Json final_stats;
    if (!server_ || !server_->running()) {
      ADD_FAILURE() << "stop_and_check: no running server";
      return final_stats;
    }
    const auto deadline = Clock::now() + kStopTimeout;
    server_->signal(SIGTERM);
    std::string rest;
    const bool eof = server_->read_to_eof(kStopTimeout, rest);
    auto left = std::chrono::duration_cast<Ms>(deadline - Clock::now());
    auto ended = server_->wait_exit(std::max(left, Ms{0}));
    if (!ended) {
      std::string err = server_->stderr_text();
      server_->kill_and_reap();
      ADD_FAILURE() << "server did not exit within " << kStopTimeout.count()
                    << " ms of SIGTERM (killed); stderr: " << err;
      return final_stats;
    }
    EXPECT_TRUE(ended->exited && ended->code == 0)
        << "after SIGTERM: " << ended->describe() << "; stderr: " << server_->stderr_text();
    EXPECT_TRUE(eof) << "stdout still open after exit";

    // The last non-empty line.
    while (!rest.empty() && (rest.back() == '\n' || rest.back() == '\r')) rest.pop_back();
    std::string last = rest.substr(rest.rfind('\n') == std::string::npos ? 0 : rest.rfind('\n') + 1);
    if (last.empty() || last.front() != '{') {
      ADD_FAILURE() << "no final stats JSON line on stdout after SIGTERM; stdout after the ready "
                    << "line: \"" << printable(rest) << "\"";
      return final_stats;
    }
    std::string error;
    auto parsed = parse_json(last, &error);
    if (!parsed || !parsed->is_object()) {
      ADD_FAILURE() << "final stats line is not a JSON object (" << error << "): " << printable(last);
      return final_stats;
    }
    return *parsed;
  }

  Conn connect() {
    Conn c(port_);
    EXPECT_TRUE(c.ok()) << c.error();
    return c;
  }

  // Status line, Content-Length, Date and Server: on every response.
  void expect_common_headers(const Response& r) {
    EXPECT_EQ(r.version, "HTTP/1.1") << "status line of a " << r.status;
    EXPECT_FALSE(r.reason.empty()) << "empty reason phrase on a " << r.status;
    EXPECT_EQ(r.header_count("Content-Length"), 1u) << "Content-Length on a " << r.status;
    EXPECT_EQ(r.header_count("Date"), 1u) << "Date on a " << r.status;
    EXPECT_TRUE(is_imf_fixdate(r.header("Date").value_or("")))
        << "Date is not an IMF-fixdate: \"" << r.header("Date").value_or("") << "\"";
    EXPECT_EQ(r.header("Server").value_or("(none)"), "iolab-" + model());
  }

  // One request, checked: returns the response or fails the test.
  std::optional<Response> roundtrip(Conn& c, std::string_view req, bool head = false,
                                    Ms timeout = kIoTimeout) {
    auto r = c.roundtrip(req, head, timeout);
    EXPECT_TRUE(r) << "request \"" << printable(req) << "\": " << c.error();
    if (r) expect_common_headers(*r);
    return r;
  }

  // After the response just read, the server closes the connection (EOF or reset) and sends
  // nothing more.
  void expect_server_closes(Conn& c, std::string_view what) {
    auto closed = c.wait_closed(kIoTimeout);
    EXPECT_TRUE(closed.kind == CloseKind::Closed || closed.kind == CloseKind::Reset)
        << what << ": connection " << to_string(closed.kind) << " " << closed.error;
    EXPECT_EQ(closed.extra, "") << what << ": bytes after the response";
  }

  // On a fresh connection: `raw` gets `status` and then the server closes.
  void expect_status_then_close(std::string_view raw, int status) {
    SCOPED_TRACE("request: \"" + printable(raw) + "\"");
    Conn c = connect();
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE(c.send(raw)) << c.error();
    auto r = c.read_response();
    ASSERT_TRUE(r) << c.error();
    EXPECT_EQ(r->status, status) << "body: " << printable(r->body);
    expect_common_headers(*r);
    expect_server_closes(c, "after a " + std::to_string(status));
  }

  // GET /stats on a connection; the parsed object (Null on failure).
  Json stats(Conn& c) {
    auto r = roundtrip(c, get("/stats"));
    if (!r) return {};
    EXPECT_EQ(r->status, 200);
    std::string error;
    auto json = parse_json(r->body, &error);
    EXPECT_TRUE(json && json->is_object()) << "/stats body is not a JSON object (" << error
                                           << "): " << printable(r->body);
    return json && json->is_object() ? *json : Json{};
  }

  static double number(const Json& obj, std::string_view key) {
    const Json* v = obj.find(key);
    EXPECT_TRUE(v && v->is_number()) << "stats key \"" << key << "\" missing or not a number";
    return v && v->is_number() ? v->number : -1;
  }

  // The server's descriptor count once it stops changing (two equal samples 100 ms apart).
  std::size_t settled_fd_count() {
    std::size_t prev = count_open_fds(server_->pid());
    for (int i = 0; i < 30; ++i) {
      std::this_thread::sleep_for(100ms);
      std::size_t now = count_open_fds(server_->pid());
      if (now == prev) return now;
      prev = now;
    }
    return prev;
  }

  // Waits until the server holds at most `target` descriptors; returns the last count.
  std::size_t wait_fds_at_most(std::size_t target, Ms timeout) {
    const auto deadline = Clock::now() + timeout;
    std::size_t n = count_open_fds(server_->pid());
    while (n > target && Clock::now() < deadline) {
      std::this_thread::sleep_for(50ms);
      n = count_open_fds(server_->pid());
    }
    return n;
  }

  // Runs the binary with these arguments to its exit (for flag errors).
  std::optional<ExitInfo> run_to_exit(const std::vector<std::string>& args, std::string& err) {
    const std::string path = binary_path();
    EXPECT_TRUE(std::filesystem::exists(path)) << "server binary not built: " << path;
    if (!std::filesystem::exists(path)) return std::nullopt;
    ServerProcess p;
    std::string error;
    EXPECT_TRUE(p.spawn(path, args, std::nullopt, error)) << error;
    auto ended = p.wait_exit(kStopTimeout);
    err = p.stderr_text();
    if (!ended) {
      std::string out;
      p.read_to_eof(0ms, out);
      ADD_FAILURE() << "still running " << kStopTimeout.count() << " ms after starting with bad "
                    << "flags (killed); stdout: \"" << printable(p.stdout_seen() + out) << "\"";
    }
    return ended;
  }

  std::unique_ptr<ServerProcess> server_;
  std::uint16_t port_ = 0;
};

// Starts the server; returns from the test if it was skipped (exit 77) or failed to start.
#define START_SERVER(...)                              \
  do {                                                 \
    start(__VA_ARGS__);                                \
    if (IsSkipped() || HasFatalFailure()) return;      \
  } while (0)

// Checks the flag-error contract: exit code 2 and a message naming the flag.
#define EXPECT_FLAG_REJECTED(flag_name, ...)                                                   \
  do {                                                                                         \
    std::vector<std::string> args_ = spec().args;                                              \
    for (const char* a_ : {__VA_ARGS__}) args_.push_back(a_);                                  \
    std::string err_;                                                                          \
    auto exit_ = run_to_exit(args_, err_);                                                     \
    if (exit_ && exit_->exited && exit_->code == 77) GTEST_SKIP() << "exit 77: " << err_;       \
    ASSERT_TRUE(exit_);                                                                        \
    EXPECT_TRUE(exit_->exited && exit_->code == 2) << exit_->describe() << "; stderr: " << err_; \
    EXPECT_NE(err_.find(flag_name), std::string::npos)                                         \
        << "stderr does not name " << flag_name << ": \"" << err_ << "\"";                     \
  } while (0)


// The servers under test: kServers in servers.cpp, or the one IOLAB_SERVER_UNDER_TEST names.
std::vector<ServerSpec> servers_under_test();

}  // namespace iolab::test
