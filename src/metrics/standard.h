// The metric families other modules update, declared here once so their names, help texts and
// label sets are in one place (and in docs/operations.md) before the code that bumps them
// lands. A module may instead declare its own next to its code with metrics::counter(...)
// (see registry.h); declaring an existing name with the same type and labels returns the
// same family, so both ways meet. Label values listed in the comments are the expected ones;
// open labels are capped (Options::max_values_per_label), beyond the cap they read "other".
#pragma once

#include "metrics/registry.h"

namespace redline::metrics::standard {

// redline_requests_total{route,model,status}: proxied requests when answered. route: the
// endpoint name (chat_completions, completions, embeddings, models, responses, messages,
// passthrough); model: restricted to the configured models by the gateway
// (Registry::restrict_label("model", ...)), others "other"; status: the HTTP status code.
CounterFamily& requests();
// redline_cache_results_total{outcome,tier}: outcome as in x-redline-cache (hit, miss,
// bypass, refresh, stale, ...); tier l1 | l2.
CounterFamily& cache_results();
// redline_ratelimit_decisions_total{policy,outcome}: policy name; outcome allowed | limited |
// fail_open | fail_closed | local.
CounterFamily& ratelimit_decisions();

// redline_tokens_total{model,kind}: LLM tokens by model; kind prompt | completion.
CounterFamily& tokens();
// redline_spend_usd_total{model}: provider spend in US dollars (record micro-dollars:
// inc(cost_usd * 1e6); the family's scale renders dollars).
CounterFamily& spend_usd();
// redline_cache_saved_usd_total{model}: what cache hits would have cost (micro-dollars too).
CounterFamily& cache_saved_usd();

// Latency histograms (seconds; record with .observe(duration)).
// redline_request_duration_seconds{route}: first request byte to last response byte.
HistogramFamily& request_duration();
// redline_gateway_overhead_seconds{route}: the gateway's own share (request time minus the
// provider's time, Redis included).
HistogramFamily& gateway_overhead();
// redline_upstream_ttfb_seconds{provider}: request sent to the provider -> response headers.
HistogramFamily& upstream_ttfb();
// redline_upstream_duration_seconds{provider}: request sent -> last response byte.
HistogramFamily& upstream_duration();
// redline_redis_command_duration_seconds{command}: one Redis command or pipeline as the
// caller saw it (command: GET, SET, EVALSHA, ... upper case; pipelines "PIPELINE").
HistogramFamily& redis_command_duration();

// Declares every family above (so /metrics shows their HELP and TYPE from the start).
void declare_all(Registry& r = registry());

}  // namespace redline::metrics::standard
