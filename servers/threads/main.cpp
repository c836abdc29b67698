// server_threads: thread-per-connection with blocking I/O.
//
// What this model shows
//   The oldest server design: an acceptor thread blocks in accept(2), and every connection gets
//   a thread of its own that blocks in recv(2) and send(2). The code reads top to bottom; the
//   kernel scheduler is the event loop. Each connection costs a thread: a kernel stack and task
//   struct, a user stack (virtual size --stack-kb, resident only as far as it is touched), and a
//   context switch every time its request arrives.
//
// What to notice
//   - serve_connection() is the whole protocol loop: recv, hand bytes to the core, send.
//   - Timers without an event loop: the core's next deadline becomes SO_RCVTIMEO, set only when
//     it changes by more than a second (in steady keep-alive it never does, so no extra system
//     calls); a recv that times out tells the core to check its deadline.
//   - A blocking handler (/sleep) blocks only its own connection's thread: harmless here.
//   - accept(2) on a full descriptor table fails at once with EMFILE: without a back-off the
//     acceptor would spin at 100% CPU. Connections wait in the listen backlog meanwhile.
//   - --max-conns and thread-creation failures are refused with a 503 and counted.
//   Compare /stats context switches and rss_kb against the event-loop servers.
//
// Usage
//   build/bin/server_threads [--port 8080] [--threads N acceptors] [--stack-kb K] [--pin LIST]
//   (all flags: --help)
//
// Try
//   build/bin/server_threads --port 8080 &  curl -s localhost:8080/ping
//   ab -k -c 100 -n 100000 http://127.0.0.1:8080/ping;  curl -s localhost:8080/stats
//   grep -E 'Threads|VmRSS' /proc/$(pgrep server_threads)/status  while connections are open

#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_set>
#include <vector>

#include "app.hpp"
#include "connection.hpp"
#include "linger.hpp"
#include "net.hpp"
#include "options.hpp"
#include "server.hpp"
#include "stats.hpp"
#include "sys.hpp"

namespace {

using namespace iolab;

constexpr std::string_view kModel = IOLAB_MODEL;
constexpr std::size_t kDefaultMaxConns = 10'000;
constexpr Millis kAcceptBackoff{10};           // pause after EMFILE/ENFILE/ENOMEM from accept
constexpr Millis kReceiveTimeoutSlack{1'000};  // re-set SO_RCVTIMEO only past this difference
constexpr auto kShutdownGrace = std::chrono::seconds(2);
const ExtraFlag kExtraFlags[] = {
    {"--stack-kb", 0, 0, 1 << 20, "stack of each connection thread in KiB, 0 = ulimit -s"}};

// Process-wide state: what every thread shares.
struct Shared : SharedState {
  Shared() : SharedState(kModel) {}
  HeapMemory memory;
  pthread_attr_t thread_attr{};
  std::atomic<bool> stopping{false};
  std::mutex mutex;  // guards open_fds, so shutdown() never hits a reused descriptor number
  std::condition_variable all_closed;
  std::unordered_set<int> open_fds;
};

// Per-connection state: the socket and the protocol; the thread's own stack holds the rest.
struct ConnectionThread {
  Shared& shared;
  UniqueFd socket;
  bool may_linger = false;  // at the end: the peer may still be sending (see linger.hpp)
};

// Blocking recv with the connection's next deadline as SO_RCVTIMEO.
void set_receive_timeout(int fd, Millis wanted, Millis& current) {
  if (current.count() >= 0 && wanted >= current && wanted <= current + kReceiveTimeoutSlack) return;
  const auto ms = wanted.count();
  const timeval tv{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>(ms % 1000 * 1000)};
  sys::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  current = wanted;
}

// Writes what the connection has queued: bytes with writev(2), then a file region with
// sendfile(2). Blocks until the kernel takes some; SO_SNDTIMEO bounds a peer that stops reading.
bool on_writable(ConnectionThread& ct, Connection& conn) {
  const Output out = conn.output();
  const int fd = ct.socket.get();
  ssize_t n;
  do {
    n = out.iovcnt > 0 ? sys::writev(fd, out.iov.data(), out.iovcnt)
                       : send_file_region(fd, out.file, ct.shared.options.sendfile);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return false;  // reset, or no progress for the idle timeout (EAGAIN)
  conn.on_written(static_cast<std::size_t>(n), coarse_now());
  return true;
}

// Reads into the connection's buffer; a timeout lets the core expire its header or idle timer.
bool on_readable(ConnectionThread& ct, Connection& conn, Millis& receive_timeout) {
  const int fd = ct.socket.get();
  const TimePoint now = coarse_now();
  const auto left = std::chrono::ceil<Millis>(conn.next_deadline() - now);
  set_receive_timeout(fd, std::max(left, Millis(1)), receive_timeout);
  const std::span<char> space = conn.read_space();
  if (space.empty()) return false;  // the core refuses input it could not hold: give up
  const ssize_t n = sys::recv(fd, space.data(), space.size());
  if (n >= 0) {
    conn.on_read(static_cast<std::size_t>(n), coarse_now());
    return true;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK) {
    conn.on_timeout(coarse_now());
    return true;
  }
  return errno == EINTR;
}

void serve_connection(ConnectionThread& ct) {
  Shared& shared = ct.shared;
  const int fd = ct.socket.get();
  set_nodelay(fd);
  const auto stall_ms = shared.options.limits.idle_timeout.count();
  const timeval send_timeout{static_cast<time_t>(stall_ms / 1000),
                             static_cast<suseconds_t>(stall_ms % 1000 * 1000)};
  sys::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout);

  Connection conn(shared.app, shared.options.limits, shared.memory, coarse_now());
  Millis receive_timeout{-1};
  bool ok = true;
  while (ok) {
    switch (conn.next()) {
      case Step::kRead:
        ok = on_readable(ct, conn, receive_timeout);
        break;
      case Step::kWrite:
        ok = on_writable(ct, conn);
        break;
      case Step::kRunWork:
        conn.take_work().run();  // blocks this connection's thread only
        conn.on_work_done(coarse_now());
        break;
      case Step::kWaitWork:  // work runs inline above, so never seen here
      case Step::kClose:
        ok = false;
        break;
    }
  }
  ct.may_linger = conn.may_have_unread_input();
}

void* connection_main(void* arg) {
  auto* ct = static_cast<ConnectionThread*>(arg);
  Shared& shared = ct->shared;
  const int fd = ct->socket.get();
  try {  // the connection boundary: an exception closes this connection only, and is counted
    serve_connection(*ct);
  } catch (const std::exception& e) {
    count_connection_error(kModel, e.what());
  }
  count(Counter::kConnectionsClosed);
  {
    std::lock_guard lock(shared.mutex);
    shared.open_fds.erase(fd);
    if (!shared.stopping.load() && ct->may_linger && has_unread_input(fd)) {
      linger_close(std::move(ct->socket));  // a lingering close (linger.hpp)
    }
    delete ct;  // closes the socket while shutdown() cannot pick its number
    // Under the mutex, which stop() holds when it checks the count: otherwise main could see
    // zero, return and destroy the condition variable while this thread still notifies it
    // (a data race ThreadSanitizer reported at shutdown). Nothing of `shared` is touched after.
    if (shared.open_connections.fetch_sub(1) == 1) shared.all_closed.notify_all();
  }
  return nullptr;
}

void on_accepted(Shared& shared, UniqueFd socket) {
  if (shared.open_connections.load() >= shared.options.max_conns) return refuse(shared, std::move(socket));
  const int fd = socket.get();
  auto* ct = new ConnectionThread{shared, std::move(socket)};
  {
    std::lock_guard lock(shared.mutex);
    shared.open_fds.insert(fd);
  }
  shared.open_connections.fetch_add(1);
  count(Counter::kConnectionsAccepted);  // before the thread exists, so its close counts after
  pthread_t thread;
  const int rc = sys::inject(sys::Fault::kThread)
                     ? EAGAIN
                     : pthread_create(&thread, &shared.thread_attr, connection_main, ct);
  if (rc == 0) {
    count(Counter::kThreadsCreated);
    return;
  }
  count_down(Counter::kConnectionsAccepted);
  std::fprintf(stderr, "server_%.*s: pthread_create: %s; refusing the connection\n",
               static_cast<int>(kModel.size()), kModel.data(), std::strerror(rc));
  {
    std::lock_guard lock(shared.mutex);
    shared.open_fds.erase(fd);
  }
  shared.open_connections.fetch_sub(1);
  UniqueFd refused = std::move(ct->socket);
  delete ct;
  refuse(shared, std::move(refused));
}

// The threads model has no event loop: each acceptor blocks in accept(2) and hands every
// connection to a new thread.
void accept_loop(Shared& shared, int listen_fd, int index) {
  pin_worker(shared.options, index);
  bool paused = false;
  while (!shared.stopping.load()) {
    const int fd = sys::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) {
      paused = false;
      on_accepted(shared, UniqueFd(fd));
      continue;
    }
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
      // The pending connection stays in the backlog; accept again once descriptors free up.
      if (!paused) {
        std::fprintf(stderr, "server_%.*s: accept: %s; pausing accepts\n",
                     static_cast<int>(kModel.size()), kModel.data(), std::strerror(errno));
      }
      paused = true;
      count(Counter::kAcceptBackoffs);
      std::this_thread::sleep_for(kAcceptBackoff);
    } else if (errno != EINTR && errno != ECONNABORTED && errno != EPROTO &&
               !shared.stopping.load()) {
      std::fprintf(stderr, "server_%.*s: accept: %s\n", static_cast<int>(kModel.size()),
                   kModel.data(), std::strerror(errno));
      std::this_thread::sleep_for(kAcceptBackoff);
    }
  }
}

void stop(Shared& shared, std::vector<UniqueFd>& listeners, std::vector<std::thread>& acceptors) {
  shared.stopping.store(true);
  // shutdown(2) on a listening socket wakes a thread blocked in accept(2) (it returns EINVAL).
  for (auto& l : listeners) sys::shutdown(l.get(), SHUT_RDWR);
  for (auto& t : acceptors) t.join();
  std::unique_lock lock(shared.mutex);
  // A blocked recv(2) returns 0 once its socket is shut down; the thread then exits.
  for (int fd : shared.open_fds) sys::shutdown(fd, SHUT_RDWR);
  shared.all_closed.wait_for(lock, kShutdownGrace,
                             [&] { return shared.open_connections.load() == 0; });
}

}  // namespace

int main(int argc, char** argv) {
  init_process_signals();
  const std::string program = "server_" + std::string(kModel);
  try {
    auto shared = std::make_unique<Shared>();
    shared->options = parse_options(argc, argv, kModel, kDefaultMaxConns, kExtraFlags);
    const Options& options = shared->options;
    raise_fd_limit();
    pthread_attr_init(&shared->thread_attr);
    pthread_attr_setdetachstate(&shared->thread_attr, PTHREAD_CREATE_DETACHED);
    if (const long stack_kb = options.extra_value("--stack-kb"); stack_kb > 0) {
      const int rc = pthread_attr_setstacksize(&shared->thread_attr,
                                               static_cast<std::size_t>(stack_kb) * 1024);
      if (rc != 0) throw std::system_error(rc, std::generic_category(), "--stack-kb");
    }
    if (!options.pin.empty()) {
      cpu_set_t set;
      CPU_ZERO(&set);
      for (int cpu : options.pin) CPU_SET(cpu, &set);
      pthread_attr_setaffinity_np(&shared->thread_attr, sizeof set, &set);
    }

    std::vector<UniqueFd> listeners = listen_tcp(options.bind, options.port, options.threads, false);
    std::vector<std::thread> acceptors;
    for (int i = 0; i < options.threads; ++i) {
      acceptors.emplace_back(accept_loop, std::ref(*shared), listeners[static_cast<std::size_t>(i)].get(), i);
    }
    print_ready_line(kModel, options.bind, local_port(listeners[0].get()), options.threads);

    wait_for_stop_signal();
    stop(*shared, listeners, acceptors);
    print_final_stats(kModel);
    if (shared->open_connections.load() > 0) std::_Exit(0);  // threads stuck in /sleep
    return 0;
  } catch (const std::system_error& e) {
    std::fprintf(stderr, "%s: %s\n", program.c_str(), e.what());
    return 1;
  }
}
