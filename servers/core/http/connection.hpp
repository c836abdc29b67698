// The per-connection HTTP/1.1 state machine every server drives. It never touches a socket.
//
// The I/O layer moves bytes; the connection decides what they mean:
//
//   read_space() -> the I/O layer reads into it -> on_read(n)    (n == 0: the peer closed)
//   on_input(bytes)   the same for bytes in a buffer the kernel chose (io_uring provided
//                     buffers): parsed in place, only an incomplete tail is copied and kept
//   output()  -> the I/O layer writes it (writev, then sendfile/splice) -> on_written(n)
//   take_work() -> the I/O layer runs it somewhere -> on_work_done()
//   next_deadline() / on_timeout(now)   header, idle and send-stall timers, without a clock
//
// How long a connection lives (the keep-alive limits: requests per connection, the idle timer)
// is decided in keep_alive.cpp, a file of its own so that lab 10 can swap it.
//
// The bytes output() points at stay where they are until on_written() or the destructor: a
// completion-based server may hand them to the kernel, but must not call on_read()/on_input()
// while they are in flight, since parsing appends to the same buffer (it may move).
//
// Every call returns the Step to take next: kWrite while output is pending, kRunWork when a
// handler must block, kWaitWork while that work runs elsewhere, kClose when the connection is
// finished, else kRead. Requests are processed in order; pipelined requests are answered into
// one output buffer until it passes a high-water mark or a large body is queued, then parsing
// waits for the output to drain (backpressure).
//
// Memory: request objects and responses come from ConnectionMemory::request_resource(). They
// live until their bytes are written; the resource is reset only when the output has drained
// and no request is in flight, so an arena stays valid under pipelining. The input buffer is
// acquired from ConnectionMemory on demand; release_idle_buffers() gives it back while the
// connection is idle, so an idle keep-alive connection can hold no buffer at all.
#pragma once

#include <sys/uio.h>

#include <array>
#include <cstddef>
#include <memory_resource>
#include <new>
#include <optional>
#include <span>

#include "app.hpp"
#include "clock.hpp"
#include "http_parser.hpp"

namespace iolab {

// Where a connection's memory comes from. Plain servers use HeapMemory; the pooled server
// supplies pools and a per-request arena.
class ConnectionMemory {
 public:
  virtual ~ConnectionMemory() = default;
  virtual std::pmr::memory_resource* request_resource() = 0;
  // Every object allocated from request_resource() has been destroyed.
  virtual void reset_request_resource() = 0;
  virtual std::span<char> acquire_buffer(std::size_t min_bytes) = 0;
  virtual void release_buffer(std::span<char> buffer) = 0;
};

// operator new and delete, called directly: std::pmr::new_delete_resource() takes the aligned
// overloads (a wrapper more on every allocation and free, for an alignment malloc already gives).
class HeapResource final : public std::pmr::memory_resource {
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    if (alignment <= alignof(std::max_align_t)) return ::operator new(bytes);
    return ::operator new(bytes, std::align_val_t(alignment));
  }
  // Unsized: clang declares the sized forms only with -fsized-deallocation.
  void do_deallocate(void* p, std::size_t, std::size_t alignment) override {
    if (alignment <= alignof(std::max_align_t)) return ::operator delete(p);
    ::operator delete(p, std::align_val_t(alignment));
  }
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
    return dynamic_cast<const HeapResource*>(&other) != nullptr;
  }
};

// How typical servers allocate: operator new for everything, buffers included.
class HeapMemory final : public ConnectionMemory {
 public:
  std::pmr::memory_resource* request_resource() override { return &resource_; }
  void reset_request_resource() override {}
  std::span<char> acquire_buffer(std::size_t min_bytes) override {
    return {new char[min_bytes], min_bytes};
  }
  void release_buffer(std::span<char> buffer) override { delete[] buffer.data(); }

 private:
  HeapResource resource_;
};

struct ConnectionLimits {
  Millis header_timeout{10'000};
  Millis idle_timeout{60'000};  // also bounds a stalled body read or a stalled send
  std::uint64_t max_body_bytes = 1024 * 1024;
  // Responses per connection, the last one saying "Connection: close"; 0: no limit.
  std::uint64_t keepalive_requests = 0;
};

struct Output {
  std::array<iovec, 2> iov{};  // send these bytes first (writev)
  int iovcnt = 0;
  FileRegion file;  // then this file region, when file.length > 0
  bool empty() const { return iovcnt == 0 && file.length == 0; }
};

enum class Step { kRead, kWrite, kRunWork, kWaitWork, kClose };

class Connection {
 public:
  static constexpr std::size_t kInputBufferBytes = 8 * 1024;
  static constexpr std::size_t kLargeInputBufferBytes = 32 * 1024;  // holds any legal head
  static_assert(kLargeInputBufferBytes >= http::kMaxHeadBytes);
  static constexpr std::size_t kMaxBufferedInput = 256 * 1024;      // on_input's bound
  static constexpr std::size_t kOutputHighWater = 64 * 1024;
  static constexpr std::size_t kResponseHeadReserve = 256;  // status line and our headers

  Connection(const App& app, const ConnectionLimits& limits, ConnectionMemory& memory,
             TimePoint now);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Input. read_space() is empty when the connection cannot take input now (see next()).
  std::span<char> read_space();
  Step on_read(std::size_t n, TimePoint now);
  Step on_input(std::span<const char> bytes, TimePoint now);

  // Output.
  Output output() const {
    Output o;
    if (out_sent_ < out_.size()) {
      o.iov[o.iovcnt++] = {const_cast<char*>(out_.data()) + out_sent_, out_.size() - out_sent_};
    }
    if (static_sent_ < static_body_.size()) {
      o.iov[o.iovcnt++] = {const_cast<char*>(static_body_.data()) + static_sent_,
                           static_body_.size() - static_sent_};
    }
    o.file = file_;
    return o;
  }
  Step on_written(std::size_t n, TimePoint now);

  // Deferred work (valid when next() == kRunWork).
  DeferredWork take_work();
  Step on_work_done(TimePoint now);

  // Timers (keep_alive.cpp). TimePoint::max() when no timer runs (deferred work in progress).
  TimePoint next_deadline() const;
  Step on_timeout(TimePoint now);

  // Returns the input buffer when nothing is buffered; true when the connection holds no
  // buffer afterwards.
  bool release_idle_buffers();
  bool holds_buffer() const { return !buffer_.empty(); }

  // Inline, as the two below: the I/O layer asks after every step.
  Step next() const {
    if (aborted_) return Step::kClose;
    if (has_output()) return Step::kWrite;
    if (work_ == Work::kPending) return Step::kRunWork;
    if (work_ == Work::kTaken) return Step::kWaitWork;
    if (closing_ || peer_eof_) return Step::kClose;
    return Step::kRead;
  }
  // True when more input can be taken now, even with some output pending (event loops read on
  // while their output is small).
  bool wants_read() const {
    return !aborted_ && !closing_ && !peer_eof_ && work_ == Work::kNone && !output_full();
  }
  bool timed_out() const { return timed_out_; }
  // At close: true when the peer may still be sending into a socket we are about to close (the
  // server ended the connection on an error, or bytes are buffered past the last request, or a
  // body was still arriving) and it has not closed its side. Only then is a lingering close
  // (linger.hpp) worth asking the socket about; a peer that asked to close, or closed, sends
  // nothing more.
  bool may_have_unread_input() const {
    return !peer_eof_ && (ended_on_error_ || start_ < end_ || phase_ == Phase::kBody);
  }

 private:
  enum class Phase { kHead, kBody };
  enum class Work { kNone, kPending, kTaken };

  std::string_view input() const;
  void consume(std::size_t n);
  void append_to_buffer(std::span<const char> bytes);
  bool ensure_buffer_space(std::size_t want);
  void on_bytes_arrived(std::size_t n, TimePoint now);
  void process(TimePoint now);
  bool parse_head();
  bool read_body();
  void dispatch();
  void emit(const Response& resp);
  void fail(int status);
  bool output_full() const {
    return out_.size() - out_sent_ >= kOutputHighWater || static_sent_ < static_body_.size() ||
           file_.length > 0;
  }
  bool has_output() const {
    return out_sent_ < out_.size() || static_sent_ < static_body_.size() || file_.length > 0;
  }
  void drained(TimePoint now);
  bool stays_open_after(const Response& resp);  // keep_alive.cpp: emit() asks once per response

  const App& app_;
  const ConnectionLimits& limits_;
  ConnectionMemory& memory_;

  // Input: buffer_[start_, end_) holds unprocessed bytes; external_ is a kernel-chosen buffer
  // being parsed in place by on_input() (only while it runs).
  std::span<char> buffer_;
  std::size_t start_ = 0;
  std::size_t end_ = 0;
  std::string_view external_;
  std::size_t head_scanned_ = 0;

  Phase phase_ = Phase::kHead;
  std::optional<Request> request_;  // parsed head, alive while its body is read
  bool keep_alive_ = true;
  bool echo_keep_alive_ = false;
  bool head_only_ = false;
  http::BodyKind body_kind_ = http::BodyKind::kNone;
  std::uint64_t body_remaining_ = 0;
  http::ChunkedDecoder chunked_;

  // Output: out_[out_sent_..] then static_body_[static_sent_..] then file_.
  std::pmr::string out_;
  std::size_t out_sent_ = 0;
  std::string_view static_body_;
  std::size_t static_sent_ = 0;
  FileRegion file_;

  Work work_ = Work::kNone;
  std::optional<Response> pending_;  // the response that waits for deferred work

  bool closing_ = false;   // no more requests: send what is queued, then close
  bool peer_eof_ = false;  // the peer will send nothing more
  bool timed_out_ = false;
  bool aborted_ = false;   // close now, dropping any output (timeout, overflow)

  bool ended_on_error_ = false;  // fail() answered an error and ends the connection
  std::uint64_t responses_ = 0;  // queued so far, for --keepalive-requests

  bool header_timer_running_ = true;  // from accept, and from the first byte of later requests
  TimePoint header_deadline_;
  TimePoint last_progress_;  // last byte in or out; idle and stall timers run from here
};

}  // namespace iolab
