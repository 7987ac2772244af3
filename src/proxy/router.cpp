// Request routing (see router.h).
#include "proxy/router.h"

#include <algorithm>

namespace redline::proxy {

std::string_view endpoint_name(Endpoint e) {
  switch (e) {
    case Endpoint::kChatCompletions:
      return "chat_completions";
    case Endpoint::kCompletions:
      return "completions";
    case Endpoint::kEmbeddings:
      return "embeddings";
    case Endpoint::kModels:
      return "models";
    case Endpoint::kResponses:
      return "responses";
    case Endpoint::kMessages:
      return "messages";
    case Endpoint::kPassthrough:
      return "passthrough";
    case Endpoint::kNotFound:
      return "not_found";
  }
  return "unknown";
}

Endpoint classify_path(std::string_view path) {
  if (auto q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
  if (path == "/v1" || path.substr(0, 4) != "/v1/") return Endpoint::kNotFound;
  if (path == "/v1/chat/completions") return Endpoint::kChatCompletions;
  if (path == "/v1/completions") return Endpoint::kCompletions;
  if (path == "/v1/embeddings") return Endpoint::kEmbeddings;
  if (path == "/v1/models") return Endpoint::kModels;
  if (path == "/v1/responses") return Endpoint::kResponses;
  if (path == "/v1/messages") return Endpoint::kMessages;
  return Endpoint::kPassthrough;
}

config::ProviderType endpoint_api(Endpoint e) {
  return e == Endpoint::kMessages ? config::ProviderType::kAnthropic
                                  : config::ProviderType::kOpenAI;
}

bool endpoint_has_model(Endpoint e) {
  return e == Endpoint::kChatCompletions || e == Endpoint::kCompletions ||
         e == Endpoint::kEmbeddings || e == Endpoint::kResponses || e == Endpoint::kMessages;
}

Router::Router(const config::Config& config) : config_(config) {
  for (const auto& p : config.providers) {
    auto provider = std::make_unique<Provider>();
    provider->config = &p;
    provider->target.index = providers_.size();
    provider->target.endpoint = upstream::Endpoint::parse(p.base_url);
    if (provider->target.endpoint.tls) {
      provider->target.tls = upstream::Target::make_tls_context(p.ca_file, p.tls_verify);
    }
    provider->target.timeouts = p.timeouts;
    provider->target.max_idle = p.max_idle_connections;
    provider->breaker =
        std::make_unique<upstream::CircuitBreaker>(p.circuit.failures, p.circuit.open_for);
    providers_.push_back(std::move(provider));
  }
}

const Provider* Router::by_name(std::string_view name) const {
  for (const auto& p : providers_) {
    if (p->config->name == name) return p.get();
  }
  return nullptr;
}

const Provider* Router::default_provider(config::ProviderType type) const {
  for (const auto& p : providers_) {
    if (p->config->enabled && p->config->type == type) return p.get();
  }
  return nullptr;
}

bool translatable(Endpoint e) {
  return e == Endpoint::kChatCompletions || e == Endpoint::kMessages;
}

std::vector<Hop> Router::resolve(Endpoint endpoint, std::string_view model,
                                 const Provider** mismatch) const {
  std::vector<Hop> hops;
  const auto api = endpoint_api(endpoint);
  std::vector<std::string_view> seen;
  // Breadth-first over the model and its fallbacks (and theirs), each model once.
  std::vector<std::string_view> queue{model};
  for (std::size_t i = 0; i < queue.size(); ++i) {
    const auto name = queue[i];
    if (std::find(seen.begin(), seen.end(), name) != seen.end()) continue;
    seen.push_back(name);
    const config::ModelRoute* route = config_.find_model(std::string(name));
    const Provider* provider =
        route ? by_name(route->provider) : (i == 0 ? default_provider(api) : nullptr);
    if (route) {
      for (const auto& f : route->fallbacks) queue.push_back(f);
    }
    if (provider == nullptr || !provider->config->enabled) continue;
    // The Responses API reaches other providers as a chat completion (responses_api.cpp).
    if (provider->config->type != api && !translatable(endpoint) &&
        endpoint != Endpoint::kResponses) {
      if (mismatch && *mismatch == nullptr) *mismatch = provider;
      continue;
    }
    std::string upstream_model(name);
    if (route && !route->upstream_model.empty()) upstream_model = route->upstream_model;
    hops.push_back(Hop{provider, std::move(upstream_model)});
  }
  return hops;
}

}  // namespace redline::proxy
