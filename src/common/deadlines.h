// Coarse per-thread deadlines: one steady_timer per io_context thread serves the deadlines
// of every connection on it. Arming and disarming a Deadline only store a time point (no
// syscall, no allocation, no handler); the shared timer is re-armed only when a deadline
// comes due earlier than its expiry by more than the granularity, and after it fires it
// waits at least the granularity before the next scan. A deadline therefore fires at its
// time or up to one granularity (100 ms) later, never earlier. Not thread-safe: a
// DeadlineSet and its Deadlines are used only on their io_context's thread.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <vector>

namespace redline::common {

class DeadlineSet;

class Deadline {
 public:
  using Clock = std::chrono::steady_clock;
  using Fire = void (*)(void* context);
  // `fire(context)` runs on the set's thread once an armed deadline has passed.
  Deadline(DeadlineSet& set, Fire fire, void* context);
  ~Deadline();
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

  void arm_at(Clock::time_point at);
  template <class Duration>
  void arm(Duration d) {
    arm_at(Clock::now() + d);
  }
  void disarm() { at_ = Clock::time_point::max(); }
  bool armed() const { return at_ != Clock::time_point::max(); }

 private:
  friend class DeadlineSet;
  DeadlineSet& set_;
  Fire fire_;
  void* context_;
  Clock::time_point at_ = Clock::time_point::max();
  std::size_t index_ = 0;  // in DeadlineSet::entries_
};

class DeadlineSet {
 public:
  using Clock = Deadline::Clock;
  static constexpr auto kGranularity = std::chrono::milliseconds(100);

  explicit DeadlineSet(const boost::asio::any_io_executor& executor);
  ~DeadlineSet();
  DeadlineSet(const DeadlineSet&) = delete;
  DeadlineSet& operator=(const DeadlineSet&) = delete;

  // Destroys the timer (call before the io_context dies); Deadlines may still be
  // destroyed afterwards, and arming them does nothing any more.
  void close();
  std::size_t size() const { return entries_.size(); }

 private:
  friend class Deadline;
  struct Alive {
    DeadlineSet* set;
  };
  void add(Deadline* d);
  void remove(Deadline* d);
  void schedule(Clock::time_point at);
  void start_timer(Clock::time_point at);
  void on_timer();

  std::optional<boost::asio::steady_timer> timer_;
  std::vector<Deadline*> entries_;
  Clock::time_point timer_at_ = Clock::time_point::max();  // max: no wait pending
  std::shared_ptr<Alive> alive_;  // the timer's handler holds it weakly
};

}  // namespace redline::common
