// publish_test: makes the worst case of the readiness awaitable's rule 3 ("publish last") happen
// on purpose, for lab 05's check (built with ThreadSanitizer, with each variant's io_awaiter.hpp).
//
// In the server, a coroutine published in a waiter slot is resumed by another worker only after
// an edge arrives, microseconds later, and by then the scheduler's own synchronisation usually
// orders the two threads, so a frame touched after publishing goes unnoticed. Here two "thief"
// threads take turns spinning on the socket's reader slot. The moment a coroutine handle appears
// there, the thief whose turn it is takes it (a compare-and-swap to kNil, as the poller's
// exchange would), writes the byte the coroutine waits for into the other end of the socket
// pair, passes the turn, and resumes the coroutine on its own thread. The coroutine awaits again
// there and publishes itself, and the other thief, already spinning, takes it at once: while
// the thread that published may still be inside await_suspend. An awaiter that touches its
// frame after publishing races with that thief: ThreadSanitizer reports it, or the co_await
// returns a wrong result, which this program counts itself. Every other wait has a deadline, so
// the deadline's timer is armed in await_suspend: before publishing, or (wrong) after.
//
// Output: one JSON line; exit 0 when every co_await returned the byte, 1 otherwise.
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <thread>
#include <vector>

#include "io.hpp"
#include "net.hpp"
#include "scheduler.hpp"
#include "task.hpp"

namespace {

using namespace iolab;
namespace pd = coro::detail;

constexpr int kRounds = 3000;
constexpr std::chrono::hours kFarDeadline{1};

struct Shared {
  int peer = -1;                          // the thieves write into this end
  std::atomic<pd::IoState*> io{nullptr};  // the reader's socket, once registered
  std::atomic<bool> stop{false};
  std::atomic<bool> done{false};
  std::atomic<int> turn{0};  // which thief takes the next handle
  std::atomic<int> completed{0};
  std::atomic<int> stolen{0};
  std::atomic<int> wrong{0};
};

coro::Task<void> reader(Shared& shared, int fd) {
  coro::Socket sock{UniqueFd(fd)};
  if (sock.ok()) {
    shared.io.store(sock.io_state());
    char byte = 0;
    auto receive = [&]() -> ssize_t { return ::recv(sock.fd(), &byte, 1, 0); };
    for (int i = 0; i < kRounds;) {
      // Every other wait has a deadline (far off: it never fires), so an awaiter that arms it
      // after publishing is seen too; with TimePoint::max() there is nothing to arm.
      const TimePoint deadline = i % 2 == 0 ? TimePoint::max() : Clock::now() + kFarDeadline;
      const coro::IoResult r = co_await sock.read_with(receive, deadline);
      if (r.again()) continue;  // a stale wake-up: allowed, wait again
      if (r.n != 1 || byte != 'x') shared.wrong.fetch_add(1);
      shared.completed.fetch_add(1);
      ++i;
    }
    shared.io.store(nullptr);
  } else {
    shared.wrong.fetch_add(1);
  }
  shared.done.store(true);
}

void thief(Shared& shared, int me) {
  while (!shared.stop.load(std::memory_order_relaxed)) {
    if (shared.turn.load() != me) continue;
    pd::IoState* io = shared.io.load();
    if (io == nullptr) continue;
    std::uintptr_t seen = io->slot[0].load();
    if (seen <= pd::kTimedOut) continue;
    if (!io->slot[0].compare_exchange_strong(seen, pd::kNil)) continue;
    const char x = 'x';
    if (::send(shared.peer, &x, 1, MSG_NOSIGNAL) != 1) shared.wrong.fetch_add(1);
    shared.stolen.fetch_add(1);
    shared.turn.store(1 - me);  // before the resume: the other thief is waiting when it publishes
    std::coroutine_handle<>::from_address(reinterpret_cast<void*>(seen)).resume();
  }
}

}  // namespace

int main() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
    std::perror("socketpair");
    return 2;
  }
  Shared shared;
  shared.peer = sv[1];
  {
    coro::Scheduler scheduler(coro::SchedulerOptions{});
    std::vector<std::thread> thieves;
    for (int i = 0; i < 2; ++i) thieves.emplace_back(thief, std::ref(shared), i);
    scheduler.spawn(reader(shared, sv[0]));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!shared.done.load() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    shared.stop.store(true);
    for (auto& t : thieves) t.join();
    scheduler.stop();
  }
  ::close(sv[1]);
  const bool ok = shared.done.load() && shared.wrong.load() == 0;
  std::printf("{\"ok\":%s,\"rounds\":%d,\"completed\":%d,\"stolen\":%d,\"wrong\":%d,"
              "\"finished\":%s}\n",
              ok ? "true" : "false", kRounds, shared.completed.load(), shared.stolen.load(),
              shared.wrong.load(), shared.done.load() ? "true" : "false");
  return ok ? 0 : 1;
}
