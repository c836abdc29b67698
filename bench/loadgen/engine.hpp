// The load engine: worker threads, each an epoll loop over its share of the connections.
//
// Design. Every worker owns a slice of the load connections and of the idle connections, one
// epoll instance and a timer heap; workers share nothing on the hot path except, with
// --requests, one atomic count of requests left to claim. A run has three phases:
//
//   setup    connections are opened at --connect-rate (each idle one sends its request and is
//            then left alone); the worker then reports ready and waits;
//   load     from t0 the coordinator (main) publishes, connections send: closed loop keeps
//            --pipeline requests in flight, open loop sends request k of connection j at its
//            intended time t0 + (k * connections + j) / rate, so the connections interleave into
//            one evenly spaced stream; the window is [t0 + warmup, end);
//   stop     at the window's end (duration) or when the last claimed request has its response.
//
// What a request costs the client. Sockets are registered once for IN|OUT|RDHUP, edge-triggered,
// so the loop never calls epoll_ctl per request (wrk's ae loop adds and removes the write event
// for every request: two epoll_ctl calls). A response is read with one recv(2) into a buffer the
// worker shares between its connections (a short read means the socket was drained, so no
// second recv waits for EAGAIN; an edge fires again when more arrives), parsed in place, and the
// next request goes out with one send(2) straight away (it fits the socket buffer, so EPOLLOUT is
// only needed after EAGAIN). One clock read per readiness event stamps both the responses it
// completes and the requests it sends. Per request: recv + send + a share of one epoll_wait.
//
// Latency. A request records two times: when it was meant to go (intended) and when it went
// (sent). Closed loop they are equal. Open loop, a request whose predecessor on the connection
// was late goes as soon as that response is in, still owing its latency to the intended time:
// latency = done - intended is the corrected series (wrk2), done - sent the raw one, which
// hides a server stall (coordinated omission).
//
// New connection per request: connect, send with "Connection: close", read the response, then
// wait for the server's FIN before close(2), so the server closes first and TIME_WAIT stays on
// its side, not on the client's ~28k ephemeral ports.
#pragma once

#include <netinet/in.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cli.hpp"
#include "histogram.hpp"

namespace iolab::loadgen {

// Latencies are recorded in nanoseconds, up to an hour, with 3 significant figures.
inline constexpr std::int64_t kHistogramHighestNs = 3'600'000'000'000;
inline constexpr int kHistogramFigures = 3;

enum class ErrorKind : unsigned {
  kConnect,
  kRead,
  kWrite,
  kTimeout,
  kStatus,
  kParse,
  kBody,
  kCount
};
inline constexpr unsigned kErrorKinds = static_cast<unsigned>(ErrorKind::kCount);
const char* error_name(ErrorKind kind);

struct Results {
  Results();
  void merge(const Results& other);

  Histogram latency;  // corrected in open loop; equal to raw in closed loop
  Histogram raw;
  std::uint64_t requests = 0;         // good responses counted in the window
  std::uint64_t warmup_requests = 0;  // good responses before the window
  std::uint64_t after_window = 0;     // good responses after it (duration mode, abandoned soon)
  std::array<std::uint64_t, kErrorKinds> errors{};
  std::string first_error;  // "connect: Connection refused", for the report
  std::vector<std::uint64_t> per_kind;
  std::uint64_t bytes_read = 0;
  std::uint64_t bytes_written = 0;
  std::uint64_t connects = 0;         // connections opened (load and idle)
  std::uint64_t idle_ready = 0;       // idle connections that got their response
  std::uint64_t idle_lost = 0;        // ... and were closed by the server afterwards
  std::int64_t last_response_ns = 0;  // CLOCK_MONOTONIC of the last counted response
};

// What the coordinator and the workers share.
struct Shared {
  std::mutex mutex;
  std::condition_variable changed;
  int ready = 0;            // workers done with setup
  bool go = false;          // t0 and the window below are published
  bool abort = false;       // give up (setup failed elsewhere)
  std::string setup_error;  // first fatal setup error
  std::int64_t t0_ns = 0;   // CLOCK_MONOTONIC
  std::int64_t window_start_ns = 0;
  std::int64_t window_end_ns = std::numeric_limits<std::int64_t>::max();

  std::atomic<bool> stop{false};
  std::atomic<std::int64_t> tickets{0};  // --requests: requests left to claim
  int done_fd = -1;                      // eventfd a worker bumps when it finishes
};

// CLOCK_MONOTONIC in nanoseconds (a vDSO read: no system call with the TSC clock source).
std::int64_t monotonic_ns();

class Worker {
 public:
  Worker(const Config& config, Shared& shared, int index);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void run();  // the thread's body
  const Results& results() const { return results_; }

 private:
  struct Impl;
  Results results_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace iolab::loadgen
