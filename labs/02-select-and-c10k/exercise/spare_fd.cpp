// server_lab02 (lab 02, the starter): YOUR TASK is to answer connections at the descriptor limit.
//
// server_lab02 is server_select (servers/select/main.cpp) built with this file in place of
// servers/select/spare_fd.cpp; spare_fd.hpp says what each function must do. As handed out it
// holds no reserve, so when accept4() fails with EMFILE the loop does what lab 01's starter
// does: it stops watching the listener for 100 ms (accept_pause.cpp), and the connection waits
// in the backlog until one of the open ones closes, however long that takes.
#include "spare_fd.hpp"

namespace iolab::select_loop {

SpareFd::SpareFd() = default;  // TODO(lab 02): open the reserve

bool SpareFd::refuse_waiting(int listener, const SharedState& shared, int max) {
  (void)listener, (void)shared, (void)max;  // TODO(lab 02): the README's Exercise
  return false;
}

}  // namespace iolab::select_loop
