// server_select: non-blocking sockets and a select() loop, one loop per thread.
//
// What this model shows
//   The original readiness API. Before every wait the loop rebuilds two descriptor sets (a bit
//   per descriptor number) from its connection table and hands both to the kernel, which copies
//   them in, checks every descriptor up to the highest one, and copies them back; the loop then
//   scans every bit to find the ready ones. All of that is O(highest descriptor) per call,
//   however few connections are active: with 900 idle connections and 1 busy one, every
//   request pays for 901. epoll keeps the interest set in the kernel and returns only the
//   ready descriptors; compare the CPU per request of the two as idle connections grow (lab 03).
//
// What to notice
//   - FD_SETSIZE (1024) is a hard wall: an fd_set is a fixed 128-byte bitmap, and FD_SET() on a
//     descriptor >= 1024 writes past it (silent memory corruption; _FORTIFY_SOURCE turns it into
//     an abort). Such a descriptor is refused with a log line and counted (fd_setsize_refused),
//     never put into a set. The limit is per process, so --max-conns above it is rejected.
//   - Level-triggered: a descriptor stays ready until drained, so one read or write per wake-up
//     is enough and nothing is lost; the price is more wake-ups than edge-triggered epoll.
//   - That is also the budget per connection per turn: one read (at most the 8 KiB input
//     buffer, about 180 small requests) and at most two writes per select() pass, then the
//     scan moves on, so a client that pipelines without pause cannot hold the loop: every other
//     ready descriptor gets its turn in the same pass.
//   - Timers need no heap here: the loop already visits every connection on each pass, so it
//     finds the nearest deadline and the expired ones in the same O(n) scan.
//   - At the descriptor limit accept4() fails with EMFILE and leaves the connection queued: a
//     descriptor held in reserve lets the loop take it and answer 503 at once (spare_fd.cpp).
//   - A blocking handler (/sleep) runs inline and stalls the loop, as in server_epoll_et.
//
// Usage
//   build/bin/server_select [--port 8080] [--threads N] [--pin LIST] (all flags: --help)
//
// Try
//   build/bin/server_select --port 8080 &
//   build/bin/loadgen --url http://127.0.0.1:8080/ping --rate 10000 --idle-connections 900
//   curl -s localhost:8080/stats   (select calls per request; CPU per request vs epoll_et)

#include <fcntl.h>
#include <sys/select.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "accept_pause.hpp"
#include "app.hpp"
#include "connection.hpp"
#include "linger.hpp"
#include "net.hpp"
#include "options.hpp"
#include "server.hpp"
#include "spare_fd.hpp"
#include "stats.hpp"
#include "sys.hpp"

namespace {

using namespace iolab;

constexpr std::string_view kModel = IOLAB_MODEL;
// Descriptors 0-2, listeners, wake-up pipes and a margin are not connections.
constexpr std::size_t kReservedFds = 32;
constexpr std::size_t kDefaultMaxConns = FD_SETSIZE - kReservedFds;
constexpr int kAcceptBatch = 64;      // accept4 calls per listener wake-up (fairness cap)
constexpr Millis kMaxWait{1000};      // select timeout when no timer is due sooner

// Process-wide, read-only once the loops run (except the atomic counter).
struct Shared : SharedState {
  Shared() : SharedState(kModel) {}
  HeapMemory memory;
  std::atomic<bool> warned_fd_setsize{false};
};

// Per-connection state: the socket and the protocol.
struct Client {
  Client(Shared& shared, int socket, TimePoint now)
      : fd(socket), conn(shared.app, shared.options.limits, shared.memory, now) {}
  UniqueFd fd;
  Connection conn;
};

// One select() loop. Descriptor numbers index the connection table directly.
struct Loop {
  Loop(Shared& s, int i, UniqueFd listen_socket) : shared(s), index(i), listener(std::move(listen_socket)) {
    int fds[2];
    if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe2");
    wakeup_read.reset(fds[0]);
    wakeup_write.reset(fds[1]);
  }
  Shared& shared;
  int index;
  UniqueFd listener;
  UniqueFd wakeup_read;   // main() writes a byte to stop the loop
  UniqueFd wakeup_write;
  select_loop::SpareFd spare;  // a descriptor in reserve for EMFILE (spare_fd.cpp)
  std::array<Client*, FD_SETSIZE> clients{};
  int max_client_fd = -1;
  TimePoint accept_paused_until = TimePoint::min();
  bool stopping = false;
};

void close_client(Loop& loop, Client* c) {
  const int fd = c->fd.get();
  if (!loop.stopping && c->conn.may_have_unread_input() && has_unread_input(fd)) {
    linger_close(std::move(c->fd));  // a lingering close (linger.hpp)
  }
  loop.clients[static_cast<std::size_t>(fd)] = nullptr;
  while (loop.max_client_fd >= 0 && loop.clients[static_cast<std::size_t>(loop.max_client_fd)] == nullptr) {
    --loop.max_client_fd;
  }
  delete c;
  count(Counter::kConnectionsClosed);
  loop.shared.open_connections.fetch_sub(1, std::memory_order_relaxed);
}

// One write: the descriptor was reported writable, so it will not block.
bool on_writable(Loop& loop, Client& c) {
  const Output out = c.conn.output();
  const int fd = c.fd.get();
  const ssize_t n = out.iovcnt > 0 ? sys::writev(fd, out.iov.data(), out.iovcnt)
                                   : send_file_region(fd, out.file, loop.shared.options.sendfile);
  if (n < 0) return errno == EAGAIN || errno == EINTR;
  c.conn.on_written(static_cast<std::size_t>(n), coarse_now());
  return true;
}

// One read: level-triggered, so bytes left behind make the descriptor ready again next time.
bool on_readable(Client& c) {
  const std::span<char> space = c.conn.read_space();
  if (space.empty()) return false;  // the core refuses input it could not hold: give up
  const ssize_t n = sys::recv(c.fd.get(), space.data(), space.size());
  if (n < 0) return errno == EAGAIN || errno == EINTR;
  c.conn.on_read(static_cast<std::size_t>(n), coarse_now());
  return true;
}

// Runs what the connection can do after one readiness report.
void drive_steps(Loop& loop, Client* c, bool readable, bool writable) {
  bool ok = true;
  if (readable && c->conn.next() == Step::kRead) {
    ok = on_readable(*c);
    writable = true;  // a socket with room to spare is the rule: answer now, not a select later
  }
  for (int pass = 0; ok && pass < 2; ++pass) {
    switch (c->conn.next()) {
      case Step::kWrite:
        if (writable) ok = on_writable(loop, *c);
        writable = false;  // once per wake-up; select says when to write again
        break;
      case Step::kRunWork:
        c->conn.take_work().run();  // blocks the whole loop: every connection on it waits
        c->conn.on_work_done(coarse_now());
        writable = true;  // try the response at once; EAGAIN just waits for the next pass
        break;
      case Step::kRead:
      case Step::kWaitWork:
        return;
      case Step::kClose:
        ok = false;
        break;
    }
  }
  // A response to deferred work takes both passes (work, write): a close after it is due now,
  // not when the idle peer next makes the socket readable.
  if (ok && c->conn.next() == Step::kClose) ok = false;
  if (!ok) close_client(loop, c);
}

// The connection boundary: an exception from one connection's path (std::bad_alloc, ...)
// closes that connection and is counted; the loop and the other connections go on.
void drive(Loop& loop, Client* c, bool readable, bool writable) {
  try {
    drive_steps(loop, c, readable, writable);
  } catch (const std::exception& e) {
    count_connection_error(kModel, e.what());
    close_client(loop, c);
  }
}

void on_accept(Loop& loop, TimePoint now) {
  for (int i = 0; i < kAcceptBatch; ++i) {
    const int fd = sys::accept4(loop.listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      const int error = errno;
      // spare_fd.cpp: out of descriptors, refuse the waiting connections instead of leaving
      // them queued; back off only if the reserve is gone too.
      if (error == EMFILE && loop.spare.refuse_waiting(loop.listener.get(), loop.shared, kAcceptBatch - i)) {
        return;
      }
      const Millis pause = error == EAGAIN ? Millis{0} : select_loop::accept_pause(error);
      if (pause > Millis{0}) {  // accept_pause.cpp: EMFILE and the like
        count(Counter::kAcceptBackoffs);
        loop.accept_paused_until = now + pause;
      }
      return;
    }
    if (fd >= FD_SETSIZE) {
      // FD_SET(fd) would write outside the 1024-bit fd_set.
      if (!loop.shared.warned_fd_setsize.exchange(true)) {
        std::fprintf(stderr, "server_%.*s: descriptor %d >= FD_SETSIZE (%d): select() cannot watch "
                     "it; refusing such connections (counted as fd_setsize_refused)\n",
                     static_cast<int>(kModel.size()), kModel.data(), fd, FD_SETSIZE);
      }
      count(Counter::kFdSetsizeRefused);
      refuse(loop.shared, UniqueFd(fd));
      continue;
    }
    if (loop.shared.open_connections.load(std::memory_order_relaxed) >= loop.shared.options.max_conns) {
      refuse(loop.shared, UniqueFd(fd));
      continue;
    }
    set_nodelay(fd);
    loop.clients[static_cast<std::size_t>(fd)] = new Client(loop.shared, fd, now);
    loop.max_client_fd = std::max(loop.max_client_fd, fd);
    loop.shared.open_connections.fetch_add(1, std::memory_order_relaxed);
    count(Counter::kConnectionsAccepted);
  }
}

void event_loop(Loop& loop) {
  pin_worker(loop.shared.options, loop.index);
  const int listen_fd = loop.listener.get();
  const int wakeup_fd = loop.wakeup_read.get();
  while (!loop.stopping) {
    // Rebuild both sets from scratch: select() overwrites them with its answer.
    fd_set readable, writable;
    FD_ZERO(&readable);
    FD_ZERO(&writable);
    TimePoint now = coarse_now();
    TimePoint next_deadline = now + kMaxWait;
    int max_fd = std::max(listen_fd, wakeup_fd);
    FD_SET(wakeup_fd, &readable);
    if (loop.accept_paused_until == TimePoint::min()) {
      FD_SET(listen_fd, &readable);
    } else {
      next_deadline = std::min(next_deadline, loop.accept_paused_until);
    }
    for (int fd = 0; fd <= loop.max_client_fd; ++fd) {
      Client* c = loop.clients[static_cast<std::size_t>(fd)];
      if (c == nullptr) continue;
      const Step step = c->conn.next();
      if (step == Step::kRead && c->conn.wants_read()) FD_SET(fd, &readable);
      if (step == Step::kWrite) FD_SET(fd, &writable);
      next_deadline = std::min(next_deadline, c->conn.next_deadline());
      max_fd = std::max(max_fd, fd);
    }
    const auto wait = std::max(Millis(0), std::chrono::ceil<Millis>(next_deadline - now));
    timeval timeout{static_cast<time_t>(wait.count() / 1000),
                    static_cast<suseconds_t>(wait.count() % 1000 * 1000)};
    const int ready = sys::select(max_fd + 1, &readable, &writable, nullptr, &timeout);
    if (ready < 0 && errno != EINTR) {
      std::perror("select");
      return;
    }
    now = coarse_now();
    if (ready > 0) {
      if (FD_ISSET(wakeup_fd, &readable)) loop.stopping = true;
      for (int fd = 0; fd <= loop.max_client_fd; ++fd) {
        Client* c = loop.clients[static_cast<std::size_t>(fd)];
        if (c == nullptr) continue;
        const bool r = FD_ISSET(fd, &readable);
        const bool w = FD_ISSET(fd, &writable);
        if (r || w) drive(loop, c, r, w);
      }
      // After the connections: one that closed in this pass has freed its descriptor, so a
      // table that was full takes the new connection instead of refusing it (spare_fd.cpp).
      if (FD_ISSET(listen_fd, &readable)) on_accept(loop, now);
    }
    // Expired timers, found by the same kind of scan.
    for (int fd = 0; fd <= loop.max_client_fd; ++fd) {
      Client* c = loop.clients[static_cast<std::size_t>(fd)];
      if (c != nullptr && c->conn.next_deadline() <= now && c->conn.on_timeout(now) == Step::kClose) {
        close_client(loop, c);
      }
    }
    if (loop.accept_paused_until != TimePoint::min() && now >= loop.accept_paused_until) {
      loop.accept_paused_until = TimePoint::min();
    }
  }
  for (Client* c : loop.clients) {
    if (c != nullptr) close_client(loop, c);
  }
}

}  // namespace

int main(int argc, char** argv) {
  init_process_signals();
  const std::string program = "server_" + std::string(kModel);
  try {
    auto shared = std::make_unique<Shared>();
    shared->options = parse_options(argc, argv, kModel, kDefaultMaxConns);
    const Options& options = shared->options;
    if (options.max_conns > kDefaultMaxConns) {
      std::fprintf(stderr, "%s: --max-conns: select() cannot watch descriptors >= FD_SETSIZE "
                   "(%d), so at most %zu connections per process\n",
                   program.c_str(), FD_SETSIZE, kDefaultMaxConns);
      return 2;
    }
    raise_fd_limit();
    std::vector<UniqueFd> listeners = listen_tcp(options.bind, options.port, options.threads, true);
    const std::uint16_t port = local_port(listeners[0].get());

    std::vector<std::unique_ptr<Loop>> loops;
    for (int i = 0; i < options.threads; ++i) {
      loops.push_back(std::make_unique<Loop>(*shared, i, std::move(listeners[static_cast<std::size_t>(i)])));
    }
    for (const auto& loop : loops) {
      // The loop puts its listener and wake-up pipe in every fd_set, so they must fit too.
      const int highest = std::max(loop->listener.get(), loop->wakeup_read.get());
      if (highest >= FD_SETSIZE) {
        std::fprintf(stderr, "%s: descriptor %d >= FD_SETSIZE (%d) for the listener or wake-up pipe: "
                     "too many inherited open descriptors for select()\n",
                     program.c_str(), highest, FD_SETSIZE);
        return 2;
      }
    }
    std::vector<std::thread> threads;
    for (auto& loop : loops) threads.emplace_back(event_loop, std::ref(*loop));
    print_ready_line(kModel, options.bind, port, options.threads);

    wait_for_stop_signal();
    for (auto& loop : loops) {
      const char byte = 1;
      if (::write(loop->wakeup_write.get(), &byte, 1) < 0) std::perror("wake-up pipe write");
    }
    for (auto& t : threads) t.join();
    print_final_stats(kModel);
    return 0;
  } catch (const std::system_error& e) {
    std::fprintf(stderr, "%s: %s\n", program.c_str(), e.what());
    return 1;
  }
}
