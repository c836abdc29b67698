// The application every server runs: routes a parsed request to a response.
//
// What a request keeps and a response's string are allocated from a std::pmr::memory_resource
// the caller injects: the plain servers pass operator new, the pooled server an arena, so the two
// differ only in where memory comes from. Large bodies are never copied: /bytes points into a read-only
// mapping and /file names a region of the content file.
#pragma once

#include <cstdint>
#include <memory_resource>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "http_parser.hpp"

namespace iolab {

// A request as the application sees it: its method, path and query. They are views into the
// input, where the head was parsed, while the request is answered straight from its head (the
// usual case); a request kept while its body is read owns a copy (keep()), since the input
// buffer may move meanwhile. No route reads the header fields: they stay in the parsed head.
struct Request {
  Request(const http::RequestHead& head, std::pmr::memory_resource* mr)
      : method(head.method), path(head.path), query(head.query),
        version_minor(head.version_minor), kept_(mr) {}
  Request(const Request&) = delete;  // the views may point into kept_
  Request& operator=(const Request&) = delete;
  // Copies the three strings into memory of the request's own (one allocation from its
  // resource, none when they fit in the string itself) and points at the copy.
  void keep();

  std::string_view method;
  std::string_view path;
  std::string_view query;
  int version_minor = 1;

 private:
  std::pmr::string kept_;
};

// A byte range of a file, to be sent with sendfile/splice or read+write.
struct FileRegion {
  int fd = -1;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
};

// Work a handler must block on (/sleep). It is handed to the I/O layer, which decides where it
// runs: inline (an event loop stalls: the lesson), in the connection's own thread, or on a
// blocking pool. The response is sent after it.
struct DeferredWork {
  std::uint32_t sleep_ms = 0;
  void run() const;  // blocks the calling thread (os/work.cpp)
};

// Burns `us` microseconds of the calling thread's CPU time, not wall time: a preempted handler
// still does the same work (/work; os/work.cpp).
void burn_cpu_us(std::uint64_t us);

struct Response {
  explicit Response(std::pmr::memory_resource* mr) : body(mr) {}
  int status = 200;
  std::string_view content_type = "text/plain";
  std::pmr::string body;             // small bodies, owned
  std::string_view text;             // a small constant body, copied out after `body`: no allocation
  std::string_view static_body;      // large bodies from static memory, sent without a copy
  FileRegion file;                   // sent after body/static_body
  std::string_view allow;            // the Allow header of a 405
  bool close = false;                // end the connection after this response (errors)
  std::optional<DeferredWork> work;  // run first, then send
  std::uint64_t body_length() const {
    return body.size() + text.size() + static_body.size() + file.length;
  }
  // A 200 whose only body is the constant `text` (/ping, /plaintext): App::fixed_response()
  // can hand out its bytes whole.
  bool fixed() const {
    return status == 200 && body.empty() && static_body.empty() && file.length == 0 &&
           allow.empty() && !close && !work;
  }
};

// The 16 MiB body source of /bytes and /file: byte i is 'a' + i % 26, in a memfd that is also
// mapped read-only, so /bytes is a view and /file a region of the same bytes. The application
// only reads it; making it is the operating system's part (os/content_source.cpp).
class ContentSource {
 public:
  static constexpr std::uint64_t kSize = 16 * 1024 * 1024;
  static char byte_at(std::uint64_t i) { return static_cast<char>('a' + i % 26); }
  ContentSource();  // throws std::system_error when the memfd or mapping fails
  ~ContentSource();
  ContentSource(const ContentSource&) = delete;
  ContentSource& operator=(const ContentSource&) = delete;
  int fd() const { return fd_; }
  std::string_view bytes() const { return {data_, kSize}; }

 private:
  int fd_ = -1;
  const char* data_ = nullptr;
};

class App {
 public:
  static constexpr std::uint64_t kMaxWorkUs = 1'000'000;
  static constexpr std::uint64_t kMaxSleepMs = 10'000;

  App(std::string_view model, const ContentSource& content);
  std::string_view model() const { return model_; }

  // Routes `req`; counts it as a request (or a /stats request).
  void handle(const Request& req, Response& out) const;
  // A response for a protocol error (400, 413, 414, 431, 501, 505); it closes the connection.
  void error_response(int status, Response& out) const;
  // Appends the status line and headers of `resp` to `out`. `keep_alive` decides the
  // Connection header: "close" when false, "keep-alive" when `echo_keep_alive` (HTTP/1.0).
  void append_head(const Response& resp, bool keep_alive, bool echo_keep_alive,
                   std::pmr::string& out) const;
  // The whole response to `resp` when fixed() holds, on a keep-alive HTTP/1.1 connection (no
  // Connection header): the bytes append_head() and the text would give, built at most once
  // per second per thread and kept, so a request to a fixed route copies one string instead
  // of formatting a head. Empty when it does not fit the cache (then format as usual).
  std::string_view fixed_response(const Response& resp) const;
  // The whole 503 response a server sends to a connection it refuses (--max-conns, pools).
  std::string refusal_response() const;

 private:
  std::string model_;
  std::string server_header_;  // "Server: iolab-<model>\r\n"
  std::string ok_prefix_;      // "HTTP/1.1 200 OK\r\n" + server_header_ + "Date: "
  std::uint64_t id_;           // names this App in fixed_response()'s per-thread cache
  const ContentSource& content_;
};

std::string_view reason_phrase(int status);

}  // namespace iolab
