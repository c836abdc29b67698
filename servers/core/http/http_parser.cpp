#include "http_parser.hpp"

#include <cstring>

// IOLAB_PARSER_NO_SSE2 builds the portable path on x86-64 too (how its tests cover arm64's).
#if defined(__SSE2__) && !defined(IOLAB_PARSER_NO_SSE2)
#define IOLAB_PARSER_SSE2 1
#include <emmintrin.h>
#endif

namespace iolab::http {

namespace {

// RFC 9110 token characters: ALPHA DIGIT and !#$%&'*+-.^_`|~
constexpr std::array<bool, 256> make_tchar_table() {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}
constexpr auto kTchar = make_tchar_table();

constexpr std::array<unsigned char, 256> make_lower_table() {
  std::array<unsigned char, 256> t{};
  for (int c = 0; c < 256; ++c) t[c] = static_cast<unsigned char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  return t;
}
constexpr auto kLower = make_lower_table();

bool is_tchar(char c) { return kTchar[static_cast<unsigned char>(c)]; }
// Field values: HTAB, SP, visible ASCII and obs-text; no other control characters.
bool is_field_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u == '\t' || (u >= 0x20 && u != 0x7f);
}
// Request targets: visible ASCII only (no space, no controls, no raw non-ASCII).
bool is_target_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u > 0x20 && u < 0x7f;
}
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// The long runs of a head (field values, request targets) are checked 16 bytes at a time with
// SSE2, which every x86-64 has, then 8 at a time in a 64-bit word (SWAR, on any little-endian
// machine: all of arm64 too), then byte by byte for the tail: the same classes as is_field_char
// and is_target_char, never reading at or past `end`. Each returns the first byte outside its
// class, or `end`.
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define IOLAB_PARSER_SWAR 1
constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
constexpr std::uint64_t kHighs = 0x8080808080808080ULL;
std::uint64_t load8(const char* p) {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
// High bit set in each byte below n (n <= 128). Bytes above the lowest flagged one may be
// flagged wrongly (a borrow), so only the lowest flag is used: on little-endian, the first byte.
std::uint64_t bytes_below(std::uint64_t v, unsigned n) { return (v - kOnes * n) & ~v & kHighs; }
std::uint64_t bytes_equal(std::uint64_t v, unsigned char c) { return bytes_below(v ^ (kOnes * c), 1); }
const char* first_flagged(const char* p, std::uint64_t flags) {
  return p + (__builtin_ctzll(flags) >> 3);
}
#endif

const char* skip_field_chars(const char* p, const char* end) {
#if defined(IOLAB_PARSER_SSE2)
  const __m128i c1f = _mm_set1_epi8(0x1f);
  const __m128i tab = _mm_set1_epi8('\t');
  const __m128i del = _mm_set1_epi8(0x7f);
  while (end - p >= 16) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i control = _mm_cmpeq_epi8(_mm_min_epu8(x, c1f), x);  // x <= 0x1f, unsigned
    const __m128i stop =
        _mm_or_si128(_mm_andnot_si128(_mm_cmpeq_epi8(x, tab), control), _mm_cmpeq_epi8(x, del));
    if (const int mask = _mm_movemask_epi8(stop); mask != 0) return p + __builtin_ctz(static_cast<unsigned>(mask));
    p += 16;
  }
#endif
#if defined(IOLAB_PARSER_SWAR)
  while (end - p >= 8) {
    const std::uint64_t v = load8(p);
    if (const std::uint64_t stop = bytes_below(v, 0x20) | bytes_equal(v, 0x7f); stop != 0) {
      const char* s = first_flagged(p, stop);
      if (*s != '\t') return s;
      p = s + 1;  // HTAB is a control byte that values allow
      continue;
    }
    p += 8;
  }
#endif
  while (p < end && is_field_char(*p)) ++p;
  return p;
}

// Also notes the first '?' before the byte it returns in `question` (left alone when there is
// none): the query's start, found in the same pass.
const char* skip_target_chars(const char* p, const char* end, const char*& question) {
#if defined(IOLAB_PARSER_SSE2)
  const __m128i space = _mm_set1_epi8(0x20);
  const __m128i del = _mm_set1_epi8(0x7f);
  const __m128i question_mark = _mm_set1_epi8('?');
  while (end - p >= 16) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i stop = _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(x, space), x),   // x <= 0x20
                                      _mm_cmpeq_epi8(_mm_max_epu8(x, del), x));    // x >= 0x7f
    const auto mask = static_cast<unsigned>(_mm_movemask_epi8(stop));
    auto marks = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(x, question_mark)));
    if (mask != 0) marks &= (mask & -mask) - 1;  // only those before the stop
    if (marks != 0 && question == nullptr) question = p + __builtin_ctz(marks);
    if (mask != 0) return p + __builtin_ctz(mask);
    p += 16;
  }
#endif
#if defined(IOLAB_PARSER_SWAR)
  while (end - p >= 8) {
    const std::uint64_t v = load8(p);
    const std::uint64_t stop = bytes_below(v, 0x21) | bytes_equal(v, 0x7f) | (v & kHighs);
    if (const std::uint64_t marks = bytes_equal(v, '?'); marks != 0 && question == nullptr) {
      const char* const mark = first_flagged(p, marks);
      if (stop == 0 || mark < first_flagged(p, stop)) question = mark;
    }
    if (stop != 0) return first_flagged(p, stop);
    p += 8;
  }
#endif
  for (; p < end && is_target_char(*p); ++p) {
    if (*p == '?' && question == nullptr) question = p;
  }
  return p;
}

// Optional whitespace off both ends (the tokens of a Connection value).
[[gnu::always_inline]] inline std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Position of the next '\n' at or after `from`, or npos.
std::size_t find_lf(std::string_view in, std::size_t from) {
  if (from >= in.size()) return std::string_view::npos;
  const void* p = std::memchr(in.data() + from, '\n', in.size() - from);
  return p ? static_cast<std::size_t>(static_cast<const char*>(p) - in.data())
           : std::string_view::npos;
}

// The first `c` in [p, end), or `end`; without a call, for short runs (a header line, a path),
// where the first 16 (or 8) bytes usually hold the answer and memchr's call and set-up cost
// more than the search.
[[gnu::always_inline]] inline const char* find_byte(const char* p, const char* const end, char c) {
#if defined(IOLAB_PARSER_SSE2)
  const __m128i wanted = _mm_set1_epi8(c);
  while (end - p >= 16) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    if (const int mask = _mm_movemask_epi8(_mm_cmpeq_epi8(x, wanted)); mask != 0) {
      return p + __builtin_ctz(static_cast<unsigned>(mask));
    }
    p += 16;
  }
#endif
#if defined(IOLAB_PARSER_SWAR)
  while (end - p >= 8) {
    if (const std::uint64_t flags = bytes_equal(load8(p), static_cast<unsigned char>(c)); flags != 0) {
      return first_flagged(p, flags);
    }
    p += 8;
  }
#endif
  while (p < end && *p != c) ++p;
  return p;
}

// Position of the next '\n' at or after `from`, or npos (find_lf without a call).
[[gnu::always_inline]] inline std::size_t find_lf_inline(std::string_view in, std::size_t from) {
  const char* const end = in.data() + in.size();
  const char* const lf = find_byte(in.data() + from, end, '\n');
  return lf == end ? std::string_view::npos : static_cast<std::size_t>(lf - in.data());
}

// The end of the blank line that starts at `s` (after its LF), or 0 when there is none (yet).
std::size_t blank_line_end(std::string_view in, std::size_t s) {
  if (s < in.size() && in[s] == '\n') return s + 1;
  if (s + 1 < in.size() && in[s] == '\r' && in[s + 1] == '\n') return s + 2;
  return 0;
}

// Searches for the blank line that ends the head, from `line_start`, the start of a line.
// Returns the end of the blank line and sets `line_start` to its start; or returns npos and
// sets `line_start` to the start of the last, unfinished line. With SSE2, a 16-byte block is
// tested at once for an LF followed by LF or CRLF, so the search does not stop at every line.
std::size_t find_blank_line(std::string_view in, std::size_t& line_start) {
  const std::size_t first = line_start;
  if (const std::size_t end = blank_line_end(in, first); end != 0) return end;
  std::size_t i = first;
#if defined(IOLAB_PARSER_SSE2)
  const __m128i lf_bytes = _mm_set1_epi8('\n');
  const __m128i cr_bytes = _mm_set1_epi8('\r');
  while (in.size() - i >= 18) {  // bytes i .. i + 17: each LF of the block and the two after it
    const char* p = in.data() + i;
    const __m128i x0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i x1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 1));
    const __m128i x2 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2));
    const __m128i next_blank = _mm_or_si128(
        _mm_cmpeq_epi8(x1, lf_bytes),
        _mm_and_si128(_mm_cmpeq_epi8(x1, cr_bytes), _mm_cmpeq_epi8(x2, lf_bytes)));
    const __m128i lf_then_blank = _mm_and_si128(_mm_cmpeq_epi8(x0, lf_bytes), next_blank);
    if (const int mask = _mm_movemask_epi8(lf_then_blank); mask != 0) {
      line_start = i + static_cast<std::size_t>(__builtin_ctz(static_cast<unsigned>(mask))) + 1;
      return blank_line_end(in, line_start);
    }
    i += 16;
  }
#endif
  // Line by line for the rest: every LF before i has been looked at.
  for (std::size_t lf = find_lf_inline(in, i); lf != std::string_view::npos; lf = find_lf_inline(in, lf + 1)) {
    if (const std::size_t end = blank_line_end(in, lf + 1); end != 0) {
      line_start = lf + 1;
      return end;
    }
  }
  const void* last_lf = first < in.size() ? memrchr(in.data() + first, '\n', in.size() - first) : nullptr;
  if (last_lf != nullptr) line_start = static_cast<std::size_t>(static_cast<const char*>(last_lf) - in.data()) + 1;
  return std::string_view::npos;
}

// The line [start, lf) without its optional CR. A CR anywhere else is left in the line, where
// the character checks of the request line and of header fields reject it (400).
std::string_view line_without_cr(std::string_view in, std::size_t start, std::size_t lf) {
  std::string_view line = in.substr(start, lf - start);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

// Returns 0 or the error status. `scan_end` is the end of the input: the byte after the line
// (its CR or LF) stops every scan below, so a scan may run to it with the 16-byte blocks that a
// short line alone would not fill.
// Each part is scanned once, up to the first byte outside its class, which must then be the
// space that ends it: a bad byte before the space and a missing space are both a 400.
int parse_request_line(std::string_view line, const char* scan_end, RequestHead& head) {
  const char* const begin = line.data();
  const char* const end = begin + line.size();
  const char* m = begin;
  if (line.size() >= 4 && std::memcmp(begin, "GET ", 4) == 0) {
    m = begin + 3;  // the usual method, in one comparison
  } else {
    while (m != end && is_tchar(*m)) ++m;
  }
  const std::size_t sp1 = static_cast<std::size_t>(m - begin);
  if (sp1 == 0 || m == end || *m != ' ') return 400;
  head.method = line.substr(0, sp1);
  const char* question = nullptr;
  const char* t = skip_target_chars(m + 1, scan_end, question);
  const std::size_t sp2 = static_cast<std::size_t>(t - begin);
  if (t == end || *t != ' ' || sp2 == sp1 + 1) return 400;
  head.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  // "HTTP/" digit "." digit, compared as one word: its five letters and the dot under a mask.
  std::uint64_t word = 0;
  if (version.size() == 8) std::memcpy(&word, version.data(), 8);
  constexpr std::uint64_t kVersionMask = 0x00ff00'ff'ff'ff'ff'ffULL;  // all but the two digits
  constexpr std::uint64_t kVersionForm = 0x002e00'2f'50'54'54'48ULL;   // "HTTP/" "." little-endian
  if (version.size() != 8 ||
      (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? (word & kVersionMask) != kVersionForm
                                                 : version.substr(0, 5) != "HTTP/" || version[6] != '.') ||
      !is_digit(version[5]) || !is_digit(version[7])) {
    return 400;
  }
  if (version[5] != '1' || (version[7] != '0' && version[7] != '1')) return 505;
  head.version_minor = version[7] - '0';

  std::string_view target = head.target;
  if (target.front() != '/') {  // origin-form, the usual case, starts with '/'
    if (target == "*") {
      head.path = target;
      head.query = {};
      return 0;
    }
    // absolute-form (RFC 9112 3.2.2): keep only the path and query.
    for (std::string_view scheme : {std::string_view("http://"), std::string_view("https://")}) {
      if (target.size() >= scheme.size() && equals_ignore_case(target.substr(0, scheme.size()), scheme)) {
        const std::size_t slash = target.find('/', scheme.size());
        target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
        break;
      }
    }
    if (target.front() != '/') return 400;
    // The '?' found in the whole target may lie in the part cut off.
    const char* const found = find_byte(target.data(), target.data() + target.size(), '?');
    question = found == target.data() + target.size() ? nullptr : found;
  }
  const char* const target_end = target.data() + target.size();
  if (question == nullptr || question >= target_end) {
    head.path = target;
    head.query = {};
  } else {
    head.path = {target.data(), static_cast<std::size_t>(question - target.data())};
    head.query = {question + 1, static_cast<std::size_t>(target_end - question - 1)};
  }
  return 0;
}

// Before the request line has ended: reject bytes that can never start a request (a TLS
// handshake, binary noise) without waiting for a line end that may never come.
// The method is judged first, over the first kMaxRequestLineBytes bytes only, so a long line of
// noise gets the same status (400) however much of it has arrived when it is judged.
int check_partial_request_line(std::string_view partial) {
  for (char c : partial.substr(0, kMaxRequestLineBytes)) {
    if (c == ' ') break;
    if (!is_tchar(c) && c != '\r') return 400;
  }
  // A line of exactly the limit may be waiting for the LF after its CR.
  if (partial.size() > kMaxRequestLineBytes &&
      !(partial.size() == kMaxRequestLineBytes + 1 && partial.back() == '\r')) {
    return 414;
  }
  return 0;
}

// A complete request line over the limit: 414, unless its method already proved it 400.
int overlong_line_status(std::string_view line) {
  const int status = check_partial_request_line(line);
  return status != 0 ? status : 414;
}

// Case-insensitive equality with `lower`, a lower-case constant of letters, digits and '-',
// for a header name or value (no control byte but HTAB), a word at a time: OR-ing 0x20 into a
// byte lowers a letter, leaves digits and '-' alone, and turns no other byte such a field can
// hold into a lower-case letter, a digit or '-' (their only other pre-images are control bytes).
std::uint64_t lowered8(const char* p) {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v | 0x2020202020202020ULL;
}
std::uint32_t lowered4(const char* p) {
  std::uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v | 0x20202020U;
}
[[gnu::always_inline]] inline bool equals_lower(std::string_view s, std::string_view lower) {
  const std::size_t n = lower.size();
  if (s.size() != n) return false;
  const char* a = s.data();
  const char* b = lower.data();
  if (n >= 8) {
    for (std::size_t i = 0; i + 8 <= n; i += 8) {
      if (lowered8(a + i) != lowered8(b + i)) return false;
    }
    return lowered8(a + n - 8) == lowered8(b + n - 8);  // the last 8, overlapping
  }
  if (n >= 4) return lowered4(a) == lowered4(b) && lowered4(a + n - 4) == lowered4(b + n - 4);
  for (std::size_t i = 0; i < n; ++i) {
    if ((a[i] | 0x20) != b[i]) return false;
  }
  return true;
}

enum class FieldLines { kBlankLine, kNeedMore, kMalformed, kTooMany };

// Reads field lines from `pos` into head.headers, one pass per line, until the blank line
// (kBlankLine: `pos` is after it, `blank_line` where it starts), a line that is wrong
// (kMalformed: 400; kTooMany: a well-formed line past kMaxHeaders, 431) or the end of `in`
// before a line ends (kNeedMore). Every scan stops at `in`'s end.
FieldLines parse_field_lines(std::string_view in, std::size_t& pos, std::size_t& blank_line,
                             RequestHead& head) {
  const char* const begin = in.data();
  const char* const end = begin + in.size();
  const char* p = begin + pos;
  for (;;) {
    if (p == end) return FieldLines::kNeedMore;
    if (*p == '\n' || *p == '\r') {
      if (*p == '\r') {
        if (end - p < 2) return FieldLines::kNeedMore;
        if (p[1] != '\n') return FieldLines::kMalformed;  // a bare CR
      }
      blank_line = static_cast<std::size_t>(p - begin);
      pos = blank_line + (*p == '\r' ? 2 : 1);
      return FieldLines::kBlankLine;
    }
    if (*p == ' ' || *p == '\t') return FieldLines::kMalformed;  // obs-fold
    // The name; whitespace before the colon is not a tchar. Four at a time while four remain.
    const char* q = p;
    while (end - q >= 4 && is_tchar(q[0]) && is_tchar(q[1]) && is_tchar(q[2]) && is_tchar(q[3])) q += 4;
    while (q != end && is_tchar(*q)) ++q;
    if (q == end) return FieldLines::kNeedMore;
    if (q == p || *q != ':') return FieldLines::kMalformed;
    const std::string_view name(p, static_cast<std::size_t>(q - p));
    ++q;
    while (q != end && (*q == ' ' || *q == '\t')) ++q;
    const char* const value_start = q;
    // Stops at CR, LF or another control byte.
    q = skip_field_chars(q, end);
    if (q == end) return FieldLines::kNeedMore;
    // Leading whitespace is skipped already; trailing whitespace is not part of the value.
    const char* value_end = q;
    while (value_end != value_start && (value_end[-1] == ' ' || value_end[-1] == '\t')) --value_end;
    const std::string_view value(value_start, static_cast<std::size_t>(value_end - value_start));
    if (*q == '\r' && ++q == end) return FieldLines::kNeedMore;
    if (*q != '\n') return FieldLines::kMalformed;  // a bare CR or a control byte inside the line
    p = q + 1;
    if (head.header_count == kMaxHeaders) return FieldLines::kTooMany;
    head.headers[head.header_count++] = {name, value};
  }
}

// Returns 0 or the error status. Fills the framing fields of `head` from its headers.
[[gnu::always_inline]] inline int analyze_framing(RequestHead& head) {
  bool has_content_length = false;
  int transfer_encodings = 0;
  bool chunked = false;
  int hosts = 0;
  bool close_token = false;
  bool keep_alive_token = false;
  for (std::size_t i = 0; i < head.header_count; ++i) {
    const HeaderView& h = head.headers[i];
    const std::string_view n = h.name;
    if (n.size() != 4 && n.size() != 6 && n.size() != 10 && n.size() != 14 && n.size() != 17) {
      continue;  // most fields: none of the names below has this length
    }
    if (equals_lower(n, "content-length")) {
      if (has_content_length || h.value.empty() || h.value.size() > 18) return 400;
      std::uint64_t v = 0;
      for (char c : h.value) {
        if (!is_digit(c)) return 400;
        v = v * 10 + static_cast<std::uint64_t>(c - '0');
      }
      has_content_length = true;
      head.content_length = v;
    } else if (equals_lower(n, "transfer-encoding")) {
      ++transfer_encodings;
      chunked = equals_lower(h.value, "chunked");
    } else if (equals_lower(n, "host")) {
      ++hosts;
    } else if (equals_lower(n, "connection")) {
      std::string_view rest = h.value;
      while (!rest.empty()) {
        const std::size_t comma = rest.find(',');
        const std::string_view token = trim_ows(rest.substr(0, comma));
        if (equals_lower(token, "close")) close_token = true;
        if (equals_lower(token, "keep-alive")) keep_alive_token = true;
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      }
    } else if (equals_lower(n, "expect")) {
      head.expect_continue = equals_lower(h.value, "100-continue");
    }
  }
  // Request smuggling defences (RFC 9112 6.1, 6.3): never guess between two framings.
  if (transfer_encodings > 0 && has_content_length) return 400;
  if (transfer_encodings > 0 && head.version_minor == 0) return 400;
  if (transfer_encodings > 1 || (transfer_encodings == 1 && !chunked)) return 501;
  if (head.version_minor == 1 && hosts != 1) return 400;
  if (hosts > 1) return 400;

  if (transfer_encodings == 1) {
    head.body_kind = BodyKind::kChunked;
  } else if (has_content_length && head.content_length > 0) {
    head.body_kind = BodyKind::kContentLength;
  } else {
    head.body_kind = BodyKind::kNone;
  }
  head.connection_keep_alive = keep_alive_token;
  head.keep_alive = head.version_minor == 1 ? !close_token : keep_alive_token && !close_token;
  return 0;
}

ParseResult error(int status) { return {ParseStatus::kError, 0, 0, status}; }

}  // namespace

namespace detail {
bool equal_bytes_ignore_case(const char* a, const char* b, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    if (kLower[static_cast<unsigned char>(a[i])] != kLower[static_cast<unsigned char>(b[i])]) {
      return false;
    }
  }
  return true;
}
}  // namespace detail

std::string_view RequestHead::header(std::string_view name) const {
  for (std::size_t i = 0; i < header_count; ++i) {
    if (equals_ignore_case(headers[i].name, name)) return headers[i].value;
  }
  return {};
}

ParseResult parse_request_head(std::string_view in, RequestHead& head, std::size_t scanned) {
  // A few empty lines before a request are ignored (RFC 9112 2.2): clients send a stray CRLF
  // after a body. More than kMaxLeadingEmptyBytes is not a client being sloppy.
  std::size_t pos = 0;
  while (pos < in.size() && (in[pos] == '\n' || in[pos] == '\r')) {
    if (in[pos] == '\r') {
      if (pos + 1 == in.size()) return {ParseStatus::kIncomplete, 0, 0, 0};
      if (in[pos + 1] != '\n') return error(400);
    }
    ++pos;
    if (pos > kMaxLeadingEmptyBytes) return error(400);
  }
  const std::size_t line_lf = find_lf_inline(in, pos);
  if (line_lf == std::string_view::npos) {
    const int status = check_partial_request_line(in.substr(pos));
    if (status != 0) return error(status);
    return {ParseStatus::kIncomplete, 0, 0, 0};
  }
  if (line_lf - pos > kMaxRequestLineBytes + 1) {
    return error(overlong_line_status(in.substr(pos, line_lf - pos)));
  }
  const std::string_view request_line = line_without_cr(in, pos, line_lf);
  if (request_line.size() > kMaxRequestLineBytes) return error(overlong_line_status(request_line));
  if (const int status = parse_request_line(request_line, in.data() + in.size(), head); status != 0) {
    return error(status);
  }

  const std::size_t headers_start = line_lf + 1;
  head.header_count = 0;
  head.body_kind = BodyKind::kNone;
  head.content_length = 0;
  head.expect_continue = false;
  // The usual case first: the whole head has arrived, well-formed, and this is the first look
  // at its fields. One pass then both reads the fields and finds the blank line. Anything else
  // (a line that is wrong or not all there, a section over its limit) takes the careful path
  // below, which decides between "incomplete", 431 and 400 in the order the contract gives.
  std::size_t fields_end = headers_start;  // after the blank line, once found
  std::size_t blank_line = 0;
  if (scanned == 0) {
    if (parse_field_lines(in, fields_end, blank_line, head) == FieldLines::kBlankLine &&
        blank_line - headers_start <= kMaxHeaderSectionBytes) {
      if (const int status = analyze_framing(head); status != 0) return error(status);
      return {ParseStatus::kComplete, fields_end, 0, 0};
    }
    head.header_count = 0;
  }

  // Find the blank line that ends the head before validating the headers, resuming where the
  // last call stopped (`scanned` is always the start of a line in the header section).
  std::size_t line_start = scanned > headers_start ? scanned : headers_start;
  const std::size_t head_end = find_blank_line(in, line_start);
  // The header section is measured up to its blank line. While incomplete, one byte over the
  // limit is still legal when it is the CR that starts the blank line.
  if (head_end == std::string_view::npos) {
    const std::size_t section = in.size() - headers_start;
    const bool blank_line_cr = line_start + 1 == in.size() && in.back() == '\r';
    if (section > kMaxHeaderSectionBytes + (blank_line_cr ? 1 : 0)) return error(431);
    return {ParseStatus::kIncomplete, 0, line_start, 0};
  }
  if (line_start - headers_start > kMaxHeaderSectionBytes) return error(431);

  // Every line up to head_end is complete, so the field lines end at the blank line or at the
  // first line that is wrong.
  fields_end = headers_start;
  switch (parse_field_lines(in.substr(0, head_end), fields_end, blank_line, head)) {
    case FieldLines::kBlankLine:
      break;
    case FieldLines::kTooMany:
      return error(431);
    case FieldLines::kMalformed:
    case FieldLines::kNeedMore:  // cannot happen before head_end; a 400 if it did
      return error(400);
  }
  if (const int status = analyze_framing(head); status != 0) return error(status);
  return {ParseStatus::kComplete, head_end, 0, 0};
}

ChunkedDecoder::Result ChunkedDecoder::feed(std::string_view in) {
  auto fail = [](std::size_t at) { return Result{at, false, 400}; };
  std::size_t i = 0;
  while (i < in.size() && state_ != State::kDone) {
    const char c = in[i];
    switch (state_) {
      case State::kSize: {
        int digit = -1;
        if (c >= '0' && c <= '9') digit = c - '0';
        else if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
        if (digit >= 0) {
          if (++size_digits_ > 15) return fail(i);  // 2^60 bytes is enough for anyone
          chunk_size_ = chunk_size_ * 16 + static_cast<std::uint64_t>(digit);
        } else if (size_digits_ == 0) {
          return fail(i);
        } else if (c == ';' || c == ' ' || c == '\t') {
          state_ = State::kExtension;
        } else if (c == '\r') {
          state_ = State::kSizeLf;
        } else if (c == '\n') {
          state_ = State::kSizeLf;
          continue;  // handled as the line end below
        } else {
          return fail(i);
        }
        ++i;
        if (++line_bytes_ > kMaxLineBytes) return fail(i);
        break;
      }
      case State::kExtension: {
        // Skip the extension up to the line end, in bulk.
        std::size_t j = i;
        while (j < in.size() && in[j] != '\r' && in[j] != '\n') ++j;
        line_bytes_ += j - i;
        if (line_bytes_ > kMaxLineBytes) return fail(j);
        i = j;
        if (i < in.size()) {
          state_ = State::kSizeLf;
          if (in[i] == '\r') ++i;
        }
        break;
      }
      case State::kSizeLf:
        if (c != '\n') return fail(i);
        ++i;
        line_bytes_ = 0;
        size_digits_ = 0;
        if (chunk_size_ == 0) {
          state_ = State::kTrailerStart;
        } else {
          remaining_ = chunk_size_;
          chunk_size_ = 0;
          state_ = State::kData;
        }
        break;
      case State::kData: {
        const std::uint64_t available = in.size() - i;
        const std::uint64_t take = remaining_ < available ? remaining_ : available;
        i += static_cast<std::size_t>(take);
        remaining_ -= take;
        data_bytes_ += take;
        if (remaining_ == 0) state_ = State::kDataCr;
        break;
      }
      case State::kDataCr:
        if (c == '\r') {
          state_ = State::kDataLf;
          ++i;
        } else if (c == '\n') {
          state_ = State::kSize;
          ++i;
        } else {
          return fail(i);
        }
        break;
      case State::kDataLf:
        if (c != '\n') return fail(i);
        state_ = State::kSize;
        ++i;
        break;
      case State::kTrailerStart:
        if (c == '\r') {
          state_ = State::kFinalLf;
          ++i;
        } else if (c == '\n') {
          state_ = State::kDone;
          ++i;
        } else {
          state_ = State::kTrailerLine;
        }
        break;
      case State::kTrailerLine: {
        const std::size_t lf = find_lf(in, i);
        const std::size_t end = lf == std::string_view::npos ? in.size() : lf + 1;
        trailer_bytes_ += end - i;
        if (trailer_bytes_ > kMaxTrailerBytes) return fail(end);
        i = end;
        if (lf != std::string_view::npos) state_ = State::kTrailerStart;
        break;
      }
      case State::kFinalLf:
        if (c != '\n') return fail(i);
        state_ = State::kDone;
        ++i;
        break;
      case State::kDone:
        break;
    }
  }
  return {i, state_ == State::kDone, 0};
}

}  // namespace iolab::http
