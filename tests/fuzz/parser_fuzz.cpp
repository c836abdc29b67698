// libFuzzer target: the request-head parser (servers/core/http/http_parser.*).
//
// The parser is stateless but resumable: a server calls it again with the same bytes plus what
// arrived since, passing back the `scanned` hint. So the input is parsed whole, then again as a
// growing prefix cut by split plans (byte by byte for inputs up to 256 bytes, prefixes doubling in
// length, and a random plan), each prefix in its own exact-size heap block. The invariants:
//   - no read outside the buffer (AddressSanitizer, exact-size blocks);
//   - the hint changes nothing: every prefix parses the same with the hint as without it;
//   - the verdict is final: once a prefix is complete or an error, the whole input gives the
//     same status, the same head length, the same fields; an input still incomplete at its end
//     was incomplete at every prefix;
//   - a complete head is well-formed: it ends with LF, fits kMaxHeadBytes, its views point into
//     the head (the path may be a literal "/"), method and header names are tokens, values hold no CR, LF or NUL, the path is
//     origin-form or '*'; an error is one of the statuses the contract lists.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_support.hpp"
#include "http_parser.hpp"

using iolab::fuzz::ExactCopy;
using iolab::fuzz::printable;
using iolab::fuzz::SplitPlan;
namespace http = iolab::http;

namespace {

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) !=
                        std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

bool within(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

// A head as offsets into its buffer, so heads parsed from different copies compare equal.
std::string signature(const http::ParseResult& r, const http::RequestHead& h, std::string_view base) {
  std::string s = std::to_string(static_cast<int>(r.status)) + "/" + std::to_string(r.head_bytes) +
                  "/" + std::to_string(r.error_status);
  if (r.status != http::ParseStatus::kComplete) return s;
  auto view = [&](std::string_view v) {
    if (v.empty()) return std::string("-");
    if (!within(v, base)) return "'" + std::string(v) + "'";
    return std::to_string(v.data() - base.data()) + "+" + std::to_string(v.size());
  };
  s += " m" + view(h.method) + " t" + view(h.target) + " p" + view(h.path) + " q" + view(h.query) +
       " v" + std::to_string(h.version_minor) + " n" + std::to_string(h.header_count);
  for (std::size_t i = 0; i < h.header_count; ++i) {
    s += " " + view(h.headers[i].name) + ":" + view(h.headers[i].value);
  }
  s += " b" + std::to_string(static_cast<int>(h.body_kind)) + "/" + std::to_string(h.content_length) +
       " k" + std::to_string(h.keep_alive) + std::to_string(h.connection_keep_alive) +
       std::to_string(h.expect_continue);
  return s;
}

// One parse: its result, its head and the buffer its views point into.
struct Parsed {
  http::ParseResult r;
  const http::RequestHead* h;
  std::string_view base;
};

// The same verdict and, for a complete head, the same fields at the same offsets (cheap: this
// runs for every prefix; signature() only builds the message when it fails).
bool same(const Parsed& a, const Parsed& b) {
  if (a.r.status != b.r.status || a.r.head_bytes != b.r.head_bytes ||
      a.r.error_status != b.r.error_status) {
    return false;
  }
  if (a.r.status != http::ParseStatus::kComplete) return true;
  auto same_view = [&](std::string_view x, std::string_view y) {
    const bool in_a = within(x, a.base);
    if (in_a != within(y, b.base)) return false;
    if (!in_a || x.empty()) return x == y;
    return x.size() == y.size() && x.data() - a.base.data() == y.data() - b.base.data();
  };
  const http::RequestHead& x = *a.h;
  const http::RequestHead& y = *b.h;
  if (!same_view(x.method, y.method) || !same_view(x.target, y.target) ||
      !same_view(x.path, y.path) || !same_view(x.query, y.query) ||
      x.version_minor != y.version_minor || x.header_count != y.header_count ||
      x.body_kind != y.body_kind || x.content_length != y.content_length ||
      x.keep_alive != y.keep_alive || x.connection_keep_alive != y.connection_keep_alive ||
      x.expect_continue != y.expect_continue) {
    return false;
  }
  for (std::size_t i = 0; i < x.header_count; ++i) {
    if (!same_view(x.headers[i].name, y.headers[i].name) ||
        !same_view(x.headers[i].value, y.headers[i].value)) {
      return false;
    }
  }
  return true;
}

std::string signature(const Parsed& p) { return signature(p.r, *p.h, p.base); }

void check_well_formed(std::string_view in, const http::ParseResult& r, const http::RequestHead& h) {
#define ctx printable(in)  // built only when a check fails
  switch (r.status) {
    case http::ParseStatus::kIncomplete:
      FUZZ_CHECK(r.scanned <= in.size(), ctx);
      return;
    case http::ParseStatus::kError:
      FUZZ_CHECK(r.error_status == 400 || r.error_status == 414 || r.error_status == 431 ||
                     r.error_status == 501 || r.error_status == 505,
                 ctx + " status " + std::to_string(r.error_status));
      return;
    case http::ParseStatus::kComplete:
      break;
  }
  FUZZ_CHECK(r.head_bytes > 0 && r.head_bytes <= in.size(), ctx);
  FUZZ_CHECK(r.head_bytes <= http::kMaxHeadBytes, ctx);
  FUZZ_CHECK(in[r.head_bytes - 1] == '\n', ctx);
  const std::string_view head = in.substr(0, r.head_bytes);
  FUZZ_CHECK(is_token(h.method) && within(h.method, head), ctx);
  FUZZ_CHECK(!h.target.empty() && within(h.target, head), ctx);
  for (unsigned char c : h.target) FUZZ_CHECK(c > 0x20 && c < 0x7f, ctx);
  // An absolute-form target without a path ("GET http://host HTTP/1.1") gets the path "/",
  // a view of a literal: the one view allowed outside the input.
  FUZZ_CHECK((within(h.path, head) || h.path == "/") && within(h.query, head), ctx);
  FUZZ_CHECK(h.path == "*" || (!h.path.empty() && h.path.front() == '/'), ctx);
  FUZZ_CHECK(h.version_minor == 0 || h.version_minor == 1, ctx);
  FUZZ_CHECK(h.header_count <= http::kMaxHeaders, ctx);
  for (std::size_t i = 0; i < h.header_count; ++i) {
    const auto& f = h.headers[i];
    FUZZ_CHECK(is_token(f.name) && within(f.name, head) && within(f.value, head), ctx);
    FUZZ_CHECK(f.value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos, ctx);
    FUZZ_CHECK(f.value.empty() || (f.value.front() != ' ' && f.value.back() != ' '), ctx);
  }
  // Framing: exactly one way to find the body's end.
  if (h.body_kind == http::BodyKind::kChunked) {
    FUZZ_CHECK(h.header("content-length").empty() && h.version_minor == 1, ctx);
  }
  if (h.body_kind == http::BodyKind::kContentLength) FUZZ_CHECK(h.content_length > 0, ctx);
  if (h.version_minor == 1) FUZZ_CHECK(h.header("host").data() != nullptr, ctx);
#undef ctx
}

void check_plan(const Parsed& whole, SplitPlan plan) {
  const std::string_view all = whole.base;
  std::size_t len = 0;
  std::size_t scanned = 0;
  while (len < all.size()) {
    len += plan.next(all.size() - len);
    ExactCopy copy(all.substr(0, len));
    const std::string_view in = copy.view();
    http::RequestHead hinted;
    const Parsed p{http::parse_request_head(in, hinted, scanned), &hinted, in};
    http::RequestHead fresh;
    const Parsed p0{http::parse_request_head(in, fresh, 0), &fresh, in};
    check_well_formed(in, p.r, hinted);
    FUZZ_CHECK(same(p, p0), "scanned hint " + std::to_string(scanned) +
                                " changed the result at prefix " + std::to_string(len) + ": " +
                                signature(p) + " vs " + signature(p0) + "\n" + printable(in));
    if (p.r.status == http::ParseStatus::kIncomplete) {
      scanned = p.r.scanned;
      continue;
    }
    FUZZ_CHECK(same(p, whole), "prefix " + std::to_string(len) + " said " + signature(p) +
                                   ", the whole input " + signature(whole) + "\n" + printable(all));
    return;
  }
  FUZZ_CHECK(whole.r.status == http::ParseStatus::kIncomplete,
             "every prefix was incomplete but the whole input said " + signature(whole));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const ExactCopy whole_copy(std::string_view(reinterpret_cast<const char*>(data), size));
  const std::string_view all = whole_copy.view();
  http::RequestHead head;
  const http::ParseResult whole = http::parse_request_head(all, head, 0);
  check_well_formed(all, whole, head);
  const Parsed whole_parse{whole, &head, all};

  // Byte by byte costs O(n^2) (the request line is re-read each time): short inputs only.
  if (size <= 256) check_plan(whole_parse, SplitPlan(SplitPlan::Kind::kByteByByte, 0));
  check_plan(whole_parse, SplitPlan(SplitPlan::Kind::kDoubling, 0));
  check_plan(whole_parse, SplitPlan(SplitPlan::Kind::kRandom, iolab::fuzz::fnv1a(all, 1)));
  return 0;
}
