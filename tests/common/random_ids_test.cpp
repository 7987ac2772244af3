// Tests for src/common/random_ids.h: a request id's shape, no repeated ids within or across
// threads, every hex digit used, and random_u64 covering both halves of its range.
#include "common/random_ids.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

namespace redline::common {
namespace {

TEST(RequestId, ReqPrefixAnd32LowercaseHexDigits) {
  for (int i = 0; i < 100; ++i) {
    const std::string id = new_request_id();
    ASSERT_EQ(id.size(), 36u) << id;
    ASSERT_EQ(id.substr(0, 4), "req_") << id;
    for (char c : id.substr(4)) {
      ASSERT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << id;
    }
  }
}

TEST(RequestId, NoRepeatsWithinOrAcrossThreads) {
  constexpr int kPerThread = 20000;
  std::vector<std::vector<std::string>> ids(4);
  std::vector<std::thread> threads;
  for (auto& mine : ids) {
    threads.emplace_back([&mine] {
      for (int i = 0; i < kPerThread; ++i) mine.push_back(new_request_id());
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> all;
  std::set<char> digits;
  for (const auto& mine : ids) {
    for (const auto& id : mine) {
      all.insert(id);
      digits.insert(id.begin() + 4, id.end());
    }
  }
  EXPECT_EQ(all.size(), std::size_t{4 * kPerThread});
  EXPECT_EQ(digits.size(), 16u);
}

TEST(RandomU64, DistinctDrawsOverTheWholeRange) {
  std::set<uint64_t> seen;
  int high = 0;
  for (int i = 0; i < 10000; ++i) {
    const uint64_t v = random_u64();
    seen.insert(v);
    high += (v >> 63) != 0;
  }
  EXPECT_EQ(seen.size(), 10000u);
  EXPECT_GT(high, 4500);  // about half have the top bit set
  EXPECT_LT(high, 5500);
}

}  // namespace
}  // namespace redline::common
