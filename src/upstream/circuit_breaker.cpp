// Provider circuit breaker (see circuit_breaker.h).
#include "upstream/circuit_breaker.h"

namespace redline::upstream {

namespace {
constexpr int kClosed = static_cast<int>(CircuitBreaker::State::kClosed);
constexpr int kOpen = static_cast<int>(CircuitBreaker::State::kOpen);
constexpr int kHalfOpen = static_cast<int>(CircuitBreaker::State::kHalfOpen);
}  // namespace

bool CircuitBreaker::allow(Clock::time_point now) {
  if (threshold_ == 0) return true;
  int s = state_.load(std::memory_order_acquire);
  if (s == kClosed) return true;
  if (s == kHalfOpen) return false;  // a probe is out
  if (now.time_since_epoch().count() < open_until_.load(std::memory_order_acquire)) return false;
  // Open and due: exactly one caller turns it half-open and becomes the probe.
  return state_.compare_exchange_strong(s, kHalfOpen, std::memory_order_acq_rel);
}

void CircuitBreaker::on_success() {
  if (threshold_ == 0) return;
  consecutive_.store(0, std::memory_order_relaxed);
  if (state_.load(std::memory_order_acquire) != kClosed) {
    state_.store(kClosed, std::memory_order_release);
  }
}

void CircuitBreaker::on_failure(Clock::time_point now) {
  if (threshold_ == 0) return;
  const int s = state_.load(std::memory_order_acquire);
  if (s == kHalfOpen) {  // the probe failed
    open(now);
    return;
  }
  if (s == kOpen) return;  // a request that was already in flight when it opened
  if (consecutive_.fetch_add(1, std::memory_order_acq_rel) + 1 >= threshold_) open(now);
}

void CircuitBreaker::release_probe() {
  int s = kHalfOpen;
  state_.compare_exchange_strong(s, kOpen, std::memory_order_acq_rel);  // due again at once
}

void CircuitBreaker::open(Clock::time_point now) {
  open_until_.store((now + open_for_).time_since_epoch().count(), std::memory_order_release);
  consecutive_.store(0, std::memory_order_relaxed);
  state_.store(kOpen, std::memory_order_release);
  opened_.fetch_add(1, std::memory_order_relaxed);
}

std::string_view circuit_state_name(CircuitBreaker::State s) {
  switch (s) {
    case CircuitBreaker::State::kClosed:
      return "closed";
    case CircuitBreaker::State::kOpen:
      return "open";
    case CircuitBreaker::State::kHalfOpen:
      return "half_open";
  }
  return "closed";
}

}  // namespace redline::upstream
