// One provider call shared by every client that asked the same question at the same time
// (request coalescing), and the recorder of its answer for the cache.
//
// The upstream phase writes into a Flight as into any Sink, on the thread that started it
// (the leader's). Clients on any thread attach and are served from it as it fills: a
// streaming client gets the events as they arrive, a non-streaming client the whole answer,
// each converted to its own form when the flight's form differs (cache/replay.h). The call
// is cancelled only when the last attached client leaves (a refresh-ahead flight, which
// has no client, is never cancelled). The producer may hold back the end of the answer
// until it is stored (write-through): release() lets it go.
//
// Threading: every member is guarded by mu_; consumers on other threads wake through a
// timer posted to their own executor, never by touching another thread's objects directly.
#pragma once

#include <atomic>
#include <functional>
#include <boost/asio.hpp>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "cache/cache_key.h"
#include "cache/entry.h"
#include "cache/l1_cache.h"
#include "cache/sse.h"
#include "proxy/context.h"
#include "proxy/sink.h"
#include "proxy/usage.h"

namespace redline::proxy {

// The event that ends a stream of this endpoint's API ("data: [DONE]", message_stop).
bool is_terminal_event(Endpoint e, std::string_view event);

class Flight final : public Sink, public std::enable_shared_from_this<Flight> {
 public:
  Flight(Endpoint endpoint, bool cancel_when_unattached)
      : endpoint_(endpoint), cancel_when_unattached_(cancel_when_unattached) {}

  // --- producer side (the leader thread) ---
  boost::asio::awaitable<bool> respond(http::Response& response) override;
  boost::asio::awaitable<bool> respond_error(int status, std::string_view message,
                                             std::string_view code,
                                             std::string_view retry_after = {}) override;
  boost::asio::awaitable<bool> begin_stream(http::ResponseHeader& header) override;
  boost::asio::awaitable<bool> write_chunk(std::string_view data) override;
  boost::asio::awaitable<bool> end_stream() override;
  bool gone() const override;
  // Fires `stop` on the producer's thread (set_producer) when the last client leaves a
  // flight that is cancelled then.
  common::WatchGuard watch_gone(common::Interrupt& stop) override;
  // Where the producer (run_flight) runs; set before it forwards.
  void set_producer(boost::asio::any_io_executor executor);

  // Fills the flight from a cache entry found in Redis (another instance answered).
  void publish_entry(const cache::Entry& entry);
  // Lets consumers finish (after the store, for write-through). Idempotent.
  void release();
  bool released() const;
  // Status 200 and, for streams, the terminal event seen: the answer may be cached.
  bool complete() const;
  // The answer as a cache entry (call after it finished).
  cache::Entry to_entry(int64_t created_unix_ms, uint32_t ttl_seconds) const;
  std::size_t payload_bytes() const;
  // The provider's usage in the answer (once finished), for settling token limits.
  std::optional<Usage> usage() const;
  // The upstream outcome, for the access log; copied by consumers once finished.
  UpstreamOutcome& outcome() { return outcome_; }

  // --- consumer side (any thread) ---
  void attach();
  void detach();

  struct ServeOptions {
    bool stream = false;         // the client asked for SSE
    bool include_usage = false;  // ... with stream_options.include_usage
    // Awaited once before the end of a complete answer reaches this client (before the
    // terminal event of a stream, before a JSON answer is written): a session turn is
    // stored by then, so the client's next turn sees it whichever connection it uses.
    std::function<boost::asio::awaitable<void>()> before_end;
  };
  // Serves one client from this flight; returns when its answer is complete or it left.
  // `outcome` receives the upstream outcome when the flight finished.
  boost::asio::awaitable<void> serve(http::Exchange& ex, ServeOptions opts,
                                     UpstreamOutcome& outcome);

 private:
  struct Waiter {
    std::shared_ptr<boost::asio::steady_timer> timer;
  };
  void notify_locked(std::vector<Waiter>& out);
  static void wake(std::vector<Waiter>& waiters);
  // Waits until the state changes past `seen` (a version counter) or the client leaves.
  boost::asio::awaitable<bool> wait_change(http::Exchange& ex, uint64_t seen);
  boost::asio::awaitable<void> serve_json(http::Exchange& ex, ServeOptions opts);
  boost::asio::awaitable<void> serve_stream(http::Exchange& ex, ServeOptions opts);

  const Endpoint endpoint_;
  const bool cancel_when_unattached_;
  mutable std::mutex mu_;
  uint64_t version_ = 0;  // bumped on every change consumers may care about
  bool headers_ready_ = false;
  bool streamed_ = false;
  bool finished_ = false;
  bool released_ = false;
  int status_ = 0;
  std::vector<std::pair<std::string, std::string>> headers_;  // relayable provider headers
  std::string content_type_;
  std::string body_;
  std::vector<std::string> events_;  // complete SSE events, without the blank line
  cache::SseSplitter splitter_;
  bool terminal_seen_ = false;
  std::vector<Waiter> waiters_;
  std::atomic<int> attached_{0};
  // The producer's watch for the last client leaving; `stop` is touched only on the
  // producer's thread, the pointer and producer_ under mu_.
  struct GoneWatch {
    common::Interrupt* stop = nullptr;
  };
  static void end_watch(void* self);
  std::shared_ptr<GoneWatch> gone_watch_;
  boost::asio::any_io_executor producer_;
  UpstreamOutcome outcome_;
};

// In-flight calls by cache key, process-wide. The mutex is taken only on misses.
class FlightTable {
 public:
  // The flight for `key`, and whether the caller created it (is the leader).
  std::pair<std::shared_ptr<Flight>, bool> join_or_create(const cache::KeyDigest& key,
                                                          Endpoint endpoint);
  void remove(const cache::KeyDigest& key, const Flight* flight);
  // The answer of the listed flight for `key` once it is complete and its clients have been
  // released (its store is on the way to Redis), as an entry; nullopt otherwise.
  std::optional<cache::Entry> answered(const cache::KeyDigest& key) const;
  std::size_t size() const;

 private:
  mutable std::mutex mu_;
  std::unordered_map<cache::KeyDigest, std::shared_ptr<Flight>, cache::L1DigestHash> flights_;
};

// Serves a cached entry to a client in the form it asked for (stream or not). False when the
// entry cannot be turned into that form (the caller then treats the request as a miss).
boost::asio::awaitable<bool> serve_entry(http::Exchange& ex, Endpoint endpoint,
                                         const cache::Entry& entry, bool stream,
                                         bool include_usage);

// Provider response headers worth storing with an entry and replaying on hits.
bool is_replayed_header(std::string_view name);

}  // namespace redline::proxy
