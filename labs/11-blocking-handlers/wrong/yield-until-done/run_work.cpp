// Lab 11, a known wrong solution: the work runs on a thread of its own, and the coroutine polls
// for its end with co_await yield(). Pings are still served (each yield lets the run queue go
// on), so the p99 stopwatch of the check before issue 30 passed it; but the worker never parks:
// it burns its CPU for as long as the work runs, one spinning coroutine per blocking call.
#include "run_work.hpp"

#include <atomic>
#include <memory>
#include <thread>

#include "scheduler.hpp"

namespace iolab::coro {

Task<void> run_work(DeferredWork work) {
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::thread([&work, done] {
    work.run();
    done->store(true, std::memory_order_release);
  }).detach();
  while (!done->load(std::memory_order_acquire)) co_await yield();
}

}  // namespace iolab::coro
