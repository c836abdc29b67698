// Blocking work in a coroutine server (server_coro; lab 11's reference solution).
//
// The work goes to the scheduler's blocking pool (a thread started on demand, like the threads Go
// starts for blocking system calls): this coroutine suspends, the worker goes on with its run
// queue, and the pool thread makes the coroutine runnable again when the work returns. Run inline
// instead, the work would hold the worker for its whole length, and every coroutine in that
// worker's run queue would wait behind it (server_epoll_et stalls its loop the same way).
#include "run_work.hpp"

#include "scheduler.hpp"

namespace iolab::coro {
namespace {

// co_await OffTheWorker{work}: the awaiter, and the pool's job, in the coroutine's frame.
class OffTheWorker final : public BlockingJob {
 public:
  explicit OffTheWorker(DeferredWork& work) : work_(work) {}
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    waker_ = Waker(h);       // before the job is handed over: the pool may finish it at once
    submit_blocking(*this);  // nothing touches this awaiter after the hand-over
  }
  void await_resume() const noexcept {}

  // On a pool thread. Resuming the coroutine here would run the connection on this thread,
  // outside the scheduler; the waker queues it for a worker instead.
  void run() noexcept override {
    work_.run();
    waker_.wake();
  }

 private:
  DeferredWork& work_;
  Waker waker_;
};

}  // namespace

Task<void> run_work(DeferredWork work) {
  co_await OffTheWorker{work};
}

}  // namespace iolab::coro
