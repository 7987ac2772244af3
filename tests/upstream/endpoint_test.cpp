// Unit tests for provider endpoint parsing and failure classification helpers.
#include <gtest/gtest.h>

#include "upstream/http_client.h"

namespace redline::upstream {
namespace {

TEST(Endpoint, HttpsDefaultPortAndPath) {
  auto e = Endpoint::parse("https://api.openai.com/v1");
  EXPECT_TRUE(e.tls);
  EXPECT_EQ(e.host, "api.openai.com");
  EXPECT_EQ(e.port, 443);
  EXPECT_EQ(e.base_path, "/v1");
  EXPECT_EQ(e.host_header, "api.openai.com");
}

TEST(Endpoint, HttpExplicitPortRootAndTrailingSlash) {
  auto e = Endpoint::parse("http://127.0.0.1:8081/");
  EXPECT_FALSE(e.tls);
  EXPECT_EQ(e.port, 8081);
  EXPECT_EQ(e.base_path, "");
  EXPECT_EQ(e.host_header, "127.0.0.1:8081");
  auto d = Endpoint::parse("https://example.com:443/v1/");
  EXPECT_EQ(d.base_path, "/v1");
  EXPECT_EQ(d.host_header, "example.com");
}

TEST(Endpoint, Ipv6Literal) {
  auto e = Endpoint::parse("http://[::1]:9000/v1");
  EXPECT_EQ(e.host, "::1");
  EXPECT_EQ(e.port, 9000);
}

TEST(Endpoint, Rejects) {
  EXPECT_THROW(Endpoint::parse("ftp://x/v1"), std::invalid_argument);
  EXPECT_THROW(Endpoint::parse("not a url"), std::invalid_argument);
  EXPECT_THROW(Endpoint::parse("http:///v1"), std::invalid_argument);
}

TEST(Failure, NamesAndSendClassification) {
  EXPECT_EQ(failure_name(Failure::kFirstByteTimeout), "first_byte_timeout");
  EXPECT_TRUE(failure_before_send(Failure::kConnect));
  EXPECT_TRUE(failure_before_send(Failure::kTls));
  EXPECT_FALSE(failure_before_send(Failure::kFirstByteTimeout));
  EXPECT_FALSE(failure_before_send(Failure::kConnectionLost));
}

}  // namespace
}  // namespace redline::upstream
