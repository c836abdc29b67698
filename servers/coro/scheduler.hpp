// An M:N coroutine scheduler in the spirit of Go's runtime (GMP): N worker threads run any
// number of coroutines.
//
// The pieces, and the Go names they follow:
//   - Each worker (a P with its M) has a bounded local run queue (run_queue.hpp); a global
//     queue (a deque under a mutex) takes what overflows and what other threads hand in.
//   - A worker looks for work in this order: its local queue (every 61st time the global queue
//     first, so nothing starves), due timers, the global queue, then, if another worker is
//     busy, the poller without blocking and stealing half of a random victim's queue. After a
//     yield, and every 61st time, it also asks the poller (without blocking) if nobody has for
//     a millisecond, so coroutines waiting on sockets get their turn behind a busy one.
//   - Spinning: a worker looking for work to steal is "spinning". Whoever makes work runnable
//     wakes an idle worker only when nobody spins (the spinner will find the work) and there
//     is an idle worker; a spinner that finds work wakes the next one if it was the last. Waking
//     is a cross-CPU wake-up, dearer than most of the work it hands over, so it is rationed.
//   - The poller (netpoller) is one epoll instance shared by all workers. Sockets are
//     registered once, edge-triggered, for reading and writing. An idle worker parks *in*
//     epoll_wait, with the timeout of the earliest timer; the kernel wakes exactly one waiter per
//     event. An idle worker is woken for new run-queue work through an eventfd in the same
//     epoll set (netpollBreak).
//   - No lost wake-ups: a parking worker (1) counts itself idle, (2) stops spinning, (3) looks at
//     every queue again, then sleeps; a producer (a) pushes, then (b) reads the idle and spinning
//     counts. All of it is seq_cst, so either (3) sees the push or (b) sees the idle worker.
//   - Timers (`co_await sleep_for(d)` and socket deadlines) live in one heap under a mutex,
//     fired by whichever worker finds them due.
//   - `co_await blocking(fn)` hands fn to a pool of threads (grown on demand, like the Ms Go
//     starts for blocking system calls); the worker goes on with other coroutines, and when fn
//     returns the pool thread puts the coroutine back on the global queue (a Waker).
//   - Coroutines are always resumed from a worker's loop (or inline by an awaiting parent that
//     it returns to), never through chains of symmetric transfers: see task.hpp.
//
// Rules for awaiters (each one has bitten someone): a coroutine handed to a queue, the poller,
// a timer or the pool may be resumed by another worker before await_suspend returns, so publish
// the handle last and never touch the awaiter (it lives in the frame) afterwards.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "clock.hpp"
#include "task.hpp"

namespace iolab::coro {

struct SchedulerOptions {
  int workers = 1;
  std::vector<int> pin;            // worker i runs on pin[i % pin.size()]; empty: not pinned
  int max_blocking_threads = 256;  // threads of the blocking pool, started on demand
};

// Counters, summed over workers. Each is written by one thread (or with a relaxed RMW when
// other threads also count it) and read with relaxed loads: a snapshot, not an atomic cut.
struct SchedulerStats {
  std::uint64_t spawned = 0;       // tasks handed to spawn()
  std::uint64_t finished = 0;      // spawned tasks that ran to the end
  std::uint64_t resumes = 0;       // coroutine resumptions by worker loops
  std::uint64_t steals = 0;        // successful steals (each moves half a queue)
  std::uint64_t stolen = 0;        // coroutines moved by them
  std::uint64_t parks = 0;         // a worker went idle and blocked in epoll_wait
  std::uint64_t wakeups = 0;       // idle workers woken through the eventfd
  std::uint64_t polls = 0;         // epoll_wait calls, blocking or not
  std::uint64_t poll_readied = 0;  // coroutines the poller made runnable
  std::uint64_t timers_fired = 0;
  std::uint64_t global_pushes = 0;      // coroutines put on the global queue
  std::uint64_t blocking_handoffs = 0;  // co_await blocking(fn)
  std::uint64_t blocking_threads = 0;   // threads the blocking pool started
  std::uint64_t timers_pending = 0;     // entries in the timer heap (dead ones are dropped)
  std::vector<std::uint64_t> resumes_per_worker;
  FrameStats frames;
};

namespace detail {

struct SchedulerState;
struct Worker;

// The worker running on this thread (nullptr elsewhere).
Worker* current_worker() noexcept;
SchedulerState& current_state();  // std::terminate()s off a worker thread

// Puts a suspended coroutine at the back of this worker's run queue.
void ready_here(std::coroutine_handle<> h);
// Resumes `h` on a worker at or after `when`.
void add_timer(TimePoint when, std::coroutine_handle<> h);
void spawn_on(SchedulerState& state, std::coroutine_handle<Promise<void>> root);
// Makes a suspended coroutine of `state` runnable: on this worker's queue when called on one
// of its workers, else on the global queue; wakes an idle worker if nobody spins.
void make_runnable(SchedulerState& state, std::coroutine_handle<> h);

// Small synchronisation for threads outside the scheduler (block_on).
class Signal {
 public:
  void notify() {
    std::lock_guard lock(mutex_);
    done_ = true;
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [this] { return done_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
};

template <class T>
Task<void> complete_into(Task<T> task, std::optional<T>& out, std::exception_ptr& error,
                         Signal& done) {
  try {
    out.emplace(co_await std::move(task));
  } catch (...) {
    error = std::current_exception();
  }
  done.notify();
}

inline Task<void> complete_into(Task<void> task, std::exception_ptr& error, Signal& done) {
  try {
    co_await std::move(task);
  } catch (...) {
    error = std::current_exception();
  }
  done.notify();
}

}  // namespace detail

class Scheduler {
 public:
  // Starts the workers. Throws std::system_error when epoll, eventfds or threads fail.
  explicit Scheduler(SchedulerOptions options = {});
  // stop() with no time limit, then destroys the tasks that never finished. After a stop(grace)
  // that returned false it waits no more: if blocking work still runs, the state is abandoned
  // (kept alive for the pool threads, never freed) instead of hanging.
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Runs `task` detached: it destroys itself when it finishes. From any thread.
  void spawn(Task<void> task);

  // From a thread that is not a worker: runs `task` and blocks until it finishes.
  template <class T>
  T block_on(Task<T> task) {
    detail::Signal done;
    std::exception_ptr error;
    if constexpr (std::is_void_v<T>) {
      spawn(detail::complete_into(std::move(task), error, done));
      done.wait();
      if (error) std::rethrow_exception(error);
    } else {
      std::optional<T> out;
      spawn(detail::complete_into(std::move(task), out, error, done));
      done.wait();
      if (error) std::rethrow_exception(error);
      return std::move(*out);
    }
  }

  // Stops the workers (the coroutines they were running stay suspended) and waits up to
  // `grace` for the blocking pool to finish what it runs. Returns true when nothing runs any
  // more; the destructor then destroys the suspended tasks. False: blocking work is still
  // running, so the suspended tasks are left alone (the process should exit).
  bool stop(std::chrono::milliseconds grace = std::chrono::milliseconds::max());

  SchedulerStats stats() const;
  int workers() const;
  detail::SchedulerState& state() { return *state_; }

 private:
  std::unique_ptr<detail::SchedulerState> state_;
};

// Spawns onto the scheduler of the calling worker (from inside a task).
void spawn(Task<void> task);
// Index of the worker running the caller, -1 on other threads.
int current_worker_index() noexcept;

// co_await yield(): to the back of this worker's run queue, so the others get a turn (those
// the poller has ready too, if it was not asked for a millisecond).
struct YieldAwaiter {
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) const { detail::ready_here(h); }
  void await_resume() const noexcept {}
};
inline YieldAwaiter yield() { return {}; }

// co_await sleep_until(t) / sleep_for(d): suspends the coroutine, not the worker.
struct SleepAwaiter {
  TimePoint when;
  bool await_ready() const noexcept { return when <= Clock::now(); }
  void await_suspend(std::coroutine_handle<> h) const { detail::add_timer(when, h); }
  void await_resume() const noexcept {}
};
inline SleepAwaiter sleep_until(TimePoint when) { return {when}; }
template <class Rep, class Period>
SleepAwaiter sleep_for(std::chrono::duration<Rep, Period> d) {
  return {Clock::now() + std::chrono::duration_cast<Clock::duration>(d)};
}

// An auto-reset event with one waiter: `co_await ev.wait()` passes if the event is set (and
// clears it), else suspends until set() is called, from any thread. Two of them make the
// ping-pong of the switch benchmark and the wake-up tests.
class Event {
 public:
  void set() {
    std::uintptr_t old = state_.load(std::memory_order_acquire);
    for (;;) {
      if (old == kSet) return;
      const std::uintptr_t desired = old == kUnset ? kSet : kUnset;  // a waiter: take it
      if (state_.compare_exchange_weak(old, desired, std::memory_order_acq_rel)) break;
    }
    if (old != kUnset) {
      detail::make_runnable(*owner_,
                            std::coroutine_handle<>::from_address(reinterpret_cast<void*>(old)));
    }
  }

  struct Awaiter {
    Event& ev;
    bool await_ready() noexcept {
      if (ev.state_.load(std::memory_order_relaxed) != kSet) return false;  // no locked op
      std::uintptr_t expected = kSet;
      return ev.state_.compare_exchange_strong(expected, kUnset, std::memory_order_acq_rel);
    }
    bool await_suspend(std::coroutine_handle<> h) {
      ev.owner_ = &detail::current_state();
      std::uintptr_t expected = kUnset;
      if (ev.state_.compare_exchange_strong(expected, reinterpret_cast<std::uintptr_t>(h.address()),
                                            std::memory_order_acq_rel)) {
        return true;  // published: set() may resume us on another worker right away
      }
      ev.state_.store(kUnset, std::memory_order_relaxed);  // it was set meanwhile: consume it
      return false;
    }
    void await_resume() const noexcept {}
  };
  Awaiter wait() { return Awaiter{*this}; }

 private:
  static constexpr std::uintptr_t kUnset = 0;
  static constexpr std::uintptr_t kSet = 1;
  std::atomic<std::uintptr_t> state_{kUnset};  // kUnset, kSet, or the waiting coroutine
  detail::SchedulerState* owner_ = nullptr;    // the waiter's scheduler
};

// What blocking() below is made of, for an awaiter of your own (lab 11 writes one):
//   - submit_blocking(job), on a worker, returns at once; a thread of the blocking pool (started
//     on demand, at most max_blocking_threads) calls job.run() once. When no thread can start,
//     the job runs on the calling worker before submit_blocking returns.
//   - Waker(h), made on a worker: wake(), from any thread, once, puts h back on that worker's
//     scheduler, where a worker resumes it; the thread that calls wake() never runs h.
// Both usually live in the awaiter, in the coroutine's frame: wake() may let a worker resume
// and destroy that frame before it returns, so it is the last thing that touches them.
class BlockingJob {
 public:
  virtual void run() noexcept = 0;  // on a pool thread

 protected:
  ~BlockingJob() = default;
};
void submit_blocking(BlockingJob& job);

class Waker {
 public:
  Waker() = default;
  explicit Waker(std::coroutine_handle<> h) : state_(&detail::current_state()), h_(h) {}
  void wake() const { detail::make_runnable(*state_, h_); }

 private:
  detail::SchedulerState* state_ = nullptr;
  std::coroutine_handle<> h_;
};

#ifdef IOLAB_NO_BLOCKING_HELPER
template <class F>
void blocking(F&&) {
  static_assert(sizeof(F) == 0, "lab 11 builds without blocking(): write the awaiter yourself, "
                                "with submit_blocking() and Waker (above)");
}
#else
// co_await blocking(fn): runs fn() on the blocking pool and returns what it returns; the worker
// runs other coroutines meanwhile. fn must be a named object (an lvalue): g++ 12 can destroy a
// lambda temporary twice when it sits in the same full-expression as co_await, so the rvalue
// overload is deleted to make that mistake impossible.
template <class F>
class BlockingAwaiter final : public BlockingJob {
 public:
  using Result = std::invoke_result_t<F&>;
  explicit BlockingAwaiter(F& fn) : fn_(fn) {}
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    waker_ = Waker(h);
    submit_blocking(*this);  // last: the pool may resume h before this returns
  }
  Result await_resume() {
    if (error_) std::rethrow_exception(error_);
    if constexpr (!std::is_void_v<Result>) return std::move(*result_);
  }
  void run() noexcept override {
    try {
      if constexpr (std::is_void_v<Result>) {
        fn_();
      } else {
        result_.emplace(fn_());
      }
    } catch (...) {
      error_ = std::current_exception();
    }
    waker_.wake();
  }

 private:
  struct Empty {};
  F& fn_;
  Waker waker_;
  std::conditional_t<std::is_void_v<Result>, Empty, std::optional<Result>> result_;
  std::exception_ptr error_;
};
template <class F>
BlockingAwaiter<F> blocking(F& fn) {
  return BlockingAwaiter<F>(fn);
}
template <class F>
void blocking(F&& fn) = delete;  // name the callable first (see above)
#endif

}  // namespace iolab::coro
