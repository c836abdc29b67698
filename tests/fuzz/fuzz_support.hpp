// What the three fuzz targets share: split plans, exact-size copies, and a loud failure.
//
// A split plan cuts a byte stream into the pieces a kernel might hand over: one byte at a time,
// a few bytes, a few hundred, everything at once. The plan is drawn from a small PRNG seeded by
// a hash of the input, so a given input is always split the same way (a finding reproduces from
// its file alone) while the seed corpus stays plain HTTP text a reader can open.
//
// Every piece is copied into its own heap block of exactly its size before the code under test
// sees it: AddressSanitizer then reports a read one byte past the piece (libFuzzer's own input
// buffer is exact too, but the splits are where an off-by-one hides). The block is freed as soon
// as the call returns, so a view kept into it is a use-after-free, not a silent stale read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

namespace iolab::fuzz {

// Reports a broken invariant with the context that explains it and aborts: libFuzzer saves the
// input as a crash file.
[[noreturn]] inline void fail(const char* what, const std::string& detail = {}) {
  std::fprintf(stderr, "INVARIANT BROKEN: %s\n%s\n", what, detail.c_str());
  std::abort();
}

#define FUZZ_CHECK(cond, detail)                                         \
  do {                                                                   \
    if (!(cond)) ::iolab::fuzz::fail(#cond, (detail));                  \
  } while (0)

inline std::uint64_t fnv1a(std::string_view s, std::uint64_t salt) {
  std::uint64_t h = 1469598103934665603ULL ^ salt;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

// Piece sizes for one pass over a stream.
class SplitPlan {
 public:
  enum class Kind { kWhole, kByteByByte, kDoubling, kRandom };
  SplitPlan(Kind kind, std::uint64_t seed) : kind_(kind), state_(seed | 1) {}

  // The next piece's size, in [1, remaining] (remaining > 0).
  std::size_t next(std::size_t remaining) {
    if (kind_ == Kind::kWhole) return remaining;
    if (kind_ == Kind::kByteByByte) return 1;
    if (kind_ == Kind::kDoubling) {  // prefixes of 1, 2, 4, 8... bytes: cheap on long inputs
      done_ += done_ == 0 ? 1 : done_;
      const std::size_t n = done_ - (done_ == 1 ? 0 : done_ / 2);
      return n < remaining ? n : remaining;
    }
    const std::uint64_t r = rand();
    std::size_t n;
    switch (r % 4) {
      case 0: n = 1; break;                                    // the worst case for parsers
      case 1: n = 1 + (r >> 8) % 8; break;                     // a few bytes
      case 2: n = 1 + (r >> 8) % 512; break;                   // a segment's worth
      default: n = 1 + (r >> 8) % 16384; break;                // up to a big read
    }
    return n < remaining ? n : remaining;
  }

  std::uint64_t rand() {  // splitmix64
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

 private:
  Kind kind_;
  std::uint64_t state_;
  std::size_t done_ = 0;
};

// A heap copy of exactly s.size() bytes (one byte for an empty piece, never read).
class ExactCopy {
 public:
  explicit ExactCopy(std::string_view s) : size_(s.size()), bytes_(new char[s.empty() ? 1 : s.size()]) {
    if (!s.empty()) std::memcpy(bytes_.get(), s.data(), s.size());
  }
  std::string_view view() const { return {bytes_.get(), size_}; }
  char* data() { return bytes_.get(); }

 private:
  std::size_t size_;
  std::unique_ptr<char[]> bytes_;
};

// Printable form of bytes for failure messages.
inline std::string printable(std::string_view s, std::size_t max = 400) {
  std::string out;
  for (std::size_t i = 0; i < s.size() && i < max; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\r') out += "\\r";
    else if (c == '\n') out += "\\n";
    else if (c < 0x20 || c >= 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > max) out += "...(" + std::to_string(s.size()) + " bytes)";
  return out;
}

}  // namespace iolab::fuzz
