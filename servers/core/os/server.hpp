// What every server's main.cpp shares, so that each one holds only its model: the state its
// threads share (a model's Shared derives from SharedState and adds its own), refusing a
// connection, pinning a worker, the connection boundary's log line and count, and the final
// stats line. Each main() still starts and stops its server in its own file.
#pragma once

#include <atomic>
#include <cstddef>
#include <string>
#include <string_view>

#include "app.hpp"
#include "net.hpp"
#include "options.hpp"

namespace iolab {

struct SharedState {
  explicit SharedState(std::string_view model)
      : app(model, content), refusal(app.refusal_response()) {}
  SharedState(const SharedState&) = delete;
  SharedState& operator=(const SharedState&) = delete;

  Options options;
  ContentSource content;
  App app;
  std::string refusal;  // the whole 503 a refused connection gets (refuse())
  std::atomic<std::size_t> open_connections{0};
};

// Refuses a connection (--max-conns, a full pool, a thread that could not start): sends the 503
// without blocking, best effort, so the client learns why instead of seeing a reset; counts it
// (connections_refused). The socket closes when `socket` goes.
void refuse(const SharedState& shared, UniqueFd socket);

// Pins the calling worker (event loop, acceptor) to the CPU of --pin at `index`, round robin
// when there are more workers than CPUs; without --pin, leaves it to the scheduler.
void pin_worker(const Options& options, int index);

// The connection boundary: an exception (std::bad_alloc, ...) or an error on one connection's
// own path closed that connection only. Logs it on stderr ("server_<model>: closing a
// connection: <what>") and counts it (connection_errors); the server goes on.
void count_connection_error(std::string_view model, std::string_view what);

// The last thing a server prints on stdout after it stopped: one /stats line, flushed.
void print_final_stats(std::string_view model);

}  // namespace iolab
