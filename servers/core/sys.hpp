// Thin counted wrappers around the system calls the servers make, so /stats can report
// "system calls per request" by kind without strace. Each wrapper counts the call, then makes
// it, and returns exactly what the system call returned (errno untouched).
#pragma once

#include <poll.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "stats.hpp"

namespace iolab::sys {

inline ssize_t recv(int fd, void* buf, std::size_t len, int flags = 0) {
  count(Counter::kSysRead);
  return ::recv(fd, buf, len, flags);
}
inline ssize_t send(int fd, const void* buf, std::size_t len, int flags = MSG_NOSIGNAL) {
  count(Counter::kSysWrite);
  return ::send(fd, buf, len, flags);
}
inline ssize_t writev(int fd, const iovec* iov, int iovcnt) {
  count(Counter::kSysWritev);
  return ::writev(fd, iov, iovcnt);
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
  return ::accept4(fd, addr, len, flags);
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
  return ::epoll_ctl(epfd, op, fd, event);
}

}  // namespace iolab::sys
