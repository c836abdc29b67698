// The readiness awaitable behind every coro::Socket operation; include io.hpp, which includes this
// after Socket. Its three rules:
//   1. Try the system call first (await_ready): the bytes are usually there already, and under
//      edge-triggered epoll bytes already queued raise no new edge to wait for.
//   2. Wait only when the call said EAGAIN (await_suspend). An edge that came meanwhile left
//      kReady in the slot: the compare-and-swap fails and the coroutine tries again.
//   3. Publish last: once the handle is in the slot another worker may resume the coroutine,
//      in whose frame this awaiter lives, so everything (the deadline's timer) is armed before.
// In a folder of its own, found on the include path, so that lab 05 builds server_coro with the
// student's version instead (labs/05-threads-vs-coroutines/exercise/io_awaiter.hpp).
#pragma once

namespace iolab::coro {

// The awaiter behind every socket operation. Op supplies: kDirection (0 read, 1 write),
// `ssize_t attempt(Socket&)`, `void before_wait()` and `std::size_t offered` (bytes the last
// attempt offered to read; 0 when the drain rule does not apply).
//
// Slot and deadline operations are seq_cst: a timer that fires resets `armed` and then looks at
// the slot, a waiter looks at the slot and then re-arms, so one of them always sees the other.
template <class Op>
class IoAwaiter {
 public:
  IoAwaiter(Socket& sock, Op op, TimePoint deadline) : sock_(sock), op_(op), deadline_(deadline) {}

  bool await_ready() {
    if (sock_.io_ == nullptr) {  // never registered: nothing to wait on
      result_ = {-1, sock_.error_};
      done_ = true;
      return true;
    }
    if (Op::kDirection == 0 && !sock_.may_read_ &&
        !sock_.io_->peer_closed.load(std::memory_order_relaxed)) {
      op_.before_wait();  // drained: wait for the next edge holding no buffer
      return false;
    }
    return try_once();
  }

  bool await_suspend(std::coroutine_handle<> h) {
    std::atomic<std::uintptr_t>& slot = sock_.io_->slot[Op::kDirection];
    for (;;) {
      if (deadline_ != TimePoint::max()) detail::arm_deadline(*sock_.io_, deadline_);
      std::uintptr_t seen = detail::kNil;
      if (slot.compare_exchange_strong(seen, reinterpret_cast<std::uintptr_t>(h.address()),
                                       std::memory_order_seq_cst)) {
        return true;  // published: from here on another worker may resume h; touch nothing
      }
      if (slot.exchange(detail::kNil, std::memory_order_seq_cst) == detail::kTimedOut &&
          Clock::now() >= deadline_) {
        result_ = {-1, ETIMEDOUT};
        done_ = true;  // await_resume returns it as it is (the slot is already taken)
        return false;
      }
      if (Op::kDirection == 0) sock_.may_read_ = true;  // an edge came meanwhile: try again
      if (try_once()) return false;
    }
  }

  IoResult await_resume() {
    if (!done_) {  // woken by an edge or by the deadline
      const std::uintptr_t why =
          sock_.io_->slot[Op::kDirection].exchange(detail::kNil, std::memory_order_seq_cst);
      if (Op::kDirection == 0) sock_.may_read_ = true;
      if (why == detail::kTimedOut && Clock::now() >= deadline_) {
        result_ = {-1, ETIMEDOUT};
      } else if (!try_once()) {
        result_ = {-1, EAGAIN};  // a stale edge, or an early timer: the caller waits again
      }
    }
    return result_;
  }

 private:
  // One system call; false when it would block (the caller then waits).
  bool try_once() {
    for (;;) {
      const ssize_t n = op_.attempt(sock_);
      if (n >= 0) {
        if (n > 0 && static_cast<std::size_t>(n) < op_.offered) sock_.may_read_ = false;
        result_ = {n, 0};
        done_ = true;
        return true;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (Op::kDirection == 0) sock_.may_read_ = false;
        op_.before_wait();
        return false;
      }
      result_ = {-1, errno};
      done_ = true;
      return true;
    }
  }

  Socket& sock_;
  Op op_;
  TimePoint deadline_;
  IoResult result_;
  bool done_ = false;
};

}  // namespace iolab::coro
