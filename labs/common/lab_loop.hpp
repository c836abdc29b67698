// The machinery a lab's readiness-loop server needs around its event loop (labs 01 and 02).
//
// A lab exercise should put the reader in front of the part that teaches: the wait call
// (select, poll), how its answer is read, and what happens at accept(). Everything else a
// server on the shared core needs is the same in every such loop and lives here, the way Redis
// keeps ae.c apart from its ae_select.c / ae_epoll.c backends:
//
//   - the process: flags (one loop only: --threads above 1 is refused), the descriptor limit,
//     the listener, the wake-up pipe that stops the loop on SIGINT/SIGTERM, the final /stats
//     line (run_server());
//   - one connection: a socket and the core's Connection, driven one read and one write per
//     readiness report, level-triggered (drive());
//   - refusing a connection politely with the core's 503 (refuse()).
//
// The lab's main.cpp writes event_loop(Loop&) and its own connection table, and calls
// run_server() from main(). Header-only: each lab program compiles it into itself.
#pragma once

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>

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
  UniqueFd listener;      // non-blocking; accept4() with SOCK_NONBLOCK
  UniqueFd wakeup_read;   // readable when main() wants the loop to stop
  UniqueFd wakeup_write;
  std::size_t open_connections = 0;
  bool stopping = false;
};

// Sends the core's 503 without waiting and closes the socket (counted as refused).
inline void refuse(Shared& shared, UniqueFd socket) {
  ::send(socket.get(), shared.refusal.data(), shared.refusal.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  count(Counter::kConnectionsRefused);
}

// A new connection: nodelay, counted. The caller puts it in its table.
inline Client* open_client(Loop& loop, int fd, TimePoint now) {
  set_nodelay(fd);
  ++loop.open_connections;
  count(Counter::kConnectionsAccepted);
  return new Client(loop.shared, fd, now);
}

// Closes the socket and forgets the connection (the caller removes it from its table first).
inline void close_client(Loop& loop, Client* c) {
  delete c;
  --loop.open_connections;
  count(Counter::kConnectionsClosed);
}

// What the loop should ask the kernel about this connection.
inline bool wants_readable(const Client& c) { return c.conn.next() == Step::kRead && c.conn.wants_read(); }
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
        const ssize_t n = out.iovcnt > 0
                              ? sys::writev(c.fd.get(), out.iov.data(), out.iovcnt)
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
inline int run_server(int argc, char** argv, std::string_view model, std::size_t default_max_conns,
                      void (*event_loop)(Loop&)) {
  init_process_signals();
  const std::string program = "server_" + std::string(model);
  try {
    auto shared = std::make_unique<Shared>(model);
    shared->options = parse_options(argc, argv, model, default_max_conns);
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
