// Task<T>: a lazy C++20 coroutine that produces a T, and the frame accounting of every coroutine
// in the library.
//
// A Task does nothing until it is awaited (`T v = co_await child();`) or handed to a scheduler
// (`spawn(task)`, detached: it destroys itself when it finishes). Awaiting a task runs it on the
// awaiting thread's stack until it first suspends or finishes; whichever side finishes second
// resumes the other:
//
//   parent: await_suspend      child.resume() ... returns when the child suspends or finishes
//           state.exchange(kAwaiterSuspended)  -> saw kDone? the child already finished: do not
//                                                 suspend, carry on (no resume, no stack growth)
//   child:  final_suspend      state.exchange(kDone) -> saw kAwaiterSuspended? resume the parent
//
// Why not the textbook symmetric transfer (await_suspend returns the child's handle, the child's
// final_suspend returns the parent's)? Symmetric transfer only keeps the stack flat when the
// compiler turns the resume into a tail call, and g++ 12 does not at -O0 or under sanitizers:
// a loop of a million `co_await` on tasks that finish at once overflowed the stack.
// Here a task that finishes at once returns to its parent through an ordinary return, so the
// stack stays as deep as the chain of live tasks, never as long as the loop. The one transfer
// left (a child that finished on another worker resumes its suspended parent) happens once per
// suspension, then the stack unwinds to the scheduler loop.
//
// The exchange is atomic because the child may finish on another worker while the parent is
// still inside await_suspend: neither side touches the other's frame after its exchange.
//
// Frames: every coroutine frame comes from the promise's operator new, which counts frames and
// bytes (frame_stats()). A local array in a coroutine lives in its frame, so a 16 KiB buffer makes
// a 16 KiB frame: measure, don't guess.
#pragma once

#include <atomic>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>

namespace iolab::coro {

struct FrameStats {
  std::uint64_t frames = 0;       // coroutine frames allocated so far
  std::uint64_t bytes = 0;        // their bytes
  std::uint64_t live_frames = 0;  // frames allocated and not yet freed
  std::uint64_t live_bytes = 0;
};

namespace detail {

// Process-wide, written with relaxed read-modify-writes: a frame is allocated once per task,
// not once per request, so these never sit on a per-request path.
extern std::atomic<std::uint64_t> g_frames;
extern std::atomic<std::uint64_t> g_frame_bytes;
extern std::atomic<std::uint64_t> g_freed_frames;
extern std::atomic<std::uint64_t> g_freed_bytes;

class PromiseBase;

// Who owns a detached task: told when it finishes, just before its frame is destroyed.
class TaskOwner {
 public:
  virtual void on_detached_done(PromiseBase& promise) noexcept = 0;

 protected:
  ~TaskOwner() = default;
};

class PromiseBase {
 public:
  static constexpr int kRunning = 0;
  static constexpr int kAwaiterSuspended = 1;
  static constexpr int kDone = 2;

  // Counted (task.cpp). Out of line on purpose: inlined, g++ 12 pairs the frame's
  // ::operator new with this operator delete and reports a -Wmismatched-new-delete.
  static void* operator new(std::size_t size);
  static void operator delete(void* p, std::size_t size) noexcept;

  std::suspend_always initial_suspend() noexcept { return {}; }

  struct FinalAwaiter {
    bool await_ready() noexcept { return false; }
    template <class Promise>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> self) noexcept {
      PromiseBase& p = self.promise();
      if (p.owner_ != nullptr) {  // detached: nobody awaits it
        p.owner_->on_detached_done(p);
        self.destroy();
        return std::noop_coroutine();
      }
      const std::coroutine_handle<> parent = p.continuation_;
      if (p.state_.exchange(kDone, std::memory_order_acq_rel) == kAwaiterSuspended) return parent;
      return std::noop_coroutine();  // the parent is still in await_suspend and will carry on
    }
    void await_resume() noexcept {}
  };
  FinalAwaiter final_suspend() noexcept { return {}; }

  void unhandled_exception() noexcept {
    if (owner_ != nullptr) std::terminate();  // a detached task has nobody to rethrow to
    exception_ = std::current_exception();
  }

  // Set by the awaiter and by spawn().
  std::coroutine_handle<> continuation_;
  std::atomic<int> state_{kRunning};
  TaskOwner* owner_ = nullptr;
  // Links in the owner's list of live detached tasks (so it can destroy them at shutdown).
  PromiseBase* prev_ = nullptr;
  PromiseBase* next_ = nullptr;
  std::exception_ptr exception_;
};

template <class T>
class Promise;

}  // namespace detail

inline FrameStats frame_stats() {
  FrameStats s;
  s.frames = detail::g_frames.load(std::memory_order_relaxed);
  s.bytes = detail::g_frame_bytes.load(std::memory_order_relaxed);
  s.live_frames = s.frames - detail::g_freed_frames.load(std::memory_order_relaxed);
  s.live_bytes = s.bytes - detail::g_freed_bytes.load(std::memory_order_relaxed);
  return s;
}

template <class T = void>
class [[nodiscard]] Task {
 public:
  using promise_type = detail::Promise<T>;
  using Handle = std::coroutine_handle<promise_type>;

  Task() = default;
  explicit Task(Handle h) : handle_(h) {}
  Task(Task&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      if (handle_) handle_.destroy();
      handle_ = std::exchange(other.handle_, {});
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() {
    if (handle_) handle_.destroy();
  }

  explicit operator bool() const { return static_cast<bool>(handle_); }
  // Gives up ownership of the frame (spawn() makes it detached).
  Handle release() { return std::exchange(handle_, {}); }

  struct Awaiter {
    Handle child;
    bool await_ready() const noexcept { return false; }  // lazy: it has not started yet
    bool await_suspend(std::coroutine_handle<> parent) noexcept {
      detail::PromiseBase& p = child.promise();
      p.continuation_ = parent;
      child.resume();  // runs until the child first suspends or finishes
      // Last touch of either frame: the child may already be finishing on another worker.
      return p.state_.exchange(detail::PromiseBase::kAwaiterSuspended, std::memory_order_acq_rel) !=
             detail::PromiseBase::kDone;
    }
    T await_resume() { return child.promise().take_result(); }
  };
  Awaiter operator co_await() && noexcept { return Awaiter{handle_}; }

 private:
  Handle handle_;
};

namespace detail {

template <class T>
class Promise final : public PromiseBase {
 public:
  Task<T> get_return_object() {
    return Task<T>(std::coroutine_handle<Promise>::from_promise(*this));
  }
  template <class U>
  void return_value(U&& value) {
    value_.emplace(std::forward<U>(value));
  }
  T take_result() {
    if (exception_) std::rethrow_exception(exception_);
    return std::move(*value_);
  }

 private:
  std::optional<T> value_;
};

template <>
class Promise<void> final : public PromiseBase {
 public:
  Task<void> get_return_object() {
    return Task<void>(std::coroutine_handle<Promise>::from_promise(*this));
  }
  void return_void() {}
  void take_result() {
    if (exception_) std::rethrow_exception(exception_);
  }
};

}  // namespace detail
}  // namespace iolab::coro
