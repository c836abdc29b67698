// A fake I/O driver for the connection state machine: a server's event loop without sockets.
//
// It owns one Connection and plays the I/O layer's part, with every choice a real kernel makes
// left to the test: how input arrives (in which splits; through read_space()/on_read(), or as a
// kernel-chosen buffer through on_input()), how many bytes each write takes (partial writes),
// when deferred work finishes, and what time it is (a fake TimePoint that only moves when told).
// Bytes "written" are collected in written(); a file region is read with pread(2) as
// sendfile(2) would send it.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "app.hpp"
#include "clock.hpp"
#include "connection.hpp"

namespace iolab::test {

inline constexpr std::size_t kUnlimited = std::numeric_limits<std::size_t>::max();

class FakeDriver {
 public:
  static constexpr TimePoint kStart = TimePoint(std::chrono::hours(1));

  FakeDriver(const App& app, const ConnectionLimits& limits, ConnectionMemory& memory,
             TimePoint start = kStart)
      : now_(start) {
    conn_.emplace(app, limits, memory, start);
  }
  FakeDriver(const FakeDriver&) = delete;
  FakeDriver& operator=(const FakeDriver&) = delete;

  Connection& conn() { return *conn_; }
  TimePoint now() const { return now_; }
  void advance(Millis d) { now_ += d; }
  // Destroys the connection (the server closed it).
  void destroy() { conn_.reset(); }

  // Delivers `bytes` through read_space()/on_read(), in reads of at most `max_read` bytes, for
  // as long as the connection offers read space. Returns how many bytes it took.
  std::size_t read(std::string_view bytes, std::size_t max_read = kUnlimited) {
    std::size_t taken = 0;
    while (taken < bytes.size()) {
      const std::size_t n = read_once(bytes.substr(taken), max_read);
      if (n == 0) break;
      taken += n;
    }
    return taken;
  }

  // One read(2): at most `max_read` bytes of `bytes`, as many as read_space() offers.
  std::size_t read_once(std::string_view bytes, std::size_t max_read = kUnlimited) {
    const std::span<char> space = conn_->read_space();
    const std::size_t n = std::min({space.size(), max_read, bytes.size()});
    if (n == 0) return 0;
    std::memcpy(space.data(), bytes.data(), n);
    ++reads_;
    conn_->on_read(n, now_);
    return n;
  }

  // The peer closed its side (recv returned 0).
  Step eof() { return conn_->on_read(0, now_); }

  // Delivers `bytes` in a buffer the kernel chose (io_uring provided buffers). The buffer is
  // poisoned after the call, as the kernel would reuse it: the connection may keep no view of it.
  Step input(std::string_view bytes) {
    kernel_buffer_.assign(bytes.begin(), bytes.end());
    const Step step = conn_->on_input(std::span<const char>(kernel_buffer_), now_);
    std::fill(kernel_buffer_.begin(), kernel_buffer_.end(), '\xAA');
    return step;
  }

  // One write of at most `max` bytes of the current output: iovecs first, then the file region.
  // Returns the bytes written (0 when there is no output).
  std::size_t write(std::size_t max = kUnlimited) {
    const Output out = conn_->output();
    if (out.empty() || max == 0) return 0;
    std::size_t n = 0;
    for (int i = 0; i < out.iovcnt && n < max; ++i) {
      const std::size_t part = std::min(out.iov[static_cast<std::size_t>(i)].iov_len, max - n);
      written_.append(static_cast<const char*>(out.iov[static_cast<std::size_t>(i)].iov_base), part);
      n += part;
    }
    if (n < max && out.file.length > 0) {
      const std::size_t part =
          static_cast<std::size_t>(std::min<std::uint64_t>(out.file.length, max - n));
      const std::size_t old = written_.size();
      written_.resize(old + part);
      const ssize_t got =
          ::pread(out.file.fd, written_.data() + old, part, static_cast<off_t>(out.file.offset));
      if (got != static_cast<ssize_t>(part)) throw std::runtime_error("pread of the file region");
      n += part;
    }
    ++writes_;
    conn_->on_written(n, now_);
    return n;
  }

  // Writes until the output is empty; returns the bytes written.
  std::size_t flush(std::size_t max_per_write = kUnlimited) {
    std::size_t total = 0;
    while (!conn_->output().empty()) total += write(max_per_write);
    return total;
  }

  // Runs like an event loop: queues `more_input`, then reads (in reads of at most `max_read`
  // bytes) while the connection wants input and input is queued, writes (at most `max_write`
  // bytes a time) when it cannot read, finishes deferred work at once (when run_work is set),
  // and delivers a queued end of input once the queued bytes are taken. Returns the step it
  // stopped at: kRead with nothing more to deliver, kWaitWork, or kClose.
  Step run(std::string_view more_input = {}, std::size_t max_read = kUnlimited,
           std::size_t max_write = kUnlimited) {
    pending_.append(more_input);
    for (;;) {
      const Step step = conn_->next();
      if (step == Step::kClose) return step;
      if (!pending_.empty() && conn_->wants_read()) {
        const std::size_t n = read_once(pending_, max_read);
        if (n > 0) {
          pending_.erase(0, n);
          continue;
        }
      }
      if (pending_.empty() && eof_queued_ && step == Step::kRead) {
        eof_queued_ = false;
        eof();
        continue;
      }
      if (step == Step::kWrite) {
        write(max_write);
        continue;
      }
      if (step == Step::kRunWork && run_work_) {
        work_.push_back(conn_->take_work());
        conn_->on_work_done(now_);
        continue;
      }
      return step;
    }
  }

  // run() delivers the end of input after the queued bytes.
  void queue_eof() { eof_queued_ = true; }
  // Whether run() finishes deferred work itself (default) or leaves it to the test.
  void set_run_work(bool run) { run_work_ = run; }

  const std::string& written() const { return written_; }
  std::string take_written() { return std::exchange(written_, {}); }
  std::size_t pending_input() const { return pending_.size(); }
  int reads() const { return reads_; }
  int writes() const { return writes_; }
  const std::vector<DeferredWork>& work_done() const { return work_; }

 private:
  TimePoint now_;
  std::optional<Connection> conn_;
  std::string pending_;
  bool eof_queued_ = false;
  bool run_work_ = true;
  std::vector<char> kernel_buffer_;
  std::string written_;
  int reads_ = 0;
  int writes_ = 0;
  std::vector<DeferredWork> work_;
};

}  // namespace iolab::test
