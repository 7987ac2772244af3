// Request routing: which API a path belongs to, and which provider (and upstream model
// name) serves a requested model, with its fallback chain. Built once from the config;
// read-only afterwards. Rules (DESIGN.md §3): the provider the model maps to (`models:`,
// aliases allowed), else the first enabled provider whose type serves the endpoint.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "upstream/circuit_breaker.h"
#include "upstream/http_client.h"

namespace redline::proxy {

// The API surface a request belongs to. One enum for headers, logs and metrics.
enum class Endpoint {
  kChatCompletions,
  kCompletions,
  kEmbeddings,
  kModels,
  kResponses,
  kMessages,     // Anthropic
  kPassthrough,  // any other /v1/* path: authenticated, uncached
  kNotFound,     // outside /v1/
};
std::string_view endpoint_name(Endpoint e);
Endpoint classify_path(std::string_view path);
// The provider type whose API the endpoint speaks.
config::ProviderType endpoint_api(Endpoint e);
// Endpoints whose JSON body carries the model and may be streamed.
bool endpoint_has_model(Endpoint e);

// A provider ready to receive requests.
struct Provider {
  const config::ProviderConfig* config;
  upstream::Target target;
  // Shared by every thread of this gateway (atomics).
  std::unique_ptr<upstream::CircuitBreaker> breaker;
};

// One place a request can be sent: a provider and the model name it expects.
// Endpoints whose requests and answers are translated for a provider of the other API
// (Chat Completions <-> Messages, src/translate).
bool translatable(Endpoint e);

struct Hop {
  const Provider* provider;
  std::string model;  // upstream model name
};

class Router {
 public:
  explicit Router(const config::Config& config);

  const std::vector<std::unique_ptr<Provider>>& providers() const { return providers_; }

  // The ordered hops for `model` on `endpoint` (primary first, then its fallbacks, each
  // once); empty when nothing can serve it. Hops whose provider speaks another API are
  // skipped (translation comes with the API translator) and reported via `mismatch`.
  std::vector<Hop> resolve(Endpoint endpoint, std::string_view model,
                           const Provider** mismatch = nullptr) const;
  // The provider for endpoints without a model (GET /v1/models, passthrough).
  const Provider* default_provider(config::ProviderType type) const;

 private:
  const Provider* by_name(std::string_view name) const;
  const config::Config& config_;
  std::vector<std::unique_ptr<Provider>> providers_;
};

}  // namespace redline::proxy
