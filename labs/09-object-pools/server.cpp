// lab09_server: server_epoll_et trimmed to its loop; where memory comes from is memory.hpp.
//
// One edge-triggered epoll loop on one thread, driving the shared Connection state machine
// exactly as servers/epoll_et/main.cpp does (read that file first: the drain rule, the
// may_read/may_write flags, writev of pipelined responses). Trimmed for the lab: one loop only
// (--threads 1), no header/idle timers and no EMFILE pause. TODO production: both are in
// servers/epoll_et/main.cpp.
//
// Every connection's memory comes from lab09::ConnectionMemory (memory.hpp), built on the
// loop's lab09::LoopMemory: the request and response objects (request_resource(), reset when a
// connection's output has drained) and its input buffer (acquire_buffer()). That is the file
// the exercise changes; exercise/ and solution/ share this one.
//
// Usage: lab09_server [--port 8080] [--pin CPU]   (the servers' flags; --help)
// Try:   curl -s localhost:8080/ping; curl -s localhost:8080/stats  (requests vs allocations)
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "app.hpp"
#include "connection.hpp"
#include "memory.hpp"
#include "net.hpp"
#include "options.hpp"
#include "stats.hpp"
#include "sys.hpp"

namespace {

using namespace iolab;

constexpr std::string_view kModel = "lab09";
constexpr std::size_t kDefaultMaxConns = 10'000;
constexpr int kMaxEvents = 256;
constexpr int kAcceptBatch = 64;

struct Shared {
  Options options;
  ContentSource content;
  App app{kModel, content};
  lab09::LoopMemory memory;  // one loop, so one LoopMemory; with N loops, one each
  std::string refusal = app.refusal_response();
  std::size_t open_connections = 0;
};

struct Client {
  Client(Shared& shared, int socket)
      : fd(socket),
        memory(shared.memory),
        conn(shared.app, shared.options.limits, memory, coarse_now()) {}
  UniqueFd fd;
  lab09::ConnectionMemory memory;  // declared before conn: it must outlive it
  Connection conn;
  bool may_read = true;
  bool may_write = true;
  bool peer_closing = false;
};

// epoll_event.data.ptr: a Client*, or one of these two tags.
char listener_tag;
char wakeup_tag;

void close_client(Shared& shared, Client* c) {
  delete c;  // close(2) also removes the socket from the epoll set
  count(Counter::kConnectionsClosed);
  --shared.open_connections;
}

bool on_writable(Shared& shared, Client& c) {
  const Output out = c.conn.output();
  const ssize_t n = out.iovcnt > 0
                        ? sys::writev(c.fd.get(), out.iov.data(), out.iovcnt)
                        : send_file_region(c.fd.get(), out.file, shared.options.sendfile);
  if (n < 0) {
    if (errno != EAGAIN && errno != EINTR) return false;
    c.may_write = errno == EINTR;
    return true;
  }
  c.conn.on_written(static_cast<std::size_t>(n), coarse_now());
  return true;
}

bool on_readable(Client& c) {
  const std::span<char> space = c.conn.read_space();
  if (space.empty()) return false;
  const ssize_t n = sys::recv(c.fd.get(), space.data(), space.size());
  if (n < 0) {
    if (errno != EAGAIN && errno != EINTR) return false;
    c.may_read = errno == EINTR;
    return true;
  }
  // A short read drained the socket (servers/epoll_et: the drain rule).
  if (static_cast<std::size_t>(n) < space.size() && n > 0 && !c.peer_closing) c.may_read = false;
  c.conn.on_read(static_cast<std::size_t>(n), coarse_now());
  return true;
}

void drive(Shared& shared, Client* c) {
  for (;;) {
    bool ok = true;
    switch (c->conn.next()) {
      case Step::kWrite:
        if (!c->may_write) return;
        ok = on_writable(shared, *c);
        break;
      case Step::kRunWork:
        c->conn.take_work().run();  // /sleep stalls the loop: lab 11
        c->conn.on_work_done(coarse_now());
        break;
      case Step::kRead:
        if (!c->may_read || !c->conn.wants_read()) return;
        ok = on_readable(*c);
        break;
      case Step::kWaitWork:
      case Step::kClose:
        ok = false;
        break;
    }
    if (!ok) return close_client(shared, c);
  }
}

void add_to_epoll(int epfd, int fd, std::uint32_t events, void* tag) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = tag;
  if (sys::epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
    throw std::system_error(errno, std::generic_category(), "epoll_ctl ADD");
  }
}

void on_accept(Shared& shared, int epfd, int listener) {
  for (int i = 0; i < kAcceptBatch; ++i) {
    const int fd = sys::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN: backlog empty (EMFILE is not handled here: see the header)
    if (shared.open_connections >= shared.options.max_conns) {
      ::send(fd, shared.refusal.data(), shared.refusal.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      count(Counter::kConnectionsRefused);
      UniqueFd closing(fd);
      continue;
    }
    set_nodelay(fd);
    auto* c = new Client(shared, fd);
    ++shared.open_connections;
    count(Counter::kConnectionsAccepted);
    add_to_epoll(epfd, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, c);
  }
}

void event_loop(Shared& shared, int epfd, int listener) {
  if (!shared.options.pin.empty())
    pin_current_thread(std::span<const int>(shared.options.pin.data(), 1));
  epoll_event events[kMaxEvents];
  for (;;) {
    const int n = sys::epoll_wait(epfd, events, kMaxEvents, -1);
    for (int i = 0; i < n; ++i) {
      void* tag = events[i].data.ptr;
      if (tag == &listener_tag) {
        on_accept(shared, epfd, listener);
      } else if (tag == &wakeup_tag) {
        return;  // connections still open are not closed one by one: the process exits
      } else {
        auto* c = static_cast<Client*>(tag);
        const std::uint32_t ev = events[i].events;
        if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) c->may_read = true;
        if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) c->may_write = true;
        if (ev & (EPOLLRDHUP | EPOLLHUP)) c->peer_closing = true;
        drive(shared, c);
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  init_process_signals();
  try {
    auto shared = std::make_unique<Shared>();
    shared->options = parse_options(argc, argv, kModel, kDefaultMaxConns);
    if (shared->options.threads != 1) {
      std::fprintf(stderr, "server_lab09: --threads: this lab server runs one loop only\n");
      return 2;
    }
    raise_fd_limit();
    std::vector<UniqueFd> listeners =
        listen_tcp(shared->options.bind, shared->options.port, 1, true);
    UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
    UniqueFd wakeup(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!epoll || !wakeup) throw std::system_error(errno, std::generic_category(), "epoll/eventfd");
    add_to_epoll(epoll.get(), listeners[0].get(), EPOLLIN, &listener_tag);
    add_to_epoll(epoll.get(), wakeup.get(), EPOLLIN, &wakeup_tag);
    std::thread loop(event_loop, std::ref(*shared), epoll.get(), listeners[0].get());
    print_ready_line(kModel, shared->options.bind, local_port(listeners[0].get()), 1);

    wait_for_stop_signal();
    const std::uint64_t one = 1;
    if (::write(wakeup.get(), &one, sizeof one) < 0) std::perror("eventfd write");
    loop.join();
    std::printf("%s\n", stats_json(kModel).c_str());
    std::fflush(stdout);
    std::_Exit(0);  // open connections hold memory from shared->memory: skip their teardown
  } catch (const std::system_error& e) {
    std::fprintf(stderr, "server_lab09: %s\n", e.what());
    return 1;
  }
}
