// End-to-end Responses API (src/proxy/responses_api.cpp): the native route to an OpenAI-type
// provider (chain sent with store:false, echo fields restored), the chat route to an
// Anthropic-type provider (JSON and streamed events), previous_response_id chains kept in
// Redis, GET / DELETE / input_items (ids, order, limit, after / before paging, bad parameters),
// tenant isolation, store:false, refused requests, a cut
// stream, and Redis down. Real Gateway in-process, the mock provider, a real redis-server.
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "mock/mock_server.h"
#include "support/gateway_harness.h"
#include "support/http_client.h"
#include "support/redis_server.h"

namespace redline {
namespace {

namespace json = boost::json;
using Gw = test::TestGateway;
using test::last_request;
using test::mock_total;

std::unique_ptr<mock::MockServer> start_mock(int stall_after = -1) {
  mock::MockOptions o;
  o.stall_after = stall_after;
  auto m = std::make_unique<mock::MockServer>(std::move(o));
  m->start();
  return m;
}

std::string yaml(const mock::MockServer& openai, const mock::MockServer& anthropic,
                 const test::RedisServer& redis, const std::string& extra = "") {
  return "listen: \"127.0.0.1:0\"\nthreads: 2\nadmin: {listen: \"127.0.0.1:0\"}\n"
         "logging: {access_log: false, level: warn}\n"
         "redis: {urls: [\"" +
         redis.url() +
         "\"], command_timeout: 300ms}\n"
         "providers:\n"
         "  - {name: openai, type: openai, base_url: \"" +
         test::mock_url(openai) +
         "/v1\", api_key: sk-o, retry: {max_attempts: 1}}\n"
         "  - {name: claude, type: anthropic, base_url: \"" +
         test::mock_url(anthropic) +
         "\", api_key: sk-a, retry: {max_attempts: 1}, timeouts: {idle: 500ms}}\n"
         "models:\n"
         "  claude-3-5-haiku-latest: claude\n"
         "keys:\n"
         "  - {key: sk-team-a, tenant: a}\n"
         "  - {key: sk-team-a2, tenant: a}\n"
         "  - {key: sk-team-b, tenant: b}\n" +
         extra;
}

const test::Headers kA{{"authorization", "Bearer sk-team-a"}};
const test::Headers kA2{{"authorization", "Bearer sk-team-a2"}};
const test::Headers kB{{"authorization", "Bearer sk-team-b"}};

std::string turn(std::string_view model, std::string_view input, std::string_view extra = "") {
  std::string body = R"({"model":")" + std::string(model) + R"(","input":")" + std::string(input) +
                     "\"";
  body += extra;
  body += "}";
  return body;
}

// The `data:` payloads of the events of an SSE body, with their `event:` names.
std::vector<std::pair<std::string, json::value>> events_of(const std::string& body) {
  std::vector<std::pair<std::string, json::value>> out;
  std::size_t pos = 0;
  while ((pos = body.find("event: ", pos)) != std::string::npos) {
    const auto name_end = body.find('\n', pos);
    std::string name = body.substr(pos + 7, name_end - pos - 7);
    const auto data = body.find("data: ", name_end);
    const auto data_end = body.find('\n', data);
    out.emplace_back(std::move(name), json::parse(body.substr(data + 6, data_end - data - 6)));
    pos = data_end;
  }
  return out;
}

std::string output_text(const json::value& response) {
  std::string text;
  for (const auto& item : response.at("output").as_array()) {
    if (item.at("type") != "message") continue;
    for (const auto& part : item.at("content").as_array()) {
      if (part.at("type") == "output_text") text += part.at("text").as_string();
    }
  }
  return text;
}

class ResponsesApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { redis_ = new test::RedisServer(); }
  static void TearDownTestSuite() {
    delete redis_;
    redis_ = nullptr;
  }
  void SetUp() override {
    if (!redis_->running()) redis_->restart();
    redis_->cli("FLUSHALL");
    openai_ = start_mock();
    anthropic_ = start_mock();
  }
  static test::RedisServer* redis_;
  std::unique_ptr<mock::MockServer> openai_, anthropic_;
};
test::RedisServer* ResponsesApiTest::redis_ = nullptr;

TEST_F(ResponsesApiTest, NativeRouteSendsTheChainWithStoreFalseAndRestoresTheEcho) {
  Gw gw(yaml(*openai_, *anthropic_, *redis_));
  auto r1 = test::http_request(gw.port(), "POST", "/v1/responses",
                               turn("gpt-4o-mini", "first turn", R"(,"instructions":"Be brief.")"),
                               kA);
  ASSERT_EQ(r1.status, 200) << r1.body;
  auto v1 = json::parse(r1.body);
  EXPECT_EQ(v1.at("store"), true);
  EXPECT_TRUE(v1.at("previous_response_id").is_null());
  const std::string id1(v1.at("id").as_string());
  auto sent1 = last_request(*openai_);
  EXPECT_EQ(sent1.at("target"), "/v1/responses");
  auto body1 = json::parse(sent1.at("body").as_string());
  EXPECT_EQ(body1.at("store"), false);
  EXPECT_EQ(body1.at("instructions"), "Be brief.");

  auto r2 = test::http_request(gw.port(), "POST", "/v1/responses",
                               turn("gpt-4o-mini", "second turn",
                                    R"(,"previous_response_id":")" + id1 + "\""),
                               kA);
  ASSERT_EQ(r2.status, 200) << r2.body;
  auto v2 = json::parse(r2.body);
  EXPECT_EQ(v2.at("previous_response_id"), id1.c_str());
  auto body2 = json::parse(last_request(*openai_).at("body").as_string()).as_object();
  EXPECT_FALSE(body2.contains("previous_response_id"));
  EXPECT_FALSE(body2.contains("instructions"));  // not inherited
  const auto& input = body2.at("input").as_array();
  ASSERT_EQ(input.size(), 3u) << json::serialize(input);  // user, assistant, user
  EXPECT_NE(json::serialize(input[0]).find("first turn"), std::string::npos);
  EXPECT_EQ(input[1].at("role"), "assistant");
  EXPECT_NE(json::serialize(input[1]).find(output_text(v1)), std::string::npos);
  EXPECT_FALSE(input[1].as_object().contains("id"));  // ids mean nothing with store:false
  EXPECT_NE(json::serialize(input[2]).find("second turn"), std::string::npos);

  // GET gives the stored object; input_items lists that turn's whole input, newest first.
  auto got = test::http_request(gw.port(), "GET", "/v1/responses/" + std::string(v2.at("id").as_string()), "", kA);
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(json::parse(got.body), v2);
  auto items = test::http_request(
      gw.port(), "GET", "/v1/responses/" + std::string(v2.at("id").as_string()) + "/input_items",
      "", kA);
  ASSERT_EQ(items.status, 200) << items.body;
  auto list = json::parse(items.body);
  EXPECT_EQ(list.at("object"), "list");
  ASSERT_EQ(list.at("data").as_array().size(), 3u);
  // A plain-string input is listed as OpenAI lists it: a completed user message with one
  // input_text part.
  const auto& newest = list.at("data").at(0).as_object();
  EXPECT_EQ(newest.at("type"), "message");
  EXPECT_EQ(newest.at("role"), "user");
  EXPECT_EQ(newest.at("status"), "completed");
  EXPECT_EQ(json::serialize(newest.at("content")),
            R"([{"type":"input_text","text":"second turn"}])");
}

TEST_F(ResponsesApiTest, ChatRouteForAnAnthropicModelJsonAndStream) {
  Gw gw(yaml(*openai_, *anthropic_, *redis_));
  auto r1 = test::http_request(
      gw.port(), "POST", "/v1/responses",
      turn("claude-3-5-haiku-latest", "hello claude", R"(,"instructions":"Be brief.")"), kA);
  ASSERT_EQ(r1.status, 200) << r1.body;
  auto v1 = json::parse(r1.body);
  EXPECT_EQ(v1.at("object"), "response");
  EXPECT_EQ(v1.at("status"), "completed");
  EXPECT_EQ(v1.at("model"), "claude-3-5-haiku-latest");
  EXPECT_GT(v1.at("usage").at("output_tokens").as_int64(), 0);
  const std::string id1(v1.at("id").as_string());
  EXPECT_EQ(id1.rfind("resp_", 0), 0u);
  auto sent = last_request(*anthropic_);
  EXPECT_EQ(sent.at("target"), "/v1/messages");
  auto body = json::parse(sent.at("body").as_string());
  EXPECT_EQ(body.at("system"), "Be brief.");
  EXPECT_EQ(mock_total(*openai_), 0);

  auto s = test::http_request(gw.port(), "POST", "/v1/responses",
                              turn("claude-3-5-haiku-latest", "again",
                                   R"(,"stream":true,"previous_response_id":")" + id1 + "\""),
                              kA);
  ASSERT_EQ(s.status, 200) << s.body;
  EXPECT_EQ(s.header("content-type").rfind("text/event-stream", 0), 0u);
  auto events = events_of(s.body);
  ASSERT_GE(events.size(), 5u) << s.body;
  EXPECT_EQ(events.front().first, "response.created");
  EXPECT_EQ(events.back().first, "response.completed");
  std::string deltas;
  for (std::size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].second.at("sequence_number").as_int64(), static_cast<int64_t>(i));
    if (events[i].first == "response.output_text.delta") {
      deltas += events[i].second.at("delta").as_string();
    }
  }
  const auto& final = events.back().second.at("response");
  EXPECT_EQ(output_text(final), deltas);
  EXPECT_EQ(final.at("previous_response_id"), id1.c_str());
  // The chain reached the provider as Messages: user, assistant (turn 1's answer), user.
  auto msgs = json::parse(last_request(*anthropic_).at("body").as_string()).at("messages");
  ASSERT_EQ(msgs.as_array().size(), 3u) << json::serialize(msgs);
  EXPECT_NE(json::serialize(msgs.at(1)).find(output_text(v1)), std::string::npos);
  // The streamed answer was stored before its end reached us.
  auto got = test::http_request(gw.port(), "GET",
                                "/v1/responses/" + std::string(final.at("id").as_string()), "", kA);
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(output_text(json::parse(got.body)), deltas);
}

TEST_F(ResponsesApiTest, StoredResponsesBelongToTheirTenant) {
  Gw gw(yaml(*openai_, *anthropic_, *redis_));
  auto r1 = test::http_request(gw.port(), "POST", "/v1/responses", turn("gpt-4o-mini", "secret"),
                               kA);
  ASSERT_EQ(r1.status, 200) << r1.body;
  const std::string id(json::parse(r1.body).at("id").as_string());
  const std::string path = "/v1/responses/" + id;
  // Another tenant: not found everywhere, nothing sent upstream.
  const auto calls = mock_total(*openai_);
  EXPECT_EQ(test::http_request(gw.port(), "GET", path, "", kB).status, 404);
  EXPECT_EQ(test::http_request(gw.port(), "GET", path + "/input_items", "", kB).status, 404);
  EXPECT_EQ(test::http_request(gw.port(), "DELETE", path, "", kB).status, 404);
  auto cont = test::http_request(gw.port(), "POST", "/v1/responses",
                                 turn("gpt-4o-mini", "x", R"(,"previous_response_id":")" + id + "\""),
                                 kB);
  EXPECT_EQ(cont.status, 404) << cont.body;
  EXPECT_EQ(json::parse(cont.body).at("error").at("param"), "previous_response_id");
  EXPECT_EQ(mock_total(*openai_), calls);
  // Another key of the same tenant shares the tenant's responses.
  EXPECT_EQ(test::http_request(gw.port(), "GET", path, "", kA2).status, 200);
  // No key at all: 401.
  EXPECT_EQ(test::http_request(gw.port(), "GET", path).status, 401);
  // The owner deletes it; then it is gone.
  auto del = test::http_request(gw.port(), "DELETE", path, "", kA);
  ASSERT_EQ(del.status, 200) << del.body;
  EXPECT_EQ(json::parse(del.body).at("deleted"), true);
  EXPECT_EQ(test::http_request(gw.port(), "GET", path, "", kA).status, 404);
  EXPECT_EQ(test::http_request(gw.port(), "DELETE", path, "", kA).status, 404);
}

// GET /v1/responses/{id}/input_items as OpenAI pages it: limit (default 20, 1..100), order
// (default desc), after / before item ids, first_id / last_id / has_more, every item with an
// id that stays the same from one read to the next.
TEST_F(ResponsesApiTest, InputItemsArePagedWithStableIds) {
  Gw gw(yaml(*openai_, *anthropic_, *redis_));
  // Turn 1: 20 message items; turn 2 three more on top of the chain (one with its own id, one
  // with that id again, one without): 20 + turn 1's answer + 3 = 24 input items.
  std::string input = "[";
  for (int i = 0; i < 20; ++i) {
    if (i > 0) input += ",";
    input += R"({"type":"message","role":"user","content":"m)" + std::to_string(i) + R"("})";
  }
  input += "]";
  auto r1 = test::http_request(gw.port(), "POST", "/v1/responses",
                               R"({"model":"claude-3-5-haiku-latest","input":)" + input + "}", kA);
  ASSERT_EQ(r1.status, 200) << r1.body;
  const std::string id1(json::parse(r1.body).at("id").as_string());
  auto r2 = test::http_request(
      gw.port(), "POST", "/v1/responses",
      R"({"model":"claude-3-5-haiku-latest","previous_response_id":")" + id1 +
          R"(","input":[{"type":"message","role":"user","id":"msg_client","content":"own id"},)"
          R"({"type":"message","role":"user","id":"msg_client","content":"same id"},)"
          R"({"type":"message","role":"user","content":"last"}]})",
      kA);
  ASSERT_EQ(r2.status, 200) << r2.body;
  const std::string path =
      "/v1/responses/" + std::string(json::parse(r2.body).at("id").as_string()) + "/input_items";
  auto get = [&](const std::string& query) {
    auto r = test::http_request(gw.port(), "GET", path + query, "", kA);
    EXPECT_EQ(r.status, 200) << query << ": " << r.body;
    return json::parse(r.body).as_object();
  };
  // A message's text: string content is listed as one part, input_text for the caller's
  // turns, output_text for an assistant's.
  auto text_of = [](const json::value& item) -> std::string {
    const auto& o = item.as_object();
    EXPECT_EQ(o.at("type"), "message");
    EXPECT_EQ(o.at("status"), "completed");
    const auto& parts = o.at("content").as_array();
    EXPECT_EQ(parts.size(), 1u);
    if (parts.empty()) return "";
    const bool assistant = o.at("role") == "assistant";
    EXPECT_EQ(parts.at(0).at("type"), assistant ? "output_text" : "input_text");
    return std::string(parts.at(0).at("text").as_string());
  };
  auto ids_of = [](const json::object& page) {
    std::vector<std::string> ids;
    for (const auto& item : page.at("data").as_array()) {
      ids.emplace_back(item.at("id").as_string());
    }
    return ids;
  };

  // Default: the newest 20, newest first, more to come.
  auto first = get("");
  EXPECT_EQ(first.at("object"), "list");
  const auto& data = first.at("data").as_array();
  ASSERT_EQ(data.size(), 20u);
  EXPECT_EQ(text_of(data.at(0)), "last");
  EXPECT_EQ(text_of(data.at(2)), "own id");
  EXPECT_EQ(data.at(3).at("role"), "assistant");  // turn 1's answer
  EXPECT_FALSE(text_of(data.at(3)).empty());
  EXPECT_EQ(text_of(data.at(4)), "m19");
  EXPECT_EQ(first.at("has_more"), true);
  EXPECT_EQ(first.at("first_id"), data.at(0).at("id"));
  EXPECT_EQ(first.at("last_id"), data.at(19).at("id"));
  EXPECT_EQ(json::serialize(get("")), json::serialize(first));  // the same ids every time

  // All of them, both orders: every item has an id, unique, its own one kept.
  auto all_desc = get("?limit=100");
  auto all_asc = get("?order=asc&limit=100");
  EXPECT_EQ(all_desc.at("has_more"), false);
  auto desc = ids_of(all_desc);
  auto asc = ids_of(all_asc);
  ASSERT_EQ(asc.size(), 24u);
  std::reverse(desc.begin(), desc.end());
  EXPECT_EQ(asc, desc);
  EXPECT_EQ(std::set<std::string>(asc.begin(), asc.end()).size(), 24u);
  for (const auto& item_id : asc) EXPECT_EQ(item_id.rfind("msg_", 0), 0u) << item_id;
  EXPECT_EQ(text_of(all_asc.at("data").at(0)), "m0");
  EXPECT_EQ(asc[21], "msg_client");  // an item's own id is kept
  EXPECT_NE(asc[22], "msg_client");  // a repeated id: the later item gets one of its own
  EXPECT_EQ(all_asc.at("first_id"), asc.front().c_str());
  EXPECT_EQ(all_asc.at("last_id"), asc.back().c_str());

  // Paging with after: 7 + 7 + 7 + 3, in order, has_more until the last page.
  for (const std::string order : {"asc", "desc"}) {
    std::vector<std::string> paged;
    std::string query = "?order=" + order + "&limit=7";
    for (int page = 0; page < 4; ++page) {
      auto p = get(query);
      auto ids = ids_of(p);
      ASSERT_EQ(ids.size(), page < 3 ? 7u : 3u) << order << " page " << page;
      EXPECT_EQ(p.at("has_more"), page < 3) << order << " page " << page;
      paged.insert(paged.end(), ids.begin(), ids.end());
      query = "?order=" + order + "&limit=7&after=" + ids.back();
    }
    if (order == "desc") std::reverse(paged.begin(), paged.end());
    EXPECT_EQ(paged, asc) << order;
    // After the last item: an empty page.
    auto end = get("?order=" + order + "&after=" + (order == "asc" ? asc.back() : asc.front()));
    EXPECT_TRUE(end.at("data").as_array().empty());
    EXPECT_TRUE(end.at("first_id").is_null());
    EXPECT_EQ(end.at("has_more"), false);
  }

  // before: the items right before it in the order asked for.
  auto before = get("?order=asc&limit=2&before=" + asc[10]);
  EXPECT_EQ(ids_of(before), (std::vector<std::string>{asc[8], asc[9]}));
  EXPECT_EQ(before.at("has_more"), true);
  before = get("?order=asc&limit=5&before=" + asc[2]);
  EXPECT_EQ(ids_of(before), (std::vector<std::string>{asc[0], asc[1]}));
  EXPECT_EQ(before.at("has_more"), false);
  before = get("?limit=2&before=" + asc[10]);  // desc: the newer ones
  EXPECT_EQ(ids_of(before), (std::vector<std::string>{asc[12], asc[11]}));
  auto between = get("?order=asc&after=" + asc[5] + "&before=" + asc[9]);
  EXPECT_EQ(ids_of(between), (std::vector<std::string>{asc[6], asc[7], asc[8]}));
  EXPECT_EQ(between.at("has_more"), false);
  EXPECT_EQ(ids_of(get("?order=asc&include%5B%5D=message.input_image.image_url&limit=1")),
            std::vector<std::string>{asc[0]});

  // Bad parameters: 400 invalid_request_error naming the parameter.
  const std::vector<std::pair<std::string, std::string>> refused{
      {"?limit=0", "limit"},          {"?limit=101", "limit"},
      {"?limit=2x", "limit"},         {"?limit=-1", "limit"},
      {"?order=up", "order"},         {"?after=msg_nope", "after"},
      {"?before=msg_nope", "before"}, {"?order=asc&after=" + id1, "after"}};
  for (const auto& [query, param] : refused) {
    auto r = test::http_request(gw.port(), "GET", path + query, "", kA);
    ASSERT_EQ(r.status, 400) << query << ": " << r.body;
    auto err = json::parse(r.body).at("error");
    EXPECT_EQ(err.at("type"), "invalid_request_error") << query;
    EXPECT_EQ(err.at("param"), param.c_str()) << query;
  }
  // Another tenant: still not found, whatever the parameters.
  EXPECT_EQ(test::http_request(gw.port(), "GET", path, "", kB).status, 404);
  EXPECT_EQ(test::http_request(gw.port(), "GET", path + "?limit=2&after=" + asc[0], "", kB).status,
            404);
}

TEST_F(ResponsesApiTest, StoreFalseIsNotKeptAndTheTtlIsSet) {
  Gw gw(yaml(*openai_, *anthropic_, *redis_, "responses: {ttl: 120}\n"));
  auto r = test::http_request(gw.port(), "POST", "/v1/responses",
                              turn("claude-3-5-haiku-latest", "forget me", R"(,"store":false)"), kA);
  ASSERT_EQ(r.status, 200) << r.body;
  auto v = json::parse(r.body);
  EXPECT_EQ(v.at("store"), false);
  EXPECT_EQ(test::http_request(gw.port(), "GET",
                               "/v1/responses/" + std::string(v.at("id").as_string()), "", kA)
                .status,
            404);
  EXPECT_EQ(redis_->cli("DBSIZE"), "0");
  auto kept = test::http_request(gw.port(), "POST", "/v1/responses",
                                 turn("claude-3-5-haiku-latest", "keep me"), kA);
  ASSERT_EQ(kept.status, 200) << kept.body;
  auto keys = redis_->cli("KEYS", "rs:*");
  ASSERT_EQ(keys.rfind("rs:{", 0), 0u) << keys;
  const int ttl = std::stoi(redis_->cli("TTL", keys));
  EXPECT_GT(ttl, 100);
  EXPECT_LE(ttl, 120);
}

TEST_F(ResponsesApiTest, RefusedRequestsNameTheFieldAndCallNoProvider) {
  Gw gw(yaml(*openai_, *anthropic_, *redis_));
  struct Case {
    std::string body;
    int status;
    std::string param;
  };
  const std::vector<Case> cases = {
      {turn("gpt-4o-mini", "x", R"(,"frobnicate":1)"), 400, "frobnicate"},
      {turn("gpt-4o-mini", "x", R"(,"tools":[{"type":"web_search"}])"), 400, "tools[0].type"},
      {R"({"model":"claude-3-5-haiku-latest","input":[{"type":"message","role":"user",)"
       R"("content":[{"type":"input_image","file_id":"file-1"}]}]})",
       400, "input[0].content[0]"},
      {turn("gpt-4o-mini", "x", R"(,"previous_response_id":"resp_unknown")"), 404,
       "previous_response_id"},
      {R"({"model":"gpt-4o-mini"})", 400, "input"},
  };
  for (const auto& c : cases) {
    auto r = test::http_request(gw.port(), "POST", "/v1/responses", c.body, kA);
    EXPECT_EQ(r.status, c.status) << c.body << " -> " << r.body;
    auto err = json::parse(r.body).at("error");
    EXPECT_EQ(err.at("param"), c.param.c_str()) << r.body;
    // The message names the field (or, for an unknown previous response, the id).
    const std::string named = c.status == 404 ? "resp_unknown" : c.param;
    EXPECT_NE(std::string(err.at("message").as_string()).find(named), std::string::npos)
        << r.body;
  }
  EXPECT_EQ(mock_total(*openai_) + mock_total(*anthropic_), 0);
  EXPECT_EQ(test::http_request(gw.port(), "POST", "/v1/responses/resp_x", "{}", kA).status, 405);
  EXPECT_EQ(test::http_request(gw.port(), "GET", "/v1/responses/resp_x/cancel", "", kA).status,
            404);
}

TEST_F(ResponsesApiTest, ACutStreamEndsWithResponseFailedAndIsNotStored) {
  auto stalling = start_mock(/*stall_after=*/3);
  Gw gw(yaml(*openai_, *stalling, *redis_));
  auto s = test::http_request(
      gw.port(), "POST", "/v1/responses",
      turn("claude-3-5-haiku-latest", "stall please", R"(,"stream":true)"), kA);
  ASSERT_EQ(s.status, 200) << s.body;
  auto events = events_of(s.body);
  ASSERT_FALSE(events.empty()) << s.body;
  EXPECT_EQ(events.back().first, "response.failed") << s.body;
  EXPECT_EQ(redis_->cli("KEYS", "rs:*"), "");
}

TEST_F(ResponsesApiTest, RedisDownAnswersWithoutStateAndRefusesContinuations) {
  Gw gw(yaml(*openai_, *anthropic_, *redis_));
  auto r1 = test::http_request(gw.port(), "POST", "/v1/responses", turn("gpt-4o-mini", "one"), kA);
  ASSERT_EQ(r1.status, 200) << r1.body;
  const std::string id(json::parse(r1.body).at("id").as_string());
  redis_->stop();
  // A new conversation is still answered (its record cannot be kept)...
  auto r2 = test::http_request(gw.port(), "POST", "/v1/responses",
                               turn("claude-3-5-haiku-latest", "two"), kA);
  EXPECT_EQ(r2.status, 200) << r2.body;
  // ... a continuation cannot be: 503 with retry-after, nothing sent upstream.
  const auto calls = mock_total(*openai_);
  auto r3 = test::http_request(gw.port(), "POST", "/v1/responses",
                               turn("gpt-4o-mini", "three", R"(,"previous_response_id":")" + id + "\""),
                               kA);
  EXPECT_EQ(r3.status, 503) << r3.body;
  EXPECT_EQ(r3.header("retry-after"), "1");
  EXPECT_EQ(mock_total(*openai_), calls);
  EXPECT_EQ(test::http_request(gw.port(), "GET", "/v1/responses/" + id, "", kA).status, 503);
  redis_->restart();
}

TEST_F(ResponsesApiTest, DisabledStorePassesThroughToOpenAITypeProviders) {
  Gw gw(yaml(*openai_, *anthropic_, *redis_, "responses: {enabled: false}\n"));
  const std::string body = turn("gpt-4o-mini", "as is", R"(,"previous_response_id":"resp_up")");
  auto r = test::http_request(gw.port(), "POST", "/v1/responses", body, kA);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(last_request(*openai_).at("body"), body.c_str());  // unchanged
  auto claude = test::http_request(
      gw.port(), "POST", "/v1/responses",
      turn("claude-3-5-haiku-latest", "x", R"(,"previous_response_id":"resp_up")"), kA);
  EXPECT_EQ(claude.status, 400) << claude.body;
  EXPECT_EQ(redis_->cli("KEYS", "rs:*"), "");
}

}  // namespace
}  // namespace redline
