// What server_select does when the process is out of descriptors, in a file of its own
// (spare_fd.cpp) so that lab 02 builds this server with the student's version.
#pragma once

#include "net.hpp"
#include "server.hpp"

namespace iolab::select_loop {

// One descriptor held in reserve, opened at start-up, for the moment accept4() fails with
// EMFILE: it lets the loop take a waiting connection off the backlog and refuse it at once.
class SpareFd {
 public:
  SpareFd();  // opens the reserve (or holds none if that fails: refuse_waiting() says so)

  // accept4() on `listener` failed with EMFILE. Takes up to `max` waiting connections off the
  // backlog, each refused at once (refuse(): a 503 and close). True: the reserve is held again,
  // so the listener can be watched again (readable only when another connection waits); false:
  // no reserve (it could not be reopened), and the loop backs off instead (accept_pause()).
  bool refuse_waiting(int listener, const SharedState& shared, int max);

 private:
  UniqueFd spare_;
};

}  // namespace iolab::select_loop
