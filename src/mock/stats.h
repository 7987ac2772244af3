// The mock provider's introspection state: per-thread request counters (summed on read
// for GET /mock/stats) and the recorder of the most recent model request (for
// GET /mock/last-request). Nothing here does I/O or decides what a request means.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace redline::mock {

// Every counter GET /mock/stats reports, in the order it reports them. One list, so the
// enum and the JSON names are never typed twice.
#define REDLINE_MOCK_COUNTERS(X) \
  X(chat)                        \
  X(chat_stream)                 \
  X(completions)                 \
  X(embeddings)                  \
  X(models)                      \
  X(messages)                    \
  X(messages_stream)             \
  X(responses)                   \
  X(responses_stream)            \
  X(errors_injected)             \
  X(rejected)                    \
  X(total)

enum class Counter {
#define REDLINE_MOCK_COUNTER_ENUM(name) name,
  REDLINE_MOCK_COUNTERS(REDLINE_MOCK_COUNTER_ENUM)
#undef REDLINE_MOCK_COUNTER_ENUM
};

inline constexpr std::size_t kCounterCount = 0
#define REDLINE_MOCK_COUNTER_ONE(name) +1
    REDLINE_MOCK_COUNTERS(REDLINE_MOCK_COUNTER_ONE)
#undef REDLINE_MOCK_COUNTER_ONE
    ;

std::string_view counter_name(Counter c);

// One thread's counters. Only its own thread bumps them; readers and /mock/reset on
// other threads use relaxed atomics, so the request path never takes a lock. Aligned
// to a cache line so neighbouring threads never share one.
struct alignas(64) Counters {
  std::array<std::atomic<uint64_t>, kCounterCount> values{};

  void bump(Counter c) {
    values[static_cast<std::size_t>(c)].fetch_add(1, std::memory_order_relaxed);
  }
  uint64_t get(Counter c) const {
    return values[static_cast<std::size_t>(c)].load(std::memory_order_relaxed);
  }
  void clear() {
    for (auto& v : values) v.store(0, std::memory_order_relaxed);
  }
};

// {"chat":N,...,"total":N} for the sum of `per_thread`.
std::string stats_json(const std::vector<const Counters*>& per_thread);

// The most recent model request, as GET /mock/last-request shows it. Guarded by a
// mutex: recording is optional (off with --no-record) and meant for tests, not benchmarks.
// Recording copies into the previous request's buffers, so it seldom allocates.
class LastRequest {
 public:
  using HeaderViews = std::vector<std::pair<std::string_view, std::string_view>>;

  void record(std::string_view method, std::string_view target, const HeaderViews& headers,
              std::string_view body);
  void clear();
  // {"method","target","headers":{lower-cased name: value},"body"}; empty when nothing
  // was recorded.
  std::string json() const;

 private:
  mutable std::mutex mutex_;
  bool present_ = false;
  std::string method_;
  std::string target_;
  std::vector<std::pair<std::string, std::string>> headers_;  // as received, in order
  std::size_t header_count_ = 0;                              // headers_ beyond are spare
  std::string body_;
};

}  // namespace redline::mock
