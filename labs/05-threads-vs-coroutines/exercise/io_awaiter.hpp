// Lab 05's exercise: the readiness awaitable of server_coro. The lab builds the real
// servers/coro/main.cpp with this file in place of servers/coro/awaiter/io_awaiter.hpp (the
// reference). servers/coro/io.hpp includes it after Socket, whose members it uses: io_ (the
// IoState with the two waiter slots), may_read_ (the drain rule, lab 03) and error_. The
// slot protocol the poller and the timers follow on the other side is in io.hpp's header comment
// (kNil, a handle, kReady, kTimedOut); Op supplies kDirection (0 read, 1 write), attempt(Socket&)
// (one non-blocking system call), before_wait() and offered (see try_once()).
#pragma once

namespace iolab::coro {

template <class Op>
class IoAwaiter {
 public:
  IoAwaiter(Socket& sock, Op op, TimePoint deadline) : sock_(sock), op_(op), deadline_(deadline) {}

  // EXERCISE (lab 05): a first draft. It serves one connection at a time with small requests,
  // and breaks two of the three rules (README, Exercise):
  //   rule 1: it never tries the system call first: it always waits for an edge, so whatever is
  //           already queued (connections in the listen backlog, a long pipeline, a large body)
  //           waits for an edge that never comes;
  //   rule 3: await_suspend publishes the handle, then goes on using the awaiter (arming the
  //           deadline, noting that it suspended): by then another worker may be running the
  //           coroutine, or may have finished it and freed its frame.
  // Fix both (rule 2, waiting only on EAGAIN, follows from rule 1). `make lab-05-check`.
  bool await_ready() {
    if (sock_.io_ == nullptr) {  // never registered: nothing to wait on
      result_ = {-1, sock_.error_};
      return true;
    }
    if (Op::kDirection == 0 && !sock_.may_read_ &&
        !sock_.io_->peer_closed.load(std::memory_order_relaxed)) {
      op_.before_wait();  // drained (lab 03's rule): wait for the next edge holding no buffer
    }
    return false;
  }

  bool await_suspend(std::coroutine_handle<> h) {
    std::atomic<std::uintptr_t>& slot = sock_.io_->slot[Op::kDirection];
    for (;;) {
      std::uintptr_t seen = detail::kNil;
      if (slot.compare_exchange_strong(seen, reinterpret_cast<std::uintptr_t>(h.address()),
                                       std::memory_order_seq_cst)) {
        if (deadline_ != TimePoint::max()) detail::arm_deadline(*sock_.io_, deadline_);
        suspended_ = true;
        return true;
      }
      // The slot held kReady (an edge since the EAGAIN) or kTimedOut: take it and decide.
      if (slot.exchange(detail::kNil, std::memory_order_seq_cst) == detail::kTimedOut &&
          Clock::now() >= deadline_) {
        result_ = {-1, ETIMEDOUT};
        return false;
      }
      if (Op::kDirection == 0) sock_.may_read_ = true;
      if (try_once()) return false;
    }
  }

  IoResult await_resume() {
    if (!suspended_) return result_;
    // Woken by an edge or by the deadline: take the slot back, then see which it was.
    const std::uintptr_t why =
        sock_.io_->slot[Op::kDirection].exchange(detail::kNil, std::memory_order_seq_cst);
    if (Op::kDirection == 0) sock_.may_read_ = true;
    if (why == detail::kTimedOut && Clock::now() >= deadline_) return {-1, ETIMEDOUT};
    if (try_once()) return result_;
    return {-1, EAGAIN};  // a stale edge, or an early timer: the caller waits again
  }

 private:
  // One system call; false when it would block. `offered` is what the attempt offered to read:
  // a shorter read emptied the socket (the drain rule, lab 03).
  bool try_once() {
    for (;;) {
      const ssize_t n = op_.attempt(sock_);
      if (n >= 0) {
        if (n > 0 && static_cast<std::size_t>(n) < op_.offered) sock_.may_read_ = false;
        result_ = {n, 0};
        return true;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        result_ = {-1, errno};
        return true;
      }
      if (Op::kDirection == 0) sock_.may_read_ = false;
      op_.before_wait();
      return false;
    }
  }

  Socket& sock_;
  Op op_;
  TimePoint deadline_;
  IoResult result_;
  bool suspended_ = false;
};

}  // namespace iolab::coro
