// Tests for the per-thread coarse deadlines (common/deadlines.h): a deadline fires after its
// time and never before, a disarmed or re-armed one does not fire early, many share one
// timer, and a closed set stays safe to use.
#include "common/deadlines.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <vector>

namespace redline::common {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Probe {
  std::vector<Clock::time_point> fired;
  static void fire(void* self) { static_cast<Probe*>(self)->fired.push_back(Clock::now()); }
};

// Runs the io_context for `d` (the deadlines' timer is its only work).
void run_for(boost::asio::io_context& ioc, Clock::duration d) {
  ioc.restart();
  ioc.run_for(d);
}

TEST(Deadlines, FiresAfterItsTimeNotBefore) {
  boost::asio::io_context ioc;
  DeadlineSet set(ioc.get_executor());
  Probe p;
  Deadline d(set, &Probe::fire, &p);
  const auto t0 = Clock::now();
  d.arm(50ms);
  run_for(ioc, 20ms);
  EXPECT_TRUE(p.fired.empty());
  run_for(ioc, 1s);
  ASSERT_EQ(p.fired.size(), 1u);
  EXPECT_GE(p.fired[0] - t0, 50ms);
  EXPECT_FALSE(d.armed());  // fired once, then disarmed
}

TEST(Deadlines, DisarmedNeverFires) {
  boost::asio::io_context ioc;
  DeadlineSet set(ioc.get_executor());
  Probe p;
  Deadline d(set, &Probe::fire, &p);
  d.arm(30ms);
  d.disarm();
  run_for(ioc, 200ms);
  EXPECT_TRUE(p.fired.empty());
}

TEST(Deadlines, ReArmedLaterDoesNotFireAtTheOldTime) {
  boost::asio::io_context ioc;
  DeadlineSet set(ioc.get_executor());
  Probe p;
  Deadline d(set, &Probe::fire, &p);
  d.arm(30ms);
  const auto t1 = Clock::now();
  d.arm(300ms);  // the shared timer still wakes at 30 ms, finds nothing due
  run_for(ioc, 150ms);
  EXPECT_TRUE(p.fired.empty());
  run_for(ioc, 1s);
  ASSERT_EQ(p.fired.size(), 1u);
  EXPECT_GE(p.fired[0] - t1, 300ms);
}

TEST(Deadlines, ManyShareOneTimerAndEachFiresOnce) {
  boost::asio::io_context ioc;
  DeadlineSet set(ioc.get_executor());
  std::vector<Probe> probes(50);
  std::vector<std::unique_ptr<Deadline>> ds;
  for (auto& p : probes) ds.push_back(std::make_unique<Deadline>(set, &Probe::fire, &p));
  EXPECT_EQ(set.size(), 50u);
  for (std::size_t i = 0; i < ds.size(); ++i) {
    if (i % 2 == 0) ds[i]->arm(std::chrono::milliseconds(10 + i));
  }
  ds.erase(ds.begin() + 10);  // destroyed while armed: removed from the set
  EXPECT_EQ(set.size(), 49u);
  run_for(ioc, 1s);
  for (std::size_t i = 0; i < probes.size(); ++i) {
    const std::size_t want = (i % 2 == 0 && i != 10) ? 1 : 0;
    EXPECT_EQ(probes[i].fired.size(), want) << i;
  }
}

TEST(Deadlines, ClosedSetIgnoresArmsAndOutlivesItsDeadlines) {
  Probe p;
  {
    boost::asio::io_context ioc;
    DeadlineSet set(ioc.get_executor());
    Deadline d(set, &Probe::fire, &p);
    d.arm(10ms);
    set.close();
    d.arm(10ms);
    run_for(ioc, 100ms);
  }
  EXPECT_TRUE(p.fired.empty());
}

}  // namespace
}  // namespace redline::common
