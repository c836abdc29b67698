// server_epoll_et: non-blocking sockets, epoll in edge-triggered mode, one loop per thread.
//
// What this model shows
//   One thread serves thousands of connections by asking the kernel which sockets are ready
//   (epoll_wait) and doing only the work that cannot block. With --threads N there are N loops
//   that share nothing: each has its own SO_REUSEPORT listener (the kernel spreads new
//   connections across them), its own epoll instance, connections and timers.
//
// What to notice
//   - Each socket is registered once, for EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET. Edge-triggered
//     means "tell me when something changes", so no EPOLL_CTL_MOD is needed to switch between
//     reading and writing: the loop remembers what the kernel said (may_read, may_write) and
//     acts on it until a call returns EAGAIN.
//   - The drain rule. The textbook rule for ET is: read until EAGAIN, or the edge is lost. We
//     use nginx's refinement: a read that returns less than the space offered has emptied the
//     receive queue at that moment, and any byte arriving later raises a new edge, so the extra
//     read that would only return EAGAIN is skipped: one system call less per request. A peer's
//     close is still seen, because EPOLLRDHUP arrives as its own edge; after it we read to EOF.
//     --drain-to-eagain 1 keeps the textbook rule, to compare. The read path is read.cpp (lab 03
//     swaps it for the student's).
//   - Listening sockets stay level-triggered and accept4() runs at most kAcceptBatch times per
//     wake-up, so a flood of connections cannot starve the connections already open.
//   - Responses to a batch of pipelined requests leave in one writev().
//   - A budget per connection per turn: after kTurnBytes in and out, a connection that could
//     go on goes to the back of the loop's ready list instead (nginx's posted events, libuv's
//     read limit), and the loop asks epoll again, without waiting, before that list's next
//     turn. Without it, a client that pipelines as fast as the loop reads never lets a read
//     come up short, and drive() keeps the loop while every other connection waits. 16 KiB is
//     about 90 small requests with their answers: keep-alive traffic and ordinary pipelines
//     never reach it (no extra system call), and a busy connection delays the others by at
//     most one such turn, plus the one read or write that crossed the line.
//   - A blocking handler (/sleep) runs inline and stalls every connection of its loop: the
//     lesson of lab 11. Compare server_threads and server_coro.
//   - accept4() fails with EMFILE while the descriptor table is full and the connection stays in
//     the backlog, so a level-triggered listener would wake the loop at once, forever: the loop
//     stops watching the listener for kAcceptPause (nginx does the same), serving open
//     connections meanwhile.
//   - Timers: a min-heap of (deadline, slot, generation) per loop, pushed only when a
//     connection's deadline moves earlier than the one already armed; a timer that fires early
//     is re-armed. Steady keep-alive traffic costs no timer work per request.
//
// Usage
//   build/bin/server_epoll_et [--port 8080] [--threads N] [--pin LIST] [--drain-to-eagain 0|1]
//                             (all flags: --help)
//
// Try
//   build/bin/server_epoll_et --port 8080 --threads 2 --pin 0-1 &
//   wrk -c 100 -d 5 http://127.0.0.1:8080/ping;  curl -s localhost:8080/stats
//   strace -f -c -p $(pgrep server_epoll_et)  (system calls per request, outside measurements)

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <queue>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "app.hpp"
#include "connection.hpp"
#include "linger.hpp"
#include "net.hpp"
#include "options.hpp"
#include "read.hpp"
#include "server.hpp"
#include "stats.hpp"
#include "sys.hpp"

namespace {

using namespace iolab;

constexpr std::string_view kModel = IOLAB_MODEL;
constexpr std::size_t kDefaultMaxConns = 100'000;
constexpr int kMaxEvents = 256;       // events taken per epoll_wait
constexpr int kAcceptBatch = 64;      // accept4 calls per listener wake-up (fairness cap)
constexpr Millis kAcceptPause{100};   // stop watching the listener after EMFILE
constexpr Millis kMaxWait{1000};      // epoll_wait timeout when no timer is due sooner
const ExtraFlag kExtraFlags[] = {
    {"--drain-to-eagain", 0, 0, 1, "1: read until EAGAIN; 0: stop at a short read (nginx)"}};
constexpr std::size_t kTurnBytes = 16 * 1024;  // bytes in and out per connection per turn

// Process-wide, read-only once the loops run (except the atomic counter).
struct Shared : SharedState {
  Shared() : SharedState(kModel) {}
  HeapMemory memory;
  bool drain_to_eagain = false;  // --drain-to-eagain 1: the textbook rule (read.cpp)
};

// Per-connection state: the socket, the protocol, and what the last edges said.
struct Client {
  Client(Shared& shared, int socket, std::uint32_t slot_index, TimePoint now)
      : fd(socket), slot(slot_index), conn(shared.app, shared.options.limits, shared.memory, now) {}
  UniqueFd fd;
  std::uint32_t slot;
  std::uint32_t generation = 0;
  Connection conn;
  bool may_read = true;   // no EAGAIN (or short read) since the last EPOLLIN edge
  bool may_write = true;  // no EAGAIN since the last EPOLLOUT edge
  bool peer_closing = false;  // EPOLLRDHUP seen: read to EOF
  bool posted = false;        // on the loop's ready list: its budget ran out with work left
  TimePoint armed = TimePoint::max();  // earliest deadline in the timer heap for this client
};

struct Timer {
  TimePoint deadline;
  std::uint32_t slot;
  std::uint32_t generation;
  bool operator>(const Timer& other) const { return deadline > other.deadline; }
};

// A connection on the ready list, named like a timer: it may close before its turn.
struct Posted {
  std::uint32_t slot;
  std::uint32_t generation;
};

// One shared-nothing event loop.
struct Loop {
  Loop(Shared& s, int i, UniqueFd listen_socket)
      : shared(s), index(i), listener(std::move(listen_socket)),
        epoll(::epoll_create1(EPOLL_CLOEXEC)), wakeup(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    if (!epoll || !wakeup) throw std::system_error(errno, std::generic_category(), "epoll/eventfd");
  }
  Shared& shared;
  int index;
  UniqueFd listener;
  UniqueFd epoll;
  UniqueFd wakeup;  // eventfd: main() asks the loop to stop
  std::vector<Client*> slots;  // slot -> client; timers name clients by slot and generation
  std::vector<std::uint32_t> free_slots;
  std::vector<std::uint32_t> generations;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers;
  std::vector<Posted> ready;    // connections that ran out of budget, in order
  std::vector<Posted> running;  // the ready list being served this turn
  TimePoint accept_paused_until = TimePoint::min();
  bool stopping = false;
};

// epoll_event.data.u64 tags: clients carry their slot; these two are special.
constexpr std::uint64_t kListenerTag = ~0ULL;
constexpr std::uint64_t kWakeupTag = ~0ULL - 1;

// False (errno set) on failure: ENOMEM, or ENOSPC past fs.epoll.max_user_watches.
bool add_to_epoll(Loop& loop, int fd, std::uint32_t events, std::uint64_t tag) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = tag;
  return sys::epoll_ctl(loop.epoll.get(), EPOLL_CTL_ADD, fd, &ev) == 0;
}

void set_listener_watched(Loop& loop, bool watched) {
  epoll_event ev{};
  ev.events = watched ? static_cast<std::uint32_t>(EPOLLIN) : 0u;  // level-triggered: see the header comment
  ev.data.u64 = kListenerTag;
  sys::epoll_ctl(loop.epoll.get(), EPOLL_CTL_MOD, loop.listener.get(), &ev);
}

void arm_timer(Loop& loop, Client& c) {
  const TimePoint deadline = c.conn.next_deadline();
  if (deadline >= c.armed) return;  // the armed timer fires first and re-checks
  c.armed = deadline;
  loop.timers.push({deadline, c.slot, c.generation});
}

void close_client(Loop& loop, Client* c) {
  if (!loop.stopping && c->conn.may_have_unread_input() && has_unread_input(c->fd.get())) {
    sys::epoll_ctl(loop.epoll.get(), EPOLL_CTL_DEL, c->fd.get(), nullptr);
    linger_close(std::move(c->fd));  // a lingering close (linger.hpp)
  }
  loop.slots[c->slot] = nullptr;
  ++loop.generations[c->slot];  // timers still in the heap for this slot go stale
  loop.free_slots.push_back(c->slot);
  delete c;  // close(2) also removes the socket from the epoll set
  count(Counter::kConnectionsClosed);
  loop.shared.open_connections.fetch_sub(1, std::memory_order_relaxed);
}

// The budget ran out with work left: to the back of the ready list (see the header comment).
void post(Loop& loop, Client& c) {
  if (!c.posted) loop.ready.push_back({c.slot, c.generation});
  c.posted = true;
  arm_timer(loop, c);
}

// One write; `moved` counts its bytes. A full socket buffer (EAGAIN) waits for EPOLLOUT.
// Returns false on a fatal error.
bool on_writable(Loop& loop, Client& c, std::size_t& moved) {
  const Output out = c.conn.output();
  const int fd = c.fd.get();
  const ssize_t n = out.iovcnt > 0 ? sys::writev(fd, out.iov.data(), out.iovcnt)
                                   : send_file_region(fd, out.file, loop.shared.options.sendfile);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) {
      c.may_write = errno == EINTR;
      return true;
    }
    return false;  // EPIPE, ECONNRESET: the peer is gone
  }
  moved += static_cast<std::size_t>(n);
  c.conn.on_written(static_cast<std::size_t>(n), coarse_now());
  return true;
}

// Runs the connection as far as the kernel lets it without blocking, or until its budget for
// this turn is spent.
void drive_steps(Loop& loop, Client* c) {
  std::size_t moved = 0;
  for (;;) {
    bool ok = true;
    switch (c->conn.next()) {
      case Step::kWrite:
        if (!c->may_write) return arm_timer(loop, *c);
        if (moved >= kTurnBytes) return post(loop, *c);
        ok = on_writable(loop, *c, moved);
        break;
      case Step::kRunWork:
        c->conn.take_work().run();  // blocks the whole loop: every connection on it waits
        c->conn.on_work_done(coarse_now());
        break;
      case Step::kRead:
        if (!c->may_read || !c->conn.wants_read()) return arm_timer(loop, *c);
        if (moved >= kTurnBytes) return post(loop, *c);
        if (const long n = epoll_et::on_readable(c->fd.get(), c->conn, c->may_read,
                                                 c->peer_closing, loop.shared.drain_to_eagain);
            n >= 0) {
          moved += static_cast<std::size_t>(n);
        } else {
          ok = false;
        }
        break;
      case Step::kWaitWork:  // work runs inline above, so never seen here
      case Step::kClose:
        ok = false;
        break;
    }
    if (!ok) return close_client(loop, c);
  }
}

// The connection boundary: an exception from one connection's path (std::bad_alloc, ...)
// closes that connection and is counted; the loop and the other connections go on.
void drive(Loop& loop, Client* c) {
  try {
    drive_steps(loop, c);
  } catch (const std::exception& e) {
    count_connection_error(kModel, e.what());
    close_client(loop, c);
  }
}

void on_accept(Loop& loop, TimePoint now) {
  for (int i = 0; i < kAcceptBatch; ++i) {
    const int fd = sys::accept4(loop.listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        count(Counter::kAcceptBackoffs);
        set_listener_watched(loop, false);
        loop.accept_paused_until = now + kAcceptPause;
      }
      return;  // EAGAIN: backlog empty; ECONNABORTED and friends: nothing to do
    }
    if (loop.shared.open_connections.load(std::memory_order_relaxed) >= loop.shared.options.max_conns) {
      refuse(loop.shared, UniqueFd(fd));
      continue;
    }
    set_nodelay(fd);
    std::uint32_t slot;
    if (loop.free_slots.empty()) {
      slot = static_cast<std::uint32_t>(loop.slots.size());
      loop.slots.push_back(nullptr);
      loop.generations.push_back(0);
    } else {
      slot = loop.free_slots.back();
      loop.free_slots.pop_back();
    }
    auto* c = new Client(loop.shared, fd, slot, now);
    c->generation = loop.generations[slot];
    loop.slots[slot] = c;
    loop.shared.open_connections.fetch_add(1, std::memory_order_relaxed);
    count(Counter::kConnectionsAccepted);
    // Registering a socket that is already readable raises the first edge at once, so there is
    // no need to try a read here (for a fresh connection it would mostly return EAGAIN).
    if (!add_to_epoll(loop, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, slot)) {
      count(Counter::kConnectionErrors);  // this connection only; the loop goes on
      close_client(loop, c);
      continue;
    }
    arm_timer(loop, *c);
  }
}

void on_timers(Loop& loop, TimePoint now) {
  while (!loop.timers.empty() && loop.timers.top().deadline <= now) {
    const Timer t = loop.timers.top();
    loop.timers.pop();
    Client* c = loop.slots[t.slot];
    if (c == nullptr || c->generation != t.generation || c->armed != t.deadline) continue;
    c->armed = TimePoint::max();
    if (c->conn.on_timeout(now) == Step::kClose) {
      close_client(loop, c);
    } else {
      arm_timer(loop, *c);
    }
  }
  if (loop.accept_paused_until != TimePoint::min() && now >= loop.accept_paused_until) {
    loop.accept_paused_until = TimePoint::min();
    set_listener_watched(loop, true);
  }
}

// One turn for each connection posted before this pass; those that post again wait for the
// next pass, after the next epoll_wait.
void run_ready(Loop& loop) {
  loop.running.swap(loop.ready);
  for (const Posted p : loop.running) {
    Client* c = loop.slots[p.slot];
    if (c == nullptr || c->generation != p.generation) continue;  // closed meanwhile
    c->posted = false;
    drive(loop, c);
  }
  loop.running.clear();
}

int wait_timeout_ms(const Loop& loop, TimePoint now) {
  TimePoint next = now + kMaxWait;
  if (!loop.timers.empty()) next = std::min(next, loop.timers.top().deadline);
  if (loop.accept_paused_until != TimePoint::min()) next = std::min(next, loop.accept_paused_until);
  return static_cast<int>(std::max<Millis::rep>(0, std::chrono::ceil<Millis>(next - now).count()));
}

void event_loop(Loop& loop) {
  pin_worker(loop.shared.options, loop.index);
  epoll_event events[kMaxEvents];
  while (!loop.stopping) {
    // Posted connections have work: only look for new events, do not wait for them.
    const int timeout = loop.ready.empty() ? wait_timeout_ms(loop, coarse_now()) : 0;
    const int n = sys::epoll_wait(loop.epoll.get(), events, kMaxEvents, timeout);
    const TimePoint now = coarse_now();
    for (int i = 0; i < n; ++i) {
      const std::uint64_t tag = events[i].data.u64;
      if (tag == kListenerTag) {
        on_accept(loop, now);
      } else if (tag == kWakeupTag) {
        loop.stopping = true;
      } else if (Client* c = loop.slots[tag]) {
        const std::uint32_t ev = events[i].events;
        if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) c->may_read = true;
        if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) c->may_write = true;
        if (ev & (EPOLLRDHUP | EPOLLHUP)) c->peer_closing = true;
        drive(loop, c);
      }
    }
    run_ready(loop);
    on_timers(loop, now);
  }
  for (Client* c : loop.slots) {
    if (c != nullptr) close_client(loop, c);
  }
}

}  // namespace

int main(int argc, char** argv) {
  init_process_signals();
  const std::string program = "server_" + std::string(kModel);
  try {
    auto shared = std::make_unique<Shared>();
    shared->options = parse_options(argc, argv, kModel, kDefaultMaxConns, kExtraFlags);
    shared->drain_to_eagain = shared->options.extra_value("--drain-to-eagain") == 1;
    const Options& options = shared->options;
    raise_fd_limit();
    std::vector<UniqueFd> listeners = listen_tcp(options.bind, options.port, options.threads, true);
    const std::uint16_t port = local_port(listeners[0].get());

    std::vector<std::unique_ptr<Loop>> loops;
    for (int i = 0; i < options.threads; ++i) {
      auto loop = std::make_unique<Loop>(*shared, i, std::move(listeners[static_cast<std::size_t>(i)]));
      if (!add_to_epoll(*loop, loop->listener.get(), EPOLLIN, kListenerTag) ||
          !add_to_epoll(*loop, loop->wakeup.get(), EPOLLIN, kWakeupTag)) {
        throw std::system_error(errno, std::generic_category(), "epoll_ctl ADD");
      }
      loops.push_back(std::move(loop));
    }
    std::vector<std::thread> threads;
    for (auto& loop : loops) threads.emplace_back(event_loop, std::ref(*loop));
    print_ready_line(kModel, options.bind, port, options.threads);

    wait_for_stop_signal();
    for (auto& loop : loops) {
      const std::uint64_t one = 1;
      if (::write(loop->wakeup.get(), &one, sizeof one) < 0) std::perror("eventfd write");
    }
    for (auto& t : threads) t.join();
    print_final_stats(kModel);
    return 0;
  } catch (const std::system_error& e) {
    std::fprintf(stderr, "%s: %s\n", program.c_str(), e.what());
    return 1;
  }
}
