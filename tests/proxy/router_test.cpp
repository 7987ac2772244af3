// Unit tests for path classification and model routing (aliases, fallbacks, API types).
#include "proxy/router.h"

#include <gtest/gtest.h>

#include "config/config_loader.h"

namespace redline::proxy {
namespace {

config::Config routing_config() {
  auto env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
  return config::load_config_string(R"(
providers:
  - {name: oa, type: openai, base_url: "http://127.0.0.1:1/v1", api_key: k}
  - {name: oa2, type: openai, base_url: "http://127.0.0.1:2/v1", api_key: k}
  - {name: an, type: anthropic, base_url: "http://127.0.0.1:3", api_key: k}
models:
  fast: {provider: oa2, model: gpt-4o-mini, fallbacks: [gpt-4o, haiku]}
  gpt-4o: {provider: oa, fallbacks: [fast]}
  haiku: {provider: an, model: claude-3-5-haiku-latest}
)",
                                    "t.yaml", env)
      .config;
}

TEST(ClassifyPath, KnownPathsPassthroughAndOutside) {
  EXPECT_EQ(classify_path("/v1/chat/completions"), Endpoint::kChatCompletions);
  EXPECT_EQ(classify_path("/v1/chat/completions?x=1"), Endpoint::kChatCompletions);
  EXPECT_EQ(classify_path("/v1/messages"), Endpoint::kMessages);
  EXPECT_EQ(classify_path("/v1/models"), Endpoint::kModels);
  EXPECT_EQ(classify_path("/v1/files/abc"), Endpoint::kPassthrough);
  EXPECT_EQ(classify_path("/v1"), Endpoint::kNotFound);
  EXPECT_EQ(classify_path("/v10/chat"), Endpoint::kNotFound);
  EXPECT_EQ(classify_path("/healthz"), Endpoint::kNotFound);
  EXPECT_EQ(endpoint_api(Endpoint::kMessages), config::ProviderType::kAnthropic);
  EXPECT_EQ(endpoint_api(Endpoint::kChatCompletions), config::ProviderType::kOpenAI);
}

TEST(Router, AliasWithFallbackChainEachModelOnce) {
  auto cfg = routing_config();
  Router r(cfg);
  auto hops = r.resolve(Endpoint::kChatCompletions, "fast");
  ASSERT_EQ(hops.size(), 3u);  // haiku too: another API, reached through translation
  EXPECT_EQ(hops[0].provider->config->name, "oa2");
  EXPECT_EQ(hops[0].model, "gpt-4o-mini");
  EXPECT_EQ(hops[1].provider->config->name, "oa");
  EXPECT_EQ(hops[1].model, "gpt-4o");
  EXPECT_EQ(hops[2].provider->config->name, "an");
  EXPECT_EQ(hops[2].model, "claude-3-5-haiku-latest");
  // Embeddings cannot be translated: the Anthropic fallback is left out.
  EXPECT_EQ(r.resolve(Endpoint::kEmbeddings, "fast").size(), 2u);
}

TEST(Router, UnmappedModelGoesToFirstProviderOfTheApi) {
  auto cfg = routing_config();
  Router r(cfg);
  auto hops = r.resolve(Endpoint::kChatCompletions, "some-new-model");
  ASSERT_EQ(hops.size(), 1u);
  EXPECT_EQ(hops[0].provider->config->name, "oa");
  EXPECT_EQ(hops[0].model, "some-new-model");
  auto msgs = r.resolve(Endpoint::kMessages, "claude-x");
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].provider->config->name, "an");
}

TEST(Router, OtherApiTranslatedForChatAndMessagesReportedElsewhere) {
  auto cfg = routing_config();
  Router r(cfg);
  const Provider* mismatch = nullptr;
  // Chat Completions <-> Messages are translated: the Anthropic provider is a hop.
  auto hops = r.resolve(Endpoint::kChatCompletions, "haiku", &mismatch);
  ASSERT_EQ(hops.size(), 1u);
  EXPECT_EQ(hops[0].provider->config->name, "an");
  EXPECT_EQ(mismatch, nullptr);
  // Embeddings have no Anthropic counterpart: a mismatch.
  auto none = r.resolve(Endpoint::kEmbeddings, "haiku", &mismatch);
  EXPECT_TRUE(none.empty());
  ASSERT_NE(mismatch, nullptr);
  EXPECT_EQ(mismatch->config->name, "an");
}

TEST(Router, DisabledProviderSkipped) {
  auto cfg = routing_config();
  cfg.providers[0].enabled = false;  // oa
  Router r(cfg);
  auto hops = r.resolve(Endpoint::kChatCompletions, "gpt-4o");
  ASSERT_EQ(hops.size(), 2u);  // straight to its fallback "fast" on oa2, then fast's haiku
  EXPECT_EQ(hops[0].provider->config->name, "oa2");
  EXPECT_EQ(hops[1].provider->config->name, "an");
  EXPECT_EQ(r.default_provider(config::ProviderType::kOpenAI)->config->name, "oa2");
}

}  // namespace
}  // namespace redline::proxy
