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

Task<void> run_work(DeferredWork work) {
  // `run` is a named lambda, not a temporary: see blocking() in scheduler.hpp for why.
  auto run = [&work] { work.run(); };
  co_await blocking(run);
}

}  // namespace iolab::coro
