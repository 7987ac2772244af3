// Tests for the OpenAI-shaped error body builder.
#include "common/error_body.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace redline {
namespace {

TEST(ErrorBody, HasOpenAIShape) {
  auto v = boost::json::parse(openai_error_body("bad \"thing\"", "invalid_request_error", "x"));
  const auto& e = v.at("error").as_object();
  EXPECT_EQ(e.at("message").as_string(), "bad \"thing\"");
  EXPECT_EQ(e.at("type").as_string(), "invalid_request_error");
  EXPECT_EQ(e.at("code").as_string(), "x");
}

TEST(ErrorBody, EmptyCodeIsNull) {
  auto v = boost::json::parse(openai_error_body("m", "api_error"));
  EXPECT_TRUE(v.at("error").at("code").is_null());
}

TEST(ErrorBody, StatusToType) {
  EXPECT_EQ(error_type_for_status(401), "authentication_error");
  EXPECT_EQ(error_type_for_status(431), "invalid_request_error");
  EXPECT_EQ(error_type_for_status(429), "rate_limit_error");
  EXPECT_EQ(error_type_for_status(502), "api_error");
}

}  // namespace
}  // namespace redline
