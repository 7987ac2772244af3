// The upstream phase: sends the request to its hops in order (primary, then fallbacks),
// retrying transport failures, 429 and 5xx with exponential backoff and jitter (honouring
// retry-after) while nothing has reached the client yet; then relays the answer: whole
// for JSON, chunk by chunk for SSE. Provider 4xx answers reach the client unchanged.
#pragma once

#include <boost/asio.hpp>
#include <random>
#include <string>

#include "proxy/context.h"
#include "proxy/sink.h"
#include "upstream/http_client.h"

namespace redline::proxy {

// Everything the upstream phase needs about the request, independent of the client's
// connection (a shared call outlives the client that started it).
struct ForwardInput {
  const http::Request& request;  // method, target and headers as the client sent them
  std::string_view request_id;
  Endpoint endpoint = Endpoint::kNotFound;
  std::string_view model;  // as the client asked ("" when the endpoint has none)
  const std::vector<Hop>& hops;
  const std::string& body;  // the body to send (may differ from the client's)
  bool include_usage = false;  // stream_options.include_usage (translated streams honour it)
};

class Forwarder {
 public:
  Forwarder(asio::io_context& ioc, upstream::HttpClient& client)
      : ioc_(ioc), client_(client), rng_(std::random_device{}()) {}

  // Answers into `sink` (always, success or error) and records what happened in `out`.
  asio::awaitable<void> forward(const ForwardInput& in, UpstreamOutcome& out, Sink& sink);

 private:
  // `translated`: the request body in the provider's API when it is not the caller's.
  upstream::UpstreamRequest build_request(const ForwardInput& in, const Hop& hop,
                                          const std::string* translated) const;
  // `translated`: the hop whose answer must be translated into the caller's API, or null.
  asio::awaitable<void> relay(const ForwardInput& in, UpstreamOutcome& out, Sink& sink,
                              upstream::Exchange& ex, const Hop* translated);
  asio::awaitable<void> sleep(std::chrono::milliseconds d);
  std::chrono::milliseconds backoff(const config::RetryPolicy& p, int attempt);

  asio::io_context& ioc_;
  upstream::HttpClient& client_;
  uint64_t default_max_tokens_ = 4096;  // Messages needs max_tokens; Chat may omit it
  std::mt19937_64 rng_;
};

// Client request headers that are never forwarded (hop-by-hop, credentials, ours).
bool is_dropped_request_header(std::string_view name);
// Provider response headers that are never relayed.
bool is_dropped_response_header(std::string_view name);

}  // namespace redline::proxy
