// Stopping an operation in flight because its result is no longer wanted (the client left),
// with plain callbacks instead of a second coroutine racing the first: awaiting
// `op || client_gone()` costs two co_spawns, a parallel group and their allocations per
// request, which was a fifth of the instructions of a cache miss.
//
// Interrupt: the side doing I/O hooks a canceller (e.g. "cancel this socket's pending
// operation") for as long as its operation is pending; the side that learns the work is
// no longer wanted calls fire(). WatchGuard: ends a watch (e.g. the client socket's) when
// it goes out of scope. Single-threaded: hook, unhook and fire run on one io_context thread.
#pragma once

#include <utility>

namespace redline::common {

class Interrupt {
 public:
  using Fn = void (*)(void* context);
  Interrupt() = default;
  Interrupt(const Interrupt&) = delete;
  Interrupt& operator=(const Interrupt&) = delete;

  // fn(context) runs when fire() is called while hooked. Hooking after fire() does not run
  // it: an operation must check fired() before it starts.
  void hook(Fn fn, void* context) {
    fn_ = fn;
    context_ = context;
  }
  void unhook() {
    fn_ = nullptr;
    context_ = nullptr;
  }
  void fire() {
    if (fired_) return;
    fired_ = true;
    if (fn_) fn_(context_);
  }
  bool fired() const { return fired_; }

 private:
  Fn fn_ = nullptr;
  void* context_ = nullptr;
  bool fired_ = false;
};

// Hooks `fn(context)` into an optional Interrupt for the lifetime of the scope.
class InterruptHook {
 public:
  InterruptHook(Interrupt* interrupt, Interrupt::Fn fn, void* context) : interrupt_(interrupt) {
    if (interrupt_) interrupt_->hook(fn, context);
  }
  ~InterruptHook() {
    if (interrupt_) interrupt_->unhook();
  }
  InterruptHook(const InterruptHook&) = delete;
  InterruptHook& operator=(const InterruptHook&) = delete;

 private:
  Interrupt* interrupt_;
};

// Calls end(context) once, when destroyed (unless moved from).
class WatchGuard {
 public:
  using Fn = void (*)(void* context);
  WatchGuard() = default;
  WatchGuard(Fn end, void* context) : end_(end), context_(context) {}
  WatchGuard(WatchGuard&& other) noexcept
      : end_(std::exchange(other.end_, nullptr)), context_(other.context_) {}
  WatchGuard& operator=(WatchGuard&&) = delete;
  WatchGuard(const WatchGuard&) = delete;
  WatchGuard& operator=(const WatchGuard&) = delete;
  ~WatchGuard() {
    if (end_) end_(context_);
  }

 private:
  Fn end_ = nullptr;
  void* context_ = nullptr;
};

}  // namespace redline::common
