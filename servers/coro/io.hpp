// Sockets for coroutines: co_await a read or a write, with a deadline, on the scheduler's poller.
//
// The pattern (libcoro's, and Go's netpoller's): try the system call first; only when it says
// EAGAIN, wait for readiness, then try again. Each socket is registered once with the shared
// epoll instance, edge-triggered for input and output, and owns an IoState: one waiter slot per
// direction that moves through
//
//     kNil --(coroutine waits: CAS)--> handle --(edge: exchange)--> kReady --(resumed)--> kNil
//                                            \--(deadline: CAS)----> kTimedOut -/
//
// An edge that comes while nobody waits leaves kReady behind, so the next waiter does not sleep
// through it. A woken coroutine always repeats the system call, so a stale edge (one for bytes
// already read) costs one EAGAIN, never a lost or wrong result: await_resume reports it as
// EAGAIN and the caller simply waits again.
//
// Drain rule (as in server_epoll_et): a read that returns less than the space offered has
// emptied the receive queue, and anything arriving later raises a new edge, so the next read
// waits for the edge first instead of spending a system call on EAGAIN. Once the peer's close
// has been seen (EPOLLRDHUP) the rule is off: a FIN that came with the last bytes raises no
// further edge, so input is read to EOF. Before waiting for
// input, the buffer object is told to release its idle buffers, so a connection that waits
// between requests holds no buffer.
//
// Deadlines: one timer per socket in the scheduler's heap, pushed only when the wanted deadline
// is earlier than the armed one (steady keep-alive traffic moves deadlines later, so it costs
// no timer work per request; a timer that fires early just wakes the waiter, which re-checks).
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <atomic>
#include <cerrno>
#include <concepts>
#include <coroutine>
#include <cstdint>
#include <span>

#include "clock.hpp"
#include "net.hpp"
#include "sys.hpp"

namespace iolab::coro {

namespace detail {

struct SchedulerState;

inline constexpr std::uintptr_t kNil = 0;
inline constexpr std::uintptr_t kReady = 1;
inline constexpr std::uintptr_t kTimedOut = 2;
inline constexpr std::int64_t kNever = INT64_MAX;

// Readiness of one descriptor, shared by the poller, the timers and the waiting coroutine.
// Recycled, never freed while the scheduler lives, so a late event or timer for a closed socket
// finds valid memory (and a different generation).
struct alignas(64) IoState {
  std::atomic<std::uintptr_t> slot[2] = {kNil, kNil};  // [0] reader, [1] writer
  std::atomic<std::int64_t> armed{kNever};  // deadline of this state's timer in the heap (ns)
  std::atomic<std::uint32_t> generation{0};
  std::atomic<bool> peer_closed{false};  // EPOLLRDHUP/HUP/ERR seen: read to EOF, drain rule off
  SchedulerState* owner = nullptr;
  IoState* next_free = nullptr;
};

// Registers with the current worker's poller; nullptr with errno set when epoll_ctl fails.
IoState* register_socket(int fd);
void release_socket(IoState* io);  // after the descriptor is closed
// Makes sure a timer fires at or before `deadline` for this state.
void arm_deadline(IoState& io, TimePoint deadline);

}  // namespace detail

// What a socket operation returned: the system call's result, or a timeout.
struct IoResult {
  ssize_t n = -1;  // >= 0: bytes (0 on read: the peer closed)
  int error = 0;   // errno when n < 0; ETIMEDOUT when the deadline passed first
  bool ok() const { return n >= 0; }
  bool timed_out() const { return n < 0 && error == ETIMEDOUT; }
  // A stale edge woke the coroutine and the retry found nothing: await again.
  bool again() const { return n < 0 && error == EAGAIN; }
};

// Where input goes: Connection has these two (connection.hpp).
template <class B>
concept InputBuffer = requires(B& b) {
  { b.read_space() } -> std::same_as<std::span<char>>;
  b.release_idle_buffers();
};

template <class Op>
class IoAwaiter;

class Socket {
 public:
  Socket() = default;
  // Takes a non-blocking socket and registers it with the current worker's scheduler. If
  // that fails (ENOMEM, ENOSPC: fs.epoll.max_user_watches), ok() is false, error() says why
  // and every operation fails with that error.
  explicit Socket(UniqueFd fd) : fd_(std::move(fd)), io_(detail::register_socket(fd_.get())) {
    if (io_ == nullptr) error_ = errno;
  }
  Socket(Socket&& other) noexcept
      : fd_(std::move(other.fd_)),
        io_(std::exchange(other.io_, nullptr)),
        may_read_(other.may_read_) {}
  Socket& operator=(Socket&&) = delete;
  ~Socket() {
    fd_.reset();  // close(2) also takes it out of the epoll set
    if (io_ != nullptr) detail::release_socket(io_);
  }
  int fd() const { return fd_.get(); }
  // Takes the descriptor away (a lingering close); events still registered for it are stale.
  UniqueFd take_fd() { return std::move(fd_); }
  bool ok() const { return io_ != nullptr; }
  int error() const { return error_; }
  detail::IoState* io_state() { return io_; }  // lab 05's publish_test watches its slots

  // co_await read(buffer, deadline): bytes read into buffer.read_space(), 0 at EOF.
  template <InputBuffer B>
  auto read(B& buffer, TimePoint deadline);
  // co_await read_with(attempt, deadline) / write_with: `attempt()` is a non-blocking system
  // call returning >= 0 or -1 with errno; it is retried after each readiness edge. Pass a named
  // object (see blocking() in scheduler.hpp for why).
  template <class F>
  auto read_with(F& attempt, TimePoint deadline);
  template <class F>
  auto write_with(F& attempt, TimePoint deadline);
  auto writev(const iovec* iov, int iovcnt, TimePoint deadline);

 private:
  template <class Op>
  friend class IoAwaiter;
  UniqueFd fd_;
  detail::IoState* io_ = nullptr;
  bool may_read_ = true;  // no EAGAIN or short read since the last input edge (drain rule)
  int error_ = 0;
};

}  // namespace iolab::coro

// IoAwaiter, the readiness awaitable: awaiter/io_awaiter.hpp (on the include path: lab 05
// swaps it).
#include "io_awaiter.hpp"

namespace iolab::coro {

namespace detail {

template <class B>
struct ReadInto {
  static constexpr int kDirection = 0;
  B* buffer;
  std::size_t offered = 0;
  ssize_t attempt(Socket& s) {
    const std::span<char> space = buffer->read_space();
    offered = space.size();
    if (space.empty()) {  // the buffer refuses input it could not hold
      errno = ENOBUFS;
      return -1;
    }
    return sys::recv(s.fd(), space.data(), space.size());
  }
  void before_wait() { buffer->release_idle_buffers(); }
};

template <class F, int Direction>
struct Call {
  static constexpr int kDirection = Direction;
  F* fn;
  std::size_t offered = 0;
  ssize_t attempt(Socket&) { return (*fn)(); }
  void before_wait() {}
};

struct Writev {
  static constexpr int kDirection = 1;
  const iovec* iov;
  int iovcnt;
  std::size_t offered = 0;
  ssize_t attempt(Socket& s) { return sys::writev(s.fd(), iov, iovcnt); }
  void before_wait() {}
};

}  // namespace detail

template <InputBuffer B>
auto Socket::read(B& buffer, TimePoint deadline) {
  return IoAwaiter<detail::ReadInto<B>>(*this, detail::ReadInto<B>{&buffer}, deadline);
}
template <class F>
auto Socket::read_with(F& attempt, TimePoint deadline) {
  return IoAwaiter<detail::Call<F, 0>>(*this, detail::Call<F, 0>{&attempt}, deadline);
}
template <class F>
auto Socket::write_with(F& attempt, TimePoint deadline) {
  return IoAwaiter<detail::Call<F, 1>>(*this, detail::Call<F, 1>{&attempt}, deadline);
}
inline auto Socket::writev(const iovec* iov, int iovcnt, TimePoint deadline) {
  return IoAwaiter<detail::Writev>(*this, detail::Writev{iov, iovcnt}, deadline);
}

}  // namespace iolab::coro
