// The upstream phase: sends the request to its hops in order (primary, then fallbacks),
// retrying transport failures, 429 and 5xx with exponential backoff and jitter (honouring
// retry-after) while nothing has reached the client yet; then relays the answer: whole
// for JSON, chunk by chunk for SSE. Provider 4xx answers reach the client unchanged.
#pragma once

#include <boost/asio.hpp>
#include <random>
#include <string>

#include "proxy/context.h"
#include "upstream/http_client.h"

namespace redline::proxy {

class Forwarder {
 public:
  Forwarder(asio::io_context& ioc, upstream::HttpClient& client)
      : ioc_(ioc), client_(client), rng_(std::random_device{}()) {}

  // Answers the client (always, success or error). `body` is the client's request body.
  asio::awaitable<void> forward(RequestContext& ctx, const std::string& body);

 private:
  upstream::UpstreamRequest build_request(const RequestContext& ctx, const Hop& hop,
                                          const std::string& body) const;
  asio::awaitable<void> relay(RequestContext& ctx, upstream::Exchange& ex);
  asio::awaitable<void> sleep(std::chrono::milliseconds d);
  std::chrono::milliseconds backoff(const config::RetryPolicy& p, int attempt);

  asio::io_context& ioc_;
  upstream::HttpClient& client_;
  std::mt19937_64 rng_;
};

// Client request headers that are never forwarded (hop-by-hop, credentials, ours).
bool is_dropped_request_header(std::string_view name);
// Provider response headers that are never relayed.
bool is_dropped_response_header(std::string_view name);

}  // namespace redline::proxy
