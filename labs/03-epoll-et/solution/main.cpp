// server_lab03: lab 03's edge-triggered epoll server. It is servers/epoll_et/main.cpp with the
// read path pulled out into one function, on_readable(), which is what the lab is about.
//
// The rule of edge-triggered epoll
//   EPOLLET reports a *change*: "bytes arrived since you last looked", not "bytes are waiting".
//   After an EPOLLIN edge the loop may read until the kernel says it has nothing (EAGAIN); if it
//   stops earlier while bytes are still queued, no new edge comes for them, and the connection
//   waits forever for input that is already there. Two ways to honour the rule:
//   - drain: read until EAGAIN (the textbook rule; --drain-to-eagain 1). Every request costs one
//     extra read that returns EAGAIN.
//   - nginx's refinement (the default): a read that returns less than the space offered has
//     emptied the receive queue at that moment, and any byte arriving later raises a new edge, so
//     the loop stops there without the EAGAIN read. A read that fills the space offered may have
//     left bytes behind: read again. The peer's FIN can arrive with the last bytes and raise no
//     further edge, so once EPOLLRDHUP is seen the loop reads to EOF.
//   Watch "read" against "requests" in /stats: 2 reads a request when draining, 1 with the
//   refinement (curl -s localhost:PORT/stats after a few keep-alive requests).
//
// Everything else is server_epoll_et's: one registration per socket for
// EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET, may_read/may_write remembered between edges, accept4 with
// a fairness cap, writev, timers in a min-heap, an accept pause after EMFILE.
//
// Usage
//   build/labs/bin/solution/server_lab03 [--port 8080] [--drain-to-eagain 0|1] (all: --help)

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
#include "net.hpp"
#include "options.hpp"
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

// Process-wide, read-only once the loops run (except the atomic counter).
struct Shared {
  Options options;
  ContentSource content;
  App app{kModel, content};
  HeapMemory memory;
  std::string refusal = app.refusal_response();
  std::atomic<std::size_t> open_connections{0};
  bool drain_to_eagain = false;
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
  TimePoint armed = TimePoint::max();  // earliest deadline in the timer heap for this client
};

struct Timer {
  TimePoint deadline;
  std::uint32_t slot;
  std::uint32_t generation;
  bool operator>(const Timer& other) const { return deadline > other.deadline; }
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
  TimePoint accept_paused_until = TimePoint::min();
  bool stopping = false;
};

// epoll_event.data.u64 tags: clients carry their slot; these two are special.
constexpr std::uint64_t kListenerTag = ~0ULL;
constexpr std::uint64_t kWakeupTag = ~0ULL - 1;

void add_to_epoll(Loop& loop, int fd, std::uint32_t events, std::uint64_t tag) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = tag;
  if (sys::epoll_ctl(loop.epoll.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
    throw std::system_error(errno, std::generic_category(), "epoll_ctl ADD");
  }
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
  loop.slots[c->slot] = nullptr;
  ++loop.generations[c->slot];  // timers still in the heap for this slot go stale
  loop.free_slots.push_back(c->slot);
  delete c;  // close(2) also removes the socket from the epoll set
  count(Counter::kConnectionsClosed);
  loop.shared.open_connections.fetch_sub(1, std::memory_order_relaxed);
}

// Writes until the output is gone or the socket buffer is full (EAGAIN: wait for EPOLLOUT).
// Returns false on a fatal error.
bool on_writable(Loop& loop, Client& c) {
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
  c.conn.on_written(static_cast<std::size_t>(n), coarse_now());
  return true;
}

// ---- the lab: one read after an EPOLLIN edge, and whether another may follow ----------------
//
// drive() calls this while c.may_read holds and the core wants input; c.may_read = false means
// "wait for the next edge". Setting it false is only safe when the receive queue is known to be
// empty: after EAGAIN, or (nginx's refinement) after a read that returned less than it could.
bool on_readable(const Shared& shared, Client& c) {
  const std::span<char> space = c.conn.read_space();
  if (space.empty()) return false;  // the core refuses input it could not hold: give up
  const ssize_t n = sys::recv(c.fd.get(), space.data(), space.size());
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) {
      c.may_read = errno == EINTR;  // EAGAIN: drained, the next byte raises a new edge
      return true;
    }
    return false;  // ECONNRESET and friends
  }
  // A short read emptied the queue; after EPOLLRDHUP read on to EOF (n == 0), since a FIN that
  // came with the last bytes raises no edge of its own.
  const bool short_read = n > 0 && static_cast<std::size_t>(n) < space.size();
  if (short_read && !shared.drain_to_eagain && !c.peer_closing) c.may_read = false;
  c.conn.on_read(static_cast<std::size_t>(n), coarse_now());
  return true;
}

// Runs the connection as far as the kernel lets it without blocking.
void drive(Loop& loop, Client* c) {
  for (;;) {
    bool ok = true;
    switch (c->conn.next()) {
      case Step::kWrite:
        if (!c->may_write) return arm_timer(loop, *c);
        ok = on_writable(loop, *c);
        break;
      case Step::kRunWork:
        c->conn.take_work().run();  // blocks the whole loop: every connection on it waits
        c->conn.on_work_done(coarse_now());
        break;
      case Step::kRead:
        if (!c->may_read || !c->conn.wants_read()) return arm_timer(loop, *c);
        ok = on_readable(loop.shared, *c);
        break;
      case Step::kWaitWork:  // work runs inline above, so never seen here
      case Step::kClose:
        ok = false;
        break;
    }
    if (!ok) return close_client(loop, c);
  }
}

void refuse(Shared& shared, UniqueFd socket) {
  ::send(socket.get(), shared.refusal.data(), shared.refusal.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  count(Counter::kConnectionsRefused);
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
    add_to_epoll(loop, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, slot);
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

int wait_timeout_ms(const Loop& loop, TimePoint now) {
  TimePoint next = now + kMaxWait;
  if (!loop.timers.empty()) next = std::min(next, loop.timers.top().deadline);
  if (loop.accept_paused_until != TimePoint::min()) next = std::min(next, loop.accept_paused_until);
  return static_cast<int>(std::max<Millis::rep>(0, std::chrono::ceil<Millis>(next - now).count()));
}

void event_loop(Loop& loop) {
  if (!loop.shared.options.pin.empty()) {
    const auto& pin = loop.shared.options.pin;
    const int cpu = pin[static_cast<std::size_t>(loop.index) % pin.size()];
    pin_current_thread(std::span<const int>(&cpu, 1));
  }
  epoll_event events[kMaxEvents];
  while (!loop.stopping) {
    const int n = sys::epoll_wait(loop.epoll.get(), events, kMaxEvents,
                                  wait_timeout_ms(loop, coarse_now()));
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
      add_to_epoll(*loop, loop->listener.get(), EPOLLIN, kListenerTag);
      add_to_epoll(*loop, loop->wakeup.get(), EPOLLIN, kWakeupTag);
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
    std::printf("%s\n", stats_json(kModel).c_str());
    std::fflush(stdout);
    return 0;
  } catch (const std::system_error& e) {
    std::fprintf(stderr, "%s: %s\n", program.c_str(), e.what());
    return 1;
  }
}
