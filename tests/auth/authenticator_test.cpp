// Unit tests for virtual-key authentication: header forms, hashed keys, tenants, models.
#include "auth/authenticator.h"

#include <gtest/gtest.h>

#include "config/config_loader.h"

namespace redline::auth {
namespace {

std::vector<config::KeyConfig> keys() {
  config::KeyConfig a;
  a.name = "a-key";
  a.sha256_hex = config::sha256_hex("sk-a");
  a.tenant = "tenant-a";
  config::KeyConfig b;
  b.sha256_hex = config::sha256_hex("sk-b");
  b.tenant = "tenant-b";
  b.models = {"gpt-4o"};
  return {a, b};
}

TEST(Authenticator, OpenGatewayIsTenantDefault) {
  std::vector<config::KeyConfig> none;
  Authenticator auth(none);
  auto r = auth.authenticate("", "");
  EXPECT_EQ(r.outcome, AuthOutcome::kOk);
  EXPECT_EQ(r.identity.tenant, "default");
  EXPECT_TRUE(r.identity.model_allowed("anything"));
}

TEST(Authenticator, BearerAndXApiKey) {
  auto k = keys();
  Authenticator auth(k);
  auto a = auth.authenticate("Bearer sk-a", "");
  ASSERT_EQ(a.outcome, AuthOutcome::kOk);
  EXPECT_EQ(a.identity.tenant, "tenant-a");
  EXPECT_EQ(a.identity.key_name, "a-key");
  EXPECT_EQ(a.identity.key_id, config::sha256_hex("sk-a").substr(0, 12));
  auto b = auth.authenticate("", "sk-b");
  ASSERT_EQ(b.outcome, AuthOutcome::kOk);
  EXPECT_EQ(b.identity.tenant, "tenant-b");
  // Authorization wins over x-api-key when both are present.
  EXPECT_EQ(auth.authenticate("Bearer sk-a", "sk-b").identity.tenant, "tenant-a");
  EXPECT_EQ(auth.authenticate("bearer   sk-a  ", "").outcome, AuthOutcome::kOk);
}

TEST(Authenticator, MissingAndInvalid) {
  auto k = keys();
  Authenticator auth(k);
  EXPECT_EQ(auth.authenticate("", "").outcome, AuthOutcome::kMissing);
  EXPECT_EQ(auth.authenticate("Bearer ", "").outcome, AuthOutcome::kMissing);
  EXPECT_EQ(auth.authenticate("Bearer sk-c", "").outcome, AuthOutcome::kInvalid);
  EXPECT_EQ(auth.authenticate("Basic c2stYQ==", "").outcome, AuthOutcome::kMissing);
  EXPECT_EQ(auth.authenticate("", "sk-a ").outcome, AuthOutcome::kOk);  // trimmed
  EXPECT_EQ(auth.authenticate("", "SK-A").outcome, AuthOutcome::kInvalid);
}

TEST(Authenticator, AllowedModels) {
  auto k = keys();
  Authenticator auth(k);
  auto b = auth.authenticate("Bearer sk-b", "");
  EXPECT_TRUE(b.identity.model_allowed("gpt-4o"));
  EXPECT_FALSE(b.identity.model_allowed("gpt-4o-mini"));
  EXPECT_TRUE(auth.authenticate("Bearer sk-a", "").identity.model_allowed("gpt-4o-mini"));
}

}  // namespace
}  // namespace redline::auth
