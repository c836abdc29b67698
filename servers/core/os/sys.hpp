// Thin counted wrappers around the system calls the servers make, so /stats can report
// "system calls per request" by kind without strace. Each wrapper counts the call, then makes
// it, and returns exactly what the system call returned (errno untouched).
//
// Fault injection (test-only builds): the server_*_faults binaries are compiled with
// IOLAB_FAULT_INJECTION, and IOLAB_FAULTS="epoll_ctl_add=3,accept4=5,thread=1" makes every 3rd
// EPOLL_CTL_ADD of an accepted socket fail with ENOSPC (fs.epoll.max_user_watches), every 5th
// accept4 with ENOMEM, and every start of an on-demand thread (a connection's thread, a
// blocking-pool thread) with EAGAIN, as the kernel would. Release binaries compile none of it:
// inject() is a constant false there.
#pragma once

#include <poll.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <thread>
#include <utility>
#ifdef IOLAB_FAULT_INJECTION
#include <atomic>
#include <cstdlib>
#include <cstring>
#endif

#include "stats.hpp"

namespace iolab::sys {

enum class Fault : unsigned { kEpollCtlAdd, kAccept4, kThread, kCount };

#ifdef IOLAB_FAULT_INJECTION
// Every Nth call of each kind fails; N from IOLAB_FAULTS ("name=N,..."), 0 (never) by default.
inline bool inject(Fault f) {
  struct Plan {
    unsigned every[static_cast<unsigned>(Fault::kCount)] = {};
    std::atomic<unsigned> calls[static_cast<unsigned>(Fault::kCount)] = {};
    Plan() {
      const char* names[] = {"epoll_ctl_add=", "accept4=", "thread="};
      const char* env = std::getenv("IOLAB_FAULTS");
      for (unsigned i = 0; env != nullptr && i < static_cast<unsigned>(Fault::kCount); ++i) {
        if (const char* at = std::strstr(env, names[i])) {
          every[i] = static_cast<unsigned>(std::strtoul(at + std::strlen(names[i]), nullptr, 10));
        }
      }
    }
  };
  static Plan plan;
  const auto i = static_cast<unsigned>(f);
  if (plan.every[i] == 0) return false;
  return (plan.calls[i].fetch_add(1, std::memory_order_relaxed) + 1) % plan.every[i] == 0;
}
// Only accepted sockets are eligible for an EPOLL_CTL_ADD fault, so setup never fails.
inline std::atomic<bool>& accepted(int fd) {
  static std::atomic<bool> table[1 << 16];
  return table[static_cast<unsigned>(fd) % (1u << 16)];
}
inline void note_accepted(int fd) {
  if (fd >= 0) accepted(fd).store(true, std::memory_order_relaxed);
}
inline bool inject_add(int fd) {
  return accepted(fd).exchange(false, std::memory_order_relaxed) && inject(Fault::kEpollCtlAdd);
}
#else
constexpr bool inject(Fault) { return false; }
constexpr void note_accepted(int) {}
constexpr bool inject_add(int) { return false; }
#endif

// Starts an on-demand thread (not a loop or worker started at setup): throws std::system_error
// like std::thread's constructor when it cannot (EAGAIN at a pids limit, or injected).
template <class... Args>
std::thread start_thread(Args&&... args) {
  if (inject(Fault::kThread)) {
    throw std::system_error(EAGAIN, std::generic_category(), "thread creation (injected)");
  }
  return std::thread(std::forward<Args>(args)...);
}

// The calls made for every request enter the kernel through syscall(2), not glibc's recv, send
// and writev: those are cancellation points, and in a process with more than one thread glibc
// switches the calling thread to asynchronous cancellation before each call and back after it
// (about 65 instructions a request under callgrind), for a pthread_cancel no server uses. The
// system calls are the same ones (recvfrom, sendto, writev, as strace shows); so are the
// results: -1 with errno set on failure.
inline ssize_t recv(int fd, void* buf, std::size_t len, int flags = 0) {
  count(Counter::kSysRead);
  return ::syscall(SYS_recvfrom, fd, buf, len, flags, nullptr, nullptr);
}
inline ssize_t send(int fd, const void* buf, std::size_t len, int flags = MSG_NOSIGNAL) {
  count(Counter::kSysWrite);
  return ::syscall(SYS_sendto, fd, buf, len, flags, nullptr, 0);
}
inline ssize_t writev(int fd, const iovec* iov, int iovcnt) {
  count(Counter::kSysWritev);
  return ::syscall(SYS_writev, fd, iov, iovcnt);
}
inline ssize_t sendfile(int out_fd, int in_fd, off_t* offset, std::size_t count_bytes) {
  count(Counter::kSysSendfile);
  return ::sendfile(out_fd, in_fd, offset, count_bytes);
}
inline ssize_t pread(int fd, void* buf, std::size_t len, off_t offset) {
  count(Counter::kSysPread);
  return ::pread(fd, buf, len, offset);
}
inline int accept4(int fd, sockaddr* addr, socklen_t* len, int flags) {
  count(Counter::kSysAccept);
  if (inject(Fault::kAccept4)) return errno = ENOMEM, -1;
  const int accepted_fd = ::accept4(fd, addr, len, flags);
  note_accepted(accepted_fd);
  return accepted_fd;
}
inline int close(int fd) {
  count(Counter::kSysClose);
  return ::close(fd);
}
inline int shutdown(int fd, int how) {
  count(Counter::kSysShutdown);
  return ::shutdown(fd, how);
}
inline int setsockopt(int fd, int level, int name, const void* value, socklen_t len) {
  count(Counter::kSysSetsockopt);
  return ::setsockopt(fd, level, name, value, len);
}
inline int poll(pollfd* fds, nfds_t n, int timeout_ms) {
  count(Counter::kSysPoll);
  return ::poll(fds, n, timeout_ms);
}
inline int select(int nfds, fd_set* r, fd_set* w, fd_set* e, timeval* timeout) {
  count(Counter::kSysSelect);
  return ::select(nfds, r, w, e, timeout);
}
inline int epoll_wait(int epfd, epoll_event* events, int max, int timeout_ms) {
  count(Counter::kSysEpollWait);
  return ::epoll_wait(epfd, events, max, timeout_ms);
}
inline int epoll_ctl(int epfd, int op, int fd, epoll_event* event) {
  count(Counter::kSysEpollCtl);
  if (op == EPOLL_CTL_ADD && inject_add(fd)) return errno = ENOSPC, -1;
  return ::epoll_ctl(epfd, op, fd, event);
}

}  // namespace iolab::sys
