// Unit tests for the mock's answer builders: determinism, token counts, request parsing,
// SSE framing and provider-shaped errors. No sockets here; mock_server_test.cpp has those.
#include "mock/answers.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>
#include <vector>

namespace redline::mock {
namespace {

namespace json = boost::json;

std::string text_of(const Answer& a) {
  std::string out;
  a.append_text(out);
  return out;
}

TEST(Answer, SameBodySameWordsDifferentBodyDifferentWords) {
  Answer a(R"({"model":"m","messages":[{"role":"user","content":"hi"}]})", 12);
  Answer b(R"({"model":"m","messages":[{"role":"user","content":"hi"}]})", 12);
  Answer c(R"({"model":"m","messages":[{"role":"user","content":"ho"}]})", 12);
  EXPECT_EQ(text_of(a), text_of(b));
  EXPECT_NE(text_of(a), text_of(c));
  std::string text = text_of(a);
  EXPECT_EQ(std::count(text.begin(), text.end(), ' '), 11);
  EXPECT_EQ(text_of(Answer("x", 0)), "");
}

TEST(Answer, PromptTokensAreBytesOverFourAtLeastOne) {
  EXPECT_EQ(prompt_tokens(""), 1u);
  EXPECT_EQ(prompt_tokens("abc"), 1u);
  EXPECT_EQ(prompt_tokens(std::string(40, 'x')), 10u);
  EXPECT_EQ(prompt_tokens(std::string(43, 'x')), 10u);
}

TEST(Answer, JsonStringEscapes) {
  std::string out;
  append_json_string(out, "a\"b\\c\nd\x01");
  EXPECT_EQ(out, R"("a\"b\\c\nd\u0001")");
  EXPECT_EQ(json::parse(out).as_string(), "a\"b\\c\nd\x01");
}

TEST(ParseModelRequest, ReadsTheFieldsThatShapeTheAnswer) {
  ModelRequest r;
  EXPECT_EQ(parse_model_request(Endpoint::kChat,
                                R"({"model":"gpt-4o","stream":true,
                                    "stream_options":{"include_usage":true},"max_tokens":5})",
                                r),
            "");
  EXPECT_EQ(r.model, "gpt-4o");
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(r.max_tokens, 5);
}

TEST(ParseModelRequest, RejectsWhatAProviderRejects) {
  ModelRequest r;
  EXPECT_NE(parse_model_request(Endpoint::kChat, "{not json", r), "");
  EXPECT_NE(parse_model_request(Endpoint::kChat, "[1,2]", r), "");
  EXPECT_NE(parse_model_request(Endpoint::kChat, R"({"messages":[]})", r), "");
  EXPECT_NE(parse_model_request(Endpoint::kEmbeddings, R"({"model":"e"})", r), "");
  EXPECT_NE(
      parse_model_request(Endpoint::kEmbeddings, R"({"model":"e","input":"a","dimensions":0})", r),
      "");
  EXPECT_NE(parse_model_request(Endpoint::kEmbeddings, R"({"model":"e","input":[{"x":1}]})", r),
            "");
}

TEST(ParseModelRequest, EmbeddingInputsHashByTheirOwnText) {
  ModelRequest single, batch, tokens;
  ASSERT_EQ(parse_model_request(Endpoint::kEmbeddings, R"({"model":"e","input":"b"})", single), "");
  ASSERT_EQ(parse_model_request(Endpoint::kEmbeddings, R"({"model":"e","input":["a","b"]})", batch),
            "");
  ASSERT_EQ(parse_model_request(Endpoint::kEmbeddings, R"({"model":"e","input":[1,2,3]})", tokens),
            "");
  ASSERT_EQ(batch.input_hashes.size(), 2u);
  EXPECT_EQ(batch.input_hashes[1], single.input_hashes[0]);
  EXPECT_EQ(tokens.input_hashes.size(), 1u);
}

TEST(SseSink, FramesEachEventAsOneChunk) {
  std::string out;
  std::vector<std::size_t> ends;
  SseSink sink(out, ends, true);
  sink.emit({}, "[DONE]");
  sink.emit("ping", "{}");
  EXPECT_EQ(out, "e\r\ndata: [DONE]\n\n\r\n16\r\nevent: ping\ndata: {}\n\n\r\n");
  ASSERT_EQ(ends.size(), 2u);
  EXPECT_EQ(ends[0], 19u);
  EXPECT_EQ(ends[1], out.size());

  std::string raw;
  std::vector<std::size_t> raw_ends;
  SseSink unchunked(raw, raw_ends, false);
  unchunked.emit("x", "1");
  EXPECT_EQ(raw, "event: x\ndata: 1\n\n");
}

TEST(ErrorBody, FollowsEachProvidersShape) {
  auto openai = json::parse(error_body(Api::kOpenAI, 400, "bad \"thing\""));
  EXPECT_EQ(openai.at("error").at("message").as_string(), "bad \"thing\"");
  EXPECT_EQ(openai.at("error").at("type").as_string(), "invalid_request_error");
  EXPECT_TRUE(openai.at("error").at("code").is_null());

  auto anthropic = json::parse(error_body(Api::kAnthropic, 529, "busy"));
  EXPECT_EQ(anthropic.at("type").as_string(), "error");
  EXPECT_EQ(anthropic.at("error").at("type").as_string(), "overloaded_error");
  EXPECT_EQ(anthropic.at("error").at("message").as_string(), "busy");
  EXPECT_EQ(json::parse(error_body(Api::kOpenAI, 429, "x")).at("error").at("type").as_string(),
            "rate_limit_error");
}

TEST(Bodies, AreValidJsonWithTheModelEchoed) {
  Answer answer("body", 3);
  std::string model;
  append_json_string(model, "gpt-\"4o\"");
  ReplyMeta meta;
  meta.unique = "u1";
  meta.model_json = model;
  meta.created = 1;
  meta.input_tokens = 7;
  std::string chat, text, message;
  chat_completion_body(meta, answer, chat);
  text_completion_body(meta, answer, text);
  message_body(meta, answer, message);
  for (const std::string* body : {&chat, &text, &message}) {
    auto v = json::parse(*body);
    EXPECT_EQ(v.at("model").as_string(), "gpt-\"4o\"") << *body;
  }
  EXPECT_EQ(json::parse(chat).at("usage").at("total_tokens").as_int64(), 10);
  EXPECT_EQ(json::parse(message).at("usage").at("output_tokens").as_int64(), 3);
  auto models = json::parse(models_body());
  EXPECT_GE(models.at("data").as_array().size(), 4u);
  EXPECT_EQ(model_body("nope"), "");
}

TEST(ToolCalls, ChatAndMessagesCallTheToolTheUserNames) {
  ModelRequest chat;
  ASSERT_EQ(parse_model_request(
                Endpoint::kChat,
                R"({"model":"m","messages":[{"role":"user","content":"use get_weather now"}],)"
                R"("tools":[{"type":"function","function":{"name":"get_time"}},)"
                R"({"type":"function","function":{"name":"get_weather"}}]})",
                chat),
            "");
  EXPECT_EQ(chat.tool_call, "get_weather");
  ModelRequest result;  // the tool's result comes back: text again
  ASSERT_EQ(parse_model_request(
                Endpoint::kChat,
                R"({"model":"m","messages":[{"role":"user","content":"use get_weather"},)"
                R"({"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function",)"
                R"("function":{"name":"get_weather","arguments":"{}"}}]},)"
                R"({"role":"tool","tool_call_id":"c","content":"sunny"}],)"
                R"("tools":[{"type":"function","function":{"name":"get_weather"}}]})",
                result),
            "");
  EXPECT_EQ(result.tool_call, "");
  ModelRequest message;
  ASSERT_EQ(parse_model_request(
                Endpoint::kMessages,
                R"({"model":"m","max_tokens":9,"messages":[{"role":"user","content":)"
                R"([{"type":"text","text":"call get_weather"}]}],)"
                R"("tools":[{"name":"get_weather","input_schema":{"type":"object"}}]})",
                message),
            "");
  EXPECT_EQ(message.tool_call, "get_weather");
  ModelRequest tool_result;
  ASSERT_EQ(parse_model_request(
                Endpoint::kMessages,
                R"({"model":"m","max_tokens":9,"messages":[{"role":"user","content":)"
                R"([{"type":"tool_result","tool_use_id":"t","content":"get_weather said"}]}],)"
                R"("tools":[{"name":"get_weather","input_schema":{"type":"object"}}]})",
                tool_result),
            "");
  EXPECT_EQ(tool_result.tool_call, "");
  ModelRequest no_tools;
  ASSERT_EQ(parse_model_request(Endpoint::kChat,
                                R"({"model":"m","messages":[{"role":"user","content":"get_weather"}]})",
                                no_tools),
            "");
  EXPECT_EQ(no_tools.tool_call, "");
}

TEST(ToolCalls, BodiesAndStreamsCarryTheCall) {
  ReplyMeta meta;
  meta.unique = "u2";
  meta.model_json = "\"m\"";
  meta.input_tokens = 5;
  std::string chat, message;
  chat_tool_call_body(meta, "get_weather", chat);
  message_tool_use_body(meta, "get_weather", message);
  auto c = json::parse(chat);
  const auto& choice = c.at("choices").at(0);
  EXPECT_EQ(choice.at("finish_reason").as_string(), "tool_calls");
  EXPECT_TRUE(choice.at("message").at("content").is_null());
  const auto& call = choice.at("message").at("tool_calls").at(0);
  EXPECT_EQ(call.at("id").as_string(), "call_u2");
  EXPECT_EQ(call.at("function").at("name").as_string(), "get_weather");
  EXPECT_EQ(call.at("function").at("arguments").as_string(), kToolArguments);
  auto m = json::parse(message);
  EXPECT_EQ(m.at("stop_reason").as_string(), "tool_use");
  EXPECT_EQ(m.at("content").at(0).at("type").as_string(), "tool_use");
  EXPECT_EQ(m.at("content").at(0).at("name").as_string(), "get_weather");
  EXPECT_EQ(m.at("content").at(0).at("input").at("q").as_string(), "mock");

  // Streams: every data line is JSON (or [DONE]); the arguments arrive in a delta.
  for (bool anthropic : {false, true}) {
    std::string out;
    std::vector<std::size_t> ends;
    SseSink sink(out, ends, false);
    if (anthropic) {
      message_tool_use_events(meta, "get_weather", sink);
    } else {
      chat_tool_call_events(meta, "get_weather", true, sink);
    }
    std::string args;
    std::string finish;
    std::size_t pos = 0;
    while ((pos = out.find("data: ", pos)) != std::string::npos) {
      const auto end = out.find('\n', pos);
      const std::string data = out.substr(pos + 6, end - pos - 6);
      pos = end;
      if (data == "[DONE]") continue;
      auto v = json::parse(data);
      if (anthropic) {
        if (v.at("type") == "content_block_delta") {
          args += v.at("delta").at("partial_json").as_string();
        }
        if (v.at("type") == "message_delta") {
          finish = v.at("delta").at("stop_reason").as_string();
        }
      } else if (!v.at("choices").as_array().empty()) {
        const auto& ch = v.at("choices").at(0);
        if (const auto* tc = ch.at("delta").as_object().if_contains("tool_calls")) {
          args += tc->at(0).at("function").at("arguments").as_string();
        }
        if (ch.at("finish_reason").is_string()) finish = ch.at("finish_reason").as_string();
      }
    }
    EXPECT_EQ(args, kToolArguments) << out;
    EXPECT_EQ(finish, anthropic ? "tool_use" : "tool_calls") << out;
  }
}

}  // namespace
}  // namespace redline::mock
