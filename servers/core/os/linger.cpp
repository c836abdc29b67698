// The helper thread behind linger_close() (linger.hpp): an epoll loop over lingering sockets,
// each with a deadline and a byte budget. Started on first use; never stopped (it holds no
// state a process exit must flush).
#include "linger.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <cerrno>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "sys.hpp"

namespace iolab {
namespace {

struct Lingering {
  UniqueFd fd;
  TimePoint deadline;
  std::size_t budget;
};

// Reads and discards what is there. True when the socket is finished: EOF, an error, or the
// budget spent; false when it would block.
bool drain(int fd, std::size_t& budget) {
  char scratch[16 * 1024];
  for (;;) {
    const ssize_t n = sys::recv(fd, scratch, sizeof scratch, MSG_DONTWAIT);
    if (n < 0) return errno != EAGAIN && errno != EINTR;
    if (n == 0 || static_cast<std::size_t>(n) >= budget) return true;
    budget -= static_cast<std::size_t>(n);
  }
}

class Lingerer {
 public:
  static Lingerer& instance() {
    static auto* lingerer = new Lingerer;  // never destroyed: its thread may outlive main()
    return *lingerer;
  }

  void add(UniqueFd fd) {
    std::lock_guard lock(mutex_);
    if (!epoll_ || incoming_.size() + count_ >= kLingerMaxSockets) return;  // closed at once
    incoming_.push_back({std::move(fd), coarse_now() + kLingerTime, kLingerBytes});
    const std::uint64_t one = 1;
    if (::write(wake_.get(), &one, sizeof one) < 0) incoming_.pop_back();
  }

 private:
  Lingerer() : epoll_(::epoll_create1(EPOLL_CLOEXEC)), wake_(::eventfd(0, EFD_CLOEXEC)) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = wake_.get();
    if (!epoll_ || !wake_ || ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &ev) != 0) {
      epoll_.reset();
      return;
    }
    try {
      std::thread(&Lingerer::run, this).detach();
    } catch (const std::system_error&) {
      epoll_.reset();  // no helper: sockets are closed at once, as before
    }
  }

  void run() {
    std::map<int, Lingering> sockets;
    epoll_event events[64];
    for (;;) {
      int timeout = -1;
      const TimePoint now = coarse_now();
      for (auto it = sockets.begin(); it != sockets.end();) {  // few sockets: a scan is fine
        if (it->second.deadline <= now) {
          it = sockets.erase(it);
          continue;
        }
        const auto left = std::chrono::ceil<Millis>(it->second.deadline - now).count();
        timeout = timeout < 0 ? static_cast<int>(left) : std::min(timeout, static_cast<int>(left));
        ++it;
      }
      {
        std::lock_guard lock(mutex_);
        count_ = sockets.size();
      }
      const int n = ::epoll_wait(epoll_.get(), events, 64, timeout);
      for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        if (fd == wake_.get()) {
          std::uint64_t v;
          if (::read(wake_.get(), &v, sizeof v) < 0) continue;
          std::vector<Lingering> taken;
          {
            std::lock_guard lock(mutex_);
            taken.swap(incoming_);
          }
          for (Lingering& l : taken) {
            const int s = l.fd.get();
            epoll_event ev{};
            ev.events = EPOLLIN | EPOLLRDHUP;
            ev.data.fd = s;
            if (drain(s, l.budget) || ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, s, &ev) != 0) {
              continue;  // finished already (or cannot be watched): closed here
            }
            sockets[s] = std::move(l);
          }
        } else if (auto it = sockets.find(fd); it != sockets.end()) {
          if (drain(fd, it->second.budget)) sockets.erase(it);  // closing removes it from epoll
        }
      }
    }
  }

  UniqueFd epoll_;
  UniqueFd wake_;
  std::mutex mutex_;
  std::vector<Lingering> incoming_;
  std::size_t count_ = 0;
};

}  // namespace

bool has_unread_input(int fd) {
  char scratch[512];
  const ssize_t n = sys::recv(fd, scratch, sizeof scratch, MSG_DONTWAIT);
  return n > 0;
}

void linger_close(UniqueFd fd) {
  sys::shutdown(fd.get(), SHUT_WR);  // the FIN follows the response now, whatever comes next
  Lingerer::instance().add(std::move(fd));
}

}  // namespace iolab
