// The machinery lab 01's readiness loop needs around its wait call, so that the exercise puts
// the reader in front of the part that teaches: the wait call (select, poll) and how its answer
// is read. The rest lives here, the way Redis keeps ae.c apart from its ae_select.c /
// ae_epoll.c backends: the process (flags, one loop only; the listener, the wake-up pipe that
// stops the loop on SIGINT/SIGTERM, the final /stats line: run_server()), the connection table
// and accepting into it (Table, on_accept()), one connection driven one read and one write per
// readiness report, level-triggered (drive()), and the timers (after_wait()).
// The lab's main.cpp writes event_loop(Loop&) and calls run_server() from main().
#pragma once

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "app.hpp"
#include "clock.hpp"
#include "connection.hpp"
#include "net.hpp"
#include "options.hpp"
#include "stats.hpp"
#include "sys.hpp"

namespace iolab::lab {

// Process-wide state, read-only once the loop runs.
struct Shared {
  explicit Shared(std::string_view model) : app(model, content) {}
  Options options;
  ContentSource content;
  App app;
  HeapMemory memory;
  std::string refusal = app.refusal_response();
};

// One connection: the socket and the protocol state machine of the core.
struct Client {
  Client(Shared& shared, int socket, TimePoint now)
      : fd(socket), conn(shared.app, shared.options.limits, shared.memory, now) {}
  UniqueFd fd;
  Connection conn;
};

// What event_loop() works with. The loop runs until the wake-up pipe is readable.
struct Loop {
  explicit Loop(Shared& s) : shared(s) {}
  Shared& shared;
  UniqueFd listener;     // non-blocking; accept4() with SOCK_NONBLOCK
  UniqueFd wakeup_read;  // readable when main() wants the loop to stop
  UniqueFd wakeup_write;
  std::size_t open_connections = 0;
  bool stopping = false;
};

inline constexpr Millis kMaxWait{1000};  // the wait's timeout when no timer is due sooner

// The connection table: descriptor number -> connection, grown on demand.
struct Table {
  std::vector<Client*> by_fd;
  int max_fd = -1;
  TimePoint accept_paused_until = TimePoint::min();  // min(): the listener is watched
  Client* at(int fd) const { return by_fd[static_cast<std::size_t>(fd)]; }
};

// Closes the socket and forgets the connection.
inline void forget(Loop& loop, Table& table, Client* c) {
  table.by_fd[static_cast<std::size_t>(c->fd.get())] = nullptr;
  while (table.max_fd >= 0 && table.at(table.max_fd) == nullptr) --table.max_fd;
  delete c;
  --loop.open_connections;
  count(Counter::kConnectionsClosed);
}

// Accepts what the backlog holds (64 at most: the other connections get their turn). A
// descriptor numbered fd_limit or more (select() cannot watch it), or one past --max-conns, is
// refused: the core's 503, sent without waiting, and the socket closed. After EMFILE the
// connection stays in the backlog and the listener stays readable: the loop stops watching it
// for 100 ms (lab 02).
inline void on_accept(Loop& loop, Table& table, TimePoint now, int fd_limit) {
  for (int i = 0; i < 64; ++i) {
    const int fd =
        sys::accept4(loop.listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        count(Counter::kAcceptBackoffs);
        table.accept_paused_until = now + Millis{100};
      }
      return;  // EAGAIN: the backlog is empty
    }
    if (fd >= fd_limit) count(Counter::kFdSetsizeRefused);
    if (fd >= fd_limit || loop.open_connections >= loop.shared.options.max_conns) {
      const std::string& refusal = loop.shared.refusal;
      ::send(fd, refusal.data(), refusal.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      ::close(fd);
      count(Counter::kConnectionsRefused);
      continue;
    }
    set_nodelay(fd);
    ++loop.open_connections;
    count(Counter::kConnectionsAccepted);
    const auto index = static_cast<std::size_t>(fd);
    if (index >= table.by_fd.size()) table.by_fd.resize(index + 1, nullptr);
    table.by_fd[index] = new Client(loop.shared, fd, now);
    table.max_fd = std::max(table.max_fd, fd);
  }
}

// After each wait: the expired timers, found by a scan like the ready descriptors, and the end
// of an accept pause. Before it: the deadline to wake up for, the nearest of them.
inline void after_wait(Loop& loop, Table& table, TimePoint now) {
  for (int fd = 0; fd <= table.max_fd; ++fd) {
    Client* c = table.at(fd);
    if (c != nullptr && c->conn.next_deadline() <= now && c->conn.on_timeout(now) == Step::kClose) {
      forget(loop, table, c);
    }
  }
  if (now >= table.accept_paused_until) table.accept_paused_until = TimePoint::min();
}
inline TimePoint next_deadline(const Table& table, TimePoint now) {
  TimePoint next = now + kMaxWait;
  const TimePoint paused = table.accept_paused_until;  // min(): not paused
  if (paused != TimePoint::min()) next = std::min(next, paused);
  for (int fd = 0; fd <= table.max_fd; ++fd) {
    if (const Client* c = table.at(fd)) next = std::min(next, c->conn.next_deadline());
  }
  return next;
}

// What the loop should ask the kernel about this connection.
inline bool wants_readable(const Client& c) {
  return c.conn.next() == Step::kRead && c.conn.wants_read();
}
inline bool wants_writable(const Client& c) { return c.conn.next() == Step::kWrite; }

// Runs what one readiness report allows: at most one recv and one write each, which is enough
// with level-triggered readiness (bytes left behind make the socket ready again next time).
// /work and /sleep run inline and stall the loop, as in servers/select. Returns false when the
// connection is finished and must be closed.
inline bool drive(Loop& loop, Client& c, bool readable, bool writable) {
  if (readable && c.conn.next() == Step::kRead) {
    const std::span<char> space = c.conn.read_space();
    if (space.empty()) return false;  // the core refuses input it could not hold
    const ssize_t n = sys::recv(c.fd.get(), space.data(), space.size());
    if (n < 0 && errno != EAGAIN && errno != EINTR) return false;
    if (n >= 0) c.conn.on_read(static_cast<std::size_t>(n), coarse_now());
    writable = true;  // a fresh response usually fits the socket buffer: try it now
  }
  for (int pass = 0; pass < 2; ++pass) {
    switch (c.conn.next()) {
      case Step::kWrite: {
        if (!writable) return true;
        writable = false;  // once per report; the wait call says when to write again
        const Output out = c.conn.output();
        const ssize_t n =
            out.iovcnt > 0 ? sys::writev(c.fd.get(), out.iov.data(), out.iovcnt)
                           : send_file_region(c.fd.get(), out.file, loop.shared.options.sendfile);
        if (n < 0) {
          if (errno == EAGAIN || errno == EINTR) return true;
          return false;  // EPIPE, ECONNRESET: the peer is gone
        }
        c.conn.on_written(static_cast<std::size_t>(n), coarse_now());
        break;
      }
      case Step::kRunWork:
        c.conn.take_work().run();  // blocks the loop: every connection waits
        c.conn.on_work_done(coarse_now());
        writable = true;
        break;
      case Step::kRead:
      case Step::kWaitWork:
        return true;
      case Step::kClose:
        return false;
    }
  }
  return c.conn.next() != Step::kClose;
}

// Runs a one-loop server: flags, limits, listener, the loop in its own thread, a clean stop on
// SIGINT/SIGTERM with the final /stats line. Returns main()'s exit status.
inline int run_server(int argc, char** argv, std::string_view model, void (*event_loop)(Loop&)) {
  constexpr std::size_t kDefaultMaxConns = 100'000;
  init_process_signals();
  const std::string program = "server_" + std::string(model);
  try {
    auto shared = std::make_unique<Shared>(model);
    shared->options = parse_options(argc, argv, model, kDefaultMaxConns);
    if (shared->options.threads != 1) {
      std::fprintf(stderr, "%s: --threads: this lab server runs one loop (1)\n", program.c_str());
      return 2;
    }
    raise_fd_limit();
    Loop loop(*shared);
    loop.listener = std::move(listen_tcp(shared->options.bind, shared->options.port, 1, true)[0]);
    int fds[2];
    if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
      throw std::system_error(errno, std::generic_category(), "pipe2");
    }
    loop.wakeup_read.reset(fds[0]);
    loop.wakeup_write.reset(fds[1]);
    if (!shared->options.pin.empty()) {
      pin_current_thread(std::span<const int>(shared->options.pin.data(), 1));
    }
    std::thread thread(event_loop, std::ref(loop));
    print_ready_line(model, shared->options.bind, local_port(loop.listener.get()), 1);

    wait_for_stop_signal();
    const char byte = 1;
    if (::write(loop.wakeup_write.get(), &byte, 1) < 0) std::perror("wake-up pipe write");
    thread.join();
    std::printf("%s\n", stats_json(model).c_str());
    std::fflush(stdout);
    return 0;
  } catch (const std::system_error& e) {
    std::fprintf(stderr, "%s: %s\n", program.c_str(), e.what());
    return 1;
  }
}

}  // namespace iolab::lab
