// Socket and process helpers shared by the servers: descriptors, listeners, pinning, the ready
// line, signals, limits and sending a file region. No event loop lives here.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "app.hpp"

namespace iolab {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(std::exchange(other.fd_, -1));
    return *this;
  }
  ~UniqueFd() { reset(); }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1);  // closes the old descriptor (counted)
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

struct FdLimits {
  rlim_t soft_at_start;
  rlim_t soft;
  rlim_t hard;
};
// Raises the soft RLIMIT_NOFILE to the hard limit (Debian desktops start at 1024).
FdLimits raise_fd_limit();

// `count` listening TCP sockets on one address and port. With count > 1 they use SO_REUSEPORT
// and the kernel spreads connections across them. Port 0 would give each its own port, so the
// first binds to 0 and the others to the port it got. Throws std::system_error.
std::vector<UniqueFd> listen_tcp(const std::string& address, std::uint16_t port, int count,
                                 bool nonblocking);
std::uint16_t local_port(int fd);

void set_nonblocking(int fd);
void set_nodelay(int fd);
// Pins the calling thread to the given CPUs (all of them, as one mask). Throws on failure.
void pin_current_thread(std::span<const int> cpus);
// "2-5,7" -> {2,3,4,5,7}; throws std::invalid_argument on malformed lists.
std::vector<int> parse_cpu_list(std::string_view list);

// `server_threads listening on 127.0.0.1:8080 threads=1 pid=42`, flushed.
void print_ready_line(std::string_view model, const std::string& address, std::uint16_t port,
                      int threads);

// Start-up common to every server: ignore SIGPIPE (a write to a reset peer must return EPIPE,
// not kill the process) and block SIGINT/SIGTERM in this thread and every thread it creates
// later, so they are taken only by wait_for_stop_signal() or a stop_signal_fd().
void init_process_signals();
int wait_for_stop_signal();  // blocks; returns the signal number
int stop_signal_fd();        // a non-blocking signalfd for SIGINT/SIGTERM, for event loops

// Sends up to region.length bytes of a file to a socket: with sendfile(2) (the kernel copies
// from the page cache) or, when use_sendfile is false, pread(2) into a per-thread buffer and
// send(2): the extra copy through user space that zero-copy avoids. Returns bytes sent or -1.
// In send_file.cpp, a file of its own: lab 10 builds a server with its own version instead.
ssize_t send_file_region(int sock, const FileRegion& region, bool use_sendfile);

}  // namespace iolab
