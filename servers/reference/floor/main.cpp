// server_floor: the least an epoll server can do per request. A measuring baseline, not a model.
//
// Why it exists
//   CPU per request is the kernel's billing, and the kernel bills by sampling: with tick-based
//   accounting (CONFIG_TICK_CPU_ACCOUNTING, the Debian default) each timer tick charges the whole
//   tick to user or system time depending on where it interrupted the task. Some virtual
//   machines deliver those ticks late, at the return to user space, so part of every system call
//   lands in "user" time. On such a machine a server's user CPU per request is mostly its system
//   calls, and comparing two servers' user CPU compares how many calls they make.
//   This responder makes the calls a keep-alive HTTP server must make (epoll_wait, one recv, one
//   send per batch of requests) and does nothing else in user space: no parsing, no headers built,
//   no allocation per request. Its user CPU per request, measured beside the others in one
//   bench/compare.py run, is the floor no server on this machine can go below.
//
// What it is not
//   An HTTP server. It counts request heads by their blank line ("\r\n\r\n") and answers each
//   with the same fixed 200 response whatever was asked: enough for loadgen's /ping runs (GET,
//   no body), wrong for anything else. It is not in the conformance suite and serves no lab.
//
// The loop is server_epoll_et's, stripped: one thread, sockets registered once for
// EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET, the same drain rule (a short read empties the receive
// queue, so the recv that would only say EAGAIN is skipped; after EPOLLRDHUP it reads to end of
// file), answers to one batch of pipelined requests in one send.
//
// Usage
//   build/bin/server_floor [--port 8080]   (prints "server_floor listening on ..." when ready;
//   stops on SIGTERM or SIGINT, the default action)

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::string_view kResponse =
    "HTTP/1.1 200 OK\r\nServer: iolab-floor\r\nContent-Type: application/json\r\n"
    "Content-Length: 18\r\n\r\n{\"message\":\"pong\"}";
constexpr std::string_view kHeadEnd = "\r\n\r\n";
constexpr int kMaxEvents = 256;
constexpr std::size_t kReadSize = 16 * 1024;

struct Client {
  bool open = false;
  std::size_t matched = 0;    // bytes of "\r\n\r\n" seen at the end of the input so far
  bool may_read = false;      // no short read or EAGAIN since the last EPOLLIN edge
  bool may_write = true;      // no EAGAIN since the last EPOLLOUT edge
  bool peer_closing = false;  // EPOLLRDHUP seen: read to end of file
  bool ended = false;         // recv returned 0
  std::string unsent;         // responses the socket buffer had no room for
};

int die(const char* what) {
  std::fprintf(stderr, "server_floor: %s: %s\n", what, std::strerror(errno));
  return 1;
}

// Counts request heads ending in `bytes`, carrying a partial "\r\n\r\n" across reads.
std::size_t count_heads(Client& c, const char* bytes, std::size_t n) {
  std::size_t heads = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (bytes[i] == kHeadEnd[c.matched]) {
      if (++c.matched == kHeadEnd.size()) {
        ++heads;
        c.matched = 0;
      }
    } else {
      c.matched = bytes[i] == '\r' ? 1 : 0;
    }
  }
  return heads;
}

// Sends what is queued; false when the peer is gone.
bool flush(int fd, Client& c) {
  while (!c.unsent.empty() && c.may_write) {
    const ssize_t n = ::send(fd, c.unsent.data(), c.unsent.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) return false;
      c.may_write = false;  // wait for the EPOLLOUT edge
      break;
    }
    c.unsent.erase(0, static_cast<std::size_t>(n));
  }
  return true;
}

// Reads while the edge lasts, answers every complete head in one send; false to close (once
// the peer has closed its side and has all its answers).
bool serve(int fd, Client& c, char* buffer) {
  while (c.may_read) {
    const ssize_t n = ::recv(fd, buffer, kReadSize, 0);
    if (n == 0) {  // the peer sent FIN: it may still read what it asked for
      c.ended = true;
      c.may_read = false;
      break;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) return false;
      c.may_read = false;
      break;
    }
    // The drain rule; but after the peer's FIN no later edge would come, so read on to EOF.
    if (static_cast<std::size_t>(n) < kReadSize && !c.peer_closing) c.may_read = false;
    for (std::size_t heads = count_heads(c, buffer, static_cast<std::size_t>(n)); heads > 0;
         --heads) {
      c.unsent.append(kResponse);
    }
  }
  return flush(fd, c) && !(c.ended && c.unsent.empty());
}

}  // namespace

int main(int argc, char** argv) {
  int port = 8080;
  for (int i = 1; i < argc; ++i) {
    char* end = nullptr;
    if (std::strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      const long value = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || value < 0 || value > 65535) {
        std::fprintf(stderr, "server_floor: --port: '%s' is not a port (0-65535)\n", argv[i]);
        return 2;
      }
      port = static_cast<int>(value);
    } else {
      std::fprintf(stderr, "server_floor: unknown argument '%s' (usage: server_floor [--port N])\n",
                   argv[i]);
      return 2;
    }
  }

  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (listener < 0 || ::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listener, 4096) != 0 ||
      ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return die("listen");
  }
  const int epoll = ::epoll_create1(EPOLL_CLOEXEC);
  epoll_event listen_event{};
  listen_event.events = EPOLLIN;  // level-triggered: accept until EAGAIN on each wake-up
  listen_event.data.fd = listener;
  if (epoll < 0 || ::epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &listen_event) != 0)
    return die("epoll");
  std::printf("server_floor listening on 127.0.0.1:%d threads=1 pid=%d\n", ntohs(addr.sin_port),
              static_cast<int>(::getpid()));
  std::fflush(stdout);

  std::vector<Client> clients;  // indexed by descriptor
  std::vector<char> buffer(kReadSize);
  epoll_event events[kMaxEvents];
  for (;;) {
    const int n = ::epoll_wait(epoll, events, kMaxEvents, -1);
    if (n < 0 && errno != EINTR) return die("epoll_wait");
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == listener) {
        for (;;) {
          const int client = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          // EAGAIN: the backlog is empty. (On EMFILE the level-triggered listener wakes the loop
          // again at once: server_epoll_et pauses accepting; a baseline at most 64 connections
          // deep does not need to.)
          if (client < 0) break;
          ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          const auto index = static_cast<std::size_t>(client);
          if (index >= clients.size()) clients.resize(index + 1024);
          clients[index] = Client{};
          clients[index].open = true;
          epoll_event ev{};
          ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
          ev.data.fd = client;
          if (::epoll_ctl(epoll, EPOLL_CTL_ADD, client, &ev) != 0) {
            clients[index].open = false;
            ::close(client);
          }
        }
        continue;
      }
      Client& c = clients[static_cast<std::size_t>(fd)];
      if (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) c.may_read = true;
      if (events[i].events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) c.may_write = true;
      if (events[i].events & (EPOLLRDHUP | EPOLLHUP)) c.peer_closing = true;
      if (c.open && !serve(fd, c, buffer.data())) {
        c = Client{};
        ::close(fd);  // also removes it from the epoll set
      }
    }
  }
}
