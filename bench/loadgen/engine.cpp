#include "engine.hpp"

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "net.hpp"

namespace iolab::loadgen {

namespace {

constexpr std::size_t kReadBufferBytes = 64 * 1024;  // beyond a carried incomplete head
constexpr int kMaxEvents = 256;
constexpr std::int64_t kConnectRetryNs = 10'000'000;  // pause before reconnecting after a failure
constexpr std::int64_t kScanIntervalNs = 20'000'000;  // how often timeouts are checked
constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();
// Timer slack of the worker threads: epoll_pwait2's timeout is an hrtimer that the kernel may
// defer by the thread's slack (50 us by default) to batch wake-ups; an open-loop schedule
// wants its sends on time.
constexpr unsigned long kTimerSlackNs = 1000;

enum class Role : std::uint8_t { kLoad, kIdle };
// kDown: no socket. kConnecting: connect(2) in progress. kOpen: established. kAwaitClose: a
// connection-per-request connection has its response and waits for the server's FIN.
// kIdleReady: an idle connection with its one response. kDead: an idle connection that is gone.
enum class State : std::uint8_t { kDown, kConnecting, kOpen, kAwaitClose, kIdleReady, kDead };

struct InFlight {
  std::int64_t intended;
  std::int64_t sent;
  std::uint32_t kind;
  bool ticket;  // claimed one of --requests
};

struct Conn {
  int fd = -1;
  std::uint32_t generation = 0;  // in epoll_event.data: events of a closed socket are ignored
  Role role = Role::kLoad;
  State state = State::kDown;
  bool closing = false;   // the server announced Connection: close
  bool settling = false;  // opened during setup and not settled yet
  std::uint32_t global_index = 0;
  ResponseParser parser;
  std::string carry;  // an incomplete response head, kept between reads
  std::string out;    // request bytes not yet accepted by send(2)
  std::size_t out_sent = 0;
  std::vector<InFlight> ring;  // requests in flight, oldest at head
  std::uint32_t head = 0;
  std::uint32_t count = 0;
  std::uint64_t seq = 0;   // requests this connection has sent in the load phase
  std::int64_t since = 0;  // start of connect, or end of the response (kAwaitClose)
  std::int64_t retry_at = 0;
  std::int64_t think_until = 0;
  std::int64_t timer_when = 0;  // 0: no timer armed
};

struct Timer {
  std::int64_t when;
  std::uint32_t slot;
  bool operator>(const Timer& o) const { return when > o.when; }
};

std::string errno_text(int err) { return std::strerror(err); }

// recv(2) and send(2) through syscall(2). glibc's wrappers are thread-cancellation points: in a
// multi-threaded process each call switches asynchronous cancellation on and off around the
// system call, user time spent on every request for a feature loadgen never uses.
ssize_t raw_recv(int fd, void* buf, std::size_t len) {
  return ::syscall(SYS_recvfrom, fd, buf, len, 0, nullptr, nullptr);
}
ssize_t raw_send(int fd, const void* buf, std::size_t len, int flags) {
  return ::syscall(SYS_sendto, fd, buf, len, flags, nullptr, 0);
}

}  // namespace

std::int64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

const char* error_name(ErrorKind kind) {
  static constexpr const char* kNames[kErrorKinds] = {"connect", "read",  "write", "timeout",
                                                      "status",  "parse", "body"};
  return kNames[static_cast<unsigned>(kind)];
}

Results::Results()
    : latency(1, kHistogramHighestNs, kHistogramFigures),
      raw(1, kHistogramHighestNs, kHistogramFigures) {}

void Results::merge(const Results& o) {
  latency.add(o.latency);
  raw.add(o.raw);
  requests += o.requests;
  warmup_requests += o.warmup_requests;
  after_window += o.after_window;
  for (unsigned i = 0; i < kErrorKinds; ++i) errors[i] += o.errors[i];
  if (first_error.empty()) first_error = o.first_error;
  if (per_kind.size() < o.per_kind.size()) per_kind.resize(o.per_kind.size());
  for (std::size_t i = 0; i < o.per_kind.size(); ++i) per_kind[i] += o.per_kind[i];
  bytes_read += o.bytes_read;
  bytes_written += o.bytes_written;
  connects += o.connects;
  idle_ready += o.idle_ready;
  idle_lost += o.idle_lost;
  last_response_ns = std::max(last_response_ns, o.last_response_ns);
}

struct Worker::Impl {
  Impl(const Config& config, Shared& shared_state, Results& results, int worker_index);
  ~Impl();

  void run();
  bool setup();
  void load();

  // Connections.
  bool open_connection(Conn& c, std::int64_t now);
  void drop(Conn& c);
  void fail(Conn& c, ErrorKind kind, int err, const char* what, std::int64_t now);
  void settle(Conn& c);
  void established(Conn& c) {
    c.state = State::kOpen;
    if (c.role == Role::kLoad) settle(c);  // an idle connection settles with its response
  }
  void record_error(ErrorKind kind, int err, const char* what);

  // Events.
  void poll_events(std::int64_t timeout_ns);
  void on_event(Conn& c, std::uint32_t events);
  bool on_readable(Conn& c, std::uint32_t events, std::int64_t now);
  bool consume(Conn& c, const char* data, std::size_t len, std::int64_t now, bool& completed);
  void on_response(Conn& c, const ResponseParser::Outcome& outcome, std::int64_t now);
  void on_eof(Conn& c, std::int64_t now);
  bool flush(Conn& c, std::int64_t now);

  // Sending.
  void pump(Conn& c, std::int64_t now);
  void enqueue(Conn& c, const RequestKind& kind, std::uint32_t kind_index, std::int64_t intended,
               std::int64_t now, bool ticket, bool close);
  std::uint32_t pick_kind();
  std::int64_t intended_time(const Conn& c) const {
    const double k = static_cast<double>(c.seq) * static_cast<double>(cfg_.connections) +
                     static_cast<double>(c.global_index);
    return t0_ + static_cast<std::int64_t>(k * ns_per_request_);
  }

  // Timers.
  void arm(Conn& c, std::int64_t when);
  void fire_timers(std::int64_t now);
  std::int64_t next_timer() const { return timers_.empty() ? kNever : timers_.front().when; }
  void scan_timeouts(std::int64_t now);

  std::uint32_t slot_of(const Conn& c) const {
    return static_cast<std::uint32_t>(&c - conns_.data());
  }

  const Config& cfg_;
  Shared& shared_;
  Results& res_;
  int index_;
  int epfd_ = -1;
  bool have_pwait2_ = true;
  std::vector<Conn> conns_;  // load connections first, then idle ones
  std::size_t load_count_ = 0;
  std::vector<char> rbuf_;
  std::vector<Timer> timers_;  // a min-heap
  std::vector<in_addr> sources_;
  std::vector<std::uint32_t> cumulative_weight_;
  std::uint64_t rng_;

  bool open_loop_;
  bool per_request_;
  bool requests_mode_;
  double ns_per_request_ = 0;
  std::int64_t t0_ = 0;
  std::int64_t window_start_ = 0;
  std::int64_t window_end_ = kNever;
  bool running_ = false;                  // load phase: reconnect after failures and keep sending
  std::uint64_t window_outstanding_ = 0;  // requests in flight that hold a ticket
  std::size_t unsettled_ = 0;
  std::int64_t next_scan_ = 0;
};

Worker::Impl::Impl(const Config& config, Shared& shared_state, Results& results, int worker_index)
    : cfg_(config),
      shared_(shared_state),
      res_(results),
      index_(worker_index),
      rbuf_(kReadBufferBytes + ResponseParser::kMaxHeadBytes),
      open_loop_(config.rate > 0),
      per_request_(config.new_connection_per_request),
      requests_mode_(config.requests > 0) {
  // This worker's slice of the load connections and of the idle ones.
  const auto slice = [&](int total, std::size_t& first, std::size_t& n) {
    first = static_cast<std::size_t>(total) * static_cast<std::size_t>(index_) /
            static_cast<std::size_t>(cfg_.threads);
    const std::size_t end = static_cast<std::size_t>(total) * static_cast<std::size_t>(index_ + 1) /
                            static_cast<std::size_t>(cfg_.threads);
    n = end - first;
  };
  std::size_t load_first = 0, idle_first = 0, idle_count = 0;
  slice(cfg_.connections, load_first, load_count_);
  slice(cfg_.idle_connections, idle_first, idle_count);
  conns_.resize(load_count_ + idle_count);
  for (std::size_t i = 0; i < conns_.size(); ++i) {
    Conn& c = conns_[i];
    const bool load_role = i < load_count_;
    c.role = load_role ? Role::kLoad : Role::kIdle;
    c.global_index =
        static_cast<std::uint32_t>(load_role ? load_first + i : idle_first + (i - load_count_));
    c.ring.resize(load_role ? static_cast<std::size_t>(cfg_.pipeline) : 1);
  }
  if (cfg_.source_addresses > 0) sources_ = source_addresses(cfg_.source_addresses);
  std::uint32_t sum = 0;
  for (const auto& k : cfg_.kinds) cumulative_weight_.push_back(sum += k.weight);
  res_.per_kind.assign(cfg_.kinds.size(), 0);
  // splitmix64 of the seed and the worker index: a non-zero xorshift state.
  std::uint64_t z = cfg_.seed + 0x9e3779b97f4a7c15ULL * static_cast<std::uint64_t>(index_ + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  rng_ = (z ^ (z >> 31)) | 1;
  if (open_loop_) ns_per_request_ = 1e9 / cfg_.rate;
}

Worker::Impl::~Impl() {
  for (Conn& c : conns_) {
    if (c.fd >= 0) ::close(c.fd);
  }
  if (epfd_ >= 0) ::close(epfd_);
}

void Worker::Impl::record_error(ErrorKind kind, int err, const char* what) {
  ++res_.errors[static_cast<unsigned>(kind)];
  if (res_.first_error.empty()) {
    res_.first_error = std::string(error_name(kind)) + ": " + what;
    if (err != 0) res_.first_error += std::string(": ") + errno_text(err);
  }
}

void Worker::Impl::settle(Conn& c) {
  if (c.settling) {
    c.settling = false;
    --unsettled_;
  }
}

bool Worker::Impl::open_connection(Conn& c, std::int64_t now) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    record_error(ErrorKind::kConnect, errno, "socket");
    c.retry_at = now + kConnectRetryNs;
    return false;
  }
  const int one = 1;
  if (c.role == Role::kLoad && !per_request_) {
    // Pipelined requests go out in several small writes; Nagle would hold one back until the
    // previous one is acknowledged.
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  if (c.role == Role::kIdle && !sources_.empty()) {
    // bind(2) with port 0 normally picks a port at once, unique for the source address alone,
    // so all addresses together would still share ~28k ports. IP_BIND_ADDRESS_NO_PORT defers
    // the choice to connect(2), where the whole 4-tuple is known: each source address gets its
    // own ~28k ports towards the server's address and port.
    sockaddr_in local{};
    local.sin_family = AF_INET;
    local.sin_addr = sources_[c.global_index % sources_.size()];
    if (::setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one) != 0 ||
        ::bind(fd, reinterpret_cast<const sockaddr*>(&local), sizeof local) != 0) {
      record_error(ErrorKind::kConnect, errno, "bind to a 127.0.1.x source address");
      ::close(fd);
      c.retry_at = now + kConnectRetryNs;
      return false;
    }
  }
  // A non-blocking connect returns EINPROGRESS; the handshake completes later and the socket
  // turns writable (EPOLLOUT), or reports its error with EPOLLERR and SO_ERROR.
  const int rc =
      ::connect(fd, reinterpret_cast<const sockaddr*>(&cfg_.address), sizeof cfg_.address);
  if (rc != 0 && errno != EINPROGRESS) {
    record_error(ErrorKind::kConnect, errno, "connect");
    ::close(fd);
    c.retry_at = now + kConnectRetryNs;
    return false;
  }
  ++c.generation;
  // Registered once for everything; edge-triggered, so a readiness is reported once per
  // change and the loop never has to re-arm or modify the registration.
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = slot_of(c) | (static_cast<std::uint64_t>(c.generation) << 32);
  if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    record_error(ErrorKind::kConnect, errno, "epoll_ctl");
    ::close(fd);
    c.retry_at = now + kConnectRetryNs;
    return false;
  }
  c.fd = fd;
  c.state = rc == 0 ? State::kOpen : State::kConnecting;
  c.since = now;
  c.closing = false;
  ++res_.connects;
  return true;
}

void Worker::Impl::drop(Conn& c) {
  for (std::uint32_t i = 0; i < c.count; ++i) {
    if (c.ring[(c.head + i) % c.ring.size()].ticket) --window_outstanding_;
  }
  c.head = c.count = 0;
  c.parser.reset();
  c.carry.clear();
  c.out.clear();
  c.out_sent = 0;
  c.closing = false;
  if (c.fd >= 0) {
    // close(2) also removes the socket from the epoll set (no other descriptor refers to it).
    ::close(c.fd);
    c.fd = -1;
    ++c.generation;
  }
  settle(c);
  c.state = c.role == Role::kIdle ? State::kDead : State::kDown;
}

void Worker::Impl::fail(Conn& c, ErrorKind kind, int err, const char* what, std::int64_t now) {
  record_error(kind, err, what);
  drop(c);
  if (c.role != Role::kLoad) return;
  c.retry_at = now + (kind == ErrorKind::kConnect ? kConnectRetryNs : 0);
  pump(c, now);
}

std::uint32_t Worker::Impl::pick_kind() {
  if (cumulative_weight_.size() == 1) return 0;
  rng_ ^= rng_ >> 12;  // xorshift64*
  rng_ ^= rng_ << 25;
  rng_ ^= rng_ >> 27;
  const std::uint32_t r =
      static_cast<std::uint32_t>((rng_ * 0x2545F4914F6CDD1DULL) >> 32) % cumulative_weight_.back();
  std::uint32_t i = 0;
  while (r >= cumulative_weight_[i]) ++i;
  return i;
}

void Worker::Impl::enqueue(Conn& c, const RequestKind& kind, std::uint32_t kind_index,
                           std::int64_t intended, std::int64_t now, bool ticket, bool close) {
  const std::string& bytes = close ? kind.bytes_close : kind.bytes;
  c.out.append(bytes);
  c.ring[(c.head + c.count) % c.ring.size()] = InFlight{intended, now, kind_index, ticket};
  ++c.count;
}

// Sends what this connection may send now, or arms a timer for when it may.
void Worker::Impl::pump(Conn& c, std::int64_t now) {
  if (!running_ || c.role != Role::kLoad) return;
  bool appended = false;
  for (;;) {
    if (per_request_) {
      if (c.state != State::kDown) break;
    } else {
      if (c.state == State::kDown) {
        if (now < c.retry_at) {
          arm(c, c.retry_at);
          break;
        }
        if (!open_connection(c, now)) {
          arm(c, c.retry_at);
          break;
        }
      }
      if (c.closing || c.count >= c.ring.size() ||
          (c.state != State::kOpen && c.state != State::kConnecting)) {
        break;
      }
    }
    std::int64_t due = open_loop_ ? intended_time(c) : now;
    if (cfg_.think_ns > 0) due = std::max(due, c.think_until);
    if (per_request_ && c.retry_at > now) due = std::max(due, c.retry_at);
    if (due > now) {
      arm(c, due);
      break;
    }
    if (due >= window_end_) break;  // the schedule reaches past the window
    bool ticket = false;
    if (requests_mode_ && now >= window_start_) {
      if (shared_.tickets.fetch_sub(1, std::memory_order_relaxed) <= 0) break;  // all claimed
      ticket = true;
      ++window_outstanding_;
    }
    if (per_request_ && !open_connection(c, now)) {
      if (ticket) --window_outstanding_;  // the request could not even start: a connect error
      ++c.seq;
      arm(c, c.retry_at);
      break;
    }
    const std::uint32_t k = pick_kind();
    enqueue(c, cfg_.kinds[k], k, due, now, ticket, per_request_);
    ++c.seq;
    appended = true;
  }
  if (appended) flush(c, now);
}

bool Worker::Impl::flush(Conn& c, std::int64_t now) {
  while (c.out_sent < c.out.size()) {
    // MSG_NOSIGNAL: a peer that reset the connection yields EPIPE here instead of SIGPIPE.
    const ssize_t n = raw_send(c.fd, c.out.data() + c.out_sent, c.out.size() - c.out_sent,
                               MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
      c.out_sent += static_cast<std::size_t>(n);
      res_.bytes_written += static_cast<std::uint64_t>(n);
      if (c.state == State::kConnecting) established(c);
      continue;
    }
    // EAGAIN: the socket buffer is full, or the handshake is still running (a send on a socket
    // in SYN_SENT fails with EAGAIN when non-blocking); EPOLLOUT will say when to go on.
    if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
    if (errno == EINTR) continue;
    const bool connecting = c.state == State::kConnecting;
    fail(c, connecting ? ErrorKind::kConnect : ErrorKind::kWrite, errno, "send", now);
    return false;
  }
  c.out.clear();
  c.out_sent = 0;
  return true;
}

void Worker::Impl::on_event(Conn& c, std::uint32_t events) {
  const std::int64_t now = monotonic_ns();
  if (c.state == State::kConnecting) {
    if (events & EPOLLERR) {
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      fail(c, ErrorKind::kConnect, err, "connect", now);
      return;
    }
    if (events & EPOLLOUT) established(c);
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    if (!on_readable(c, events, now)) return;
  }
  if ((events & EPOLLOUT) && c.out_sent < c.out.size()) flush(c, now);
}

// Reads what arrived. False when the connection was closed (and maybe replaced) meanwhile.
bool Worker::Impl::on_readable(Conn& c, std::uint32_t events, std::int64_t now) {
  bool completed = false;
  for (;;) {
    const std::size_t carried = c.carry.size();
    if (carried > 0) std::memcpy(rbuf_.data(), c.carry.data(), carried);
    const std::size_t space = rbuf_.size() - carried;
    const ssize_t n = raw_recv(c.fd, rbuf_.data() + carried, space);
    if (n > 0) {
      res_.bytes_read += static_cast<std::uint64_t>(n);
      c.carry.clear();
      if (!consume(c, rbuf_.data(), carried + static_cast<std::size_t>(n), now, completed)) {
        return false;
      }
      // A short read drained the socket: anything arriving later raises a new edge. After the
      // peer's FIN (RDHUP) read on, to see the end of the stream now rather than never.
      if (static_cast<std::size_t>(n) < space && !(events & (EPOLLRDHUP | EPOLLHUP))) break;
      continue;
    }
    if (n == 0) {
      on_eof(c, now);
      return false;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    if (errno == EINTR) continue;
    const bool connecting = c.state == State::kConnecting;
    fail(c, connecting ? ErrorKind::kConnect : ErrorKind::kRead, errno, "recv", now);
    return false;
  }
  if (completed) pump(c, now);
  return true;
}

bool Worker::Impl::consume(Conn& c, const char* data, std::size_t len, std::int64_t now,
                           bool& completed) {
  std::size_t pos = 0;
  while (pos < len) {
    if (c.count == 0 || c.state == State::kAwaitClose) {
      fail(c, ErrorKind::kParse, 0, "bytes from the server that answer no request", now);
      return false;
    }
    const InFlight& f = c.ring[c.head];
    const Expectation& expect =
        c.role == Role::kIdle ? cfg_.idle_kind.expect : cfg_.kinds[f.kind].expect;
    const auto outcome = c.parser.feed(std::string_view(data + pos, len - pos), expect);
    switch (outcome.result) {
      case ResponseParser::Result::kNeedMore:
        c.carry.assign(data + pos, len - pos);
        return true;
      case ResponseParser::Result::kProgress:
        pos += outcome.consumed;
        break;
      case ResponseParser::Result::kError:
        fail(c, ErrorKind::kParse, 0, "malformed response", now);
        return false;
      case ResponseParser::Result::kComplete:
        pos += outcome.consumed;
        on_response(c, outcome, now);
        completed = true;
        break;
    }
  }
  return true;
}

void Worker::Impl::on_response(Conn& c, const ResponseParser::Outcome& outcome, std::int64_t now) {
  const InFlight f = c.ring[c.head];
  c.head = static_cast<std::uint32_t>((c.head + 1) % c.ring.size());
  --c.count;
  if (f.ticket) --window_outstanding_;
  if (outcome.close) {
    c.closing = true;
    c.since = now;  // the server's FIN is due; scan_timeouts() bounds the wait
  }
  if (c.role == Role::kIdle) {
    c.state = State::kIdleReady;
    settle(c);
  }
  if (outcome.problem == Problem::kStatus) {
    record_error(ErrorKind::kStatus, 0, "unexpected status");
  } else if (outcome.problem == Problem::kBody) {
    record_error(ErrorKind::kBody, 0, "unexpected body or length");
  } else if (c.role == Role::kIdle) {
    ++res_.idle_ready;
  } else if (requests_mode_ ? f.ticket : (now >= window_start_ && now < window_end_)) {
    ++res_.requests;
    ++res_.per_kind[f.kind];
    res_.latency.record_clamped(now - f.intended);
    if (open_loop_) res_.raw.record_clamped(now - f.sent);
    res_.last_response_ns = now;
  } else if (now < window_start_) {
    ++res_.warmup_requests;
  } else {
    ++res_.after_window;
  }
  if (c.role == Role::kLoad) {
    if (per_request_) {
      c.state = State::kAwaitClose;
      c.since = now;
    }
    if (cfg_.think_ns > 0) c.think_until = now + cfg_.think_ns;
  }
}

void Worker::Impl::on_eof(Conn& c, std::int64_t now) {
  if (c.role == Role::kIdle) {
    if (c.state == State::kIdleReady) {
      ++res_.idle_lost;
      drop(c);
    } else {
      fail(c, ErrorKind::kRead, 0, "the server closed an idle connection before its response", now);
    }
    return;
  }
  if (c.count > 0 || !c.carry.empty() || c.parser.in_body()) {
    fail(c, ErrorKind::kRead, 0, "the server closed the connection with a request outstanding",
         now);
    return;
  }
  // The server closed first, as asked (Connection: close), or after its keep-alive timeout:
  // not an error. The next request goes on a new connection.
  drop(c);
  c.retry_at = now;
  pump(c, now);
}

void Worker::Impl::arm(Conn& c, std::int64_t when) {
  if (c.timer_when != 0 && c.timer_when <= when) return;  // an earlier timer pumps anyway
  c.timer_when = when;
  timers_.push_back({when, slot_of(c)});
  std::push_heap(timers_.begin(), timers_.end(), std::greater<>());
}

void Worker::Impl::fire_timers(std::int64_t now) {
  while (!timers_.empty() && timers_.front().when <= now) {
    std::pop_heap(timers_.begin(), timers_.end(), std::greater<>());
    const Timer t = timers_.back();
    timers_.pop_back();
    Conn& c = conns_[t.slot];
    if (c.timer_when != t.when) continue;  // superseded by an earlier timer
    c.timer_when = 0;
    pump(c, now);
  }
}

void Worker::Impl::scan_timeouts(std::int64_t now) {
  for (Conn& c : conns_) {
    if (c.fd < 0) continue;
    std::int64_t since = -1;
    if (c.count > 0) {
      since = c.ring[c.head].sent;
    } else if (c.state == State::kConnecting || c.state == State::kAwaitClose || c.closing) {
      since = c.since;
    }
    if (since >= 0 && now - since > cfg_.timeout_ns) {
      fail(c, ErrorKind::kTimeout, 0, "no response within --timeout", now);
    }
  }
}

void Worker::Impl::poll_events(std::int64_t timeout_ns) {
  epoll_event events[kMaxEvents];
  timeout_ns = std::max<std::int64_t>(timeout_ns, 0);
  int n;
  if (have_pwait2_) {
    // epoll_pwait2 (Linux 5.11) takes a timespec: sub-millisecond timeouts for the open-loop
    // schedule, where epoll_wait rounds to milliseconds.
    const timespec ts{static_cast<time_t>(timeout_ns / 1'000'000'000),
                      static_cast<long>(timeout_ns % 1'000'000'000)};
    n = ::epoll_pwait2(epfd_, events, kMaxEvents, &ts, nullptr);
    if (n < 0 && errno == ENOSYS) {
      have_pwait2_ = false;
      return;
    }
  } else {
    const std::int64_t ms = (timeout_ns + 999'999) / 1'000'000;
    n = ::epoll_wait(epfd_, events, kMaxEvents, static_cast<int>(std::min<std::int64_t>(ms, 1000)));
  }
  for (int i = 0; i < n; ++i) {
    const auto slot = static_cast<std::uint32_t>(events[i].data.u64);
    const auto generation = static_cast<std::uint32_t>(events[i].data.u64 >> 32);
    Conn& c = conns_[slot];
    if (c.fd < 0 || c.generation != generation) continue;  // closed earlier in this batch
    on_event(c, events[i].events);
  }
}

bool Worker::Impl::setup() {
  epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) {
    std::lock_guard lock(shared_.mutex);
    if (shared_.setup_error.empty()) shared_.setup_error = "epoll_create1: " + errno_text(errno);
    return false;
  }
  const std::int64_t start = monotonic_ns();
  const double rate = cfg_.connect_rate / cfg_.threads;
  const std::size_t to_open = (per_request_ ? 0 : load_count_) + (conns_.size() - load_count_);
  std::int64_t limit = cfg_.setup_timeout_ns;
  if (limit == 0) {
    limit = 10'000'000'000 + static_cast<std::int64_t>(1e9 * static_cast<double>(to_open) / rate);
  }
  const std::int64_t deadline = start + limit;
  std::size_t opened = 0;
  std::size_t next = per_request_ ? load_count_ : 0;  // per-request slots connect per request
  next_scan_ = start + kScanIntervalNs;
  for (;;) {
    std::int64_t now = monotonic_ns();
    // Open connections at the bounded rate: a burst of SYNs overflows the listen queue.
    const auto allowed =
        static_cast<std::size_t>(1.0 + static_cast<double>(now - start) * rate / 1e9);
    while (opened < allowed && next < conns_.size()) {
      Conn& c = conns_[next++];
      ++opened;
      if (!open_connection(c, now)) continue;
      c.settling = true;
      ++unsettled_;
      if (c.role == Role::kIdle) {
        enqueue(c, cfg_.idle_kind, 0, now, now, false, false);
        flush(c, now);
      }
    }
    if (next >= conns_.size() && unsettled_ == 0) break;
    if (now >= deadline) {
      for (Conn& c : conns_) {
        if (c.settling) fail(c, ErrorKind::kTimeout, 0, "connection setup", now);
      }
      break;
    }
    std::int64_t wake = std::min(deadline, next_scan_);
    if (next < conns_.size()) {
      wake = std::min(wake,
                      start + static_cast<std::int64_t>(static_cast<double>(opened) * 1e9 / rate));
    }
    poll_events(wake - now);
    now = monotonic_ns();
    if (now >= next_scan_) {
      scan_timeouts(now);
      next_scan_ = now + kScanIntervalNs;
    }
  }
  if (!per_request_ && load_count_ > 0) {
    bool any_open = false;
    for (std::size_t i = 0; i < load_count_; ++i) any_open |= conns_[i].state == State::kOpen;
    if (!any_open) {
      std::lock_guard lock(shared_.mutex);
      if (shared_.setup_error.empty()) {
        shared_.setup_error = "no connection to the server could be opened (" +
                              (res_.first_error.empty() ? std::string("?") : res_.first_error) +
                              ")";
      }
      return false;
    }
  }
  return true;
}

void Worker::Impl::load() {
  running_ = true;
  std::int64_t now = monotonic_ns();
  // Nothing is sent before t0, so with --requests and no warm-up every request is in the window.
  while (now < t0_) {
    poll_events(t0_ - now);
    now = monotonic_ns();
  }
  for (std::size_t i = 0; i < load_count_; ++i) pump(conns_[i], now);
  next_scan_ = now + kScanIntervalNs;
  for (;;) {
    now = monotonic_ns();
    if (now >= window_end_ || shared_.stop.load(std::memory_order_relaxed)) break;
    if (requests_mode_ && now >= window_start_ && window_outstanding_ == 0 &&
        shared_.tickets.load(std::memory_order_relaxed) <= 0) {
      break;
    }
    fire_timers(now);
    const std::int64_t wake = std::min({next_timer(), window_end_, next_scan_});
    poll_events(wake - now);
    now = monotonic_ns();
    fire_timers(now);
    if (now >= next_scan_) {
      scan_timeouts(now);
      next_scan_ = now + kScanIntervalNs;
    }
  }
  running_ = false;
}

void Worker::Impl::run() {
  if (!cfg_.pin.empty()) {
    const int cpu = cfg_.pin[static_cast<std::size_t>(index_) % cfg_.pin.size()];
    try {
      pin_current_thread(std::span<const int>(&cpu, 1));
    } catch (const std::exception& e) {
      std::lock_guard lock(shared_.mutex);
      if (shared_.setup_error.empty()) shared_.setup_error = std::string("--pin: ") + e.what();
    }
  }
  ::prctl(PR_SET_TIMERSLACK, kTimerSlackNs, 0, 0, 0);
  setup();
  {
    std::unique_lock lock(shared_.mutex);
    ++shared_.ready;
    shared_.changed.notify_all();
    shared_.changed.wait(lock, [&] { return shared_.go || shared_.abort; });
    if (shared_.abort) return;
    t0_ = shared_.t0_ns;
    window_start_ = shared_.window_start_ns;
    window_end_ = shared_.window_end_ns;
  }
  load();
  // End every connection with a reset: SO_LINGER with a zero timeout makes close(2) send RST and
  // free the socket at once, so no TIME_WAIT is left on the client's ports by requests still in
  // flight at the end, and repeated runs with thousands of connections cannot exhaust them.
  const linger reset{1, 0};
  for (Conn& c : conns_) {
    if (c.fd >= 0) {
      ::setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
      ::close(c.fd);
      c.fd = -1;
    }
  }
  const std::uint64_t one = 1;
  if (shared_.done_fd >= 0 && ::write(shared_.done_fd, &one, sizeof one) < 0) {
    // The coordinator also wakes at the window's end; a lost wake-up only delays it.
  }
}

Worker::Worker(const Config& config, Shared& shared_, int index_)
    : impl_(std::make_unique<Impl>(config, shared_, results_, index_)) {}

Worker::~Worker() = default;

void Worker::run() { impl_->run(); }

}  // namespace iolab::loadgen
