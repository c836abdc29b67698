// Unit tests of the coroutine runtime (servers/coro): tasks, the M:N scheduler, timers, the
// blocking pool and the socket awaitables. They judge counts and mechanisms, never timings:
// every wait is bounded (a lost wake-up fails a test instead of hanging it), and nothing
// asserts how fast something ran. They must pass under ThreadSanitizer, AddressSanitizer and
// at -O0, where g++ 12 does not turn symmetric transfer into a tail call.
#include "scheduler.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <numeric>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "io.hpp"
#include "task.hpp"

namespace iolab::coro {
namespace {

using namespace std::chrono_literals;

// A bound on every wait: generous, because sanitizers make everything 5-20x slower. Reaching it
// means a lost wake-up or a hang, not slowness.
constexpr auto kBound = 30s;

// A countdown the test thread can wait on with a bound.
class Countdown {
 public:
  explicit Countdown(long n) : left_(n) {}
  // Under the lock: the waiter can only return (and destroy this) after we let go of it.
  void arrive() {
    std::lock_guard lock(mutex_);
    if (left_.fetch_sub(1, std::memory_order_acq_rel) == 1) cv_.notify_all();
  }
  bool wait() {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, kBound,
                        [this] { return left_.load(std::memory_order_acquire) <= 0; });
  }
  long left() const { return left_.load(std::memory_order_acquire); }

 private:
  std::atomic<long> left_;
  std::mutex mutex_;
  std::condition_variable cv_;
};

SchedulerOptions with_workers(int n) {
  SchedulerOptions o;
  o.workers = n;
  return o;
}

// CPU work that the optimiser cannot remove.
std::uint64_t burn(int iterations) {
  std::uint64_t x = 88172645463325252ULL;
  for (int i = 0; i < iterations; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
  }
  return x;
}

// ---- Task -------------------------------------------------------------------------------

Task<int> answer() { co_return 42; }

Task<int> add_answers(int n) {
  int sum = 0;
  for (int i = 0; i < n; ++i) sum += co_await answer();
  co_return sum;
}

Task<int> fails() {
  throw std::runtime_error("boom");
  co_return 0;
}

Task<std::string> catches() {
  try {
    co_await fails();
  } catch (const std::runtime_error& e) {
    co_return std::string("caught ") + e.what();
  }
  co_return "not thrown";
}

TEST(CoroTask, ValuesAndExceptionsPropagate) {
  Scheduler s;
  EXPECT_EQ(s.block_on(add_answers(3)), 126);
  EXPECT_EQ(s.block_on(catches()), "caught boom");
  EXPECT_THROW(s.block_on(fails()), std::runtime_error);
}

Task<long> count_immediate(long n) {
  long sum = 0;
  for (long i = 0; i < n; ++i) sum += co_await answer() / 42;
  co_return sum;
}

// The reproducer of the overflow task.hpp describes: with symmetric transfer that is not a tail
// call (g++ 12 at -O0 or under ASan) each of these awaits left a stack frame behind until the
// stack overflowed.
TEST(CoroTask, MillionImmediateAwaitsDoNotGrowTheStack) {
  const FrameStats before = frame_stats();
  {
    Scheduler s;
    EXPECT_EQ(s.block_on(count_immediate(1'000'000)), 1'000'000);
  }  // joined: block_on's own wrapper frame is gone too
  const FrameStats after = frame_stats();
  EXPECT_GE(after.frames - before.frames, 1'000'000u);
  EXPECT_EQ(after.live_frames, before.live_frames);  // every frame freed
}

Task<int> yields_once() {
  co_await yield();
  co_return 1;
}

Task<long> count_suspending(long n) {
  long sum = 0;
  for (long i = 0; i < n; ++i) sum += co_await yields_once();
  co_return sum;
}

// The other half: each child suspends, finishes from the scheduler loop and resumes its parent.
TEST(CoroTask, MillionAwaitsOfSuspendingTasksDoNotGrowTheStack) {
  Scheduler s;
  EXPECT_EQ(s.block_on(count_suspending(1'000'000)), 1'000'000);
}

Task<int> nested(int depth) {
  if (depth == 0) co_return 0;
  co_await yield();
  co_return 1 + co_await nested(depth - 1);
}

TEST(CoroTask, NestedChainOfSuspendingTasks) {
  Scheduler s(with_workers(2));
  EXPECT_EQ(s.block_on(nested(1000)), 1000);
}

Task<std::size_t> big_frame() {
  char buffer[16 * 1024];
  std::memset(buffer, 'x', sizeof buffer);
  co_await yield();  // the buffer lives across a suspension, so it is in the frame
  co_return static_cast<std::size_t>(std::count(buffer, buffer + sizeof buffer, 'x'));
}

// A local 16 KB buffer makes a 16 KB frame: the promise's operator new sees it.
TEST(CoroTask, FrameBytesAreCountedAndALocalBufferIsInTheFrame) {
  const FrameStats before = frame_stats();
  {
    Scheduler s;
    EXPECT_EQ(s.block_on(big_frame()), 16u * 1024);
  }
  const FrameStats after = frame_stats();
  EXPECT_GE(after.bytes - before.bytes, 16u * 1024);
  EXPECT_EQ(after.live_bytes, before.live_bytes);
}

// ---- the scheduler ----------------------------------------------------------------------

Task<void> mark(std::vector<std::atomic<std::uint8_t>>& runs, std::size_t i, Countdown& done) {
  runs[i].fetch_add(1, std::memory_order_relaxed);
  done.arrive();
  co_return;
}

Task<void> spawn_all(std::vector<std::atomic<std::uint8_t>>& runs, Countdown& done) {
  for (std::size_t i = 0; i < runs.size(); ++i) spawn(mark(runs, i, done));
  co_return;
}

TEST(CoroScheduler, MillionTinyTasksEachRunExactlyOnce) {
  constexpr std::size_t kTasks = 1'000'000;
  std::vector<std::atomic<std::uint8_t>> runs(kTasks);
  Countdown done(kTasks);
  Scheduler s(with_workers(2));
  s.block_on(spawn_all(runs, done));
  ASSERT_TRUE(done.wait()) << done.left() << " tasks never ran";
  std::size_t once = 0;
  for (const auto& r : runs) once += r.load() == 1;
  EXPECT_EQ(once, kTasks);
  const SchedulerStats st = s.stats();
  EXPECT_GE(st.spawned, kTasks);
  // The local queue holds 256: the rest overflowed to the global queue, half a queue at a time.
  EXPECT_GT(st.global_pushes, 0u);
}

Task<void> burn_and_record(std::atomic<int>* per_worker, int iterations, Countdown& done) {
  static std::atomic<std::uint64_t> sink{0};
  sink.fetch_add(burn(iterations), std::memory_order_relaxed);
  per_worker[current_worker_index()].fetch_add(1, std::memory_order_relaxed);
  done.arrive();
  co_return;
}

// All work is spawned by one coroutine, on one worker, in batches that fit its local queue (so
// nothing overflows to the global queue): the other worker only gets work by stealing.
Task<void> imbalanced(std::atomic<int>* per_worker, int batches, int batch, Countdown& done) {
  for (int b = 0; b < batches; ++b) {
    const long target = done.left() - batch;
    for (int i = 0; i < batch; ++i) spawn(burn_and_record(per_worker, 20'000, done));
    while (done.left() > target) co_await yield();
  }
}

TEST(CoroScheduler, ImbalancedLoadIsStolenAndShared) {
  constexpr int kBatches = 100;
  constexpr int kBatch = 200;
  std::atomic<int> per_worker[2] = {0, 0};
  Countdown done(kBatches * kBatch);
  Scheduler s(with_workers(2));
  s.block_on(imbalanced(per_worker, kBatches, kBatch, done));
  ASSERT_TRUE(done.wait());
  const SchedulerStats st = s.stats();
  const int total = per_worker[0] + per_worker[1];
  EXPECT_EQ(total, kBatches * kBatch);
  EXPECT_GT(st.steals, 0u);
  for (int w = 0; w < 2; ++w) {
    EXPECT_GE(per_worker[w] * 10, total * 3)
        << "worker " << w << " ran " << per_worker[w] << " of " << total << " tasks; steals "
        << st.steals << ", stolen " << st.stolen;
  }
}

Task<void> signal_done(Countdown& done) {
  done.arrive();
  co_return;
}

// A thread outside the scheduler hands in one task at a time and waits for it, so between two
// tasks every worker goes idle (parks in epoll_wait): each task needs a wake-up, and a lost one
// would leave the task unrun until the bound.
TEST(CoroScheduler, NoLostWakeUpsFromOutside) {
  constexpr int kRounds = 20'000;
  Scheduler s(with_workers(2));
  for (int i = 0; i < kRounds; ++i) {
    Countdown done(1);
    s.spawn(signal_done(done));
    ASSERT_TRUE(done.wait()) << "round " << i << ": the task never ran (lost wake-up)";
  }
  const SchedulerStats st = s.stats();
  EXPECT_GT(st.parks, 0u);
  EXPECT_GT(st.wakeups, 0u);
}

Task<void> ping(Event& mine, Event& theirs, int rounds, Countdown& done) {
  for (int i = 0; i < rounds; ++i) {
    theirs.set();
    co_await mine.wait();
  }
  done.arrive();
}

Task<void> pong(Event& mine, Event& theirs, int rounds, Countdown& done) {
  for (int i = 0; i < rounds; ++i) {
    co_await mine.wait();
    theirs.set();
  }
  done.arrive();
}

// Pairs of coroutines hand control back and forth on two workers: pairs get stolen, workers
// park and are woken, and every hand-off is a chance to lose a wake-up.
TEST(CoroScheduler, NoLostWakeUpsInPingPongAcrossWorkers) {
  constexpr int kPairs = 8;
  constexpr int kRounds = 20'000;
  Scheduler s(with_workers(2));
  std::vector<Event> events(2 * kPairs);
  Countdown done(2 * kPairs);
  for (int p = 0; p < kPairs; ++p) {
    Event& a = events[2 * static_cast<std::size_t>(p)];
    Event& b = events[2 * static_cast<std::size_t>(p) + 1];
    s.spawn(ping(a, b, kRounds, done));
    s.spawn(pong(b, a, kRounds, done));
  }
  ASSERT_TRUE(done.wait()) << done.left() << " coroutines stalled (lost wake-up)";
}

Task<void> hop(int hops, Countdown& done) {
  for (int i = 0; i < hops; ++i) {
    co_await sleep_for(0us);
    co_await yield();
  }
  done.arrive();
}

// Many short tasks on four workers: queues fill, overflow, are stolen, workers park and wake.
TEST(CoroScheduler, NoLostWakeUpsUnderChurn) {
  constexpr int kTasks = 2'000;
  Scheduler s(with_workers(4));
  Countdown done(kTasks);
  for (int i = 0; i < kTasks; ++i) s.spawn(hop(50, done));
  ASSERT_TRUE(done.wait()) << done.left() << " tasks stalled";
}

Task<void> take_turns(int id, int turns, std::vector<int>& order, Countdown& done) {
  for (int i = 0; i < turns; ++i) {
    order.push_back(id);  // one worker: no data race
    co_await yield();
  }
  done.arrive();
}

Task<void> start_two(std::vector<int>& order, Countdown& done) {
  spawn(take_turns(1, 5, order, done));
  spawn(take_turns(2, 5, order, done));
  co_return;
}

TEST(CoroScheduler, YieldLetsTheOthersRun) {
  Scheduler s(with_workers(1));
  std::vector<int> order;
  Countdown done(2);
  s.block_on(start_two(order, done));
  ASSERT_TRUE(done.wait());
  EXPECT_EQ(order, (std::vector<int>{1, 2, 1, 2, 1, 2, 1, 2, 1, 2}));
}

// ---- timers -----------------------------------------------------------------------------

Task<void> wake_at(TimePoint when, int id, std::mutex& m, std::vector<int>& order,
                   std::vector<bool>& early, Countdown& done) {
  co_await sleep_until(when);
  const bool too_early = Clock::now() < when;
  {
    std::lock_guard lock(m);
    order.push_back(id);
    early[static_cast<std::size_t>(id)] = too_early;
  }
  done.arrive();
}

TEST(CoroTimers, FireInDeadlineOrderAndNeverEarly) {
  constexpr int kTimers = 50;
  Scheduler s(with_workers(1));
  std::vector<int> ids(kTimers);
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), std::mt19937(7));
  std::mutex m;
  std::vector<int> order;
  std::vector<bool> early(kTimers, false);
  Countdown done(kTimers);
  const TimePoint base = Clock::now() + 20ms;
  for (int id : ids) s.spawn(wake_at(base + id * 2ms, id, m, order, early, done));
  ASSERT_TRUE(done.wait());
  std::vector<int> sorted(kTimers);
  std::iota(sorted.begin(), sorted.end(), 0);
  EXPECT_EQ(order, sorted);
  EXPECT_EQ(std::count(early.begin(), early.end(), true), 0) << "a timer fired before its deadline";
  EXPECT_GE(s.stats().timers_fired, static_cast<std::uint64_t>(kTimers));
}

// ---- blocking ---------------------------------------------------------------------------

// One worker. The blocking call waits for something only another task can do: if blocking()
// held the worker, that task could never run and the call would give up at its bound.
TEST(CoroBlocking, ABlockingCallDoesNotStopOtherTasks) {
  Scheduler s(with_workers(1));
  std::mutex m;
  std::condition_variable cv;
  bool other_ran = false;
  auto wait_for_other = [&] {
    std::unique_lock lock(m);
    return cv.wait_for(lock, kBound, [&] { return other_ran; });
  };
  auto blocker = [&]() -> Task<bool> { co_return co_await blocking(wait_for_other); };
  auto other = [&]() -> Task<void> {
    std::lock_guard lock(m);
    other_ran = true;
    cv.notify_all();
    co_return;
  };
  auto both = [&]() -> Task<bool> {
    Task<bool> b = blocker();
    Task<void> o = other();
    spawn(std::move(o));
    co_return co_await std::move(b);
  };
  Task<bool> start = both();
  EXPECT_TRUE(s.block_on(std::move(start))) << "the other task never ran while fn blocked";
  const SchedulerStats st = s.stats();
  EXPECT_EQ(st.blocking_handoffs, 1u);
  EXPECT_GE(st.blocking_threads, 1u);
}

// Four blocking calls in flight at once run on four pool threads at once (a count, not a time:
// each call waits until all four have started).
TEST(CoroBlocking, BlockingCallsRunConcurrently) {
  constexpr int kCalls = 4;
  Scheduler s(with_workers(2));
  std::mutex m;
  std::condition_variable cv;
  int started = 0;
  auto meet = [&] {
    std::unique_lock lock(m);
    ++started;
    cv.notify_all();
    return cv.wait_for(lock, kBound, [&] { return started == kCalls; });
  };
  Countdown done(kCalls);
  std::atomic<int> met{0};
  auto call = [&]() -> Task<void> {
    if (co_await blocking(meet)) met.fetch_add(1);
    done.arrive();
  };
  for (int i = 0; i < kCalls; ++i) s.spawn(call());
  ASSERT_TRUE(done.wait());
  EXPECT_EQ(met.load(), kCalls);
  EXPECT_GE(s.stats().blocking_threads, static_cast<std::uint64_t>(kCalls));
}

TEST(CoroBlocking, ResultAndExceptionComeBack) {
  Scheduler s;
  auto seven = [] { return 7; };
  auto throws = []() -> int { throw std::logic_error("in the pool"); };
  auto run = [&]() -> Task<int> {
    int v = co_await blocking(seven);
    try {
      v += co_await blocking(throws);
    } catch (const std::logic_error&) {
      v += 100;
    }
    co_return v;
  };
  Task<int> t = run();
  EXPECT_EQ(s.block_on(std::move(t)), 107);
}

// ---- sockets ----------------------------------------------------------------------------

// An InputBuffer like Connection's: holds a buffer only while it reads.
struct TestBuffer {
  std::string data;
  std::vector<char> buffer;
  int releases = 0;
  std::span<char> read_space() {
    buffer.resize(4096);
    return buffer;
  }
  void release_idle_buffers() {
    buffer.clear();
    buffer.shrink_to_fit();
    ++releases;
  }
};

struct SocketPair {
  SocketPair() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
      throw std::runtime_error("socketpair");
    }
    a = UniqueFd(fds[0]);
    b = UniqueFd(fds[1]);
  }
  UniqueFd a, b;
};

Task<std::string> read_until_eof(UniqueFd fd, TestBuffer& buf) {
  Socket sock(std::move(fd));
  for (;;) {
    const IoResult r = co_await sock.read(buf, TimePoint::max());
    if (r.again()) continue;
    if (!r.ok() || r.n == 0) break;
    buf.data.append(buf.buffer.data(), static_cast<std::size_t>(r.n));
  }
  co_return buf.data;
}

TEST(CoroSocket, ReadWaitsForThePollerAndHoldsNoBufferWhileWaiting) {
  Scheduler s(with_workers(2));
  SocketPair p;
  TestBuffer buf;
  std::thread writer([fd = p.b.get()] {
    for (int i = 0; i < 5; ++i) {
      std::this_thread::sleep_for(10ms);  // let the reader wait
      const char chunk[] = "hello";
      if (::write(fd, chunk, 5) != 5) std::abort();
    }
    ::shutdown(fd, SHUT_WR);
  });
  Task<std::string> reader = read_until_eof(std::move(p.a), buf);
  EXPECT_EQ(s.block_on(std::move(reader)), "hellohellohellohellohello");
  writer.join();
  EXPECT_GT(buf.releases, 0) << "the buffer was never handed back before a wait";
  EXPECT_GT(s.stats().poll_readied, 0u);
}

Task<IoResult> read_with_deadline(UniqueFd fd, TestBuffer& buf, TimePoint deadline) {
  Socket sock(std::move(fd));
  IoResult r;
  do {
    r = co_await sock.read(buf, deadline);
  } while (r.again());
  co_return r;
}

TEST(CoroSocket, ReadTimesOutAtItsDeadline) {
  Scheduler s;
  SocketPair p;
  TestBuffer buf;
  const TimePoint deadline = Clock::now() + 30ms;
  Task<IoResult> t = read_with_deadline(std::move(p.a), buf, deadline);
  const IoResult r = s.block_on(std::move(t));
  EXPECT_TRUE(r.timed_out()) << "n=" << r.n << " error=" << r.error;
  EXPECT_GE(Clock::now(), deadline);
}

Task<std::size_t> write_all(UniqueFd fd, std::size_t total) {
  Socket sock(std::move(fd));
  std::vector<char> chunk(64 * 1024, 'z');
  std::size_t sent = 0;
  while (sent < total) {
    const iovec iov{chunk.data(), std::min(chunk.size(), total - sent)};
    const IoResult r = co_await sock.writev(&iov, 1, TimePoint::max());
    if (r.again()) continue;
    if (!r.ok()) break;
    sent += static_cast<std::size_t>(r.n);
  }
  co_return sent;
}

Task<void> read_all(UniqueFd fd, std::size_t total, std::atomic<std::size_t>& got,
                    Countdown& done) {
  Socket sock(std::move(fd));
  TestBuffer buf;
  std::size_t n = 0;
  while (n < total) {
    const IoResult r = co_await sock.read(buf, TimePoint::max());
    if (r.again()) continue;
    if (!r.ok() || r.n == 0) break;
    n += static_cast<std::size_t>(r.n);
  }
  got = n;
  done.arrive();
}

// Far more than the socket buffers hold: the writer must wait for output readiness repeatedly.
TEST(CoroSocket, WriterWaitsForSpaceAndResumes) {
  constexpr std::size_t kBytes = 8 * 1024 * 1024;
  Scheduler s(with_workers(2));
  SocketPair p;
  std::atomic<std::size_t> got{0};
  Countdown done(1);
  s.spawn(read_all(std::move(p.b), kBytes, got, done));
  EXPECT_EQ(s.block_on(write_all(std::move(p.a), kBytes)), kBytes);
  ASSERT_TRUE(done.wait());
  EXPECT_EQ(got.load(), kBytes);
  EXPECT_GT(s.stats().poll_readied, 0u) << "nobody ever waited: the test did not test";
}

// ---- shutdown ---------------------------------------------------------------------------

struct DestroyFlag {
  std::atomic<bool>& flag;
  ~DestroyFlag() { flag = true; }
};

Task<void> wait_forever(UniqueFd fd, std::atomic<bool>& destroyed, Countdown& waiting) {
  DestroyFlag guard{destroyed};
  Socket sock(std::move(fd));
  TestBuffer buf;
  waiting.arrive();
  for (;;) {
    const IoResult r = co_await sock.read(buf, TimePoint::max());
    if (!r.again()) break;
  }
}

// A task suspended for good (a connection nobody talks to) is destroyed with the scheduler, so
// its locals run their destructors and its socket closes.
TEST(CoroScheduler, DestroysSuspendedTasksAtShutdown) {
  std::atomic<bool> destroyed{false};
  SocketPair p;
  {
    Scheduler s(with_workers(2));
    Countdown waiting(1);
    s.spawn(wait_forever(std::move(p.a), destroyed, waiting));
    ASSERT_TRUE(waiting.wait());
    std::this_thread::sleep_for(10ms);
    EXPECT_FALSE(destroyed);
  }
  EXPECT_TRUE(destroyed);
  char c;
  EXPECT_EQ(::read(p.b.get(), &c, 1), 0) << "the peer did not see the socket close";
}

// stop(grace) gives up on a blocking call that is still running; the destructor that follows
// must not wait for it either (it used to call stop() again, with no limit: a hang).
TEST(CoroScheduler, DestructorAfterAStopThatTimedOutDoesNotWait) {
  std::mutex m;
  std::condition_variable cv;
  bool release = false;
  std::atomic<bool> call_done{false};
  Countdown entered(1);
  auto hold = [&] {
    entered.arrive();
    {
      std::unique_lock lock(m);
      cv.wait_for(lock, kBound, [&] { return release; });
    }
    call_done = true;  // last: the test's locals may go once this is seen
  };
  auto task = [&]() -> Task<void> {
    auto call = hold;
    co_await blocking(call);
  };
  auto s = std::make_unique<Scheduler>(with_workers(1));
  s->spawn(task());
  ASSERT_TRUE(entered.wait());
  EXPECT_FALSE(s->stop(10ms)) << "the blocking call still runs";
  bool destroyed = false;
  std::thread destroyer([&] {
    s.reset();
    std::lock_guard lock(m);
    destroyed = true;
    cv.notify_all();
  });
  {
    std::unique_lock lock(m);  // a bound for a hang, not a timing: it returns at once
    EXPECT_TRUE(cv.wait_for(lock, 5s, [&] { return destroyed; }))
        << "~Scheduler waited for the blocking call";
  }
  {
    std::lock_guard lock(m);
    release = true;
    cv.notify_all();
  }
  destroyer.join();
  for (int i = 0; i < 3000 && !call_done; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(call_done);
}

Task<void> close_now(UniqueFd fd) {
  fd.reset();
  co_return;
}

// Connection churn: each socket waits once with a far deadline (a header timer), then its peer
// closes. One worker, so the closer runs only after the reader has armed its deadline.
Task<std::size_t> churn(int sockets) {
  for (int i = 0; i < sockets; ++i) {
    SocketPair p;
    Socket sock(std::move(p.a));
    spawn(close_now(std::move(p.b)));
    TestBuffer buf;
    IoResult r;
    do {
      r = co_await sock.read(buf, Clock::now() + 60s);
    } while (r.again());
  }
  SocketPair p;  // a live deadline still fires after the sweeps
  TestBuffer buf;
  Task<IoResult> last = read_with_deadline(std::move(p.a), buf, Clock::now() + 20ms);
  const IoResult r = co_await std::move(last);
  co_return r.timed_out() ? 1 : 0;
}

// Timer entries of closed sockets are dropped: the heap stays bounded by the live sockets (a
// count: 2000 closed sockets, at most one deadline alive at a time), not by the churn.
TEST(CoroTimers, DeadSocketDeadlinesAreDroppedUnderChurn) {
  constexpr int kSockets = 2000;
  Scheduler s(with_workers(1));
  Task<std::size_t> t = churn(kSockets);
  EXPECT_EQ(s.block_on(std::move(t)), 1u) << "the live deadline did not fire";
  const SchedulerStats st = s.stats();
  EXPECT_LE(st.timers_pending, 64u) << "dead timer entries pile up";
  EXPECT_EQ(st.timers_fired, 1u);
}

}  // namespace
}  // namespace iolab::coro

namespace iolab::coro {
namespace {

// The latency probe of claim C15 (IOLAB_SCHED_PROBE_MS, bench/iolab_bench/probes.py): off, the
// scheduler prints nothing at stop; on, one line with the samples it took and one resumption
// count per worker, counts that can be checked without judging any timing.
TEST(CoroScheduler, LatencyProbePrintsSamplesAndResumesPerWorker) {
  ::unsetenv("IOLAB_SCHED_PROBE_MS");
  {
    testing::internal::CaptureStderr();
    SchedulerOptions two;
    two.workers = 2;
    Scheduler off(two);
    off.stop();
    EXPECT_EQ(testing::internal::GetCapturedStderr().find("scheduler probe"), std::string::npos);
  }
  ::setenv("IOLAB_SCHED_PROBE_MS", "1", 1);
  testing::internal::CaptureStderr();
  SchedulerOptions two;
  two.workers = 2;
  Scheduler on(two);
  std::this_thread::sleep_for(50ms);  // about 50 probes; one is enough
  on.stop();
  ::unsetenv("IOLAB_SCHED_PROBE_MS");
  const std::string err = testing::internal::GetCapturedStderr();
  unsigned long samples = 0, a = 0, b = 0;
  const auto at = err.find("coro scheduler probe: samples=");
  ASSERT_NE(at, std::string::npos) << err;
  ASSERT_EQ(std::sscanf(err.c_str() + at, "coro scheduler probe: samples=%lu", &samples), 1);
  EXPECT_GE(samples, 1u);
  const auto resumes = err.find("resumes=", at);
  ASSERT_NE(resumes, std::string::npos) << err;
  ASSERT_EQ(std::sscanf(err.c_str() + resumes, "resumes=%lu,%lu", &a, &b), 2) << err;
  EXPECT_GE(a + b, samples);  // each sample is one resumption after its yield
}

}  // namespace
}  // namespace iolab::coro
