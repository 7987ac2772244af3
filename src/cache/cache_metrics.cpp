// Cache metrics (see cache_metrics.h).
#include "cache/cache_metrics.h"

namespace redline::cache {

std::vector<metrics::Registration> export_cache_metrics(CacheStore& store) {
  CacheStats& s = store.stats();
  std::vector<metrics::Registration> out;
  auto counter = [&](std::string_view name, std::string_view help, std::atomic<uint64_t>& v) {
    out.push_back(metrics::counter(name, help).labels().track([&v] {
      return static_cast<double>(v.load(std::memory_order_relaxed));
    }));
  };
  counter("redline_cache_stores_total", "Entries written to Redis.", s.stores);
  counter("redline_cache_store_errors_total", "Stores Redis failed or timed out (dropped).",
          s.store_errors);
  counter("redline_cache_lookup_errors_total",
          "Lookups Redis failed or timed out (served as misses).", s.lookup_errors);
  counter("redline_cache_decode_errors_total", "Corrupt entries found and deleted.",
          s.decode_errors);
  auto& not_stored = metrics::counter("redline_cache_not_stored_total",
                                      "Answers not cached, by reason.", {"reason"});
  out.push_back(not_stored.labels("too_large").track([&s] {
    return static_cast<double>(s.not_stored_too_large.load());
  }));
  out.push_back(not_stored.labels("incomplete").track([&s] {
    return static_cast<double>(s.not_stored_incomplete.load());
  }));
  counter("redline_cache_write_behind_dropped_total",
          "Write-behind entries dropped (queue full or shutdown).", s.write_behind_dropped);
  counter("redline_cache_write_behind_written_total", "Write-behind entries written.",
          s.write_behind_written);
  out.push_back(metrics::gauge("redline_cache_write_behind_pending",
                               "Write-behind entries queued, not yet written.")
                    .labels()
                    .track([&store] { return static_cast<double>(store.pending_writes()); }));
  auto& coalesced =
      metrics::counter("redline_cache_coalesced_total",
                       "Requests that shared another request's provider call.", {"scope"});
  out.push_back(coalesced.labels("instance").track([&s] {
    return static_cast<double>(s.coalesced_local.load());
  }));
  out.push_back(coalesced.labels("cluster").track(
      [&s] { return static_cast<double>(s.coalesced_remote.load()); }));
  counter("redline_cache_refreshes_total", "Refresh-ahead provider calls started.", s.refreshes);
  counter("redline_cache_invalidations_total",
          "CLIENT TRACKING invalidations applied to L1 (changes made elsewhere).", s.invalidations);
  counter("redline_cache_tracking_resets_total",
          "Tracking connection losses (L1 flushed, generations re-read).", s.tracking_resets);
  auto& bytes = metrics::counter("redline_cache_payload_bytes_total",
                                 "Stored payload bytes before (raw) and after (stored) "
                                 "compression; raw - stored is what zstd saved.",
                                 {"kind"});
  out.push_back(
      bytes.labels("raw").track([&s] { return static_cast<double>(s.bytes_raw.load()); }));
  out.push_back(
      bytes.labels("stored").track([&s] { return static_cast<double>(s.bytes_stored.load()); }));
  if (const L1Cache* l1 = store.l1()) {
    // Summed over the per-thread shards at scrape time.
    auto sum = [l1](OwnedCounter L1Stats::*field) {
      return [l1, field] {
        uint64_t total = 0;
        for (std::size_t i = 0; i < l1->shard_count(); ++i) total += (l1->shard_stats(i).*field).load();
        return static_cast<double>(total);
      };
    };
    out.push_back(metrics::gauge("redline_cache_l1_entries", "Entries held in the L1 tier.")
                      .labels()
                      .track(sum(&L1Stats::entries)));
    out.push_back(metrics::gauge("redline_cache_l1_bytes",
                                 "Bytes charged to the L1 tier (key + value + node overhead).")
                      .labels()
                      .track(sum(&L1Stats::bytes)));
    auto& removed = metrics::counter("redline_cache_l1_removals_total",
                                     "L1 entries removed, by reason: evicted (LRU, to make room), "
                                     "expired, invalidated (tracking, purge, overwrite elsewhere).",
                                     {"reason"});
    out.push_back(removed.labels("evicted").track(sum(&L1Stats::evictions)));
    out.push_back(removed.labels("expired").track(sum(&L1Stats::expirations)));
    out.push_back(removed.labels("invalidated").track(sum(&L1Stats::invalidations)));
    out.push_back(metrics::counter("redline_cache_l1_rejected_total",
                                   "Entries too large for an L1 shard (served from Redis only).")
                      .labels()
                      .track(sum(&L1Stats::rejected)));
  }
  return out;
}

}  // namespace redline::cache
