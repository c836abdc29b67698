// libFuzzer target: the chunked-body decoder (http::ChunkedDecoder in servers/core/http/http_parser.*).
//
// The input is what follows a request head with "Transfer-Encoding: chunked": a body, perhaps
// followed by the next pipelined request. It is decoded whole, then again fed in pieces by two
// split plans (byte by byte up to 4 KiB, and a random plan), each piece in its own exact-size
// heap block. The invariants:
//   - no read outside a piece (AddressSanitizer);
//   - the decoder takes every byte it is given until the body ends or the framing is wrong;
//   - the same verdict however the body is split: done at the same offset with the same data
//     size, or the same error; and once done it takes nothing more (the next request keeps its
//     framing);
//   - a finished body is well-formed: it ends with LF, and a plain re-walk of its chunk-size
//     lines finds the same number of data bytes the decoder counted.
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

struct Outcome {
  std::size_t consumed = 0;  // total bytes taken (up to the error, where the error is)
  bool done = false;
  int error_status = 0;
  std::uint64_t data_bytes = 0;
};

Outcome decode(std::string_view all, SplitPlan plan) {
  http::ChunkedDecoder d;
  Outcome o;
  std::size_t pos = 0;
  while (pos < all.size()) {
    const std::size_t n = plan.next(all.size() - pos);
    ExactCopy piece(all.substr(pos, n));
    const auto r = d.feed(piece.view());
    FUZZ_CHECK(r.consumed <= n, "consumed more than it was given");
    o.consumed += r.consumed;
    pos += n;
    if (r.error_status != 0) {
      FUZZ_CHECK(r.error_status == 400, std::to_string(r.error_status));
      o.error_status = r.error_status;
      return o;
    }
    FUZZ_CHECK(r.done == d.done(), "result and decoder disagree on done");
    if (r.done) {
      o.done = true;
      o.data_bytes = d.data_bytes();
      // Finished: later bytes belong to the next request and are not touched.
      if (pos < all.size()) {
        ExactCopy rest(all.substr(pos));
        const auto again = d.feed(rest.view());
        FUZZ_CHECK(again.consumed == 0 && again.done && again.error_status == 0,
                   "a finished decoder took more bytes");
      }
      return o;
    }
    FUZZ_CHECK(r.consumed == n, "not done, no error, yet " + std::to_string(n - r.consumed) +
                                    " bytes left untaken");
  }
  o.data_bytes = d.data_bytes();
  return o;
}

// Data bytes of a complete chunked body, walked without the decoder's state machine: each
// chunk-size line is hex digits then anything up to LF; the data follows; 0 ends the chunks.
std::uint64_t rewalk_data_bytes(std::string_view body) {
  std::uint64_t total = 0;
  std::size_t pos = 0;
  for (;;) {
    std::uint64_t size = 0;
    while (pos < body.size()) {
      const char c = body[pos];
      int digit = -1;
      if (c >= '0' && c <= '9') digit = c - '0';
      else if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
      if (digit < 0) break;
      size = size * 16 + static_cast<std::uint64_t>(digit);
      ++pos;
    }
    const std::size_t lf = body.find('\n', pos);
    FUZZ_CHECK(lf != std::string_view::npos, "chunk-size line without LF in a finished body");
    pos = lf + 1;
    if (size == 0) return total;
    FUZZ_CHECK(size <= body.size() - pos, "chunk data runs past the finished body");
    total += size;
    pos += static_cast<std::size_t>(size);
    // The data ends with CRLF (or a bare LF).
    if (pos < body.size() && body[pos] == '\r') ++pos;
    FUZZ_CHECK(pos < body.size() && body[pos] == '\n', "chunk data not followed by its line end");
    ++pos;
  }
}

std::string describe(const Outcome& o) {
  return "consumed " + std::to_string(o.consumed) + " done " + std::to_string(o.done) +
         " error " + std::to_string(o.error_status) + " data " + std::to_string(o.data_bytes);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view all(reinterpret_cast<const char*>(data), size);
  const Outcome whole = decode(all, SplitPlan(SplitPlan::Kind::kWhole, 0));
  if (whole.done) {
    FUZZ_CHECK(whole.consumed > 0 && all[whole.consumed - 1] == '\n', printable(all));
    FUZZ_CHECK(whole.data_bytes <= whole.consumed, describe(whole));
    const std::uint64_t walked = rewalk_data_bytes(all.substr(0, whole.consumed));
    FUZZ_CHECK(walked == whole.data_bytes, "decoder counted " + std::to_string(whole.data_bytes) +
                                               " data bytes, a re-walk " + std::to_string(walked) +
                                               "\n" + printable(all));
  }

  auto same = [&](const Outcome& split, const char* plan) {
    const bool agree = split.done == whole.done && split.error_status == whole.error_status &&
                       (whole.error_status != 0 || split.consumed == whole.consumed) &&
                       (!whole.done || split.data_bytes == whole.data_bytes);
    FUZZ_CHECK(agree, std::string(plan) + ": " + describe(split) + "; whole: " + describe(whole) +
                          "\n" + printable(all));
  };
  if (size <= 4096) same(decode(all, SplitPlan(SplitPlan::Kind::kByteByByte, 0)), "byte by byte");
  same(decode(all, SplitPlan(SplitPlan::Kind::kRandom, iolab::fuzz::fnv1a(all, 2))), "random split");
  return 0;
}
