// The readiness awaitable: `co_await sock.read(attempt, deadline)` for lab 05's coroutine server.
//
// A coroutine that wants to read (or write) a non-blocking socket does three things, in order:
//
//   1. Try the system call first (await_ready). Most of the time the bytes are already there (a
//      pipelined request, a request that arrived while the last response was written) and the
//      coroutine never suspends. Under edge-triggered epoll it is also required: the edge that
//      announced those bytes may have been consumed by an earlier wait, and no new edge will come
//      for bytes that are already queued.
//   2. Wait only when the call said EAGAIN (await_suspend): put the coroutine's handle in the
//      socket's waiter slot, where the poller (on an edge) or a timer (on the deadline) will take
//      it and make it runnable. An edge may have come between the EAGAIN and now: the poller then
//      left kReady in the slot, the compare-and-swap fails, and the coroutine tries again instead
//      of sleeping through it.
//   3. Publish last. The moment the handle is in the slot, another worker may take it and resume
//      the coroutine, and this awaiter lives in that coroutine's frame. So the store of the
//      handle is the last thing await_suspend does to the frame: everything it needs afterwards
//      (the deadline's timer) is armed before.
//
// The slot of each direction moves through
//     kNil --(CAS: a coroutine waits)--> handle --(edge: exchange)--> kReady --(resumed)--> kNil
//                                              \--(deadline: CAS)--> kTimedOut --/
// (servers/coro/io.hpp has the same protocol with nginx's drain rule on top; the poller and the
// timers that complete it are in servers/coro/scheduler.cpp: notify(), fire_deadline()).
#pragma once

#include <atomic>
#include <cerrno>
#include <coroutine>
#include <cstdint>

#include "clock.hpp"
#include "socket.hpp"

namespace iolab::lab05 {

// `attempt()` makes one non-blocking system call: >= 0, or -1 with errno.
template <class F>
class ReadinessAwaiter {
 public:
  ReadinessAwaiter(Socket& sock, int direction, F& attempt, TimePoint deadline)
      : io_(sock.io()), direction_(direction), attempt_(attempt), deadline_(deadline) {}

  // EXERCISE (lab 05): this is a first draft. It serves one connection at a time with small
  // requests, and breaks two of the three rules in the header comment:
  //   rule 1: it never tries the system call first; it always waits for an edge, so whatever is
  //           already queued (connections in the listen backlog, a long pipeline, a large body)
  //           waits for an edge that never comes;
  //   rule 3: it publishes the handle, then goes on using the awaiter (arming the deadline,
  //           noting that it suspended): by then another worker may be running the coroutine,
  //           or may have finished it and freed its frame.
  // Fix both (rule 2, waiting only on EAGAIN, follows from rule 1). `make lab-05-check`.
  bool await_ready() { return false; }

  bool await_suspend(std::coroutine_handle<> h) {
    std::atomic<std::uintptr_t>& slot = io_.slot[direction_];
    for (;;) {
      std::uintptr_t expected = pd::kNil;
      if (slot.compare_exchange_strong(expected, reinterpret_cast<std::uintptr_t>(h.address()),
                                       std::memory_order_seq_cst)) {
        if (deadline_ != TimePoint::max()) pd::arm_deadline(io_, deadline_);
        suspended_ = true;
        return true;
      }
      // The slot held kReady (an edge since the EAGAIN) or kTimedOut: take it and decide.
      const std::uintptr_t seen = slot.exchange(pd::kNil, std::memory_order_seq_cst);
      if (seen == pd::kTimedOut && Clock::now() >= deadline_) {
        result_ = {-1, ETIMEDOUT};
        return false;
      }
      if (try_once()) return false;  // resume at once with the result
    }
  }

  IoResult await_resume() {
    if (!suspended_) return result_;
    // Woken by an edge or a timer: take the slot back, then see which it was.
    const std::uintptr_t why = io_.slot[direction_].exchange(pd::kNil, std::memory_order_seq_cst);
    if (why == pd::kTimedOut && Clock::now() >= deadline_) return {-1, ETIMEDOUT};
    if (try_once()) return result_;
    return {-1, EAGAIN};  // a stale edge (bytes already read) or an early timer: wait again
  }

 private:
  // One system call; false when it would block.
  bool try_once() {
    for (;;) {
      const ssize_t n = attempt_();
      if (n >= 0 || (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)) {
        result_ = {n, n >= 0 ? 0 : errno};
        done_ = true;
        return true;
      }
      if (errno != EINTR) return false;
    }
  }

  pd::IoState& io_;
  int direction_;  // 0 read, 1 write
  F& attempt_;
  TimePoint deadline_;
  IoResult result_;
  bool done_ = false;
  bool suspended_ = false;
};

// co_await read(sock, attempt, deadline) / write(...): pass a named callable (g++ 12 can destroy
// a lambda temporary twice in the same full-expression as co_await).
template <class F>
ReadinessAwaiter<F> read(Socket& sock, F& attempt, TimePoint deadline) {
  return {sock, 0, attempt, deadline};
}
template <class F>
ReadinessAwaiter<F> write(Socket& sock, F& attempt, TimePoint deadline) {
  return {sock, 1, attempt, deadline};
}

}  // namespace iolab::lab05
