#include "connection.hpp"

#include <algorithm>
#include <cstring>

#include "stats.hpp"

namespace iolab {

Connection::Connection(const App& app, const ConnectionLimits& limits, ConnectionMemory& memory,
                       TimePoint now)
    : app_(app), limits_(limits), memory_(memory), out_(memory.request_resource()),
      header_deadline_(now + limits.header_timeout), last_progress_(now) {}

Connection::~Connection() {
  // Everything allocated from the request resource goes before the resource is reset.
  request_.reset();
  pending_.reset();
  std::pmr::string(memory_.request_resource()).swap(out_);
  memory_.reset_request_resource();
  if (!buffer_.empty()) memory_.release_buffer(buffer_);
}

std::string_view Connection::input() const {
  if (!external_.empty()) return external_;
  return {buffer_.data() + start_, end_ - start_};
}

void Connection::consume(std::size_t n) {
  if (!external_.empty()) {
    external_.remove_prefix(n);
    return;
  }
  start_ += n;
  if (start_ == end_) start_ = end_ = 0;
}

// Makes room for `want` more bytes after end_: compacts, then grows up to kMaxBufferedInput.
bool Connection::ensure_buffer_space(std::size_t want) {
  if (buffer_.empty()) buffer_ = memory_.acquire_buffer(std::max(want, kInputBufferBytes));
  if (buffer_.size() - end_ >= want) return true;
  const std::size_t used = end_ - start_;
  if (buffer_.size() - used >= want) {
    std::memmove(buffer_.data(), buffer_.data() + start_, used);
    start_ = 0;
    end_ = used;
    return true;
  }
  if (used + want > kMaxBufferedInput) return false;
  const std::size_t size = std::max(used + want, std::min(2 * buffer_.size(), kMaxBufferedInput));
  std::span<char> bigger = memory_.acquire_buffer(size);
  std::memcpy(bigger.data(), buffer_.data() + start_, used);
  memory_.release_buffer(buffer_);
  buffer_ = bigger;
  start_ = 0;
  end_ = used;
  return true;
}

std::span<char> Connection::read_space() {
  if (aborted_ || closing_ || peer_eof_) return {};
  if (buffer_.empty()) buffer_ = memory_.acquire_buffer(kInputBufferBytes);
  if (end_ == buffer_.size()) {
    // Full: compact, or grow once when an unfinished head needs the room. A full buffer
    // with a body or pipelined requests behind it just waits for processing to catch up.
    if (start_ > 0) {
      ensure_buffer_space(start_);
    } else if (phase_ == Phase::kHead && buffer_.size() < kLargeInputBufferBytes) {
      ensure_buffer_space(kLargeInputBufferBytes - buffer_.size());
    } else {
      return {};
    }
  }
  return buffer_.subspan(end_);
}

void Connection::on_bytes_arrived(std::size_t n, TimePoint now) {
  count(Counter::kBytesIn, n);
  last_progress_ = now;
}

Step Connection::on_read(std::size_t n, TimePoint now) {
  if (n == 0) {
    peer_eof_ = true;
    return next();
  }
  end_ += n;
  on_bytes_arrived(n, now);
  process(now);
  return next();
}

Step Connection::on_input(std::span<const char> bytes, TimePoint now) {
  if (bytes.empty()) return next();
  on_bytes_arrived(bytes.size(), now);
  if (start_ == end_) {
    // Parse straight from the kernel's buffer; keep only what is left over.
    external_ = {bytes.data(), bytes.size()};
    process(now);
    const std::string_view rest = external_;
    external_ = {};
    if (!rest.empty() && !ensure_buffer_space(rest.size())) aborted_ = true;
    if (!rest.empty() && !aborted_) {
      std::memcpy(buffer_.data() + end_, rest.data(), rest.size());
      end_ += rest.size();
    }
  } else {
    if (!ensure_buffer_space(bytes.size())) {
      aborted_ = true;  // the peer keeps pipelining while we cannot answer: drop it
      return next();
    }
    std::memcpy(buffer_.data() + end_, bytes.data(), bytes.size());
    end_ += bytes.size();
    process(now);
  }
  return next();
}

void Connection::process(TimePoint now) {
  while (!aborted_ && !closing_ && work_ == Work::kNone && !output_full()) {
    if (input().empty()) break;
    if (phase_ == Phase::kHead) {
      if (!header_timer_running_) {
        header_timer_running_ = true;  // the first byte of a later request
        header_deadline_ = now + limits_.header_timeout;
      }
      if (!parse_head()) break;
    } else if (!read_body()) {
      break;
    }
  }
}

bool Connection::parse_head() {
  // The parsed head only lives until the Request copy below; one per thread avoids zeroing
  // a hundred header slots per call.
  thread_local http::RequestHead head;
  const std::string_view in = input();
  const http::ParseResult r = http::parse_request_head(in, head, head_scanned_);
  if (r.status == http::ParseStatus::kIncomplete) {
    head_scanned_ = r.scanned;
    return false;
  }
  head_scanned_ = 0;
  if (r.status == http::ParseStatus::kError) {
    // A HEAD request gets no body even in an error response (RFC 9110 9.3.2); the parse failed,
    // so look at the method directly, after the empty lines the parser skips. When those lines
    // are the error (a lone CR, too many), no request began: not HEAD, however many bytes after
    // them had arrived when the error was seen.
    std::size_t start = 0;
    bool bad_start = false;
    while (start < in.size() && (in[start] == '\n' || in[start] == '\r')) {
      if (in[start] == '\r' && (start + 1 == in.size() || in[start + 1] != '\n')) bad_start = true;
      if (++start > http::kMaxLeadingEmptyBytes) bad_start = true;
      if (bad_start) break;
    }
    head_only_ = !bad_start && in.substr(start, 5) == "HEAD ";
    fail(r.error_status);
    return false;
  }
  header_timer_running_ = false;
  request_.emplace(head, memory_.request_resource());
  keep_alive_ = head.keep_alive;
  echo_keep_alive_ = head.version_minor == 0 && head.keep_alive;
  head_only_ = head.method == "HEAD";
  body_kind_ = head.body_kind;
  const bool expect_continue = head.expect_continue && head.version_minor == 1;
  const std::uint64_t content_length = head.content_length;
  consume(r.head_bytes);

  if (body_kind_ == http::BodyKind::kNone) {
    dispatch();
    return true;
  }
  request_->keep();  // the body comes first, and the input buffer may move while it does
  if (body_kind_ == http::BodyKind::kContentLength) {
    if (content_length > limits_.max_body_bytes) {
      fail(413);
      return false;
    }
    body_remaining_ = content_length;
  } else {
    chunked_ = http::ChunkedDecoder();
  }
  // Tell a waiting client to send its body (RFC 9110 10.1.1), as nginx does when it starts
  // reading the body.
  if (expect_continue) out_.append("HTTP/1.1 100 Continue\r\n\r\n");
  phase_ = Phase::kBody;
  return true;
}

bool Connection::read_body() {
  const std::string_view in = input();
  if (body_kind_ == http::BodyKind::kChunked) {
    const auto r = chunked_.feed(in);
    consume(r.consumed);
    // The limit before the framing: a body already past it gets 413 even when bad framing
    // follows in the same bytes, so the answer does not depend on how the bytes were split.
    if (chunked_.data_bytes() > limits_.max_body_bytes) {
      fail(413);
      return false;
    }
    if (r.error_status != 0) {
      fail(r.error_status);
      return false;
    }
    if (!r.done) return false;
  } else {
    const std::size_t take = static_cast<std::size_t>(
        std::min<std::uint64_t>(body_remaining_, in.size()));
    consume(take);
    body_remaining_ -= take;
    if (body_remaining_ > 0) return false;
  }
  dispatch();
  return true;
}

void Connection::dispatch() {
  phase_ = Phase::kHead;
  Response resp(memory_.request_resource());
  app_.handle(*request_, resp);
  request_.reset();
  if (resp.work) {
    count(Counter::kDeferredWork);
    pending_.emplace(std::move(resp));
    work_ = Work::kPending;
    return;
  }
  emit(resp);
}

void Connection::emit(const Response& resp) {
  const bool keep_alive = stays_open_after(resp);
  if (keep_alive && !echo_keep_alive_ && !head_only_ && resp.fixed()) {
    // A fixed route (/ping): its whole response is prebuilt; one copy.
    if (const std::string_view whole = app_.fixed_response(resp); !whole.empty()) {
      out_.append(whole);
      static_body_ = {};
      static_sent_ = 0;
      file_ = {};
      return;
    }
  }
  // One allocation for the response instead of a string doubling its way up.
  out_.reserve(out_.size() + kResponseHeadReserve +
               (head_only_ ? 0 : resp.body.size() + resp.text.size()));
  app_.append_head(resp, keep_alive, echo_keep_alive_, out_);
  if (!head_only_) {
    out_.append(resp.body);
    out_.append(resp.text);
    static_body_ = resp.static_body;
    static_sent_ = 0;
    file_ = resp.file;
  }
  if (!keep_alive) closing_ = true;
}

// head_only_ is the failing request's: set from its parsed head, or by parse_head() above.
void Connection::fail(int status) {
  request_.reset();
  phase_ = Phase::kHead;
  Response resp(memory_.request_resource());
  app_.error_response(status, resp);
  emit(resp);
  closing_ = true;
  ended_on_error_ = true;
}

Step Connection::on_written(std::size_t n, TimePoint now) {
  count(Counter::kBytesOut, n);
  last_progress_ = now;
  auto take = [&n](std::size_t available) {
    const std::size_t t = std::min(n, available);
    n -= t;
    return t;
  };
  out_sent_ += take(out_.size() - out_sent_);
  static_sent_ += take(static_body_.size() - static_sent_);
  const std::size_t file_part = take(static_cast<std::size_t>(file_.length));
  file_.offset += file_part;
  file_.length -= file_part;
  if (!has_output()) drained(now);
  return next();
}

// The output is fully written: what the responses used can go, then parsing resumes.
void Connection::drained(TimePoint now) {
  std::pmr::string(memory_.request_resource()).swap(out_);
  out_sent_ = 0;
  static_body_ = {};
  static_sent_ = 0;
  file_ = {};
  if (!request_ && !pending_) memory_.reset_request_resource();
  process(now);
}

DeferredWork Connection::take_work() {
  work_ = Work::kTaken;
  return *pending_->work;
}

Step Connection::on_work_done(TimePoint now) {
  work_ = Work::kNone;
  last_progress_ = now;
  emit(*pending_);
  pending_.reset();
  process(now);
  return next();
}

Step Connection::on_timeout(TimePoint now) {
  if (now >= next_deadline()) {
    aborted_ = true;
    timed_out_ = true;
  }
  return next();
}

bool Connection::release_idle_buffers() {
  if (buffer_.empty()) return true;
  if (start_ != end_) return false;
  memory_.release_buffer(buffer_);
  buffer_ = {};
  start_ = end_ = 0;
  return true;
}

}  // namespace iolab
