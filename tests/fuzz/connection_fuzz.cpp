// libFuzzer target: the connection state machine (servers/core/http/connection.*) fed an arbitrary
// byte stream, the way a server's I/O layer drives it.
//
// Each input is the whole stream a client sends before closing its side. It is driven three
// times, each time with a fresh Connection, and the peer's end of input after the last byte:
//   whole     read_space()/on_read() with reads as large as offered, writes taking everything,
//             heap memory (the plain servers);
//   split     read_space()/on_read() in reads cut by a split plan, partial writes of random size,
//             the input buffer released whenever the connection is idle (threads, epoll, select);
//   kernel    on_input() with pieces in exact-size heap blocks freed right after the call (a
//             kernel-chosen buffer, io_uring), pooled memory with a per-request arena (pooled).
// Deferred work (/sleep) is completed at once without sleeping. The invariants:
//   - no over-read, no use of a piece after its call, no leak (AddressSanitizer, LeakSanitizer);
//   - the driver never stalls: a connection that wants input offers room for it;
//   - the same bytes out however the input was split, read and written (Date masked);
//   - well-formed framing: the whole run's output is a sequence of responses with one
//     Content-Length each, bodies of exactly that length (none for HEAD), 100 Continue where the
//     request asked for it, nothing after "Connection: close", and exactly the responses a
//     straightforward model predicts by parsing the whole stream at once (one per complete
//     request, the error status and its close for a bad one, 413 past the body limit).
// Two routes are renamed before the run: /work burns real CPU for up to a second, and /stats
// reports counters that change between runs; neither tells the state machine anything new.
// Body sizes (n=) are capped at 99999 bytes, still past the 64 KiB output high-water mark.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "app.hpp"
#include "connection.hpp"
#include "fuzz_support.hpp"
#include "http_parser.hpp"
#include "pool.hpp"

using iolab::fuzz::ExactCopy;
using iolab::fuzz::printable;
using iolab::fuzz::SplitPlan;
namespace http = iolab::http;

namespace {

// A small body limit, so 413 and its interplay with chunked framing are reachable.
constexpr std::uint64_t kMaxBodyBytes = 200;
const iolab::TimePoint kNow = iolab::TimePoint(std::chrono::hours(1));

const iolab::App& app() {
  static const iolab::ContentSource content;
  static const iolab::App instance("fuzz", content);
  return instance;
}

const iolab::ConnectionLimits& limits() {
  static const iolab::ConnectionLimits l{iolab::Millis(10'000), iolab::Millis(60'000), kMaxBodyBytes};
  return l;
}

enum class Mode { kWhole, kSplit, kKernel };

std::string drive(std::string_view input, Mode mode, iolab::ConnectionMemory& memory,
                  std::uint64_t seed) {
  using iolab::Step;
  const auto kind = mode == Mode::kWhole ? SplitPlan::Kind::kWhole : SplitPlan::Kind::kRandom;
  SplitPlan reads(kind, seed);
  SplitPlan writes(kind, seed ^ 0x5bd1e995);
  iolab::Connection conn(app(), limits(), memory, kNow);
  std::string out;
  std::size_t pos = 0;
  bool eof_sent = false;
  for (long rounds = 0;; ++rounds) {
    FUZZ_CHECK(rounds < 50'000'000, "no progress");
    const Step step = conn.next();
    if (step == Step::kClose) break;
    if (pos < input.size() && conn.wants_read()) {
      const std::size_t want = reads.next(input.size() - pos);
      if (mode == Mode::kKernel) {
        ExactCopy piece(input.substr(pos, want));
        conn.on_input(std::span<const char>(piece.data(), want), kNow);
        pos += want;
        continue;
      }
      const std::span<char> space = conn.read_space();
      if (!space.empty()) {
        const std::size_t n = want < space.size() ? want : space.size();
        std::memcpy(space.data(), input.data() + pos, n);
        conn.on_read(n, kNow);
        pos += n;
        continue;
      }
    }
    if (step == Step::kWrite) {
      const iolab::Output o = conn.output();
      FUZZ_CHECK(!o.empty(), "kWrite with nothing to write");
      std::size_t budget = mode == Mode::kWhole ? SIZE_MAX : writes.next(SIZE_MAX / 2);
      std::size_t n = 0;
      for (int i = 0; i < o.iovcnt && budget > 0; ++i) {
        const auto& v = o.iov[static_cast<std::size_t>(i)];
        const std::size_t part = v.iov_len < budget ? v.iov_len : budget;
        out.append(static_cast<const char*>(v.iov_base), part);
        n += part;
        budget -= part;
      }
      if (budget > 0 && o.file.length > 0) {
        const std::size_t part = o.file.length < budget ? o.file.length : budget;
        const std::size_t old = out.size();
        out.resize(old + part);
        const ssize_t got = ::pread(o.file.fd, out.data() + old, part, static_cast<off_t>(o.file.offset));
        FUZZ_CHECK(got == static_cast<ssize_t>(part), "pread of the file region");
        n += part;
      }
      conn.on_written(n, kNow);
      continue;
    }
    if (step == Step::kRunWork) {
      conn.take_work();  // not run: the state machine only needs to hear that it finished
      conn.on_work_done(kNow);
      continue;
    }
    FUZZ_CHECK(step == Step::kRead, "waiting for work nobody runs");
    FUZZ_CHECK(pos == input.size(), "stall: the connection waits for input but offers no room (" +
                                        std::to_string(input.size() - pos) + " bytes left)");
    FUZZ_CHECK(!eof_sent, "still reading after the peer's end of input");
    if (mode == Mode::kSplit && reads.rand() % 2 == 0) conn.release_idle_buffers();
    conn.on_read(0, kNow);
    eof_sent = true;
  }
  return out;
}

// The Date header changes every second; nothing else in a response depends on the clock.
std::string mask_dates(std::string s) {
  const std::string_view tag = "\r\nDate: ";
  for (std::size_t p = s.find(tag); p != std::string::npos; p = s.find(tag, p + 1)) {
    const std::size_t v = p + tag.size();
    const std::size_t end = s.find("\r\n", v);
    if (end == std::string::npos) break;
    s.replace(v, end - v, "DATE");
  }
  return s;
}

// What the stream should produce, predicted by parsing it all at once.
struct Expected {
  bool interim_continue = false;  // a 100 Continue
  bool head_only = false;         // HEAD: no body
  bool must_close = false;        // "Connection: close" and nothing after it
  int status = 0;                 // 0: whatever the application answers
};

std::vector<Expected> predict(std::string_view all) {
  std::vector<Expected> out;
  std::size_t pos = 0;
  while (pos < all.size()) {
    const std::string_view rest = all.substr(pos);
    http::RequestHead h;
    const http::ParseResult r = http::parse_request_head(rest, h, 0);
    if (r.status == http::ParseStatus::kIncomplete) break;
    if (r.status == http::ParseStatus::kError) {
      // HEAD when the request line, after the empty lines the parser accepts, starts "HEAD ".
      std::size_t start = 0;
      bool bad_start = false;
      while (!bad_start && start < rest.size() && (rest[start] == '\n' || rest[start] == '\r')) {
        bad_start = (rest[start] == '\r' && rest.substr(start, 2) != "\r\n") ||
                    ++start > http::kMaxLeadingEmptyBytes;
      }
      const bool head = !bad_start && rest.substr(start, 5) == "HEAD ";
      out.push_back({false, head, true, r.error_status});
      break;
    }
    pos += r.head_bytes;
    const bool head_only = h.method == "HEAD";
    const bool expect = h.expect_continue && h.version_minor == 1;
    if (h.body_kind == http::BodyKind::kContentLength) {
      if (h.content_length > kMaxBodyBytes) {
        out.push_back({false, head_only, true, 413});
        break;
      }
      if (expect) out.push_back({true, false, false, 100});
      if (all.size() - pos < h.content_length) break;
      pos += static_cast<std::size_t>(h.content_length);
    } else if (h.body_kind == http::BodyKind::kChunked) {
      if (expect) out.push_back({true, false, false, 100});
      http::ChunkedDecoder d;
      const auto fr = d.feed(all.substr(pos));
      if (d.data_bytes() > kMaxBodyBytes) {  // past the limit: 413 even if bad framing follows
        out.push_back({false, head_only, true, 413});
        break;
      }
      if (fr.error_status != 0) {
        out.push_back({false, head_only, true, fr.error_status});
        break;
      }
      if (!fr.done) break;
      pos += fr.consumed;
    }
    out.push_back({false, head_only, !h.keep_alive, 0});
    if (!h.keep_alive) break;
  }
  return out;
}

void check_framing(std::string_view out, const std::vector<Expected>& expected,
                   std::string_view input) {
#define ctx ("\ninput: " + printable(input) + "\noutput: " + printable(out, 2000))
  std::size_t pos = 0;
  std::size_t i = 0;
  while (pos < out.size()) {
    FUZZ_CHECK(i < expected.size(), "more responses than requests" + ctx);
    const Expected& e = expected[i++];
    const std::string_view rest = out.substr(pos);
    if (e.interim_continue) {
      const std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
      FUZZ_CHECK(rest.substr(0, cont.size()) == cont, "100 Continue expected" + ctx);
      pos += cont.size();
      continue;
    }
    FUZZ_CHECK(rest.substr(0, 9) == "HTTP/1.1 " && rest.size() > 12, "status line" + ctx);
    const int status = (rest[9] - '0') * 100 + (rest[10] - '0') * 10 + (rest[11] - '0');
    FUZZ_CHECK(e.status == 0 || e.status == status,
               "status " + std::to_string(status) + ", expected " + std::to_string(e.status) + ctx);
    const std::size_t head_end = rest.find("\r\n\r\n");
    FUZZ_CHECK(head_end != std::string_view::npos, "unterminated response head" + ctx);
    const std::string_view head = rest.substr(0, head_end + 2);
    int lengths = 0;
    int dates = 0;
    bool close = false;
    std::uint64_t length = 0;
    for (std::size_t p = head.find("\r\n") + 2; p < head.size();) {
      const std::size_t eol = head.find("\r\n", p);
      const std::string_view line = head.substr(p, eol - p);
      p = eol + 2;
      const std::size_t colon = line.find(": ");
      FUZZ_CHECK(colon != std::string_view::npos && colon > 0, "header line" + ctx);
      const std::string_view name = line.substr(0, colon);
      const std::string_view value = line.substr(colon + 2);
      if (name == "Content-Length") {
        ++lengths;
        for (char c : value) FUZZ_CHECK(c >= '0' && c <= '9', "Content-Length value" + ctx);
        length = std::stoull(std::string(value));
      } else if (name == "Date") {
        ++dates;
      } else if (name == "Connection") {
        FUZZ_CHECK(value == "close" || value == "keep-alive", "Connection value" + ctx);
        close = value == "close";
      }
    }
    FUZZ_CHECK(lengths == 1 && dates == 1, "one Content-Length and one Date" + ctx);
    pos += head_end + 4;
    if (!e.head_only) {
      FUZZ_CHECK(length <= out.size() - pos, "body shorter than its Content-Length" + ctx);
      if (e.status >= 400) {
        const std::string body = std::string(iolab::reason_phrase(e.status)) + "\n";
        FUZZ_CHECK(out.substr(pos, length) == body, "error body" + ctx);
      }
      pos += static_cast<std::size_t>(length);
    }
    if (e.must_close) FUZZ_CHECK(close, "Connection: close missing" + ctx);
    if (close) FUZZ_CHECK(pos == out.size(), "bytes after Connection: close" + ctx);
  }
  FUZZ_CHECK(i == expected.size(), std::to_string(expected.size() - i) + " responses missing" + ctx);
#undef ctx
}

// Renames /work and /stats (see the header comment) and caps "n=" at five digits, keeping every
// length the same. Without the cap, long runs drifted to /bytes?n=16777216: 16 MiB copied three
// times per execution, and the rate fell tenfold (1.5 million executions in an hour).
std::string tame(std::string_view in) {
  std::string s(in);
  for (const auto& [from, to] : {std::pair<std::string_view, std::string_view>{"/work", "/wxrk"},
                                 {"/stats", "/stbts"}}) {
    for (std::size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + 1)) {
      s.replace(p, to.size(), to);
    }
  }
  for (std::size_t p = s.find("n="); p != std::string::npos; p = s.find("n=", p + 1)) {
    std::size_t digits = 0;
    for (std::size_t i = p + 2; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
      if (++digits > 5) s[i] = 'x';  // an invalid number: a 400, not a large body
    }
  }
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input = tame(std::string_view(reinterpret_cast<const char*>(data), size));
  const std::uint64_t seed = iolab::fuzz::fnv1a(input, 3);

  iolab::HeapMemory heap;
  const std::string whole = mask_dates(drive(input, Mode::kWhole, heap, seed));
  check_framing(whole, predict(input), input);

  const std::string split = mask_dates(drive(input, Mode::kSplit, heap, seed));
  FUZZ_CHECK(split == whole, "split reads and partial writes changed the output\ninput: " +
                                 printable(input) + "\nwhole: " + printable(whole, 2000) +
                                 "\nsplit: " + printable(split, 2000));

  iolab::BlockPool blocks;
  iolab::PooledMemory pooled(blocks);
  const std::string kernel = mask_dates(drive(input, Mode::kKernel, pooled, seed + 1));
  FUZZ_CHECK(kernel == whole, "kernel-chosen buffers changed the output\ninput: " +
                                  printable(input) + "\nwhole: " + printable(whole, 2000) +
                                  "\nkernel: " + printable(kernel, 2000));
  return 0;
}
