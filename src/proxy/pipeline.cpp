// The proxy pipeline (see pipeline.h). Parsing uses simdjson's validating DOM parser (one
// per thread, reused) to reject malformed JSON and read `model` and `stream` without
// building a Boost.JSON tree on the hot path.
#include "proxy/pipeline.h"

#include <simdjson.h>

#include <random>

namespace redline::proxy {

namespace {
// A client-supplied request id is kept when it is short and printable; else a new one.
std::string pick_request_id(std::string_view given) {
  if (!given.empty() && given.size() <= 128 &&
      std::all_of(given.begin(), given.end(), [](char c) { return c > 32 && c < 127; })) {
    return std::string(given);
  }
  thread_local std::mt19937_64 rng(std::random_device{}());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = "req_";
  for (int half = 0; half < 2; ++half) {
    auto v = rng();
    for (int i = 0; i < 16; ++i, v >>= 4) id.push_back(kHex[v & 15]);
  }
  return id;
}
}  // namespace

struct ProxyHandler::Worker {
  explicit Worker(asio::io_context& ioc) : client(ioc), forwarder(ioc, client) {}
  upstream::HttpClient client;
  Forwarder forwarder;
};

ProxyHandler::ProxyHandler(const config::Config& config, std::vector<asio::io_context*> contexts,
                           AccessLog& access_log)
    : router_(config), auth_(config.keys), access_log_(access_log) {
  for (auto* c : contexts) workers_.push_back(std::make_unique<Worker>(*c));
}

ProxyHandler::~ProxyHandler() = default;

void ProxyHandler::shutdown() {
  for (auto& w : workers_) w->client.shutdown();
}

std::optional<Reject> ProxyHandler::parse_phase(RequestContext& ctx) {
  auto& req = ctx.exchange.request();
  ctx.endpoint = classify_path(req.target());
  if (ctx.endpoint == Endpoint::kNotFound) {
    return Reject{404, "unknown path " + std::string(req.target()) + " (the API lives under /v1/)",
                  "not_found"};
  }
  if (ctx.endpoint == Endpoint::kModels) {
    if (req.method() != bhttp::verb::get) return Reject{405, "use GET /v1/models", "method_not_allowed"};
    return std::nullopt;
  }
  const bool needs_model = endpoint_has_model(ctx.endpoint);
  if (needs_model && req.method() != bhttp::verb::post) {
    return Reject{405, "use POST " + std::string(req.target()), "method_not_allowed"};
  }
  if (!needs_model && req.body().empty()) return std::nullopt;

  thread_local simdjson::dom::parser parser;
  const auto& body = req.body();
  simdjson::dom::element doc;
  if (auto err = parser.parse(body.data(), body.size()).get(doc); err) {
    if (!needs_model) return std::nullopt;  // passthrough bodies need not be JSON
    return Reject{400, std::string("malformed JSON body: ") + simdjson::error_message(err),
                  "invalid_json"};
  }
  simdjson::dom::object obj;
  if (doc.get_object().get(obj)) {
    if (!needs_model) return std::nullopt;
    return Reject{400, "the request body must be a JSON object", "invalid_json"};
  }
  std::string_view model;
  if (obj["model"].get_string().get(model)) {
    if (!needs_model) return std::nullopt;
    return Reject{400, "missing or non-string field: model", "missing_model"};
  }
  ctx.model = std::string(model);
  bool stream = false;
  if (!obj["stream"].get_bool().get(stream)) ctx.stream = stream;
  return std::nullopt;
}

std::optional<Reject> ProxyHandler::auth_phase(RequestContext& ctx) {
  auto& req = ctx.exchange.request();
  auto result = auth_.authenticate(req[bhttp::field::authorization], req["x-api-key"]);
  switch (result.outcome) {
    case auth::AuthOutcome::kMissing:
      return Reject{401, "missing API key: send Authorization: Bearer <key> or x-api-key",
                    "missing_api_key"};
    case auth::AuthOutcome::kInvalid:
      return Reject{401, "invalid API key", "invalid_api_key"};
    case auth::AuthOutcome::kOk:
      break;
  }
  ctx.identity = std::move(result.identity);
  if (!ctx.model.empty() && !ctx.identity.model_allowed(ctx.model)) {
    return Reject{403, "this key may not use model " + ctx.model, "model_not_allowed"};
  }
  return std::nullopt;
}

std::optional<Reject> ProxyHandler::route_phase(RequestContext& ctx) {
  if (ctx.model.empty()) {
    // GET /v1/models and model-less passthrough go to the default provider of the API.
    const auto* p = router_.default_provider(endpoint_api(ctx.endpoint));
    if (p == nullptr) p = router_.default_provider(config::ProviderType::kAnthropic);
    if (p != nullptr) ctx.hops.push_back(Hop{p, ""});
    return std::nullopt;
  }
  const Provider* mismatch = nullptr;
  ctx.hops = router_.resolve(ctx.endpoint, ctx.model, &mismatch);
  if (ctx.hops.empty() && mismatch != nullptr) {
    return Reject{400,
                  "model " + ctx.model + " is served by provider " + mismatch->config->name +
                      ", which speaks a different API than " + std::string(endpoint_name(ctx.endpoint)) +
                      "; call it through its own API",
                  "api_mismatch"};
  }
  return std::nullopt;
}

asio::awaitable<void> ProxyHandler::handle(http::Exchange& exchange) {
  RequestContext ctx(exchange);
  ctx.request_id = pick_request_id(exchange.request()["x-request-id"]);
  exchange.add_response_header("x-request-id", ctx.request_id);

  std::optional<Reject> reject = parse_phase(ctx);
  if (!reject) reject = auth_phase(ctx);
  if (!reject) reject = route_phase(ctx);
  if (reject) {
    ctx.error_code = reject->code;
    co_await exchange.respond_error(reject->status, reject->message, reject->code,
                                    reject->retry_after);
  } else {
    co_await workers_[exchange.thread_index()]->forwarder.forward(ctx, exchange.request().body());
  }
  access_log_.write(ctx);
}

}  // namespace redline::proxy
