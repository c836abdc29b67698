// What server_select does when accept4() fails, in a file of its own (accept_pause.cpp) so that
// lab 02 builds this server with the student's version.
#pragma once

#include "clock.hpp"

namespace iolab::select_loop {

// accept4() on the listener failed with `error` (an errno value, never EAGAIN). Returns how long
// the loop stops watching the listener (it keeps serving its connections meanwhile, and counts a
// back-off in /stats: accept_backoffs); zero: watch it as before.
Millis accept_pause(int error);

}  // namespace iolab::select_loop
