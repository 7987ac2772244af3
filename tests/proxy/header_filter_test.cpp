// The header filters of the upstream phase: which client headers never reach a provider and
// which provider headers never reach the client, in any letter case.
#include <gtest/gtest.h>

#include <cctype>
#include <string>
#include <string_view>

#include "proxy/forwarder.h"

namespace redline::proxy {
namespace {

std::string upper(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// Every other letter upper case: "cOnTeNt-lEnGtH".
std::string mixed(std::string_view s) {
  std::string out(s);
  for (std::size_t i = 1; i < out.size(); i += 2) {
    out[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[i])));
  }
  return out;
}

constexpr std::string_view kDroppedRequest[] = {"host",
                                                "connection",
                                                "keep-alive",
                                                "proxy-connection",
                                                "proxy-authorization",
                                                "te",
                                                "trailer",
                                                "transfer-encoding",
                                                "upgrade",
                                                "content-length",
                                                "authorization",
                                                "x-api-key",
                                                "accept-encoding",
                                                "expect",
                                                "cookie",
                                                "forwarded",
                                                "x-forwarded-for",
                                                "x-forwarded-host",
                                                "x-forwarded-proto",
                                                "x-real-ip"};

constexpr std::string_view kDroppedResponse[] = {
    "connection",        "keep-alive", "proxy-connection", "te",         "trailer",
    "transfer-encoding", "upgrade",    "content-length",   "set-cookie", "x-request-id"};

TEST(HeaderFilter, EveryListedRequestHeaderIsDroppedInAnyCase) {
  for (auto name : kDroppedRequest) {
    EXPECT_TRUE(is_dropped_request_header(name)) << name;
    EXPECT_TRUE(is_dropped_request_header(upper(name))) << name;
    EXPECT_TRUE(is_dropped_request_header(mixed(name))) << name;
  }
}

TEST(HeaderFilter, UnderscoreAndGatewayRequestHeadersAreDropped) {
  for (std::string_view name :
       {"x_api_key", "openai_beta", "_", "a_", "x-redline-cache", "X-Redline-Key", "x-redline-"}) {
    EXPECT_TRUE(is_dropped_request_header(name)) << name;
  }
}

TEST(HeaderFilter, OrdinaryRequestHeadersAreForwarded) {
  // Same lengths as listed names but other letters, prefixes and extensions of them, and
  // the headers providers need.
  for (std::string_view name : {"content-type",
                                "accept",
                                "user-agent",
                                "openai-organization",
                                "openai-beta",
                                "anthropic-version",
                                "anthropic-beta",
                                "x-request-id",
                                "x-stainless-lang",
                                "tf",
                                "hosts",
                                "hos",
                                "cookies",
                                "expects",
                                "trailers",
                                "x-api-keys",
                                "x-forwarded",
                                "x-real-ipv6",
                                "content-lengths",
                                "accept-language",
                                "x-forwarded-fox",
                                "proxy-authorizatio",
                                "x-redline",
                                "x-redlinez-key",
                                "idempotency-key",
                                ""}) {
    EXPECT_FALSE(is_dropped_request_header(name)) << name;
  }
}

TEST(HeaderFilter, EveryListedResponseHeaderIsDroppedInAnyCase) {
  for (auto name : kDroppedResponse) {
    EXPECT_TRUE(is_dropped_response_header(name)) << name;
    EXPECT_TRUE(is_dropped_response_header(upper(name))) << name;
    EXPECT_TRUE(is_dropped_response_header(mixed(name))) << name;
  }
}

TEST(HeaderFilter, OrdinaryResponseHeadersAreRelayed) {
  for (std::string_view name :
       {"content-type", "date", "openai-processing-ms", "x-ratelimit-remaining-requests",
        "retry-after", "anthropic-ratelimit-tokens-limit", "x-request-ids", "set-cookie2", "cookie",
        "host", "content-encoding", "tf", ""}) {
    EXPECT_FALSE(is_dropped_response_header(name)) << name;
  }
}

}  // namespace
}  // namespace redline::proxy
