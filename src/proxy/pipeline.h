// The proxy's request pipeline: the phases of DESIGN.md §5 run in order on one
// RequestContext, each a small function with one job that either lets the request go on
// or answers it (a Reject). Phases today: parse+limits -> authenticate -> route ->
// cache lookup -> upstream (shared per cache key: flight.h) -> cache store -> log. Rate
// limits and sessions slot in between as they land.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "auth/authenticator.h"
#include "cache/cache_store.h"
#include "config/config.h"
#include "http/server.h"
#include "proxy/access_log.h"
#include "proxy/context.h"
#include "proxy/flight.h"
#include "proxy/forwarder.h"
#include "proxy/router.h"

namespace redline::proxy {

class ProxyHandler : public http::Handler {
 public:
  // `contexts`: the io_context of each server thread, by thread index.
  // `cache`: null when the cache is off.
  ProxyHandler(const config::Config& config, std::vector<asio::io_context*> contexts,
               AccessLog& access_log, cache::CacheStore* cache = nullptr);
  ~ProxyHandler() override;

  asio::awaitable<void> handle(http::Exchange& exchange) override;

  const Router& router() const { return router_; }
  // Drops pooled upstream connections; call before the io_contexts are destroyed.
  void shutdown();

 private:
  struct Worker;  // per-thread state: upstream client and forwarder
  Forwarder& forwarder(std::size_t thread);

  std::optional<Reject> parse_phase(RequestContext& ctx);
  std::optional<Reject> auth_phase(RequestContext& ctx);
  std::optional<Reject> route_phase(RequestContext& ctx);
  // Request, latency and cache metrics (metrics/standard.h), after the answer.
  void record_metrics(const RequestContext& ctx);
  // Decides whether the request uses the cache and computes its key; may reject (400).
  asio::awaitable<std::optional<Reject>> cache_key_phase(RequestContext& ctx);
  // Serves the request: from the cache, or through a (possibly shared) provider call.
  asio::awaitable<void> cached_upstream_phase(RequestContext& ctx);
  // Embeddings are cached per input (embeddings.cpp).
  asio::awaitable<void> embeddings_phase(RequestContext& ctx);
  struct FlightJob;
  asio::awaitable<void> run_flight(std::shared_ptr<Flight> flight, std::shared_ptr<FlightJob> job);
  std::shared_ptr<FlightJob> make_job(const RequestContext& ctx, bool registered);

  const config::Config& config_;
  Router router_;
  auth::Authenticator auth_;
  AccessLog& access_log_;
  cache::CacheStore* cache_;
  FlightTable flights_;
  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace redline::proxy
