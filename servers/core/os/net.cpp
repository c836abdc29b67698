#include "net.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <stdexcept>
#include <system_error>

#include "sys.hpp"

namespace iolab {

namespace {
[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}
}  // namespace

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) sys::close(fd_);
  fd_ = fd;
}

FdLimits raise_fd_limit() {
  rlimit lim{};
  getrlimit(RLIMIT_NOFILE, &lim);
  const rlim_t at_start = lim.rlim_cur;
  if (lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &lim) != 0) getrlimit(RLIMIT_NOFILE, &lim);
  }
  return {at_start, lim.rlim_cur, lim.rlim_max};
}

std::vector<UniqueFd> listen_tcp(const std::string& address, std::uint16_t port, int count,
                                 bool nonblocking) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (inet_pton(AF_INET, address.c_str(), &addr.sin_addr) != 1) {
    throw std::system_error(EINVAL, std::generic_category(), "bad --bind address '" + address + "'");
  }
  std::vector<UniqueFd> listeners;
  for (int i = 0; i < count; ++i) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0));
    if (!fd) throw_errno("socket");
    const int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (count > 1 && ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
      throw_errno("setsockopt SO_REUSEPORT");
    }
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      throw_errno("bind " + address + ":" + std::to_string(ntohs(addr.sin_port)));
    }
    // SOMAXCONN is capped by net.core.somaxconn; a large backlog absorbs connection bursts.
    if (::listen(fd.get(), 4096) != 0) throw_errno("listen");
    if (i == 0) addr.sin_port = htons(local_port(fd.get()));
    listeners.push_back(std::move(fd));
  }
  return listeners;
}

std::uint16_t local_port(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) throw_errno("getsockname");
  return ntohs(addr.sin_port);
}

void set_nonblocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) throw_errno("fcntl O_NONBLOCK");
}

void set_nodelay(int fd) {
  // Responses are written whole; Nagle would hold a small response back waiting for an ACK.
  const int one = 1;
  sys::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void pin_current_thread(std::span<const int> cpus) {
  if (cpus.empty()) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int cpu : cpus) CPU_SET(cpu, &set);
  const int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
  if (rc != 0) throw std::system_error(rc, std::generic_category(), "pin to CPUs");
}

std::vector<int> parse_cpu_list(std::string_view list) {
  std::vector<int> cpus;
  auto number = [](std::string_view s) {
    int v = -1;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || v < 0 || v >= CPU_SETSIZE) {
      throw std::invalid_argument("bad CPU '" + std::string(s) + "'");
    }
    return v;
  };
  if (list.empty() || list.back() == ',') throw std::invalid_argument("bad CPU list '" + std::string(list) + "'");
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    const std::string_view item = list.substr(0, comma);
    const std::size_t dash = item.find('-');
    if (dash == std::string_view::npos) {
      cpus.push_back(number(item));
    } else {
      const int first = number(item.substr(0, dash));
      const int last = number(item.substr(dash + 1));
      if (last < first) throw std::invalid_argument("bad CPU range '" + std::string(item) + "'");
      for (int c = first; c <= last; ++c) cpus.push_back(c);
    }
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
  }
  if (cpus.empty()) throw std::invalid_argument("empty CPU list");
  return cpus;
}

void print_ready_line(std::string_view model, const std::string& address, std::uint16_t port,
                      int threads) {
  std::printf("server_%.*s listening on %s:%u threads=%d pid=%d\n", static_cast<int>(model.size()),
              model.data(), address.c_str(), port, threads, static_cast<int>(getpid()));
  std::fflush(stdout);
}

namespace {
sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}
}  // namespace

void init_process_signals() {
  ::signal(SIGPIPE, SIG_IGN);
  const sigset_t set = stop_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int wait_for_stop_signal() {
  const sigset_t set = stop_signals();
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  return sig;
}

int stop_signal_fd() {
  const sigset_t set = stop_signals();
  const int fd = ::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd < 0) throw_errno("signalfd");
  return fd;
}

}  // namespace iolab
