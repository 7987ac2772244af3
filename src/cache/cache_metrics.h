// The response cache's counters exported as Prometheus metrics, read from CacheStats at scrape
// time (nothing extra on the request path). Results by outcome and tier are counted per
// request by the proxy (redline_cache_results_total, metrics/standard.h).
#pragma once

#include <vector>

#include "cache/cache_store.h"
#include "metrics/registry.h"

namespace redline::cache {

// Registers scrape-time sources for `store`; keep the result alive as long as the store.
std::vector<metrics::Registration> export_cache_metrics(CacheStore& store);

}  // namespace redline::cache
