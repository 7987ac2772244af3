// A circuit breaker per provider, shared by every gateway thread (atomics, no lock): after
// `failures` consecutive failed attempts (transport failures and 5xx answers; 429 is the
// provider pacing us, not failing) it opens for `open_for`: requests skip the provider and go
// to their fallbacks, or get 503 provider_circuit_open when none is left. Then one request is
// let through as a probe (half-open): its success closes the circuit, its failure opens it
// again for another `open_for`.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string_view>

namespace redline::upstream {

class CircuitBreaker {
 public:
  using Clock = std::chrono::steady_clock;
  enum class State : int { kClosed = 0, kOpen = 1, kHalfOpen = 2 };

  // failures == 0: never opens.
  CircuitBreaker(uint32_t failures, std::chrono::milliseconds open_for)
      : threshold_(failures), open_for_(open_for) {}

  // May a request be sent now? Open: no until open_for has passed, then exactly one caller
  // gets true (the probe) and the circuit is half-open until that probe reports.
  bool allow(Clock::time_point now = Clock::now());
  void on_success();
  void on_failure(Clock::time_point now = Clock::now());
  // Gives back a probe slot that was never used (the request did not reach the provider).
  void release_probe();

  State state() const { return static_cast<State>(state_.load(std::memory_order_acquire)); }
  // Until when an open circuit stays open (meaningful when state() == kOpen).
  Clock::time_point open_until() const {
    return Clock::time_point(Clock::duration(open_until_.load(std::memory_order_acquire)));
  }
  uint64_t opened_count() const { return opened_.load(std::memory_order_relaxed); }
  bool enabled() const { return threshold_ > 0; }

 private:
  void open(Clock::time_point now);

  const uint32_t threshold_;
  const std::chrono::milliseconds open_for_;
  std::atomic<int> state_{0};
  std::atomic<uint32_t> consecutive_{0};
  std::atomic<Clock::rep> open_until_{0};
  std::atomic<uint64_t> opened_{0};
};

std::string_view circuit_state_name(CircuitBreaker::State s);  // closed | open | half_open

}  // namespace redline::upstream
