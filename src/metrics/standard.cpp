// The standard families (see standard.h): one function per family, each declaring it in the
// process-wide registry on first use; declare_all() does the same for any registry.
#include "metrics/standard.h"

namespace redline::metrics::standard {

namespace {

Options capped(std::size_t values_per_label, std::size_t series) {
  Options o;
  o.max_values_per_label = values_per_label;
  o.max_series = series;
  return o;
}

CounterFamily& requests_in(Registry& r) {
  return r.counter("redline_requests_total",
                   "Proxied requests by route, model (configured models, else other) and "
                   "HTTP status.",
                   {"route", "model", "status"}, capped(32, 512));
}
CounterFamily& cache_results_in(Registry& r) {
  return r.counter("redline_cache_results_total",
                   "Cache lookups by outcome (as in x-redline-cache) and tier (l1, l2).",
                   {"outcome", "tier"}, capped(16, 64));
}
CounterFamily& ratelimit_decisions_in(Registry& r) {
  return r.counter("redline_ratelimit_decisions_total",
                   "Rate-limit decisions by policy and outcome.", {"policy", "outcome"},
                   capped(32, 256));
}
Options micro_dollars() {
  Options o = capped(32, 64);
  o.scale = 1e-6;
  return o;
}
CounterFamily& tokens_in(Registry& r) {
  return r.counter("redline_tokens_total", "LLM tokens by model and kind (prompt, completion).",
                   {"model", {"kind", {"prompt", "completion"}}}, capped(32, 128));
}
CounterFamily& spend_usd_in(Registry& r) {
  return r.counter("redline_spend_usd_total", "Provider spend in US dollars, by model.", {"model"},
                   micro_dollars());
}
CounterFamily& cache_saved_usd_in(Registry& r) {
  return r.counter("redline_cache_saved_usd_total",
                   "What cache hits would have cost at the provider, US dollars, by model.",
                   {"model"}, micro_dollars());
}
HistogramFamily& request_duration_in(Registry& r) {
  return r.histogram("redline_request_duration_seconds",
                     "Whole request through the gateway, first byte in to last byte out.",
                     {"route"}, capped(16, 16));
}
HistogramFamily& gateway_overhead_in(Registry& r) {
  return r.histogram("redline_gateway_overhead_seconds",
                     "The gateway's own share of a request: request time minus provider time.",
                     {"route"}, capped(16, 16));
}
HistogramFamily& upstream_ttfb_in(Registry& r) {
  return r.histogram("redline_upstream_ttfb_seconds",
                     "Provider time to first byte: request sent to response headers.", {"provider"},
                     capped(16, 16));
}
HistogramFamily& upstream_duration_in(Registry& r) {
  return r.histogram("redline_upstream_duration_seconds",
                     "Provider time: request sent to last response byte.", {"provider"},
                     capped(16, 16));
}
HistogramFamily& redis_command_duration_in(Registry& r) {
  return r.histogram("redline_redis_command_duration_seconds",
                     "Redis commands as the gateway saw them, by command.", {"command"},
                     capped(24, 24));
}

}  // namespace

CounterFamily& requests() {
  static auto& f = requests_in(registry());
  return f;
}
CounterFamily& cache_results() {
  static auto& f = cache_results_in(registry());
  return f;
}
CounterFamily& ratelimit_decisions() {
  static auto& f = ratelimit_decisions_in(registry());
  return f;
}
CounterFamily& tokens() {
  static auto& f = tokens_in(registry());
  return f;
}
CounterFamily& spend_usd() {
  static auto& f = spend_usd_in(registry());
  return f;
}
CounterFamily& cache_saved_usd() {
  static auto& f = cache_saved_usd_in(registry());
  return f;
}
HistogramFamily& request_duration() {
  static auto& f = request_duration_in(registry());
  return f;
}
HistogramFamily& gateway_overhead() {
  static auto& f = gateway_overhead_in(registry());
  return f;
}
HistogramFamily& upstream_ttfb() {
  static auto& f = upstream_ttfb_in(registry());
  return f;
}
HistogramFamily& upstream_duration() {
  static auto& f = upstream_duration_in(registry());
  return f;
}
HistogramFamily& redis_command_duration() {
  static auto& f = redis_command_duration_in(registry());
  return f;
}

void declare_all(Registry& r) {
  requests_in(r);
  cache_results_in(r);
  ratelimit_decisions_in(r);
  tokens_in(r);
  spend_usd_in(r);
  cache_saved_usd_in(r);
  request_duration_in(r);
  gateway_overhead_in(r);
  upstream_ttfb_in(r);
  upstream_duration_in(r);
  redis_command_duration_in(r);
}

}  // namespace redline::metrics::standard
