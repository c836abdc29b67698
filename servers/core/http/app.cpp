#include "app.hpp"

#include <algorithm>
#include <atomic>
#include <cassert>
#include <charconv>
#include <cstring>
#include <new>

#include "clock.hpp"
#include "stats.hpp"

namespace iolab {

void Request::keep() {
  kept_.reserve(method.size() + path.size() + query.size());
  kept_.append(method).append(path).append(query);
  method = std::string_view(kept_).substr(0, method.size());
  path = std::string_view(kept_).substr(method.size(), path.size());
  query = std::string_view(kept_).substr(method.size() + path.size());
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

namespace {

constexpr std::size_t kHttpDateBytes = sizeof("Sun, 06 Nov 1994 08:49:37 GMT") - 1;

// The value of `key` in a query string "a=1&n=42", if present.
std::optional<std::string_view> query_param(std::string_view query, std::string_view key) {
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    if (pair.size() > key.size() && pair.substr(0, key.size()) == key && pair[key.size()] == '=') {
      return pair.substr(key.size() + 1);
    }
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
  }
  return std::nullopt;
}

// A decimal parameter in [0, max]; nullopt when missing, malformed or too large.
std::optional<std::uint64_t> number_param(std::string_view query, std::string_view key,
                                          std::uint64_t max) {
  const auto text = query_param(query, key);
  if (!text || text->empty()) return std::nullopt;
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (ec != std::errc() || end != text->data() + text->size() || value > max) return std::nullopt;
  return value;
}

// s == literal, with the length known when compiled: the comparison is a load or two, not a
// call to memcmp with a run-time length.
template <std::size_t N>
bool is(std::string_view s, const char (&literal)[N]) {
  return s.size() == N - 1 && std::memcmp(s.data(), literal, N - 1) == 0;
}

void text_body(Response& out, int status, std::string_view text) {
  out.status = status;
  out.content_type = "text/plain";
  out.body.assign(text);
}

}  // namespace

App::App(std::string_view model, const ContentSource& content)
    : model_(model), server_header_("Server: iolab-" + std::string(model) + "\r\n"),
      ok_prefix_("HTTP/1.1 200 OK\r\n" + server_header_ + "Date: "), content_(content) {
  static std::atomic<std::uint64_t> next_id{1};
  id_ = next_id.fetch_add(1, std::memory_order_relaxed);
}

void App::handle(const Request& req, Response& out) const {
  const std::string_view path = req.path;
  const std::string_view query = req.query;
  enum class Route { kPing, kPlaintext, kBytes, kFile, kWork, kSleep, kStats, kNone };
  Route route = Route::kNone;
  if (is(path, "/ping")) route = Route::kPing;
  else if (is(path, "/plaintext")) route = Route::kPlaintext;
  else if (is(path, "/bytes")) route = Route::kBytes;
  else if (is(path, "/file")) route = Route::kFile;
  else if (is(path, "/work")) route = Route::kWork;
  else if (is(path, "/sleep")) route = Route::kSleep;
  else if (is(path, "/stats")) route = Route::kStats;

  count(route == Route::kStats ? Counter::kStatsRequests : Counter::kRequests);
  if (route == Route::kNone) return text_body(out, 404, "Not Found\n");
  if (!is(req.method, "GET") && !is(req.method, "HEAD")) {
    out.allow = "GET, HEAD";
    return text_body(out, 405, "Method Not Allowed\n");
  }
  switch (route) {
    case Route::kPing:
      out.content_type = "application/json";
      out.text = R"({"message":"pong"})";
      return;
    case Route::kPlaintext:
      out.text = "Hello, World!";
      return;
    case Route::kBytes:
    case Route::kFile: {
      const auto n = number_param(query, "n", ContentSource::kSize);
      if (!n) return text_body(out, 400, "n must be a number of bytes up to 16777216\n");
      out.content_type = "application/octet-stream";
      if (route == Route::kBytes) {
        out.static_body = content_.bytes().substr(0, *n);
      } else {
        out.file = {content_.fd(), 0, *n};
      }
      return;
    }
    case Route::kWork: {
      const auto us = number_param(query, "us", kMaxWorkUs);
      if (!us) return text_body(out, 400, "us must be a number up to 1000000\n");
      burn_cpu_us(*us);
      out.body.assign("worked\n");
      return;
    }
    case Route::kSleep: {
      const auto ms = number_param(query, "ms", kMaxSleepMs);
      if (!ms) return text_body(out, 400, "ms must be a number up to 10000\n");
      out.work = DeferredWork{static_cast<std::uint32_t>(*ms)};
      out.body.assign("slept\n");
      return;
    }
    case Route::kStats:
      out.content_type = "application/json";
      append_stats_json(model_, out.body);
      return;
    case Route::kNone:
      return;
  }
}

void App::error_response(int status, Response& out) const {
  out.status = status;
  out.content_type = "text/plain";
  out.body.assign(reason_phrase(status));
  out.body.push_back('\n');
  out.close = true;
}

void App::append_head(const Response& resp, bool keep_alive, bool echo_keep_alive,
                      std::pmr::string& out) const {
  // The head is measured first and written in one resize: a dozen small appends each re-check
  // capacity and call memcpy with a run-time length, which cost more than the bytes themselves
  // on a /ping response (lab 07, going further, has the instruction counts).
  // A 200's status line and Server header come prebuilt (ok_prefix_), and the date is copied
  // with its fixed length when it has it: fewer memcpy calls with a run-time length.
  const bool ok = resp.status == 200;
  char status[12] = "200";
  char length[24];
  const std::size_t status_len = ok ? 3 :
      static_cast<std::size_t>(std::to_chars(status, status + sizeof status, resp.status).ptr - status);
  const std::size_t length_len = static_cast<std::size_t>(
      std::to_chars(length, length + sizeof length, resp.body_length()).ptr - length);
  const std::string_view reason = ok ? std::string_view("OK") : reason_phrase(resp.status);
  const std::string_view date = http_date();
  constexpr std::string_view kClose = "Connection: close\r\n";
  constexpr std::string_view kKeepAlive = "Connection: keep-alive\r\n";
  // "" rather than an empty view: put() passes its pointer to memcpy, which must not be null
  // even for zero bytes (UBSan reports it; the fuzz target found it).
  const std::string_view connection = !keep_alive ? kClose : echo_keep_alive ? kKeepAlive : std::string_view("");
  constexpr std::string_view kAllow = "Allow: ";
  constexpr std::size_t kFixed = sizeof("HTTP/1.1 ") - 1 + 1 + 2 + sizeof("Date: ") - 1 +
                                 sizeof("\r\nContent-Type: ") - 1 + sizeof("\r\nContent-Length: ") - 1 + 2 + 2;
  const std::size_t allow_len = resp.allow.empty() ? 0 : kAllow.size() + resp.allow.size() + 2;
  const std::size_t total = kFixed + status_len + reason.size() + server_header_.size() + date.size() +
                            resp.content_type.size() + length_len + allow_len + connection.size();
  const std::size_t old_size = out.size();
  out.resize(old_size + total);
  char* p = out.data() + old_size;
  auto put = [&p](std::string_view piece) {
    std::memcpy(p, piece.data(), piece.size());
    p += piece.size();
  };
  if (ok) {
    put(ok_prefix_);
  } else {
    put("HTTP/1.1 ");
    put({status, status_len});
    put(" ");
    put(reason);
    put("\r\n");
    put(server_header_);
    put("Date: ");
  }
  if (date.size() == kHttpDateBytes) {
    std::memcpy(p, date.data(), kHttpDateBytes);
    p += kHttpDateBytes;
  } else {
    put(date);
  }
  put("\r\nContent-Type: ");
  put(resp.content_type);
  put("\r\nContent-Length: ");
  put({length, length_len});
  put("\r\n");
  if (allow_len != 0) {
    put(kAllow);
    put(resp.allow);
    put("\r\n");
  }
  put(connection);
  put("\r\n");
  assert(p == out.data() + out.size());
}

namespace {

// One prebuilt response of fixed_response(), keyed by the App and by where the content type and
// text live: both are constants of handle(), so the same route finds the same entry.
struct FixedEntry {
  std::uint64_t app = 0;
  const char* type = nullptr;
  std::size_t type_len = 0;
  const char* text = nullptr;
  std::size_t text_len = 0;
  long long second = -1;
  std::size_t len = 0;
  char bytes[256];  // /ping's response is about 150
};
constexpr std::size_t kFixedEntries = 3;
thread_local FixedEntry fixed_cache[kFixedEntries];
thread_local std::size_t fixed_victim = 0;

// fixed_response()'s slow path, once per second per route and thread, kept out of its way:
// rebuilds entry `e` (or a new one when null) for `app`, whose id is `app_id`.
[[gnu::noinline]] std::string_view build_fixed_response(const App& app, std::uint64_t app_id,
                                                        const Response& resp, FixedEntry* e,
                                                        long long second) {
  if (e == nullptr) {
    e = &fixed_cache[fixed_victim];
    fixed_victim = (fixed_victim + 1) % kFixedEntries;
  }
  // Formatted by append_head() itself, so the bytes are the slow path's; into a stack buffer,
  // so a rebuild allocates nothing (the pooled server counts zero allocations per request).
  e->app = 0;
  char scratch[2 * sizeof e->bytes];
  std::pmr::monotonic_buffer_resource arena(scratch, sizeof scratch, std::pmr::null_memory_resource());
  std::pmr::string out(&arena);
  try {
    out.reserve(sizeof e->bytes);
    app.append_head(resp, true, false, out);
    out.append(resp.text);
  } catch (const std::bad_alloc&) {
    return {};  // longer than the scratch buffer: too long to keep
  }
  if (out.size() > sizeof e->bytes) return {};
  std::memcpy(e->bytes, out.data(), out.size());
  e->len = out.size();
  e->app = app_id;
  e->type = resp.content_type.data();
  e->type_len = resp.content_type.size();
  e->text = resp.text.data();
  e->text_len = resp.text.size();
  e->second = second;
  return {e->bytes, e->len};
}

}  // namespace

std::string_view App::fixed_response(const Response& resp) const {
  const HttpDate date = http_date_now();
  for (FixedEntry& e : fixed_cache) {
    if (e.app == id_ && e.type == resp.content_type.data() && e.type_len == resp.content_type.size() &&
        e.text == resp.text.data() && e.text_len == resp.text.size()) {
      if (e.second == date.second) return {e.bytes, e.len};
      return build_fixed_response(*this, id_, resp, &e, date.second);
    }
  }
  return build_fixed_response(*this, id_, resp, nullptr, date.second);
}

std::string App::refusal_response() const {
  Response resp(std::pmr::new_delete_resource());
  resp.status = 503;
  resp.close = true;
  resp.body.assign("Service Unavailable\n");
  std::pmr::string out;
  append_head(resp, false, false, out);
  out.append(resp.body);
  return std::string(out);
}

}  // namespace iolab
