// The scheduler's machinery: workers, queues, the poller, timers and the blocking pool.
// The design, in prose, is at the top of scheduler.hpp; the names follow Go's runtime/proc.go
// (findrunnable, wakep, resetspinning, runqsteal, globrunqget, netpoll).
#include "scheduler.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <deque>
#include <system_error>
#include <thread>

#include "io.hpp"
#include "net.hpp"
#include "run_queue.hpp"
#include "stats.hpp"
#include "sys.hpp"

namespace iolab::coro {
namespace detail {
namespace {

constexpr std::uint32_t kFairnessInterval = 61;      // Go's: look at the global queue now and then
constexpr std::int64_t kPollIntervalNs = 1'000'000;  // a busy worker polls at least this often
constexpr int kMaxEvents = 128;                      // events taken per epoll_wait
constexpr int kStealRounds = 4;                      // passes over the victims before parking
constexpr int kTimersPerRound = 64;                  // timers fired per look at the heap
constexpr std::size_t kIoChunk = 256;                // IoStates allocated at a time
constexpr auto kBlockingIdleExit = std::chrono::seconds(10);  // an idle pool thread exits
// epoll tags: IoState pointers (64-byte aligned, generation in the top 16 bits), or these.
constexpr std::uint64_t kWakeTag = 1;
constexpr std::uint64_t kStopTag = 2;
constexpr std::uint64_t kPointerMask = (std::uint64_t{1} << 48) - 1;

std::int64_t to_ns(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// A counter written by one thread only: a relaxed load and store, no locked instruction.
void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

[[noreturn]] void throw_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

}  // namespace

struct WorkerCounters {
  std::atomic<std::uint64_t> spawned{0};
  std::atomic<std::uint64_t> resumes{0};
  std::atomic<std::uint64_t> steals{0};
  std::atomic<std::uint64_t> stolen{0};
  std::atomic<std::uint64_t> parks{0};
  std::atomic<std::uint64_t> polls{0};
  std::atomic<std::uint64_t> poll_readied{0};
  std::atomic<std::uint64_t> timers_fired{0};
  std::atomic<std::uint64_t> global_pushes{0};
  std::atomic<std::uint64_t> blocking_handoffs{0};
};

struct Worker {
  Worker(SchedulerState& state, int i) : s(state), index(i), rng(0x9E3779B97F4A7C15ULL * (i + 1)) {}
  SchedulerState& s;
  const int index;
  RunQueue queue;
  std::uint32_t tick = 0;
  bool spinning = false;  // looking for work to steal (counted in SchedulerState::spinning)
  bool yielded = false;   // a coroutine gave up its turn: look at the poller before the next
  std::uint64_t rng;      // victim choice
  WorkerCounters c;
  std::thread thread;
};

// TODO: a production runtime keeps timers per worker (Go: per P, stolen by idle Ps) and
// removes cancelled ones at once; here one heap under a mutex holds them all, and entries of
// closed or re-armed sockets (dead: their generation or deadline no longer matches) are dropped
// in one sweep whenever the heap has doubled since the last sweep, so it stays in proportion to
// the live sockets under connection churn (each accept pushes a header deadline).
struct TimerEntry {
  TimePoint when;
  std::uint64_t seq;  // first in, first out among equal deadlines
  void* handle;       // sleep_until: resume this coroutine
  IoState* io;        // a socket deadline: time out its waiters
  std::uint32_t generation;
};
struct TimerLater {
  bool operator()(const TimerEntry& a, const TimerEntry& b) const {
    return a.when != b.when ? a.when > b.when : a.seq > b.seq;
  }
};

// Threads for co_await blocking(fn), started on demand up to a limit, gone after an idle spell.
class BlockingPool {
 public:
  explicit BlockingPool(int max_threads) : max_threads_(max_threads) {}
  bool submit(BlockingJob& job);  // false: no pool thread will run it (none could start)
  bool shutdown(std::chrono::milliseconds grace);  // true when every pool thread has exited
  std::uint64_t threads_started() const { return started_.load(std::memory_order_relaxed); }

 private:
  void thread_main();
  const int max_threads_;
  std::mutex mutex_;
  std::condition_variable work_cv_;
  std::condition_variable exit_cv_;
  std::deque<BlockingJob*> jobs_;
  int threads_ = 0;
  int idle_ = 0;
  bool stopping_ = false;
  std::atomic<std::uint64_t> started_{0};
};

struct SchedulerState final : TaskOwner {
  explicit SchedulerState(SchedulerOptions o)
      : options(std::move(o)), pool(options.max_blocking_threads) {}
  void on_detached_done(PromiseBase& p) noexcept override;

  SchedulerOptions options;
  std::vector<std::unique_ptr<Worker>> workers;
  UniqueFd epoll;
  UniqueFd wake_fd;  // edge-triggered: one write wakes one parked worker (netpollBreak)
  UniqueFd stop_fd;  // level-triggered: once written, wakes every worker for good
  std::atomic<bool> stopping{false};
  bool stopped = false;
  bool pool_abandoned = false;  // a stop(grace) returned false: the pool may still run
  std::memory_order publish_order = std::memory_order_seq_cst;  // of local pushes (run_queue.hpp)
  std::atomic<std::int64_t> last_poll_ns{0};                    // when a worker last asked epoll

  // Idle and spinning workers (seq_cst: see the no-lost-wake-up rule in scheduler.hpp).
  std::atomic<int> idle{0};
  std::atomic<int> spinning{0};

  std::mutex global_mutex;
  std::deque<std::coroutine_handle<>> global;
  std::atomic<std::size_t> global_size{0};

  std::mutex timer_mutex;
  std::vector<TimerEntry> timers;  // a heap, earliest first
  std::uint64_t timer_seq = 0;
  std::atomic<std::int64_t> next_timer_ns{kNever};
  std::size_t timers_swept = 0;  // heap size after the last sweep of dead entries

  // The latency probe (IOLAB_SCHED_PROBE_MS, off by default): a coroutine that yields every
  // probe_ms and records, in nanoseconds, how long it waited in the run queue to be resumed.
  // Written only by the probe (one coroutine, so one thread at a time), read after stop()
  // joined the workers.
  int probe_ms = 0;
  std::vector<std::uint32_t> probe_ns;

  std::mutex io_mutex;
  std::vector<std::unique_ptr<IoState[]>> io_chunks;
  IoState* io_free = nullptr;

  std::mutex live_mutex;  // detached tasks not yet finished, destroyed at shutdown
  PromiseBase* live = nullptr;
  std::atomic<std::uint64_t> finished{0};

  // Counted by threads that are not workers, or by several workers.
  std::atomic<std::uint64_t> external_spawned{0};
  std::atomic<std::uint64_t> external_global_pushes{0};
  std::atomic<std::uint64_t> wakeups{0};

  BlockingPool pool;
};

namespace {

thread_local Worker* tls_worker = nullptr;

// ---- making work runnable ---------------------------------------------------------------

// Go's wakep: wake an idle worker, unless one is already looking (spinning). The woken worker
// starts spinning; the count is taken here, on its behalf, so no second wake-up follows it.
void wake_one(SchedulerState& s) {
  if (s.idle.load(std::memory_order_seq_cst) == 0) return;
  int expected = 0;
  if (!s.spinning.compare_exchange_strong(expected, 1, std::memory_order_seq_cst)) return;
  s.wakeups.fetch_add(1, std::memory_order_relaxed);
  const std::uint64_t one = 1;
  count(Counter::kSysWrite);
  if (::write(s.wake_fd.get(), &one, sizeof one) < 0) {
    s.spinning.fetch_sub(1, std::memory_order_seq_cst);  // cannot fail short of EAGAIN at 2^64-2
  }
}

void push_global(SchedulerState& s, const std::coroutine_handle<>* handles, std::size_t n) {
  std::lock_guard lock(s.global_mutex);
  s.global.insert(s.global.end(), handles, handles + n);
  s.global_size.fetch_add(n, std::memory_order_seq_cst);
}

// The local queue is full: half of it, and h, go to the global queue (Go's runqputslow).
void push_local(Worker& w, std::coroutine_handle<> h) {
  while (!w.queue.push(h, w.s.publish_order)) {
    std::coroutine_handle<> batch[RunQueue::kCapacity / 2 + 1];
    const std::uint32_t n = w.queue.take_half(batch);
    if (n == 0) continue;  // thieves emptied it meanwhile: there is room now
    batch[n] = h;
    push_global(w.s, batch, n + 1);
    bump(w.c.global_pushes, n + 1);
    return;
  }
}

// Takes up to `max` handles from the global queue: runs the first, queues the rest locally.
std::coroutine_handle<> pop_global(Worker& w, std::size_t max) {
  SchedulerState& s = w.s;
  if (s.global_size.load(std::memory_order_relaxed) == 0) return {};
  std::lock_guard lock(s.global_mutex);
  if (s.global.empty()) return {};
  // A fair share: a 1/N part of the queue, at most half of a local queue.
  std::size_t n = std::min({s.global.size() / s.workers.size() + 1, max,
                            static_cast<std::size_t>(RunQueue::kCapacity / 2)});
  n = std::min(n, s.global.size());
  const std::coroutine_handle<> first = s.global.front();
  s.global.pop_front();
  std::size_t taken = 1;
  // The local queue is empty when this is called, so it has room; if not, the rest stays.
  while (taken < n && w.queue.push(s.global.front(), s.publish_order)) {
    s.global.pop_front();
    ++taken;
  }
  s.global_size.fetch_sub(taken, std::memory_order_seq_cst);
  return first;
}

// ---- the poller -------------------------------------------------------------------------

// An edge for one direction: wake its waiter, or leave kReady for the next one.
int notify(Worker& w, std::atomic<std::uintptr_t>& slot) {
  const std::uintptr_t old = slot.exchange(kReady, std::memory_order_seq_cst);
  if (old <= kTimedOut) return 0;
  push_local(w, std::coroutine_handle<>::from_address(reinterpret_cast<void*>(old)));
  return 1;
}

// A wake-up token (wake_one) makes its receiver a spinning worker; one already spinning
// gives the extra count back.
void take_wake_token(Worker& w) {
  if (w.spinning) {
    w.s.spinning.fetch_sub(1, std::memory_order_seq_cst);
  } else {
    w.spinning = true;
  }
}

int handle_events(Worker& w, const epoll_event* events, int n) {
  int readied = 0;
  for (int i = 0; i < n; ++i) {
    const std::uint64_t tag = events[i].data.u64;
    if (tag == kWakeTag) {
      take_wake_token(w);
      continue;
    }
    if (tag == kStopTag) continue;
    auto* io = reinterpret_cast<IoState*>(tag & kPointerMask);
    // A socket closed and its IoState reused since this event was queued: drop it.
    if ((io->generation.load(std::memory_order_relaxed) & 0xFFFF) != (tag >> 48)) continue;
    const std::uint32_t ev = events[i].events;
    if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
      io->peer_closed.store(true, std::memory_order_relaxed);
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readied += notify(w, io->slot[0]);
    if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) readied += notify(w, io->slot[1]);
  }
  bump(w.c.poll_readied, static_cast<std::uint64_t>(readied));
  return readied;
}

int poll_now(Worker& w) {
  epoll_event events[kMaxEvents];
  const int n = sys::epoll_wait(w.s.epoll.get(), events, kMaxEvents, 0);
  bump(w.c.polls);
  w.s.last_poll_ns.store(to_ns(Clock::now()), std::memory_order_relaxed);
  if (n <= 0) return 0;
  const int readied = handle_events(w, events, n);
  if (readied > 1) wake_one(w.s);  // more than this worker will run at once: share
  return readied;
}

// ---- timers -----------------------------------------------------------------------------

// A socket deadline that can no longer fire: its socket closed or it was re-armed earlier.
bool dead(const TimerEntry& t) {
  return t.io != nullptr && (t.io->generation.load(std::memory_order_seq_cst) != t.generation ||
                             t.io->armed.load(std::memory_order_seq_cst) != to_ns(t.when));
}

void add_timer_entry(SchedulerState& s, TimerEntry e) {
  bool earliest;
  {
    std::lock_guard lock(s.timer_mutex);
    if (s.timers.size() >= 64 && s.timers.size() >= 2 * s.timers_swept) {
      std::erase_if(s.timers, dead);
      std::make_heap(s.timers.begin(), s.timers.end(), TimerLater{});
      s.timers_swept = s.timers.size();
    }
    e.seq = s.timer_seq++;
    s.timers.push_back(e);
    std::push_heap(s.timers.begin(), s.timers.end(), TimerLater{});
    earliest = s.timers.front().seq == e.seq;
    s.next_timer_ns.store(to_ns(s.timers.front().when), std::memory_order_seq_cst);
  }
  // Parked workers sleep until the old earliest timer: one must wake to honour this one.
  if (earliest) wake_one(s);
}

// A socket's deadline passed: time out whoever waits on it (and leave kTimedOut for a
// coroutine that is about to wait), unless a later arming superseded this timer.
int fire_deadline(Worker& w, const TimerEntry& t) {
  IoState& io = *t.io;
  if (io.generation.load(std::memory_order_seq_cst) != t.generation) return 0;
  std::int64_t expected = to_ns(t.when);
  if (!io.armed.compare_exchange_strong(expected, kNever, std::memory_order_seq_cst)) return 0;
  int readied = 0;
  for (auto& slot : io.slot) {
    std::uintptr_t seen = slot.load(std::memory_order_seq_cst);
    while (seen != kReady && seen != kTimedOut) {
      if (slot.compare_exchange_weak(seen, kTimedOut, std::memory_order_seq_cst)) {
        if (seen != kNil) {
          push_local(w, std::coroutine_handle<>::from_address(reinterpret_cast<void*>(seen)));
          ++readied;
        }
        break;
      }
    }
  }
  return readied;
}

int fire_timers(Worker& w) {
  SchedulerState& s = w.s;
  const std::int64_t next = s.next_timer_ns.load(std::memory_order_relaxed);
  if (next == kNever) return 0;
  const TimePoint now = Clock::now();
  if (to_ns(now) < next) return 0;
  TimerEntry due[kTimersPerRound];
  int n = 0;
  {
    std::lock_guard lock(s.timer_mutex);
    while (!s.timers.empty() && s.timers.front().when <= now && n < kTimersPerRound) {
      std::pop_heap(s.timers.begin(), s.timers.end(), TimerLater{});
      due[n++] = s.timers.back();
      s.timers.pop_back();
    }
    s.next_timer_ns.store(s.timers.empty() ? kNever : to_ns(s.timers.front().when),
                          std::memory_order_seq_cst);
  }
  int readied = 0;
  for (int i = 0; i < n; ++i) {
    if (due[i].handle != nullptr) {
      push_local(w, std::coroutine_handle<>::from_address(due[i].handle));
      ++readied;
    } else {
      readied += fire_deadline(w, due[i]);
    }
  }
  bump(w.c.timers_fired, static_cast<std::uint64_t>(n));
  if (readied > 1) wake_one(s);
  return readied;
}

// epoll_wait's timeout for a parked worker: until the earliest timer, or forever.
int park_timeout_ms(SchedulerState& s) {
  const std::int64_t next = s.next_timer_ns.load(std::memory_order_seq_cst);
  if (next == kNever) return -1;
  const std::int64_t left = next - to_ns(Clock::now());
  if (left <= 0) return 0;
  return static_cast<int>(std::min<std::int64_t>((left + 999'999) / 1'000'000, INT_MAX));
}

// ---- finding work -----------------------------------------------------------------------

// Go's resetspinning: a spinner that found work stops spinning; if it was the last one, it
// wakes another worker to keep looking (there may be more where this came from).
std::coroutine_handle<> found(Worker& w, std::coroutine_handle<> h) {
  if (w.spinning) {
    w.spinning = false;
    if (w.s.spinning.fetch_sub(1, std::memory_order_seq_cst) == 1) wake_one(w.s);
  }
  return h;
}

bool others_busy(const Worker& w) {
  const int n = static_cast<int>(w.s.workers.size());
  return n - w.s.idle.load(std::memory_order_relaxed) > 1;
}

std::coroutine_handle<> steal(Worker& w) {
  SchedulerState& s = w.s;
  const int n = static_cast<int>(s.workers.size());
  if (!w.spinning) {
    // Go's limit: at most half of the busy workers spin, so stealing never burns more CPU
    // than the work it looks for.
    const int busy = n - s.idle.load(std::memory_order_relaxed);
    if (2 * s.spinning.load(std::memory_order_relaxed) >= busy) return {};
    w.spinning = true;
    s.spinning.fetch_add(1, std::memory_order_seq_cst);
  }
  for (int round = 0; round < kStealRounds; ++round) {
    w.rng ^= w.rng << 13;
    w.rng ^= w.rng >> 7;
    w.rng ^= w.rng << 17;
    const int start = static_cast<int>(w.rng % static_cast<std::uint64_t>(n));
    for (int i = 0; i < n; ++i) {
      Worker& victim = *s.workers[static_cast<std::size_t>((start + i) % n)];
      if (&victim == &w) continue;
      if (const std::uint32_t got = w.queue.steal_from(victim.queue); got > 0) {
        bump(w.c.steals);
        bump(w.c.stolen, got);
        count(Counter::kSteals);
        return w.queue.pop();
      }
    }
  }
  return {};
}

bool work_visible(const SchedulerState& s) {
  if (s.global_size.load(std::memory_order_seq_cst) > 0) return true;
  for (const auto& other : s.workers) {
    if (!other->queue.looks_empty()) return true;
  }
  return false;
}

// Nothing to do: block in epoll_wait until an event, a wake-up token or the next timer.
void park(Worker& w) {
  SchedulerState& s = w.s;
  s.idle.fetch_add(1, std::memory_order_seq_cst);
  if (w.spinning) {
    w.spinning = false;
    s.spinning.fetch_sub(1, std::memory_order_seq_cst);
  }
  // Announced idle and no longer spinning: a producer from now on wakes someone. Anything
  // pushed before is visible here.
  if (work_visible(s) || s.stopping.load(std::memory_order_seq_cst)) {
    s.idle.fetch_sub(1, std::memory_order_seq_cst);
    w.spinning = true;  // go and take it
    s.spinning.fetch_add(1, std::memory_order_seq_cst);
    return;
  }
  bump(w.c.parks);
  count(Counter::kParks);
  epoll_event events[kMaxEvents];
  const int n = sys::epoll_wait(s.epoll.get(), events, kMaxEvents, park_timeout_ms(s));
  bump(w.c.polls);
  s.last_poll_ns.store(to_ns(Clock::now()), std::memory_order_relaxed);
  // Not idle any more before anything lands in the local queue: an idle worker's queue is
  // empty, which is what lets others_busy() skip stealing.
  s.idle.fetch_sub(1, std::memory_order_seq_cst);
  if (n > 0 && handle_events(w, events, n) > 1) wake_one(s);
}

std::coroutine_handle<> find_work(Worker& w) {
  SchedulerState& s = w.s;
  for (;;) {
    if (s.stopping.load(std::memory_order_relaxed)) return {};
    if (w.yielded) {
      // A coroutine yielded so that others get a turn; some of those others may be waiting
      // in the poller, which a busy worker otherwise asks only every 61st turn.
      w.yielded = false;
      if (to_ns(Clock::now()) - s.last_poll_ns.load(std::memory_order_relaxed) > kPollIntervalNs) {
        poll_now(w);
      }
    }
    if (++w.tick % kFairnessInterval == 0) {
      // A worker whose local queue never empties still serves the global queue, the timers
      // and, if nobody has for a millisecond, the poller.
      if (auto h = pop_global(w, 1)) return found(w, h);
      fire_timers(w);
      if (to_ns(Clock::now()) - s.last_poll_ns.load(std::memory_order_relaxed) > kPollIntervalNs) {
        poll_now(w);
      }
    }
    if (auto h = w.queue.pop()) return found(w, h);
    if (fire_timers(w) > 0) continue;
    if (auto h = pop_global(w, RunQueue::kCapacity / 2)) return found(w, h);
    if (others_busy(w)) {
      if (poll_now(w) > 0) continue;
      if (auto h = steal(w)) return found(w, h);
    }
    park(w);
  }
}

void worker_main(Worker& w) {
  tls_worker = &w;
  const auto& pin = w.s.options.pin;
  if (!pin.empty()) {
    const int cpu = pin[static_cast<std::size_t>(w.index) % pin.size()];
    try {
      pin_current_thread(std::span<const int>(&cpu, 1));
    } catch (const std::system_error& e) {
      std::fprintf(stderr, "coro scheduler: worker %d: %s\n", w.index, e.what());
    }
  }
  while (std::coroutine_handle<> h = find_work(w)) {
    bump(w.c.resumes);
    h.resume();
  }
  tls_worker = nullptr;
}

}  // namespace

// ---- the blocking pool ------------------------------------------------------------------

// The thread is started before the job is queued: if it cannot start (EAGAIN at a pids limit),
// the job is queued only when a busy pool thread will take it later; else the caller runs it.
bool BlockingPool::submit(BlockingJob& job) {
  std::lock_guard lock(mutex_);
  if (idle_ == 0 && threads_ < max_threads_) {
    try {
      sys::start_thread(&BlockingPool::thread_main, this).detach();  // waits for our lock
      ++threads_;
      started_.fetch_add(1, std::memory_order_relaxed);
      count(Counter::kThreadsCreated);
    } catch (const std::system_error&) {
      if (threads_ == 0) return false;
    }
  }
  jobs_.push_back(&job);
  if (idle_ > 0) work_cv_.notify_one();
  return true;  // else the job waits for a busy thread
}

void BlockingPool::thread_main() {
  std::unique_lock lock(mutex_);
  for (;;) {
    if (!jobs_.empty()) {
      BlockingJob* job = jobs_.front();
      jobs_.pop_front();
      lock.unlock();
      job->run();  // it lives in a coroutine frame that may be gone when run() returns
      lock.lock();
      continue;
    }
    if (stopping_) break;
    ++idle_;
    const bool woken =
        work_cv_.wait_for(lock, kBlockingIdleExit, [this] { return !jobs_.empty() || stopping_; });
    --idle_;
    if (!woken) break;
  }
  --threads_;
  exit_cv_.notify_all();  // under the lock: the pool cannot go away before we release it
}

bool BlockingPool::shutdown(std::chrono::milliseconds grace) {
  std::unique_lock lock(mutex_);
  stopping_ = true;
  work_cv_.notify_all();
  auto all_gone = [this] { return threads_ == 0; };
  if (grace == std::chrono::milliseconds::max()) {
    exit_cv_.wait(lock, all_gone);
    return true;
  }
  return exit_cv_.wait_for(lock, grace, all_gone);
}

// ---- the glue the awaiters and tasks call -----------------------------------------------

void SchedulerState::on_detached_done(PromiseBase& p) noexcept {
  std::lock_guard lock(live_mutex);
  if (p.prev_ != nullptr)
    p.prev_->next_ = p.next_;
  else
    live = p.next_;
  if (p.next_ != nullptr) p.next_->prev_ = p.prev_;
  finished.fetch_add(1, std::memory_order_relaxed);
}

Worker* current_worker() noexcept { return tls_worker; }

SchedulerState& current_state() {
  if (tls_worker == nullptr) {
    std::fprintf(stderr, "coro: an awaitable or spawn() used outside a scheduler worker\n");
    std::terminate();
  }
  return tls_worker->s;
}

void ready_here(std::coroutine_handle<> h) {
  current_state();
  tls_worker->yielded = true;
  push_local(*tls_worker, h);
}

void add_timer(TimePoint when, std::coroutine_handle<> h) {
  add_timer_entry(current_state(), {when, 0, h.address(), nullptr, 0});
}

void spawn_on(SchedulerState& s, std::coroutine_handle<Promise<void>> h) {
  PromiseBase& p = h.promise();
  p.owner_ = &s;
  {
    std::lock_guard lock(s.live_mutex);
    p.prev_ = nullptr;
    p.next_ = s.live;
    if (s.live != nullptr) s.live->prev_ = &p;
    s.live = &p;
  }
  if (tls_worker != nullptr && &tls_worker->s == &s) {
    bump(tls_worker->c.spawned);
    push_local(*tls_worker, h);
  } else {
    s.external_spawned.fetch_add(1, std::memory_order_relaxed);
    s.external_global_pushes.fetch_add(1, std::memory_order_relaxed);
    const std::coroutine_handle<> any = h;
    push_global(s, &any, 1);
  }
  wake_one(s);
}

void make_runnable(SchedulerState& s, std::coroutine_handle<> h) {
  if (tls_worker != nullptr && &tls_worker->s == &s) {
    push_local(*tls_worker, h);
  } else {
    s.external_global_pushes.fetch_add(1, std::memory_order_relaxed);
    push_global(s, &h, 1);
  }
  wake_one(s);
}


IoState* register_socket(int fd) {
  SchedulerState& s = current_state();
  IoState* io;
  {
    std::lock_guard lock(s.io_mutex);
    if (s.io_free == nullptr) {
      auto chunk = std::make_unique<IoState[]>(kIoChunk);
      for (std::size_t i = 0; i < kIoChunk; ++i) {
        chunk[i].owner = &s;
        chunk[i].next_free = s.io_free;
        s.io_free = &chunk[i];
      }
      s.io_chunks.push_back(std::move(chunk));
    }
    io = s.io_free;
    s.io_free = io->next_free;
  }
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 =
      reinterpret_cast<std::uint64_t>(io) |
      (static_cast<std::uint64_t>(io->generation.load(std::memory_order_relaxed) & 0xFFFF) << 48);
  if (sys::epoll_ctl(s.epoll.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
    const int err = errno;
    release_socket(io);
    errno = err;
    return nullptr;
  }
  return io;
}

void release_socket(IoState* io) {
  SchedulerState& s = *io->owner;
  io->generation.fetch_add(1, std::memory_order_seq_cst);  // late events and timers: stale
  io->slot[0].store(kNil, std::memory_order_relaxed);
  io->slot[1].store(kNil, std::memory_order_relaxed);
  io->armed.store(kNever, std::memory_order_relaxed);
  io->peer_closed.store(false, std::memory_order_relaxed);
  std::lock_guard lock(s.io_mutex);
  io->next_free = s.io_free;
  s.io_free = io;
}

void arm_deadline(IoState& io, TimePoint deadline) {
  const std::int64_t d = to_ns(deadline);
  if (d >= io.armed.load(std::memory_order_seq_cst)) return;  // an earlier timer will fire first
  io.armed.store(d, std::memory_order_seq_cst);
  add_timer_entry(*io.owner,
                  {deadline, 0, nullptr, &io, io.generation.load(std::memory_order_relaxed)});
}

namespace {
constexpr std::size_t kMaxProbeSamples = 1 << 20;

Task<void> latency_probe(SchedulerState& s) {
  const auto every = std::chrono::milliseconds(s.probe_ms);
  while (!s.stopping.load(std::memory_order_relaxed)) {
    const auto t0 = Clock::now();
    co_await yield();
    const auto waited = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0);
    if (s.probe_ns.size() < kMaxProbeSamples) {
      s.probe_ns.push_back(static_cast<std::uint32_t>(std::min<std::int64_t>(
          waited.count(), std::numeric_limits<std::uint32_t>::max())));
    }
    co_await sleep_for(every);
  }
}

// One line on stderr: the probe's latency percentiles and the resumptions per worker, the
// figures of claim C15 (bench/iolab_bench/probes.py reads it).
void print_probe(SchedulerState& s) {
  std::vector<std::uint32_t> ns = s.probe_ns;
  std::sort(ns.begin(), ns.end());
  auto pct = [&ns](double q) {
    if (ns.empty()) return 0.0;
    const auto i = static_cast<std::size_t>(q * static_cast<double>(ns.size() - 1));
    return static_cast<double>(ns[i]) / 1000.0;
  };
  std::string resumes;
  for (const auto& w : s.workers) {
    if (!resumes.empty()) resumes += ',';
    resumes += std::to_string(w->c.resumes.load(std::memory_order_relaxed));
  }
  std::fprintf(stderr,
               "coro scheduler probe: samples=%zu p50_us=%.3f p99_us=%.3f max_us=%.3f "
               "resumes=%s\n",
               ns.size(), pct(0.5), pct(0.99), pct(1.0),
               resumes.c_str());
}
}  // namespace

}  // namespace detail

void submit_blocking(BlockingJob& job) {
  detail::SchedulerState& s = detail::current_state();
  detail::bump(detail::tls_worker->c.blocking_handoffs);
  if (s.pool.submit(job)) return;
  // No thread could start: run the job here (it blocks this worker, as in an event loop).
  count(Counter::kBlockingInline);
  job.run();
}

// ---- Scheduler --------------------------------------------------------------------------

Scheduler::Scheduler(SchedulerOptions options)
    : state_(std::make_unique<detail::SchedulerState>(std::move(options))) {
  detail::SchedulerState& s = *state_;
  if (s.options.workers < 1) s.options.workers = 1;
  if (s.options.workers == 1) s.publish_order = std::memory_order_release;
  s.epoll.reset(::epoll_create1(EPOLL_CLOEXEC));
  s.wake_fd.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  s.stop_fd.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!s.epoll || !s.wake_fd || !s.stop_fd) detail::throw_errno("epoll_create1/eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLET;
  ev.data.u64 = detail::kWakeTag;
  if (sys::epoll_ctl(s.epoll.get(), EPOLL_CTL_ADD, s.wake_fd.get(), &ev) != 0) {
    detail::throw_errno("epoll_ctl ADD eventfd");
  }
  ev.events = EPOLLIN;
  ev.data.u64 = detail::kStopTag;
  if (sys::epoll_ctl(s.epoll.get(), EPOLL_CTL_ADD, s.stop_fd.get(), &ev) != 0) {
    detail::throw_errno("epoll_ctl ADD eventfd");
  }
  for (int i = 0; i < s.options.workers; ++i) {
    s.workers.push_back(std::make_unique<detail::Worker>(s, i));
  }
  for (auto& w : s.workers) w->thread = std::thread(detail::worker_main, std::ref(*w));
  if (const char* probe = std::getenv("IOLAB_SCHED_PROBE_MS")) {
    s.probe_ms = std::max(1, std::atoi(probe));
    spawn(detail::latency_probe(s));
  }
}

bool Scheduler::stop(std::chrono::milliseconds grace) {
  detail::SchedulerState& s = *state_;
  if (!s.stopped) {
    s.stopping.store(true, std::memory_order_seq_cst);
    const std::uint64_t one = 1;
    if (::write(s.stop_fd.get(), &one, sizeof one) < 0)
      std::perror("coro scheduler: eventfd write");
    for (auto& w : s.workers) {
      if (w->thread.joinable()) w->thread.join();
    }
    s.stopped = true;
    if (s.probe_ms > 0) detail::print_probe(s);
  }
  if (!s.pool.shutdown(grace)) s.pool_abandoned = true;
  return !s.pool_abandoned;
}

Scheduler::~Scheduler() {
  if (state_->pool_abandoned && !stop(std::chrono::milliseconds(0))) {
    // Blocking work still runs and will touch the state and its coroutines: never free them.
    // (Held from a global, so LeakSanitizer does not report what is kept on purpose.)
    static auto* abandoned = new std::vector<std::unique_ptr<detail::SchedulerState>>;
    static std::mutex abandoned_mutex;
    std::lock_guard lock(abandoned_mutex);
    abandoned->push_back(std::move(state_));
    return;
  }
  stop();
  detail::SchedulerState& s = *state_;
  // Every thread is gone: destroy the tasks that never finished (their sockets close).
  while (detail::PromiseBase* p = s.live) {
    s.live = p->next_;
    if (s.live != nullptr) s.live->prev_ = nullptr;
    std::coroutine_handle<detail::Promise<void>>::from_promise(
        static_cast<detail::Promise<void>&>(*p))
        .destroy();
  }
}

void Scheduler::spawn(Task<void> task) { detail::spawn_on(*state_, task.release()); }

void spawn(Task<void> task) { detail::spawn_on(detail::current_state(), task.release()); }

int current_worker_index() noexcept {
  return detail::tls_worker != nullptr ? detail::tls_worker->index : -1;
}

int Scheduler::workers() const { return static_cast<int>(state_->workers.size()); }

SchedulerStats Scheduler::stats() const {
  const detail::SchedulerState& s = *state_;
  SchedulerStats out;
  auto get = [](const std::atomic<std::uint64_t>& c) { return c.load(std::memory_order_relaxed); };
  for (const auto& w : s.workers) {
    out.spawned += get(w->c.spawned);
    out.resumes += get(w->c.resumes);
    out.steals += get(w->c.steals);
    out.stolen += get(w->c.stolen);
    out.parks += get(w->c.parks);
    out.polls += get(w->c.polls);
    out.poll_readied += get(w->c.poll_readied);
    out.timers_fired += get(w->c.timers_fired);
    out.global_pushes += get(w->c.global_pushes);
    out.blocking_handoffs += get(w->c.blocking_handoffs);
    out.resumes_per_worker.push_back(get(w->c.resumes));
  }
  out.spawned += get(s.external_spawned);
  out.global_pushes += get(s.external_global_pushes);
  out.finished = get(s.finished);
  out.wakeups = get(s.wakeups);
  out.blocking_threads = s.pool.threads_started();
  {
    std::lock_guard lock(state_->timer_mutex);
    out.timers_pending = state_->timers.size();
  }
  out.frames = frame_stats();
  return out;
}

}  // namespace iolab::coro
