// server_pooled: the epoll_et server with its memory from pools: zero allocations per request.
//
// What this model shows
//   The same edge-triggered epoll loops as server_epoll_et, line for line, except where memory
//   comes from (`diff servers/epoll_et/main.cpp servers/pooled/main.cpp` shows only that), so
//   it shares epoll_et's budget per connection per turn too (kTurnBytes, 16 KiB; see there):
//   connection objects come from a fixed-capacity ObjectPool per loop, input buffers from a
//   BlockPool and are held only while a connection has unprocessed bytes, and each request's
//   objects (the parsed request, the response) live in a per-connection arena over the same
//   BlockPool, released in one step when the output has drained. After warm-up no request
//   reaches operator new; /stats "allocations" stays flat while "requests" climbs.
//
// What to notice
//   - An idle keep-alive connection holds no buffer and no arena block: release_idle_buffers()
//     runs whenever the loop stops reading a connection, so memory per idle connection is the
//     Connection object and the kernel's socket, nothing more.
//   - Pool exhaustion is backpressure you can see: beyond the pool's capacity (--max-conns per
//     loop, since the kernel's reuseport hash need not spread connections evenly) a connection
//     is refused with a 503 and counted, never queued silently or allocated anyway.
//   - The pools are per loop and single-threaded: no locks, no sharing, no false sharing.
//   - The cost moved, it did not vanish: pool_reserved_bytes in /stats is memory the pools hold
//     for reuse; it counts toward memory per connection.
//   Compare /stats allocations per request and instructions per request (cachegrind) with
//   server_epoll_et: claims C09 and C10 in bench/claims.json.
//
// Usage
//   build/bin/server_pooled [--port 8080] [--threads N] [--pin LIST] (all flags: --help)
//
// Try
//   build/bin/server_pooled --port 8080 &  ab -k -c 50 -n 100000 http://127.0.0.1:8080/ping
//   curl -s localhost:8080/stats   (allocations vs requests, pool_hits, pool_reserved_bytes)

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
#include "loop_memory.hpp"  // BlockPool, PooledMemory (lab 09 swaps this file)
#include "net.hpp"
#include "options.hpp"
#include "pool.hpp"
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
constexpr std::size_t kTurnBytes = 16 * 1024;  // bytes in and out per connection per turn

// Process-wide, read-only once the loops run (except the atomic counter).
struct Shared : SharedState {
  Shared() : SharedState(kModel) {}
};

// Per-connection state: the socket, the protocol, and what the last edges said.
struct Client {
  Client(Shared& shared, LoopMemory& blocks, int socket, std::uint32_t slot_index, TimePoint now)
      : fd(socket), slot(slot_index), memory(blocks),
        conn(shared.app, shared.options.limits, memory, now) {}
  UniqueFd fd;
  std::uint32_t slot;
  std::uint32_t generation = 0;
  ClientMemory memory;  // the request arena and input buffers, from the loop's BlockPool
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

// One shared-nothing event loop. Each starts on a 64-byte line of its own, so no loop's hot
// fields (its pool's free lists, its ready lists) share a cache line with the next loop's
// (labs/07-cache-effects).
struct alignas(64) Loop {
  Loop(Shared& s, int i, UniqueFd listen_socket, std::size_t pool_capacity)
      : shared(s), index(i), listener(std::move(listen_socket)),
        epoll(::epoll_create1(EPOLL_CLOEXEC)), wakeup(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)),
        clients(pool_capacity) {
    if (!epoll || !wakeup) throw std::system_error(errno, std::generic_category(), "epoll/eventfd");
  }
  Shared& shared;
  int index;
  UniqueFd listener;
  UniqueFd epoll;
  UniqueFd wakeup;  // eventfd: main() asks the loop to stop
  LoopMemory blocks;            // buffers and arena blocks; destroyed after the clients
  ObjectPool<Client> clients;   // fixed capacity: --max-conns
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
  loop.clients.destroy(c);  // close(2) also removes the socket from the epoll set
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

// One read into the connection's buffer, counted in `moved`; see the drain rule in the header
// comment.
bool on_readable(Client& c, std::size_t& moved) {
  const std::span<char> space = c.conn.read_space();
  if (space.empty()) return false;  // the core refuses input it could not hold: give up
  const ssize_t n = sys::recv(c.fd.get(), space.data(), space.size());
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) {
      c.may_read = errno == EINTR;
      return true;
    }
    return false;
  }
  if (static_cast<std::size_t>(n) < space.size() && n > 0 && !c.peer_closing) c.may_read = false;
  moved += static_cast<std::size_t>(n);
  c.conn.on_read(static_cast<std::size_t>(n), coarse_now());
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
        if (!c->may_read || !c->conn.wants_read()) {
          c->conn.release_idle_buffers();  // nothing buffered: the buffer goes back to the pool
          return arm_timer(loop, *c);
        }
        if (moved >= kTurnBytes) return post(loop, *c);
        ok = on_readable(*c, moved);
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
    Client* c = loop.clients.create(loop.shared, loop.blocks, fd, slot, now);
    if (c == nullptr) {  // pool exhausted: visible backpressure, not a silent allocation
      loop.free_slots.push_back(slot);
      refuse(loop.shared, UniqueFd(fd));
      continue;
    }
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
    shared->options = parse_options(argc, argv, kModel, kDefaultMaxConns);
    const Options& options = shared->options;
    raise_fd_limit();
    std::vector<UniqueFd> listeners = listen_tcp(options.bind, options.port, options.threads, true);
    const std::uint16_t port = local_port(listeners[0].get());

    std::vector<std::unique_ptr<Loop>> loops;
    for (int i = 0; i < options.threads; ++i) {
      // Each loop may hold up to --max-conns: the kernel's reuseport hash does not spread
      // connections evenly, and the global count already enforces the total. Chunks grow lazily.
      const std::size_t pool_capacity = options.max_conns;
      auto loop = std::make_unique<Loop>(*shared, i, std::move(listeners[static_cast<std::size_t>(i)]),
                                         pool_capacity);
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
