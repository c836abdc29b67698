// How server_coro runs a request's blocking work (/sleep), in a file of its own (run_work.cpp)
// so that lab 11 builds this server with the student's version.
#pragma once

#include "app.hpp"
#include "task.hpp"

namespace iolab::coro {

// Runs work.run(), which blocks its thread, and completes when it has returned. Awaited by the
// connection's coroutine on a worker thread, which must not be the thread that blocks.
Task<void> run_work(DeferredWork work);

}  // namespace iolab::coro
