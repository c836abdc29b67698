// server_io_uring: a completion loop on io_uring (liburing 2.3), one ring per thread.
//
// What this model shows
//   epoll says "this socket is ready, now make the system call"; io_uring takes the operation
//   itself (accept, recv, send, splice, close) as a submission queue entry (SQE) and reports it
//   done as a completion (CQE), through rings shared with the kernel. One io_uring_enter()
//   hands over every queued SQE and waits for completions, so system calls stop growing with
//   operations. --threads N: N shared-nothing loops, each with its SO_REUSEPORT listener and ring.
//
// What to notice
//   - One enter per loop turn (io_uring_submit_and_wait_timeout; the timeout rides in the enter).
//     /stats counts io_uring_enter, sqes_submitted and cqes_reaped (completions per enter is
//     their ratio). liburing makes the enter itself, so a test checks the count against the
//     kernel's syscalls:sys_enter_io_uring_enter tracepoint.
//   - The fold: a small send on loopback completes inside the enter that submits it, and a wait
//     for one completion would return at once with just that: two enters per request. The loop
//     waits for (sends expected inline + 1) instead: one enter a request. A send is expected
//     inline if the connection's last one was; a wrong guess is bounded by kFoldWait. That
//     bound is long on purpose: a near timer on every wait changes how an idle CPU sleeps and
//     wakes, which costs CPU per request even when it never expires (lab 04, going further).
//   - user_data packs operation, slot and the slot's generation (ring.hpp): a completion from a
//     slot's earlier tenant must not reach the new one. A connection is freed only after its
//     last completion, since the kernel may write into its buffers until then.
//   - Memory handed to the kernel is pinned until the completion: while a send is in flight the
//     connection's output must not change, so input arriving meanwhile is parked.
//   - Deep pipelining is backpressure, never a reset. Input that completes while the output is
//     above its high-water mark, or that brings parked input to kParkLimit, cancels the
//     multishot recv, and no recv is armed again until the core has taken every parked byte:
//     TCP's window then holds the client back. What the kernel had already received when the
//     cancel lands is kept (it cannot be handed back), so parked input is bounded by the limit
//     plus one batch of completions. Parked bytes reach the core kTurnBytes at a time, and only
//     once its output has drained, so it never holds more than an incomplete request and one
//     such piece (on_input() resets a connection that would make it hold more than 256 KiB).
//   - A budget per connection per turn: a completion carries one buffer of input, and drive()
//     hands the core kTurnBytes of parked input (one default buffer, about 90 small requests)
//     before the answers go out; the completions of one wait are served in the order
//     the kernel posted them, so a client that pipelines without pause delays the others by
//     about one buffer's worth of its requests per wait, as in epoll_et.
//   - --recv-multishot 0: a one-shot recv into the connection's own buffer, submitted again
//     after each completion (an idle connection holds its 8 KiB buffer while the recv waits).
//     --recv-multishot 1: one multishot recv per connection, taking --buffers buffers of
//     --buffer-bytes from a provided-buffer ring: an idle connection holds no buffer. A dry ring
//     ends the recv with -ENOBUFS (pool_misses; pool_hits counts buffers used,
//     pool_reserved_bytes the ring); buffers go back as soon as each completion is parsed, then
//     the recv is re-armed. Parked input past kParkLimit cancels it (see backpressure below).
//   - Multishot accept: one SQE for every connection. Out of descriptors it ends with -EMFILE
//     and no IORING_CQE_F_MORE; re-arming at once would spin, so accepting pauses kAcceptPause.
//   - close(2) of a socket with a recv in flight does not end the connection (the request holds
//     the file), so a close cancels every operation on the socket first
//     (IORING_ASYNC_CANCEL_FD|ALL), waits for their completions, then closes with an SQE.
//   - Short sends are normal for large bodies: on_written() takes what went, the rest goes next.
//   - /file: no sendfile opcode, so file -> pipe -> socket with two linked IORING_OP_SPLICEs (the
//     second starts when the first completes, and is cancelled if the first came up short).
//     Splice cannot be polled: io_uring runs it on io-wq worker threads (top -H: iou-wrk-*).
//     --sendfile off: pread(2) into a buffer and a send, the copy that splice avoids.
//   - --defer-taskrun 1 (default): SINGLE_ISSUER|DEFER_TASKRUN, completion work runs in one batch
//     when this thread waits, falling back to COOP_TASKRUN on -EINVAL (before 6.1).
//     --sqpoll 1: a kernel thread per ring polls the submission queue, a busy CPU: on fewer than
//     3 CPUs it competes with the loop and the client (conformance, not measurements).
//   - A blocking handler (/sleep) runs inline and stalls the loop, as in server_epoll_et.
//   - TCP_NODELAY is set once on the listener: accepted sockets inherit it (no syscall per accept).
//
// Usage
//   build/bin/server_io_uring [--port 8080] [--threads N] [--recv-multishot 0|1]
//       [--defer-taskrun 0|1] [--sqpoll 0|1] [--buffers N] [--buffer-bytes N]   (all: --help)
//   Exits 77 when the kernel refuses io_uring (kernel.io_uring_disabled, seccomp).
//
// Try
//   build/bin/server_io_uring --port 8080 --pin 0 &
//   build/bin/loadgen --url http://127.0.0.1:8080/ping --rate 20000 --duration 5s --pin 1
//   curl -s localhost:8080/stats     then the same with --recv-multishot 0, or --buffers 1
//   perf stat -e syscalls:sys_enter_io_uring_enter -p $(pgrep server_io_uring)

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <future>
#include <memory>
#include <optional>
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
#include "ring.hpp"
#include "server.hpp"
#include "stats.hpp"
#include "sys.hpp"

namespace {

using namespace iolab;

constexpr std::string_view kModel = IOLAB_MODEL;
constexpr std::size_t kDefaultMaxConns = 100'000;
constexpr unsigned kRingEntries = 4096;   // SQ size; the CQ is four times larger
constexpr unsigned kSqThreadIdleMs = 10;  // SQPOLL: the kernel thread spins this long idle
constexpr int kBufGroup = 0;
constexpr Millis kAcceptPause{100};            // stop accepting after EMFILE
constexpr Millis kMaxWait{1000};               // wait timeout when no timer is due sooner
constexpr Millis kFoldWait{50};                // bound on a wait that counts on inline sends
constexpr std::size_t kFoldBytes = 16 * 1024;  // sends this small are expected to complete inline
constexpr std::size_t kParkLimit = 64 * 1024;  // multishot: parked input that cancels the recv
constexpr std::size_t kTurnBytes = 4 * 1024;  // parked input handed to the core per turn
constexpr int kPipeBytes = 1 << 20;            // /file: pipe size asked for (default 64 KiB)
constexpr std::size_t kReadStageBytes = 64 * 1024;  // /file with --sendfile off
constexpr Millis kStopGrace{1000};                  // at shutdown, time for cancellations to finish
// io-wq threads per ring, bounded and unbounded each: a splice to a slow /file reader holds
// one until the reader catches up, so without a cap slow readers could start thousands.
constexpr unsigned kIowqMaxWorkers = 16;
constexpr int kSubmitRetries = 100;  // a full SQ whose submission fails (EAGAIN, EBUSY): 1 ms apart

constexpr ExtraFlag kExtraFlags[] = {
    {"--recv-multishot", 1, 0, 1, "1: multishot recv on a provided-buffer ring; 0: one-shot recv"},
    {"--defer-taskrun", 1, 0, 1, "1: SINGLE_ISSUER|DEFER_TASKRUN (else COOP_TASKRUN)"},
    {"--sqpoll", 0, 0, 1, "1: a kernel thread polls the submission queue"},
    {"--buffers", 512, 1, 32768, "provided buffers per loop, a power of two (multishot)"},
    {"--buffer-bytes", 4096, 64, 65536, "bytes per provided buffer (multishot)"},
    {"--fallback", 0, 0, 15,
     "act as if the kernel lacked (a sum): 1 DEFER_TASKRUN, 2 multishot recv, 4 multishot "
     "accept, 8 a needed operation (exit 77); for tests of each fallback"},
};

// Process-wide, read-only once the loops run (except the atomic counter).
struct Shared : SharedState {
  Shared() : SharedState(kModel) {}
  HeapMemory memory;
  RingSetup ring_setup{};
  bool multishot = true;
  bool multishot_accept = true;
  unsigned buffers = 0;
  unsigned buffer_bytes = 0;
};

// Per-connection state: the socket, the protocol, and what is in flight.
struct Client {
  Client(Shared& shared, int socket, std::uint32_t slot_index, std::uint32_t gen, TimePoint now)
      : fd(socket),
        slot(slot_index),
        generation(gen),
        conn(shared.app, shared.options.limits, shared.memory, now) {}
  int fd;  // closed by an IORING_OP_CLOSE once nothing is in flight
  std::uint32_t slot;
  std::uint32_t generation;
  Connection conn;
  int ops = 0;  // submitted operations whose last completion is still to come
  bool recv_armed = false;
  bool recv_stopping = false;  // a cancel of the multishot recv is on its way (backpressure)
  bool rx_done = false;      // EOF or an error ended the receive side
  bool eof_pending = false;  // the peer's EOF, for conn after any parked bytes
  bool output_busy = false;  // a send or splice is in flight: conn's output is pinned
  bool sends_inline = true;  // its last send completed in the enter that submitted it
  std::uint64_t send_enter = 0;
  bool closing = false;
  std::optional<std::size_t> parked_read;  // one-shot: bytes received into read_space()
  std::string parked;                      // multishot: bytes received while output was busy
  std::size_t parked_off = 0;              // parked[parked_off..] is still for the core
  msghdr msg{};
  std::array<iovec, 2> iov{};
  UniqueFd pipe_r, pipe_w;            // /file stage: a pipe (splice) ...
  std::unique_ptr<char[]> stage_buf;  // ... or a buffer (pread + send)
  std::size_t stage_bytes = 0;        // its capacity
  std::size_t staged = 0;             // bytes in it, not yet sent
  std::size_t stage_off = 0;          // buffer: where they start
  int file_ops = 0;
  bool file_failed = false;
  TimePoint armed = TimePoint::max();  // earliest deadline in the timer heap for this client
};

struct Timer {
  TimePoint deadline;
  std::uint32_t slot;
  std::uint32_t generation;
  bool operator>(const Timer& other) const { return deadline > other.deadline; }
};

// One shared-nothing loop and its ring.
struct Loop {
  Loop(Shared& s, int i, UniqueFd listen_socket)
      : shared(s), index(i), listener(std::move(listen_socket)), wakeup(::eventfd(0, EFD_CLOEXEC)) {
    if (!wakeup) throw std::system_error(errno, std::generic_category(), "eventfd");
  }
  Shared& shared;
  int index;
  UniqueFd listener;
  UniqueFd wakeup;  // main() writes to it: a read completes and the loop stops
  io_uring ring{};
  unsigned ring_flags = 0;
  BufRing bufs;
  std::uint64_t wakeup_value = 0;
  std::vector<Client*> slots;
  std::vector<std::uint32_t> free_slots;
  std::vector<std::uint32_t> generations;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers;
  int ops = 0;             // operations whose last completion is still to come
  unsigned predicted = 0;  // completions this batch's submission should post inline
  bool feeding = false;    // a pipeline's next answers wait behind a send (see the fold)
  std::uint64_t enters = 0;
  bool accept_armed = false;
  TimePoint accept_paused_until = TimePoint::min();
  bool stopping = false;
  TimePoint stop_deadline = TimePoint::max();
  bool enter_failed = false;
};

// ---- submissions: one add_* per operation ---------------------------------------------------

io_uring_sqe* get_sqe(Loop& loop) {
  io_uring_sqe* sqe;
  for (int failures = 0; (sqe = io_uring_get_sqe(&loop.ring)) == nullptr;) {  // full: hand it over
    count(Counter::kSysIoUringEnter);
    ++loop.enters;
    const int r = io_uring_submit(&loop.ring);
    if (r < 0 && r != -EINTR) {
      // -EAGAIN, -EBUSY: the kernel is short of memory or its completion backlog is full; give it
      // a moment. Anything else, or no progress for kSubmitRetries ms: the ring is unusable.
      if ((r != -EAGAIN && r != -EBUSY) || ++failures > kSubmitRetries) {
        std::fprintf(stderr, "server_%s: io_uring_submit: %s; the ring is unusable\n",
                     kModel.data(), std::strerror(-r));
        std::fflush(stderr);
        std::_Exit(1);
      }
      std::this_thread::sleep_for(Millis(1));
    }
    if (loop.ring_flags & IORING_SETUP_SQPOLL) io_uring_sqring_wait(&loop.ring);
  }
  count(Counter::kSqesSubmitted);
  return sqe;
}

void submit(Loop& loop, io_uring_sqe* sqe, std::uint64_t user_data) {
  io_uring_sqe_set_data64(sqe, user_data);
  ++loop.ops;
}

void submit(Loop& loop, Client& c, io_uring_sqe* sqe, Op op) {
  submit(loop, sqe, pack(op, c.slot, c.generation));
  ++c.ops;
}

void add_accept(Loop& loop) {
  io_uring_sqe* sqe = get_sqe(loop);
  if (loop.shared.multishot_accept) {
    io_uring_prep_multishot_accept(sqe, loop.listener.get(), nullptr, nullptr, SOCK_CLOEXEC);
  } else {  // before 5.19: one accept per SQE, re-armed by on_accept after each completion
    io_uring_prep_accept(sqe, loop.listener.get(), nullptr, nullptr, SOCK_CLOEXEC);
  }
  submit(loop, sqe, pack(Op::kAccept));
  loop.accept_armed = true;
}

void add_wakeup(Loop& loop) {
  io_uring_sqe* sqe = get_sqe(loop);
  io_uring_prep_read(sqe, loop.wakeup.get(), &loop.wakeup_value, sizeof loop.wakeup_value, 0);
  submit(loop, sqe, pack(Op::kWakeup));
}

// Cancels the request with user_data `target`, or with fd >= 0 every request on that socket.
void add_cancel(Loop& loop, std::uint64_t target, int fd = -1) {
  io_uring_sqe* sqe = get_sqe(loop);
  if (fd >= 0) {
    io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
  } else {
    io_uring_prep_cancel64(sqe, target, 0);
  }
  submit(loop, sqe, pack(Op::kCancel));
  ++loop.predicted;
}

bool has_parked(const Client& c) { return c.parked_off < c.parked.size(); }

// The multishot receive path (lab 04's exercise): prep_multishot_recv(), release_idle_input(),
// on_multishot_input(). Found on the include path: recv/ here, the exercise's copy in lab 04.
#include "recv_multishot.hpp"

// One-shot into the connection's buffer, or multishot from the buffer ring. False when the
// core has no room to offer.
bool add_recv(Loop& loop, Client& c) {
  io_uring_sqe* sqe = loop.shared.multishot ? prep_multishot_recv(loop, c) : nullptr;
  if (sqe == nullptr) {
    const std::span<char> space = c.conn.read_space();
    if (space.empty()) return false;
    sqe = get_sqe(loop);
    io_uring_prep_recv(sqe, c.fd, space.data(), space.size(), 0);
    sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;  // the next request is rarely there yet
  }
  submit(loop, c, sqe, Op::kRecv);
  c.recv_armed = true;
  return true;
}

void add_send(Loop& loop, Client& c, const Output& out) {
  std::size_t bytes = 0;
  for (int i = 0; i < out.iovcnt; ++i)
    bytes += (c.iov[static_cast<std::size_t>(i)] = out.iov[static_cast<std::size_t>(i)]).iov_len;
  // A send the wait counts on completing inline (the fold) carries MSG_DONTWAIT: with a full
  // socket buffer it completes at once with -EAGAIN instead of waiting for room, so a wrong
  // guess never holds the wait (and other connections' completions) until kFoldWait.
  const bool predicted = bytes <= kFoldBytes && c.sends_inline;
  const int flags = MSG_NOSIGNAL | (predicted ? MSG_DONTWAIT : 0);
  io_uring_sqe* sqe = get_sqe(loop);
  if (out.iovcnt == 1) {
    io_uring_prep_send(sqe, c.fd, c.iov[0].iov_base, c.iov[0].iov_len, flags);
  } else {
    c.msg = msghdr{};
    c.msg.msg_iov = c.iov.data();
    c.msg.msg_iovlen = static_cast<std::size_t>(out.iovcnt);
    io_uring_prep_sendmsg(sqe, c.fd, &c.msg, static_cast<unsigned>(flags));
  }
  submit(loop, c, sqe, Op::kSend);
  if (predicted) ++loop.predicted;
  c.send_enter = loop.enters + 1;
}

bool add_drain(Loop& loop, Client& c, std::size_t bytes) {
  io_uring_sqe* sqe = get_sqe(loop);
  if (c.pipe_w) {
    io_uring_prep_splice(sqe, c.pipe_r.get(), -1, c.fd, -1, static_cast<unsigned>(bytes), 0);
  } else {
    io_uring_prep_send(sqe, c.fd, c.stage_buf.get() + c.stage_off, bytes, MSG_NOSIGNAL);
  }
  submit(loop, c, sqe, Op::kFileDrain);
  ++c.file_ops;
  return true;
}

// /file: fill the stage from the file, then drain it into the socket; after a short drain,
// only drain. The stage is a pipe, filled by a splice linked to the draining splice, or (with
// --sendfile off, or no descriptor left for a pipe) a buffer filled by pread(2): the copy
// through user space. The file is a memfd, so that read never blocks the loop.
bool add_file(Loop& loop, Client& c, const FileRegion& file) {
  if (!c.pipe_w && !c.stage_buf) {
    int p[2];
    if (loop.shared.options.sendfile && ::pipe2(p, O_CLOEXEC) == 0) {
      c.pipe_r = UniqueFd(p[0]);
      c.pipe_w = UniqueFd(p[1]);
      ::fcntl(p[1], F_SETPIPE_SZ, kPipeBytes);  // fewer, larger splices; 64 KiB if refused
      c.stage_bytes = static_cast<std::size_t>(std::max(::fcntl(p[1], F_GETPIPE_SZ), 4096));
    } else {
      c.stage_buf = std::make_unique<char[]>(kReadStageBytes);
      c.stage_bytes = kReadStageBytes;
    }
  }
  if (c.staged == 0) {
    const auto bytes =
        static_cast<std::size_t>(std::min<std::uint64_t>(file.length, c.stage_bytes));
    const auto offset = static_cast<off_t>(file.offset);
    if (c.stage_buf) {
      const ssize_t n = sys::pread(file.fd, c.stage_buf.get(), bytes, offset);
      if (n <= 0) return false;
      c.staged = static_cast<std::size_t>(n);
      c.stage_off = 0;
    } else {
      io_uring_sqe* fill = get_sqe(loop);
      io_uring_prep_splice(fill, file.fd, offset, c.pipe_w.get(), -1, static_cast<unsigned>(bytes),
                           0);
      fill->flags |= IOSQE_IO_LINK;  // the drain waits for the fill; a short fill cancels it
      submit(loop, c, fill, Op::kFileFill);
      ++c.file_ops;
      return add_drain(loop, c, bytes);
    }
  }
  return add_drain(loop, c, c.staged);
}

// ---- connections -----------------------------------------------------------------------------

void arm_timer(Loop& loop, Client& c) {
  const TimePoint deadline = c.conn.next_deadline();
  if (deadline >= c.armed) return;  // the armed timer fires first and re-checks
  c.armed = deadline;
  loop.timers.push({deadline, c.slot, c.generation});
}

void finish_close(Loop& loop, Client* c) {
  if (!loop.stopping && c->conn.may_have_unread_input() && has_unread_input(c->fd)) {
    linger_close(UniqueFd(c->fd));  // a lingering close (linger.hpp)
  } else {
    io_uring_sqe* sqe = get_sqe(loop);
    io_uring_prep_close(sqe, c->fd);
    submit(loop, sqe, pack(Op::kClose));
    ++loop.predicted;
  }
  loop.slots[c->slot] = nullptr;
  ++loop.generations[c->slot];  // timers and completions for this slot go stale
  loop.free_slots.push_back(c->slot);
  delete c;
  count(Counter::kConnectionsClosed);
  loop.shared.open_connections.fetch_sub(1, std::memory_order_relaxed);
}

// Never touch `c` after this: it may be gone.
void begin_close(Loop& loop, Client* c) {
  if (c->closing) return;
  c->closing = true;
  if (c->ops == 0) return finish_close(loop, c);
  add_cancel(loop, 0, c->fd);  // finish_close() follows the last completion
}

// Hands the core the next kTurnBytes of parked input. Only called with no output pending: the
// core has then answered all it holds but an incomplete request, so what it keeps stays small.
void feed_parked(Client& c) {
  const std::size_t n = std::min(kTurnBytes, c.parked.size() - c.parked_off);
  c.conn.on_input({c.parked.data() + c.parked_off, n}, coarse_now());
  c.parked_off += n;
  if (c.parked_off == c.parked.size()) {
    c.parked.clear();
    c.parked_off = 0;
  }
}

// Runs the connection as far as it goes without waiting, then submits what it waits on.
// Parked input goes to the core kTurnBytes at a time, each followed by its answers' send.
// Never touch `c` after this either.
void drive_steps(Loop& loop, Client* c) {
  Connection& conn = c->conn;
  while (!c->output_busy) {
    if (c->parked_read) {
      const std::size_t n = *c->parked_read;
      c->parked_read.reset();
      conn.on_read(n, coarse_now());
    } else if (has_parked(*c) && conn.next() == Step::kRead) {
      feed_parked(*c);
    } else if (c->eof_pending && !has_parked(*c)) {
      c->eof_pending = false;
      conn.on_read(0, coarse_now());
    } else if (const Step step = conn.next(); step == Step::kWrite) {
      const Output out = conn.output();
      c->output_busy = true;
      if (out.iovcnt > 0) {
        add_send(loop, *c, out);
      } else if (!add_file(loop, *c, out.file)) {
        return begin_close(loop, c);
      }
    } else if (step == Step::kRunWork) {
      conn.take_work().run();  // blocks the whole loop: every connection on it waits
      conn.on_work_done(coarse_now());
    } else if (step == Step::kRead) {
      break;
    } else {
      return begin_close(loop, c);
    }
  }
  // Receive while a small response is in flight too: what arrives meanwhile is parked, and the
  // input buffer does not move while wants_read() holds.
  if (!c->recv_armed && !c->rx_done && !c->parked_read && !has_parked(*c) && conn.wants_read() &&
      !add_recv(loop, *c)) {
    return begin_close(loop, c);  // the core refuses input it could not hold: give up
  }
  release_idle_input(loop, *c);
  if (c->output_busy && has_parked(*c)) loop.feeding = true;
  arm_timer(loop, *c);
}

// The connection boundary: an exception from one connection's path (std::bad_alloc, ...)
// closes that connection and is counted; the loop and the other connections go on.
void drive(Loop& loop, Client* c) {
  try {
    drive_steps(loop, c);
  } catch (const std::exception& e) {
    count_connection_error(kModel, e.what());
    begin_close(loop, c);
  }
}

void accept_client(Loop& loop, int fd, TimePoint now) {
  if (loop.stopping || loop.shared.open_connections.load(std::memory_order_relaxed) >=
                           loop.shared.options.max_conns) {
    return refuse(loop.shared, UniqueFd(fd));
  }
  std::uint32_t slot;
  if (loop.free_slots.empty()) {
    slot = static_cast<std::uint32_t>(loop.slots.size());
    loop.slots.push_back(nullptr);
    loop.generations.push_back(0);
  } else {
    slot = loop.free_slots.back();
    loop.free_slots.pop_back();
  }
  auto* c = new Client(loop.shared, fd, slot, loop.generations[slot] & kGenerationMask, now);
  loop.slots[slot] = c;
  loop.shared.open_connections.fetch_add(1, std::memory_order_relaxed);
  count(Counter::kConnectionsAccepted);
  drive(loop, c);  // arms the recv and the header timer
}

// ---- completions: one on_* per operation ----------------------------------------------------

void on_accept(Loop& loop, const io_uring_cqe& cqe, TimePoint now) {
  const bool more = cqe.flags & IORING_CQE_F_MORE;
  if (!more) loop.accept_armed = false;
  if (cqe.res >= 0) {
    accept_client(loop, cqe.res, now);
  } else if (cqe.res == -EMFILE || cqe.res == -ENFILE || cqe.res == -ENOBUFS ||
             cqe.res == -ENOMEM) {
    count(Counter::kAcceptBackoffs);
    loop.accept_paused_until = now + kAcceptPause;
    if (more) add_cancel(loop, pack(Op::kAccept));
  }
  if (!loop.accept_armed && !loop.stopping && loop.accept_paused_until == TimePoint::min()) {
    add_accept(loop);
  }
}

void on_recv(Loop& loop, Client* c, const io_uring_cqe& cqe) {
  if (!(cqe.flags & IORING_CQE_F_MORE)) c->recv_armed = c->recv_stopping = false;
  const int res = cqe.res;
  if (res > 0 && (cqe.flags & IORING_CQE_F_BUFFER)) {
    on_multishot_input(loop, *c, cqe);
  } else if (res > 0 && c->output_busy) {
    c->parked_read = static_cast<std::size_t>(res);
  } else if (res > 0) {
    c->conn.on_read(static_cast<std::size_t>(res), coarse_now());
  } else if (res == 0) {
    c->rx_done = c->eof_pending = true;
  } else if (res == -ENOBUFS) {
    count(Counter::kPoolMisses);  // the ring ran dry; drive() re-arms, the buffers are back
  } else if (res != -ECANCELED) {
    return begin_close(loop, c);  // reset by the peer
  }
  drive(loop, c);
}

void on_send(Loop& loop, Client* c, int res) {
  c->output_busy = false;
  c->sends_inline = loop.enters == c->send_enter && res != -EAGAIN;
  if (res == -EAGAIN) return drive(loop, c);  // a MSG_DONTWAIT send met a full buffer: wait now
  if (res <= 0) return begin_close(loop, c);  // EPIPE, ECONNRESET: the peer is gone
  c->conn.on_written(static_cast<std::size_t>(res), coarse_now());  // short: drive() sends the rest
  if (c->conn.next() == Step::kWrite) loop.feeding = true;  // answers back to back: a pipeline
  drive(loop, c);
}

void on_file(Loop& loop, Client* c, Op op, int res) {
  --c->file_ops;
  if (res > 0 && op == Op::kFileFill) {
    c->staged += static_cast<std::size_t>(res);
  } else if (res > 0) {
    c->staged -= static_cast<std::size_t>(res);
    c->stage_off += static_cast<std::size_t>(res);
    c->conn.on_written(static_cast<std::size_t>(res), coarse_now());
  } else if (op == Op::kFileFill || res != -ECANCELED) {  // a cancelled drain: the fill was short
    c->file_failed = true;
  }
  if (c->file_ops > 0) return;  // the other half of the linked pair is still to come
  c->output_busy = false;
  if (c->file_failed) return begin_close(loop, c);
  drive(loop, c);
}

void begin_stop(Loop& loop, TimePoint now) {
  loop.stopping = true;
  loop.stop_deadline = now + kStopGrace;
  if (loop.accept_armed) add_cancel(loop, pack(Op::kAccept));
  for (Client* c : loop.slots) {
    if (c != nullptr) begin_close(loop, c);
  }
}

void on_completion(Loop& loop, const io_uring_cqe& cqe, TimePoint now) {
  const bool last = !(cqe.flags & IORING_CQE_F_MORE);
  if (last) --loop.ops;
  const Op op = op_of(cqe.user_data);
  if (op == Op::kAccept) return on_accept(loop, cqe, now);
  if (op == Op::kWakeup) return begin_stop(loop, now);
  if (op == Op::kCancel || op == Op::kClose) return;
  const std::uint32_t slot = slot_of(cqe.user_data);
  Client* c = slot < loop.slots.size() ? loop.slots[slot] : nullptr;
  if (c == nullptr || c->generation != generation_of(cqe.user_data)) c = nullptr;  // stale
  if (c == nullptr || c->closing) {
    if (cqe.flags & IORING_CQE_F_BUFFER)
      iolab_recycle_buf(loop.bufs, cqe.flags >> IORING_CQE_BUFFER_SHIFT);
    if (c != nullptr && last && --c->ops == 0) finish_close(loop, c);
    return;
  }
  if (last) --c->ops;
  if (op == Op::kRecv) return on_recv(loop, c, cqe);
  if (op == Op::kSend) return on_send(loop, c, cqe.res);
  on_file(loop, c, op, cqe.res);
}

void on_timers(Loop& loop, TimePoint now) {
  while (!loop.timers.empty() && loop.timers.top().deadline <= now) {
    const Timer t = loop.timers.top();
    loop.timers.pop();
    Client* c = loop.slots[t.slot];
    if (c == nullptr || c->generation != t.generation || c->armed != t.deadline || c->closing)
      continue;
    c->armed = TimePoint::max();
    if (c->conn.on_timeout(now) == Step::kClose) {
      begin_close(loop, c);  // cancels the pending recv first: then the peer sees the close
    } else {
      arm_timer(loop, *c);
    }
  }
  if (loop.accept_paused_until != TimePoint::min() && now >= loop.accept_paused_until) {
    loop.accept_paused_until = TimePoint::min();
    if (!loop.accept_armed) add_accept(loop);
  }
}

// One enter: submit what is queued and wait (see the fold in the header comment).
void wait_for_completions(Loop& loop, TimePoint now) {
  TimePoint until = now + kMaxWait;
  if (!loop.timers.empty()) until = std::min(until, loop.timers.top().deadline);
  if (loop.accept_paused_until != TimePoint::min())
    until = std::min(until, loop.accept_paused_until);
  if (loop.predicted > 0) until = std::min(until, now + kFoldWait);
  if (loop.stopping) until = std::min(until, loop.stop_deadline);
  // `now` is the coarse clock, which lags real time by up to a tick or more: a deadline it puts
  // in the near future may already have passed, and a short wait would wake into the same
  // reading and wait again. Waiting at least one tick of that clock lets it move on.
  auto ns = std::max<std::int64_t>(0, std::chrono::nanoseconds(until - now).count());
  if (ns > 0) ns = std::max<std::int64_t>(ns, coarse_resolution().count());
  __kernel_timespec ts{ns / 1'000'000'000, ns % 1'000'000'000};
  // When a pipeline's next answers wait behind a send (parked input, or requests the core
  // holds), the next turn's work is here once that send completes: waiting for one completion
  // more would wait for the client, or run into kFoldWait.
  const unsigned wait_nr = loop.predicted + (loop.feeding && loop.predicted > 0 ? 0 : 1);
  loop.predicted = 0;
  loop.feeding = false;
  ++loop.enters;
  // liburing skips the enter only when enough completions are already there and nothing needs
  // submitting; the loop has reaped everything, so only SQPOLL or io-wq could race this check.
  const bool sqpoll = loop.ring_flags & IORING_SETUP_SQPOLL;
  if (io_uring_cq_ready(&loop.ring) < wait_nr || (!sqpoll && io_uring_sq_ready(&loop.ring) > 0)) {
    count(Counter::kSysIoUringEnter);
  }
  io_uring_cqe* cqe = nullptr;
  const int r = io_uring_submit_and_wait_timeout(&loop.ring, &cqe, wait_nr, &ts, nullptr);
  if (r < 0 && r != -ETIME && r != -EINTR && r != -EAGAIN && r != -EBUSY && !loop.enter_failed) {
    loop.enter_failed = true;  // said once: stderr may be a pipe nobody reads
    std::fprintf(stderr, "server_%s: io_uring_enter: %s\n", kModel.data(), std::strerror(-r));
  }
}

struct Started {
  int error = 0;  // -errno
  const char* what = "";
  unsigned flags = 0;
};

void event_loop(Loop& loop, std::promise<Started>& started) {
  Shared& shared = loop.shared;
  pin_worker(shared.options, loop.index);
  // Created here, not in main(): a SINGLE_ISSUER ring belongs to the thread that made it.
  if (const int r = iolab_queue_init(loop.ring, shared.ring_setup, loop.ring_flags); r < 0) {
    return started.set_value({r, "io_uring_queue_init"});
  }
  unsigned iowq[2] = {kIowqMaxWorkers, kIowqMaxWorkers};  // bounded, unbounded
  io_uring_register_iowq_max_workers(&loop.ring, iowq);   // 5.15; an older kernel: no cap
  if (shared.multishot) {
    if (const int r = iolab_setup_buf_ring(loop.ring, shared.buffers, shared.buffer_bytes,
                                           kBufGroup, loop.bufs);
        r < 0) {
      io_uring_queue_exit(&loop.ring);
      return started.set_value({r, "io_uring_register_buf_ring"});
    }
    count(Counter::kPoolReservedBytes, loop.bufs.reserved_bytes());
  }
  add_accept(loop);
  add_wakeup(loop);
  started.set_value({0, "", loop.ring_flags});

  while (!loop.stopping || (loop.ops > 0 && coarse_now() < loop.stop_deadline)) {
    wait_for_completions(loop, coarse_now());
    const TimePoint now = coarse_now();
    unsigned head;
    unsigned n = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&loop.ring, head, cqe) {
      on_completion(loop, *cqe, now);
      ++n;
    }
    io_uring_cq_advance(&loop.ring, n);
    count(Counter::kCqesReaped, n);
    if (!loop.stopping) on_timers(loop, now);
  }
  io_uring_queue_exit(&loop.ring);  // what is still in flight (past kStopGrace) is cancelled
  for (Client* c : loop.slots) {
    if (c == nullptr) continue;
    sys::close(c->fd);
    delete c;
    count(Counter::kConnectionsClosed);
  }
  if (loop.bufs.ring != nullptr)
    count_down(Counter::kPoolReservedBytes, loop.bufs.reserved_bytes());
  iolab_free_buf_ring(loop.bufs);
}

// The mode flags together (parse_options checked each alone); exits 2 naming the flag.
void check_mode_flags(int argc, char** argv, Shared& shared) {
  auto given = [&](std::string_view flag) {
    for (int i = 1; i < argc; ++i) {
      const std::string_view a = argv[i];
      if (a.substr(0, a.find('=')) == flag) return true;
    }
    return false;
  };
  auto fail = [](const char* flag, const char* why) {
    std::fprintf(stderr, "server_%s: %s: %s (see --help)\n", kModel.data(), flag, why);
    std::exit(2);
  };
  const Options& o = shared.options;
  shared.multishot = o.extra_value("--recv-multishot") == 1;
  shared.buffers = static_cast<unsigned>(o.extra_value("--buffers"));
  shared.buffer_bytes = static_cast<unsigned>(o.extra_value("--buffer-bytes"));
  const auto pretend = static_cast<unsigned>(o.extra_value("--fallback"));
  shared.ring_setup = {o.extra_value("--defer-taskrun") == 1, o.extra_value("--sqpoll") == 1,
                       kRingEntries, kSqThreadIdleMs, (pretend & kPretendNoDeferTaskrun) != 0};
  const RingFeatures features = iolab_probe(pretend);
  if (features.probed && *features.missing) {
    std::fprintf(stderr, "server_%s: io_uring_get_probe: %s is missing: %s\n", kModel.data(),
                 features.missing, why_io_uring_refused(ENOPROTOOPT).c_str());
    std::fflush(stderr);
    std::_Exit(77);  // this kernel cannot run the model (tests skip)
  }
  shared.multishot_accept = features.multishot_accept;
  if (shared.multishot && !features.multishot_recv) {
    shared.multishot = false;  // a multishot recv would fail with -EINVAL (before 6.0)
    for (const char* flag : {"--buffers", "--buffer-bytes"}) {
      if (given(flag)) fail(flag, "provided buffers serve multishot recv, which this kernel lacks");
    }
  }
  if ((shared.buffers & (shared.buffers - 1)) != 0) fail("--buffers", "must be a power of two");
  for (const char* flag : {"--buffers", "--buffer-bytes"}) {
    if (!shared.multishot && given(flag))
      fail(flag, "provided buffers serve --recv-multishot 1 only");
  }
  if (shared.ring_setup.sqpoll && given("--defer-taskrun")) {
    fail("--defer-taskrun",
         "the kernel takes neither DEFER_TASKRUN nor COOP_TASKRUN with --sqpoll 1");
  }
}

}  // namespace

int main(int argc, char** argv) {
  init_process_signals();
  const std::string program = "server_" + std::string(kModel);
  try {
    auto shared = std::make_unique<Shared>();
    shared->options = parse_options(argc, argv, kModel, kDefaultMaxConns, kExtraFlags);
    check_mode_flags(argc, argv, *shared);
    const Options& options = shared->options;
    raise_fd_limit();
    std::vector<UniqueFd> listeners =
        listen_tcp(options.bind, options.port, options.threads, false);
    const std::uint16_t port = local_port(listeners[0].get());

    std::vector<std::unique_ptr<Loop>> loops;
    std::vector<std::promise<Started>> started(static_cast<std::size_t>(options.threads));
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < started.size(); ++i) {
      set_nodelay(listeners[i].get());  // inherited by accepted sockets
      loops.push_back(
          std::make_unique<Loop>(*shared, static_cast<int>(i), std::move(listeners[i])));
      threads.emplace_back(event_loop, std::ref(*loops[i]), std::ref(started[i]));
    }
    unsigned flags = 0;
    for (auto& s : started) {
      const Started r = s.get_future().get();
      flags = r.flags;
      if (r.error == 0) continue;
      const std::string why = why_io_uring_refused(-r.error);
      std::fprintf(stderr, "%s: %s: %s%s%s\n", program.c_str(), r.what, std::strerror(-r.error),
                   why.empty() ? "" : ": ", why.c_str());
      std::fflush(stderr);
      std::_Exit(why.empty() ? 1 : 77);  // 77: this kernel cannot run the model (tests skip)
    }
    std::fprintf(stderr, "%s: %s recv, %s accept, %s%s\n", program.c_str(),
                 shared->multishot ? "multishot" : "one-shot",
                 shared->multishot_accept ? "multishot" : "one-shot",
                 (flags & IORING_SETUP_SQPOLL)          ? "SQPOLL"
                 : (flags & IORING_SETUP_DEFER_TASKRUN) ? "SINGLE_ISSUER|DEFER_TASKRUN"
                                                        : "COOP_TASKRUN",
                 (flags & IORING_SETUP_SQPOLL) && std::thread::hardware_concurrency() < 3
                     ? " (on fewer than 3 CPUs: for conformance, not measurements)"
                     : "");
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
