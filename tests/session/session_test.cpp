// Conversation sessions (src/session/): merging a stored history into request bodies of both
// APIs (system prompt rules, other fields kept, bad bodies named, API mismatch), taking the
// assistant's reply out of answer bodies and recorded streams, and the store against real
// redis-server processes: round trips, trimming by count and bytes with the system prompt
// kept, the sliding TTL, tenant isolation, the per-tenant index (order, pruning), removal,
// 50 concurrent turns on one session, NOSCRIPT recovery, and a 3+3 cluster.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <set>
#include <thread>

#include "cache/sse.h"
#include "redis/async_test_util.h"
#include "session/session_store.h"
#include "support/redis_server.h"

namespace redline::session {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using redis::testing::run_for;
using redis::testing::run_until_done;
using Events = std::vector<std::string>;

json::value J(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  EXPECT_FALSE(ec) << "not JSON: " << text;
  return v;
}

Merged merged_ok(Api api, const History& h, std::string_view body) {
  auto r = merge_history(api, h, body);
  if (auto* e = std::get_if<MergeError>(&r)) {
    ADD_FAILURE() << "merge refused: " << e->code << ": " << e->message;
    return {};
  }
  return std::get<Merged>(std::move(r));
}

MergeError merge_error(Api api, const History& h, std::string_view body) {
  auto r = merge_history(api, h, body);
  if (!std::holds_alternative<MergeError>(r)) {
    ADD_FAILURE() << "merge accepted: " << std::get<Merged>(r).body;
    return {};
  }
  return std::get<MergeError>(std::move(r));
}

History chat_history(std::vector<std::string> messages) {
  History h;
  h.exists = true;
  h.api = Api::kChat;
  h.messages = std::move(messages);
  return h;
}

Events events_of(std::string_view wire) {
  cache::SseSplitter s;
  Events out;
  s.feed(wire, out);
  EXPECT_EQ(s.pending_bytes(), 0u);
  return out;
}

// ---------------------------------------------------------------------------------------------
// merge_history

TEST(MergeHistory, ChatPutsTheHistoryFirstAndKeepsEveryOtherField) {
  const History h = chat_history({R"({"role":"system","content":"Be brief."})",
                                  R"({"role":"user","content":"Hi"})",
                                  R"({"role":"assistant","content":"Hello!"})"});
  const std::string body =
      R"({"model":"gpt-4o","temperature":0.25,"stream":true,"n":1,)"
      R"("tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],)"
      R"("messages":[{"content":"And now?","role":"user","name":"ann"}],"metadata":{"a":"b"}})";
  const Merged m = merged_ok(Api::kChat, h, body);
  json::value expected = J(body);
  expected.as_object()["messages"] = J(
      R"([{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"},)"
      R"({"role":"assistant","content":"Hello!"},{"role":"user","content":"And now?","name":"ann"}])");
  EXPECT_EQ(J(m.body), expected) << m.body;
  // The new message is stored compactly with its role first.
  ASSERT_EQ(m.new_messages.size(), 1u);
  EXPECT_EQ(m.new_messages[0], R"({"role":"user","content":"And now?","name":"ann"})");
  EXPECT_EQ(m.new_system, "");
}

TEST(MergeHistory, ChatWithoutHistoryLeavesTheMessagesAlone) {
  const std::string body = R"({"model":"m","messages":[{"role":"user","content":"x"}]})";
  const Merged m = merged_ok(Api::kChat, History{}, body);
  EXPECT_EQ(J(m.body), J(body));
  EXPECT_EQ(m.new_messages, std::vector<std::string>{R"({"role":"user","content":"x"})"});
  // An empty object but for messages stays valid JSON too.
  const Merged only = merged_ok(Api::kChat, chat_history({R"({"role":"user","content":"a"})"}),
                                R"({"messages":[]})");
  EXPECT_EQ(J(only.body), J(R"({"messages":[{"role":"user","content":"a"}]})"));
  EXPECT_TRUE(only.new_messages.empty());
}

TEST(MergeHistory, ChatSystemSentThisTurnReplacesTheStoredOnesAtTheHead) {
  const History h = chat_history(
      {R"({"role":"system","content":"old"})", R"({"role":"user","content":"u1"})",
       R"({"content":"dev-old","role":"developer"})", R"({"role":"assistant","content":"a1"})"});
  const Merged m = merged_ok(
      Api::kChat, h,
      R"({"model":"m","messages":[{"role":"system","content":"new"},{"role":"user","content":"u2"}]})");
  EXPECT_EQ(J(m.body).at("messages"),
            J(R"([{"role":"system","content":"new"},{"role":"user","content":"u1"},)"
              R"({"role":"assistant","content":"a1"},{"role":"user","content":"u2"}])"));
  // The system message is part of the turn: append() replaces the stored ones with it.
  EXPECT_EQ(m.new_messages.size(), 2u);
  EXPECT_EQ(m.new_messages[0], R"({"role":"system","content":"new"})");
}

TEST(MergeHistory, ChatDeveloperMessageLaterInTheTurnStaysInPlace) {
  const History h =
      chat_history({R"({"role":"system","content":"old"})", R"({"role":"user","content":"u1"})"});
  const Merged m = merged_ok(
      Api::kChat, h,
      R"({"messages":[{"role":"user","content":"u2"},{"role":"developer","content":"d"}]})");
  EXPECT_EQ(J(m.body).at("messages"),
            J(R"([{"role":"user","content":"u1"},{"role":"user","content":"u2"},)"
              R"({"role":"developer","content":"d"}])"));
}

TEST(MergeHistory, ChatStoredSystemStaysWhenTheTurnHasNone) {
  const History h = chat_history({R"({"role":"developer","content":"rules"})"});
  const Merged m = merged_ok(Api::kChat, h, R"({"messages":[{"role":"user","content":"q"}]})");
  EXPECT_EQ(J(m.body).at("messages"),
            J(R"([{"role":"developer","content":"rules"},{"role":"user","content":"q"}])"));
}

TEST(MergeHistory, AnthropicStoredSystemIsSetWhenTheTurnSendsNone) {
  History h;
  h.exists = true;
  h.api = Api::kMessages;
  h.system = R"([{"type":"text","text":"You are terse.","cache_control":{"type":"ephemeral"}}])";
  h.messages = {R"({"role":"user","content":"Hi"})",
                R"({"role":"assistant","content":[{"type":"text","text":"Hello"}]})"};
  const std::string body =
      R"({"model":"claude-sonnet-4-20250514","max_tokens":1024,"stream":false,)"
      R"("messages":[{"role":"user","content":[{"type":"text","text":"Go on"}]}],"system":null})";
  const Merged m = merged_ok(Api::kMessages, h, body);
  const json::value got = J(m.body);
  EXPECT_EQ(got.at("system"), J(h.system));
  EXPECT_EQ(got.at("model"), "claude-sonnet-4-20250514");
  EXPECT_EQ(got.at("max_tokens"), 1024);
  EXPECT_EQ(got.at("stream"), false);
  EXPECT_EQ(got.at("messages"),
            J(R"([{"role":"user","content":"Hi"},)"
              R"({"role":"assistant","content":[{"type":"text","text":"Hello"}]},)"
              R"({"role":"user","content":[{"type":"text","text":"Go on"}]}])"));
  EXPECT_EQ(got.as_object().size(), 5u);
  EXPECT_EQ(m.new_system, "");
}

TEST(MergeHistory, AnthropicSystemSentThisTurnReplacesTheStoredOne) {
  History h;
  h.exists = true;
  h.api = Api::kMessages;
  h.system = R"("old")";
  h.messages = {R"({"role":"user","content":"Hi"})"};
  const Merged m = merged_ok(Api::kMessages, h,
                             R"({"system":"new","messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(J(m.body).at("system"), "new");
  EXPECT_EQ(m.new_system, R"("new")");
  EXPECT_EQ(J(m.body).at("messages").as_array().size(), 2u);
}

TEST(MergeHistory, BadBodiesNameTheField) {
  struct Case {
    std::string body;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"not json", "body: invalid JSON"},
      {"[1,2]", "body: expected a JSON object"},
      {R"({"model":"m"})", "messages: expected an array"},
      {R"({"messages":{"role":"user"}})", "messages: expected an array"},
      {R"({"messages":[{"role":"user","content":"a"},"hi"]})", "messages[1]: expected an object"},
  };
  for (const auto& c : cases) {
    for (Api api : {Api::kChat, Api::kMessages}) {
      const MergeError e = merge_error(api, History{}, c.body);
      EXPECT_EQ(e.code, "invalid_request_error") << c.body;
      EXPECT_EQ(e.message, c.message) << c.body;
    }
  }
}

TEST(MergeHistory, AStoredSessionOfTheOtherApiIsRefused) {
  History h = chat_history({R"({"role":"user","content":"Hi"})"});
  const MergeError e =
      merge_error(Api::kMessages, h, R"({"messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(e.code, "session_api_mismatch");
  EXPECT_NE(e.message.find("OpenAI chat completions"), std::string::npos) << e.message;
  h.api = Api::kMessages;
  EXPECT_EQ(merge_error(Api::kChat, h, R"({"messages":[]})").code, "session_api_mismatch");
  h.exists = false;  // no session yet: either API starts one
  EXPECT_TRUE(std::holds_alternative<Merged>(merge_history(Api::kChat, h, R"({"messages":[]})")));
}

TEST(SessionId, CharactersAndLength) {
  EXPECT_TRUE(valid_session_id("a", 128));
  EXPECT_TRUE(valid_session_id("conv-2024_05.11:abc", 128));
  EXPECT_TRUE(valid_session_id(std::string(128, 'x'), 128));
  EXPECT_FALSE(valid_session_id(std::string(129, 'x'), 128));
  EXPECT_FALSE(valid_session_id("", 128));
  EXPECT_FALSE(valid_session_id("a b", 128));
  EXPECT_FALSE(valid_session_id("a{b}", 128));
  EXPECT_FALSE(valid_session_id("a/b", 128));
  EXPECT_FALSE(valid_session_id(std::string("a\0b", 3), 128));
  EXPECT_FALSE(valid_session_id("caf\xc3\xa9", 128));
}

// ---------------------------------------------------------------------------------------------
// reply_message

constexpr std::string_view kChatBody =
    R"({"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG","object":"chat.completion","created":1741570283,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help \"you\"\ntoday?","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29},"service_tier":"default","system_fingerprint":"fp_eb9dce56a8"})";

constexpr std::string_view kChatToolBody =
    R"({"id":"chatcmpl-tool7","object":"chat.completion","created":1741569952,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":null,"tool_calls":[{"id":"call_DdmO9pD3xa9XTPNJ32zg2hcA","type":"function","function":{"name":"get_weather","arguments":"{\"location\": \"Paris, France\"}"}}],"annotations":[]},"logprobs":null,"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":82,"completion_tokens":46,"total_tokens":128}})";

constexpr std::string_view kMessageBody =
    R"({"id":"msg_01Aq9w938a90dw8q","type":"message","role":"assistant","model":"claude-sonnet-4-20250514","content":[{"type":"text","text":"I'll check the weather."},{"type":"tool_use","id":"toolu_01A09q90qw90lq917835lq9","name":"get_weather","input":{"location":"San Francisco, CA"}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":472,"output_tokens":89}})";

TEST(ReplyMessage, ChatBodyGivesTheAssistantMessageWithoutResponseOnlyFields) {
  const auto r = reply_message(Api::kChat, kChatBody);
  ASSERT_TRUE(r);
  EXPECT_EQ(J(*r), J(R"({"role":"assistant","content":"Hello! How can I help \"you\"\ntoday?"})"));
  EXPECT_TRUE(r->starts_with(R"({"role":"assistant",)")) << *r;
}

TEST(ReplyMessage, ChatToolCallsAreKeptWithNullContent) {
  const auto r = reply_message(Api::kChat, kChatToolBody);
  ASSERT_TRUE(r);
  EXPECT_EQ(
      J(*r),
      J(R"({"role":"assistant","content":null,"tool_calls":[{"id":"call_DdmO9pD3xa9XTPNJ32zg2hcA","type":"function","function":{"name":"get_weather","arguments":"{\"location\": \"Paris, France\"}"}}]})"));
}

TEST(ReplyMessage, ChatRefusalIsKept) {
  const auto r = reply_message(
      Api::kChat,
      R"({"object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":"I can't help with that."},"finish_reason":"stop"}]})");
  ASSERT_TRUE(r);
  EXPECT_EQ(J(*r), J(R"({"role":"assistant","content":"","refusal":"I can't help with that."})"));
}

TEST(ReplyMessage, AnthropicBodyGivesItsContentBlocks) {
  const auto r = reply_message(Api::kMessages, kMessageBody);
  ASSERT_TRUE(r);
  EXPECT_EQ(
      J(*r),
      J(R"({"role":"assistant","content":[{"type":"text","text":"I'll check the weather."},{"type":"tool_use","id":"toolu_01A09q90qw90lq917835lq9","name":"get_weather","input":{"location":"San Francisco, CA"}}]})"));
}

TEST(ReplyMessage, ErrorBodiesGiveNothing) {
  EXPECT_FALSE(reply_message(
      Api::kChat,
      R"({"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}})"));
  EXPECT_FALSE(reply_message(Api::kChat, R"({"object":"chat.completion","choices":[]})"));
  EXPECT_FALSE(reply_message(Api::kChat, "upstream timed out"));
  EXPECT_FALSE(reply_message(
      Api::kMessages,
      R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})"));
  EXPECT_FALSE(reply_message(Api::kMessages, R"({"type":"message","content":[]})"));
  // A body of the other API is not an answer of this one.
  EXPECT_FALSE(reply_message(Api::kMessages, kChatBody));
  EXPECT_FALSE(reply_message(Api::kChat, kMessageBody));
}

std::string chat_chunk(std::string_view choices) {
  return std::string(
             R"(data: {"id":"chatcmpl-s1","object":"chat.completion.chunk","created":1741570283,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_eb9dce56a8","choices":)") +
         std::string(choices) + "}";
}

Events chat_text_stream() {
  return {
      chat_chunk(
          R"([{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}])"),
      chat_chunk(
          R"([{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}])"),
      ": keep-alive",
      chat_chunk(
          R"([{"index":0,"delta":{"content":" there!"},"logprobs":null,"finish_reason":null}])"),
      chat_chunk(R"([{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}])"),
      "data: [DONE]",
  };
}

Events chat_tool_stream() {
  return {
      chat_chunk(
          R"([{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}],"refusal":null},"logprobs":null,"finish_reason":null}])"),
      chat_chunk(
          R"([{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"lo"}}]},"logprobs":null,"finish_reason":null}])"),
      chat_chunk(
          R"([{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"cation\": \"Paris\"}"}}]},"logprobs":null,"finish_reason":null}])"),
      chat_chunk(R"([{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}])"),
      "data: [DONE]",
  };
}

constexpr std::string_view kMessageStream =
    R"(event: message_start
data: {"type":"message_start","message":{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message","role":"assistant","model":"claude-opus-4-20250514","stop_sequence":null,"usage":{"input_tokens":472,"output_tokens":2},"content":[],"stop_reason":null}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Okay, let me check"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"location\": \"San"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":" Francisco, CA\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

event: message_stop
data: {"type":"message_stop"}

)";

TEST(ReplyMessage, ChatStreamsAreAssembledFirst) {
  const auto text = reply_message_from_events(Api::kChat, chat_text_stream());
  ASSERT_TRUE(text);
  EXPECT_EQ(J(*text), J(R"({"role":"assistant","content":"Hello there!"})"));
  const auto tools = reply_message_from_events(Api::kChat, chat_tool_stream());
  ASSERT_TRUE(tools);
  EXPECT_EQ(
      J(*tools),
      J(R"({"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"location\": \"Paris\"}"}}]})"));
}

TEST(ReplyMessage, AnthropicStreamsAreAssembledFirst) {
  const auto r = reply_message_from_events(Api::kMessages, events_of(kMessageStream));
  ASSERT_TRUE(r);
  EXPECT_EQ(
      J(*r),
      J(R"({"role":"assistant","content":[{"type":"text","text":"Okay, let me check"},{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{"location":"San Francisco, CA"}}]})"));
}

TEST(ReplyMessage, CutOrFailedStreamsGiveNothing) {
  Events chat = chat_text_stream();
  chat.pop_back();  // no [DONE]
  EXPECT_FALSE(reply_message_from_events(Api::kChat, chat));
  Events chat_error = {
      R"(data: {"error":{"message":"The server had an error","type":"server_error"}})",
      "data: [DONE]"};
  EXPECT_FALSE(reply_message_from_events(Api::kChat, chat_error));
  Events msg = events_of(kMessageStream);
  msg.pop_back();  // no message_stop
  EXPECT_FALSE(reply_message_from_events(Api::kMessages, msg));
  Events overloaded = events_of(kMessageStream);
  overloaded.resize(4);
  overloaded.push_back(
      "event: error\ndata: "
      "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}");
  EXPECT_FALSE(reply_message_from_events(Api::kMessages, overloaded));
  EXPECT_FALSE(reply_message_from_events(Api::kMessages, Events{}));
}

// ---------------------------------------------------------------------------------------------
// SessionStore against a real redis-server

config::SessionConfig session_config(int ttl_s = 60, size_t max_messages = 200,
                                     size_t max_bytes = 1 << 20) {
  config::SessionConfig c;
  c.ttl = config::Seconds(ttl_s);
  c.max_messages = max_messages;
  c.max_bytes = max_bytes;
  return c;
}

std::string user(std::string_view text) {
  return R"({"role":"user","content":")" + std::string(text) + R"("})";
}
std::string assistant(std::string_view text) {
  return R"({"role":"assistant","content":")" + std::string(text) + R"("})";
}
std::string system_msg(std::string_view text) {
  return R"({"role":"system","content":")" + std::string(text) + R"("})";
}

Merged turn_of(std::vector<std::string> messages, std::string new_system = "") {
  Merged m;
  m.new_messages = std::move(messages);
  m.new_system = std::move(new_system);
  return m;
}

uint64_t total_bytes(const std::vector<std::string>& messages) {
  uint64_t n = 0;
  for (const auto& m : messages) n += m.size();
  return n;
}

// Shared by the standalone and cluster fixtures.
class StoreTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (client_) {
      client_->stop();
      run_for(io_, std::chrono::milliseconds(5));
    }
  }
  History load(const SessionStore& s, std::string_view tenant, std::string_view id) {
    auto r = run_until_done(io_, s.load(*client_, tenant, id));
    EXPECT_TRUE(r.ok()) << r.error().to_string();
    return r.ok() ? std::move(r).value() : History{};
  }
  redis::Result<uint64_t> append(const SessionStore& s, std::string_view tenant,
                                 std::string_view id, Api api, const Merged& turn,
                                 std::string_view reply) {
    return run_until_done(io_, s.append(*client_, tenant, id, api, turn, reply));
  }
  uint64_t append_ok(const SessionStore& s, std::string_view tenant, std::string_view id,
                     const Merged& turn, std::string_view reply, Api api = Api::kChat) {
    auto r = append(s, tenant, id, api, turn, reply);
    EXPECT_TRUE(r.ok()) << r.error().to_string();
    return r.ok() ? *r : 0;
  }
  std::vector<std::string> list(const SessionStore& s, std::string_view tenant, size_t limit) {
    auto r = run_until_done(io_, s.list(*client_, tenant, limit));
    EXPECT_TRUE(r.ok()) << r.error().to_string();
    return r.ok() ? std::move(r).value() : std::vector<std::string>{};
  }
  bool remove(const SessionStore& s, std::string_view tenant, std::string_view id) {
    auto r = run_until_done(io_, s.remove(*client_, tenant, id));
    EXPECT_TRUE(r.ok()) << r.error().to_string();
    return r.ok() && *r;
  }

  // One turn of concurrent_turns(); arguments by value, the frame outlives the caller's loop.
  static asio::awaitable<void> one_turn(const SessionStore& store, redis::Client& client,
                                        std::string tenant, std::string id, int i, int& done,
                                        int& failed) {
    const std::string u = user("u" + std::to_string(i));
    const std::vector<std::string> messages = {u};
    const Merged m = turn_of(messages);
    const std::string reply = assistant("a" + std::to_string(i));
    auto r = co_await store.append(client, tenant, id, Api::kChat, m, reply);
    if (!r) ++failed;
    ++done;
  }

  // 50 turns appended at once: every turn lands whole, none is lost.
  void concurrent_turns(const SessionStore& store, std::string_view tenant, std::string_view id) {
    constexpr int kTurns = 50;
    int done = 0;
    int failed = 0;
    for (int i = 0; i < kTurns; ++i) {
      asio::co_spawn(
          io_, one_turn(store, *client_, std::string(tenant), std::string(id), i, done, failed),
          asio::detached);
    }
    while (done < kTurns) io_.run_one();
    EXPECT_EQ(failed, 0);
    const History h = load(store, tenant, id);
    ASSERT_EQ(h.messages.size(), 2u * kTurns);
    std::set<std::string> seen;
    for (size_t j = 0; j < h.messages.size(); j += 2) {
      const json::value u = J(h.messages[j]);
      const json::value a = J(h.messages[j + 1]);
      ASSERT_EQ(u.at("role"), "user") << j;
      ASSERT_EQ(a.at("role"), "assistant") << j;
      const std::string n(std::string_view(u.at("content").as_string()).substr(1));
      EXPECT_EQ(std::string_view(a.at("content").as_string()), "a" + n) << "turn split at " << j;
      seen.insert(n);
    }
    EXPECT_EQ(seen.size(), static_cast<size_t>(kTurns));
    EXPECT_EQ(h.bytes, total_bytes(h.messages));
  }

  asio::io_context io_;
  std::unique_ptr<redis::Client> client_;
};

class Store : public StoreTest {
 protected:
  static void SetUpTestSuite() { server_ = new test::RedisServer(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    server_->cli("FLUSHALL");
    redis::ClientOptions o;
    o.urls = {server_->url()};
    client_ = redis::make_client(io_.get_executor(), o).value();
    ASSERT_TRUE(run_until_done(io_, client_->connect()).ok());
  }
  static test::RedisServer* server_;
};

test::RedisServer* Store::server_ = nullptr;

TEST_F(Store, AnUnknownSessionLoadsAsNone) {
  SessionStore store(session_config());
  const History h = load(store, "acme", "nope");
  EXPECT_FALSE(h.exists);
  EXPECT_TRUE(h.messages.empty());
  EXPECT_EQ(h.ttl_ms, -1);
}

TEST_F(Store, ChatTurnsRoundTripThroughMergeAppendAndLoad) {
  SessionStore store(session_config());
  // Turn 1.
  History h = load(store, "acme", "conv-1");
  const Merged t1 = merged_ok(
      Api::kChat, h,
      R"({"model":"gpt-4o","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]})");
  const auto r1 = reply_message(Api::kChat, kChatBody);
  ASSERT_TRUE(r1);
  EXPECT_EQ(append_ok(store, "acme", "conv-1", t1, *r1), 3u);
  // Turn 2 sends only its new message.
  h = load(store, "acme", "conv-1");
  ASSERT_TRUE(h.exists);
  EXPECT_EQ(h.api, Api::kChat);
  const std::vector<std::string> expected1 = {system_msg("Be brief."), user("Hi"), *r1};
  EXPECT_EQ(h.messages, expected1);
  EXPECT_EQ(h.bytes, total_bytes(expected1));
  EXPECT_GT(h.ttl_ms, 55'000);
  EXPECT_LE(h.ttl_ms, 60'000);
  EXPECT_EQ(h.system, "");
  const Merged t2 = merged_ok(
      Api::kChat, h, R"({"model":"gpt-4o","messages":[{"role":"user","content":"More"}]})");
  EXPECT_EQ(J(t2.body).at("messages").as_array().size(), 4u);
  EXPECT_EQ(append_ok(store, "acme", "conv-1", t2, assistant("Sure")), 5u);
  h = load(store, "acme", "conv-1");
  ASSERT_EQ(h.messages.size(), 5u);
  EXPECT_EQ(h.messages[3], user("More"));
  EXPECT_EQ(h.messages[4], assistant("Sure"));
  // Redis holds the documented layout.
  const std::string k = store.key("acme", "conv-1");
  EXPECT_EQ(server_->cli("TYPE", k), "hash");
  EXPECT_EQ(server_->cli("TYPE", k + ":m"), "list");
  EXPECT_EQ(server_->cli("HGET", k, "api"), "chat");
  EXPECT_EQ(server_->cli("HGET", k, "id"), "conv-1");
  EXPECT_EQ(server_->cli("HGET", k, "t"), "acme");
  EXPECT_EQ(server_->cli("HGET", k, "ns"), "1");
  EXPECT_EQ(server_->cli("LINDEX", k + ":m", "0"), "s" + system_msg("Be brief."));
}

TEST_F(Store, ChatSystemMessagesAreReplacedByATurnThatSendsOne) {
  SessionStore store(session_config());
  append_ok(store, "acme", "s", turn_of({system_msg("v1"), user("u1")}), assistant("a1"));
  append_ok(store, "acme", "s", turn_of({user("u2")}), assistant("a2"));
  const std::string developer = R"({"role":"developer","content":"v2"})";
  EXPECT_EQ(append_ok(store, "acme", "s", turn_of({developer, user("u3")}), assistant("a3")), 7u);
  History h = load(store, "acme", "s");
  std::vector<std::string> expected = {developer,       user("u1"), assistant("a1"), user("u2"),
                                       assistant("a2"), user("u3"), assistant("a3")};
  EXPECT_EQ(h.messages, expected);
  EXPECT_EQ(h.bytes, total_bytes(expected));
  // The merged body of the next turn agrees with what is stored.
  const Merged next = merged_ok(
      Api::kChat, h,
      R"({"messages":[{"role":"system","content":"v3"},{"role":"user","content":"u4"}]})");
  append_ok(store, "acme", "s", next, assistant("a4"));
  h = load(store, "acme", "s");
  ASSERT_EQ(h.messages.size(), 9u);
  EXPECT_EQ(h.messages[0], system_msg("v3"));
  EXPECT_EQ(J(next.body).at("messages").as_array().size(), 8u);  // history minus v2, + 2
  EXPECT_EQ(server_->cli("HGET", store.key("acme", "s"), "ns"), "1");
}

TEST_F(Store, AnthropicSystemIsStoredAndReplaced) {
  SessionStore store(session_config());
  const Merged t1 = merged_ok(
      Api::kMessages, History{},
      R"({"model":"claude","max_tokens":10,"system":"Terse.","messages":[{"role":"user","content":"Hi"}]})");
  const auto reply = reply_message(Api::kMessages, kMessageBody);
  ASSERT_TRUE(reply);
  EXPECT_EQ(append_ok(store, "acme", "a", t1, *reply, Api::kMessages), 2u);
  History h = load(store, "acme", "a");
  EXPECT_EQ(h.api, Api::kMessages);
  EXPECT_EQ(h.system, R"("Terse.")");
  EXPECT_EQ(h.messages, (std::vector<std::string>{user("Hi"), *reply}));
  // A turn without system keeps it; one with system replaces it.
  const Merged t2 = merged_ok(Api::kMessages, h,
                              R"({"max_tokens":10,"messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(J(t2.body).at("system"), "Terse.");
  append_ok(store, "acme", "a", t2, assistant("y"), Api::kMessages);
  EXPECT_EQ(load(store, "acme", "a").system, R"("Terse.")");
  const Merged t3 = merged_ok(Api::kMessages, load(store, "acme", "a"),
                              R"({"system":[{"type":"text","text":"Wordy."}],"messages":[]})");
  append_ok(store, "acme", "a", t3, assistant("z"), Api::kMessages);
  h = load(store, "acme", "a");
  EXPECT_EQ(J(h.system), J(R"([{"type":"text","text":"Wordy."}])"));
  EXPECT_EQ(h.messages.size(), 5u);
}

TEST_F(Store, AppendThroughTheOtherApiIsRefused) {
  SessionStore store(session_config());
  append_ok(store, "acme", "x", turn_of({user("Hi")}), assistant("Hello"));
  auto r = append(store, "acme", "x", Api::kMessages, turn_of({user("Again")}), "");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(is_api_mismatch(r.error())) << r.error().to_string();
  EXPECT_FALSE(is_api_mismatch(redis::Error{redis::ErrorKind::kServerError, "ERR other"}));
  // Nothing was stored by the refused turn.
  EXPECT_EQ(load(store, "acme", "x").messages.size(), 2u);
}

TEST_F(Store, TrimsTheOldestByCountAndKeepsTheSystemPrompt) {
  SessionStore store(session_config(60, 5));
  EXPECT_EQ(append_ok(store, "acme", "t", turn_of({system_msg("S"), user("u1")}), assistant("a1")),
            3u);
  EXPECT_EQ(append_ok(store, "acme", "t", turn_of({user("u2")}), assistant("a2")), 5u);
  EXPECT_EQ(append_ok(store, "acme", "t", turn_of({user("u3")}), assistant("a3")), 5u);
  const std::vector<std::string> expected = {system_msg("S"), user("u2"), assistant("a2"),
                                             user("u3"), assistant("a3")};
  History h = load(store, "acme", "t");
  EXPECT_EQ(h.messages, expected);
  EXPECT_EQ(h.bytes, total_bytes(expected));
  // A system message in the middle survives too, in its place.
  const std::string dev = R"({"role":"developer","content":"D"})";
  EXPECT_EQ(append_ok(store, "acme", "t", turn_of({user("u4"), dev}), assistant("a4")), 5u);
  h = load(store, "acme", "t");
  EXPECT_EQ(h.messages, (std::vector<std::string>{user("u3"), assistant("a3"), user("u4"), dev,
                                                  assistant("a4")}));
  // Trimming three (u3, a3, u4) walks past the developer message and puts it back.
  EXPECT_EQ(append_ok(store, "acme", "t", turn_of({user("u5"), user("u5b")}), assistant("a5")), 5u);
  h = load(store, "acme", "t");
  EXPECT_EQ(h.messages, (std::vector<std::string>{dev, assistant("a4"), user("u5"), user("u5b"),
                                                  assistant("a5")}));
  EXPECT_EQ(h.bytes, total_bytes(h.messages));
}

TEST_F(Store, TrimsTheOldestByBytesAndKeepsTheSystemPrompt) {
  const std::string pad(100, 'x');
  const std::string sys = system_msg("S");
  const size_t message_size = user("0" + pad).size();
  ASSERT_EQ(assistant("0" + pad).size(), message_size + 5);  // "assistant" vs "user"
  // Room for the system prompt and two turns (4 messages), not three.
  const size_t max_bytes = sys.size() + 4 * message_size + 10 + message_size / 2;
  SessionStore store(session_config(60, 200, max_bytes));
  append_ok(store, "acme", "b", turn_of({sys, user("1" + pad)}), assistant("1" + pad));
  append_ok(store, "acme", "b", turn_of({user("2" + pad)}), assistant("2" + pad));
  History h = load(store, "acme", "b");
  EXPECT_EQ(h.messages.size(), 5u);
  EXPECT_EQ(append_ok(store, "acme", "b", turn_of({user("3" + pad)}), assistant("3" + pad)), 5u);
  h = load(store, "acme", "b");
  const std::vector<std::string> expected = {sys, user("2" + pad), assistant("2" + pad),
                                             user("3" + pad), assistant("3" + pad)};
  EXPECT_EQ(h.messages, expected);
  EXPECT_EQ(h.bytes, total_bytes(expected));
  EXPECT_LE(h.bytes, max_bytes);
  // A reply bigger than the whole budget leaves only the system prompt.
  const std::string huge = assistant(std::string(max_bytes, 'y'));
  EXPECT_EQ(append_ok(store, "acme", "b", turn_of({user("4")}), huge), 1u);
  h = load(store, "acme", "b");
  EXPECT_EQ(h.messages, std::vector<std::string>{sys});
  EXPECT_EQ(h.bytes, sys.size());
}

TEST_F(Store, TheTtlSlidesWithEveryTurnAndTheSessionExpires) {
  SessionStore store(session_config(1));
  append_ok(store, "acme", "ttl", turn_of({user("u1")}), assistant("a1"));
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  append_ok(store, "acme", "ttl", turn_of({user("u2")}), assistant("a2"));
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  // 1.2 s after the first turn: alive because the second renewed it.
  History h = load(store, "acme", "ttl");
  ASSERT_TRUE(h.exists);
  EXPECT_EQ(h.messages.size(), 4u);
  EXPECT_GT(h.ttl_ms, 0);
  EXPECT_LE(h.ttl_ms, 450);
  const std::string k = store.key("acme", "ttl");
  const int64_t list_ttl = std::stoll(server_->cli("PTTL", k + ":m"));
  EXPECT_GT(list_ttl, 0);
  EXPECT_LE(list_ttl, 450);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  h = load(store, "acme", "ttl");
  EXPECT_FALSE(h.exists);
  EXPECT_EQ(server_->cli("EXISTS", k, k + ":m"), "0");
}

TEST_F(Store, TenantsDoNotShareSessions) {
  SessionStore store(session_config());
  append_ok(store, "acme", "same", turn_of({user("acme says")}), assistant("ok"));
  append_ok(store, "globex", "same", turn_of({user("globex says")}), assistant("ok"));
  EXPECT_EQ(load(store, "acme", "same").messages[0], user("acme says"));
  EXPECT_EQ(load(store, "globex", "same").messages[0], user("globex says"));
  EXPECT_NE(store.key("acme", "same"), store.key("globex", "same"));
  // Separator bytes in tenant or id cannot make two sessions collide.
  EXPECT_NE(store.key("a:b", "c"), store.key("a", "b:c"));
  EXPECT_NE(store.key("a}", "{b"), store.key("a", "}{b"));
  const std::string k = store.key("t{x}", "id}");
  EXPECT_EQ(k.size(), std::string("s:{}").size() + 32);
  EXPECT_EQ(k.find('{', 3), std::string::npos);
  EXPECT_TRUE(remove(store, "acme", "same"));
  EXPECT_FALSE(load(store, "acme", "same").exists);
  EXPECT_TRUE(load(store, "globex", "same").exists);
  EXPECT_EQ(list(store, "acme", 10), std::vector<std::string>{});
  EXPECT_EQ(list(store, "globex", 10), std::vector<std::string>{"same"});
}

TEST_F(Store, ListIsMostRecentFirstAndLimited) {
  SessionStore store(session_config());
  for (const char* id : {"s1", "s2", "s3"}) {
    append_ok(store, "acme", id, turn_of({user(id)}), assistant("ok"));
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
  }
  append_ok(store, "acme", "s1", turn_of({user("again")}), assistant("ok"));
  EXPECT_EQ(list(store, "acme", 10), (std::vector<std::string>{"s1", "s3", "s2"}));
  EXPECT_EQ(list(store, "acme", 2), (std::vector<std::string>{"s1", "s3"}));
  EXPECT_TRUE(list(store, "acme", 0).empty());
  EXPECT_EQ(list(store, "acme", SIZE_MAX).size(), 3u);
  EXPECT_TRUE(list(store, "other", 10).empty());
  // A tenant name with odd bytes gets its own escaped index key.
  append_ok(store, "we ird:{t}", "s9", turn_of({user("x")}), assistant("ok"));
  EXPECT_EQ(list(store, "we ird:{t}", 10), std::vector<std::string>{"s9"});
  EXPECT_EQ(server_->cli("ZCARD", "s:i:we%20ird%3A%7Bt%7D"), "1");
  EXPECT_TRUE(remove(store, "acme", "s3"));
  EXPECT_FALSE(remove(store, "acme", "s3"));
  EXPECT_EQ(list(store, "acme", 10), (std::vector<std::string>{"s1", "s2"}));
}

TEST_F(Store, ListPrunesEntriesOlderThanTheTtl) {
  SessionStore writer(session_config(60));
  SessionStore reader(session_config(1));
  append_ok(writer, "acme", "old", turn_of({user("x")}), assistant("ok"));
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  append_ok(writer, "acme", "new", turn_of({user("x")}), assistant("ok"));
  EXPECT_EQ(server_->cli("ZCARD", "s:i:acme"), "2");  // the writer's TTL keeps both
  EXPECT_EQ(list(reader, "acme", 10), std::vector<std::string>{"new"});
  EXPECT_EQ(server_->cli("ZCARD", "s:i:acme"), "1");  // pruned on read
  const int64_t index_ttl = std::stoll(server_->cli("PTTL", "s:i:acme"));
  EXPECT_GT(index_ttl, 55'000);  // the index lives as long as its newest session
}

TEST_F(Store, ConcurrentTurnsLandWhole) {
  SessionStore store(session_config(60, 1000));
  concurrent_turns(store, "acme", "busy");
  EXPECT_EQ(server_->cli("LLEN", store.key("acme", "busy") + ":m"), "100");
}

TEST_F(Store, AppendRecoversFromAFlushedScriptCache) {
  SessionStore store(session_config());
  append_ok(store, "acme", "f", turn_of({user("1")}), assistant("1"));
  EXPECT_EQ(server_->cli("SCRIPT", "FLUSH"), "OK");
  EXPECT_EQ(append_ok(store, "acme", "f", turn_of({user("2")}), assistant("2")), 4u);
  EXPECT_EQ(server_->cli("SCRIPT", "FLUSH"), "OK");
  EXPECT_EQ(load(store, "acme", "f").messages.size(), 4u);
}

TEST_F(Store, RedisErrorsAreReported) {
  SessionStore store(session_config());
  server_->cli("SET", "s:i:acme", "not a zset");
  // The session itself is stored; only the index update fails.
  EXPECT_EQ(append_ok(store, "acme", "e", turn_of({user("1")}), assistant("1")), 2u);
  auto r = run_until_done(io_, store.list(*client_, "acme", 10));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.kind(), redis::ErrorKind::kServerError);
  EXPECT_TRUE(r.error().starts_with("WRONGTYPE")) << r.error().to_string();
  // A message that is not a JSON object is refused before Redis.
  auto bad = append(store, "acme", "e", Api::kChat, turn_of({"[1]"}), "");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.kind(), redis::ErrorKind::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------------
// A 3-master cluster with one replica each.

class ClusterStore : public StoreTest {
 protected:
  static void SetUpTestSuite() { cluster_ = new test::RedisCluster(); }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override {
    redis::ClientOptions o;
    o.mode = redis::ClientOptions::Mode::kCluster;
    o.urls = cluster_->urls();
    client_ = redis::make_client(io_.get_executor(), o).value();
    ASSERT_TRUE(run_until_done(io_, client_->connect()).ok());
    tenant_ = "tenant-" + std::to_string(++run_);
  }
  static test::RedisCluster* cluster_;
  static int run_;
  std::string tenant_;
};

test::RedisCluster* ClusterStore::cluster_ = nullptr;
int ClusterStore::run_ = 0;

TEST_F(ClusterStore, SessionsSpreadOverSlotsRoundTripListAndRemove) {
  SessionStore store(session_config(60, 5));
  constexpr int kSessions = 24;
  std::set<size_t> masters;
  for (int i = 0; i < kSessions; ++i) {
    const std::string id = "conv-" + std::to_string(i);
    append_ok(store, tenant_, id, turn_of({system_msg("S"), user(id)}), assistant("a"));
    append_ok(store, tenant_, id, turn_of({user("b")}), assistant("c"));
    EXPECT_EQ(append_ok(store, tenant_, id, turn_of({user("d")}), assistant("e")), 5u);
    const std::string slot = cluster_->node(0).cli("CLUSTER", "KEYSLOT", store.key(tenant_, id));
    const std::string list_slot =
        cluster_->node(0).cli("CLUSTER", "KEYSLOT", store.key(tenant_, id) + ":m");
    EXPECT_EQ(slot, list_slot);
    const auto master = cluster_->master_for_slot(std::stoi(slot));
    ASSERT_TRUE(master);
    masters.insert(*master);
  }
  EXPECT_EQ(masters.size(), 3u);  // 24 random slots miss a master with probability ~1e-4
  for (int i = 0; i < kSessions; ++i) {
    const std::string id = "conv-" + std::to_string(i);
    const History h = load(store, tenant_, id);
    EXPECT_EQ(h.messages, (std::vector<std::string>{system_msg("S"), user("b"), assistant("c"),
                                                    user("d"), assistant("e")}))
        << id;
    EXPECT_EQ(h.bytes, total_bytes(h.messages));
  }
  const auto ids = list(store, tenant_, 100);
  ASSERT_EQ(ids.size(), static_cast<size_t>(kSessions));
  EXPECT_EQ(ids.front(), "conv-" + std::to_string(kSessions - 1));
  for (int i = 0; i < kSessions; i += 2) {
    EXPECT_TRUE(remove(store, tenant_, "conv-" + std::to_string(i)));
  }
  EXPECT_EQ(list(store, tenant_, 100).size(), static_cast<size_t>(kSessions / 2));
  EXPECT_FALSE(load(store, tenant_, "conv-0").exists);
  EXPECT_TRUE(load(store, tenant_, "conv-1").exists);
}

TEST_F(ClusterStore, ConcurrentTurnsLandWhole) {
  SessionStore store(session_config(60, 1000));
  concurrent_turns(store, tenant_, "busy");
}

TEST_F(ClusterStore, ApiMismatchIsReportedThroughTheCluster) {
  SessionStore store(session_config());
  append_ok(store, tenant_, "m", turn_of({user("Hi")}), assistant("x"), Api::kMessages);
  auto r = append(store, tenant_, "m", Api::kChat, turn_of({user("Hi")}), "");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(is_api_mismatch(r.error())) << r.error().to_string();
}

}  // namespace
}  // namespace redline::session
