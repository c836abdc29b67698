// Lab 05, a known wrong solution: the deadline is armed after the handle is published. With
// TimePoint::max() nothing is armed and nothing in the frame is touched after publishing, so the
// check before issue 30 (whose publish_test always passed TimePoint::max()) passed it.
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

  // Rule 1: try first; suspend only if the call would block.
  bool await_ready() { return try_once(); }

  // Rule 2 and 3: wait for an edge (or the deadline), publishing the handle last.
  bool await_suspend(std::coroutine_handle<> h) {
    std::atomic<std::uintptr_t>& slot = io_.slot[direction_];
    const bool timed = deadline_ != TimePoint::max();  // a local: read before publishing
    for (;;) {
      std::uintptr_t expected = pd::kNil;
      if (slot.compare_exchange_strong(expected, reinterpret_cast<std::uintptr_t>(h.address()),
                                       std::memory_order_seq_cst)) {
        // The mistake: the deadline is armed after publishing, from the awaiter's members,
        // while another worker may already have resumed h and reused this frame.
        if (timed) pd::arm_deadline(io_, deadline_);
        return true;
      }
      // The slot held kReady (an edge since the EAGAIN) or kTimedOut: take it and decide.
      const std::uintptr_t seen = slot.exchange(pd::kNil, std::memory_order_seq_cst);
      if (seen == pd::kTimedOut && Clock::now() >= deadline_) {
        result_ = {-1, ETIMEDOUT};
        done_ = true;  // await_resume returns it as it is (the slot is already taken)
        return false;
      }
      if (try_once()) return false;  // resume at once with the result
    }
  }

  IoResult await_resume() {
    if (done_) return result_;
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
