// How server_lab11 runs a request's blocking work: the part you write (lab 11).
//
// server_lab11 is server_coro (servers/coro/main.cpp: read its header first) built with this
// file in place of servers/coro/run_work.cpp. When a handler's work must block (/sleep?ms=N
// sleeps N ms in the calling thread: DeferredWork in servers/core/http/app.hpp),
// serve_connection() awaits run_work() on a worker, then goes on with the connection.
// Try: curl -s 'localhost:8080/sleep?ms=2000' & time curl -s localhost:8080/ping
#include "run_work.hpp"

#include "scheduler.hpp"

namespace iolab::coro {

Task<void> run_work(DeferredWork work) {
  // TODO(lab 11): the work runs right here, on the worker thread: while it sleeps, this worker
  // runs no other coroutine, and its run queue waits. Write an awaiter that hands the work to
  // the blocking pool and has a worker resume this coroutine when it is done (the README's
  // Exercise; the pieces are above blocking() in scheduler.hpp).
  work.run();
  co_return;
}

}  // namespace iolab::coro
