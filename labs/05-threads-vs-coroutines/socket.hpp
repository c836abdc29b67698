// lab05::Socket: a non-blocking socket registered with the scheduler's poller, for lab 05's
// coroutine server. Not part of the exercise: the awaitable that waits on it is readiness.hpp.
#pragma once

#include "io.hpp"
#include "net.hpp"

namespace iolab::lab05 {

using coro::IoResult;
namespace pd = coro::detail;  // the poller's side: IoState and its slot values

// A non-blocking socket registered (once, edge-triggered) with the scheduler's poller.
class Socket {
 public:
  explicit Socket(UniqueFd fd) : fd_(std::move(fd)), io_(pd::register_socket(fd_.get())) {}
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket() {
    fd_.reset();  // close(2) also takes it out of the epoll set
    if (io_ != nullptr) pd::release_socket(io_);
  }
  int fd() const { return fd_.get(); }
  bool ok() const { return io_ != nullptr; }
  pd::IoState& io() { return *io_; }

 private:
  UniqueFd fd_;
  pd::IoState* io_;
};

}  // namespace iolab::lab05
