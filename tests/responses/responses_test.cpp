// Responses API module (src/responses/): request parsing with every refused field named, chain
// expansion over three turns, the pass-through body, the Chat Completions mapping, chat answers
// as Response objects, the chunk-stream converter (event sequence, sequence numbers, equality
// with the converted assembled answer), output_items_of / response_from_events, and the store
// against a real redis-server: round trip, tenant isolation, TTL, trimming, removal.
#include "responses/responses.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <thread>

#include "cache/replay.h"
#include "cache/sse.h"
#include "redis/async_test_util.h"
#include "responses/store.h"
#include "support/redis_server.h"

namespace redline::responses {
namespace {

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

ResponsesRequest parsed_ok(std::string_view body) {
  auto r = parse_request(body);
  if (auto* e = std::get_if<RequestError>(&r)) {
    ADD_FAILURE() << "refused: " << e->message;
    return {};
  }
  return std::get<ResponsesRequest>(std::move(r));
}

RequestError refused(std::string_view body) {
  auto r = parse_request(body);
  if (!std::holds_alternative<RequestError>(r)) {
    ADD_FAILURE() << "accepted: " << body;
    return {};
  }
  return std::get<RequestError>(std::move(r));
}

std::string chat_ok(const ResponsesRequest& r, std::string_view model = "claude-x") {
  auto c = to_chat_request(r, model);
  if (auto* e = std::get_if<RequestError>(&c)) {
    ADD_FAILURE() << "not convertible: " << e->message;
    return "{}";
  }
  return std::get<std::string>(std::move(c));
}

std::string type_of(const std::string& event) {
  return std::string(J(cache::event_data(event)).at("type").as_string());
}

// ---------------------------------------------------------------------------------------------
// parse_request

TEST(ParseRequest, ReadsEveryField) {
  const ResponsesRequest r = parsed_ok(R"({
    "model":"gpt-4o","input":[{"role":"user","content":[{"type":"input_text","text":"Hi"},
      {"type":"input_image","image_url":"https://x/y.png","detail":"low"}]}],
    "instructions":"Be brief.","tools":[{"type":"function","name":"get_weather",
      "description":"Weather","parameters":{"type":"object","properties":{}},"strict":true}],
    "tool_choice":"required","temperature":0.25,"top_p":0.5,"max_output_tokens":64,
    "stream":true,"previous_response_id":"resp_abc","store":true,"metadata":{"k":"v"},
    "user":"u1","parallel_tool_calls":false,"include":[],"truncation":"auto",
    "text":{"format":{"type":"text"}}})");
  EXPECT_EQ(r.model, "gpt-4o");
  ASSERT_EQ(r.input.size(), 1u);
  EXPECT_EQ(r.input[0].at("type"), "message");  // a typeless message gets its type
  EXPECT_EQ(r.instructions, "Be brief.");
  ASSERT_EQ(r.tools.size(), 1u);
  EXPECT_EQ(r.tools[0].at("name"), "get_weather");
  EXPECT_EQ(r.tool_choice, "required");
  EXPECT_EQ(r.temperature, 0.25);
  EXPECT_EQ(r.top_p, 0.5);
  EXPECT_EQ(r.max_output_tokens, 64);
  EXPECT_TRUE(r.stream);
  EXPECT_EQ(r.previous_response_id, "resp_abc");
  EXPECT_EQ(r.store, true);
  EXPECT_EQ(r.metadata, J(R"({"k":"v"})"));
  EXPECT_EQ(r.user, "u1");
  EXPECT_EQ(r.parallel_tool_calls, false);
  EXPECT_FALSE(r.expanded);
}

TEST(ParseRequest, AStringInputIsOneUserMessage) {
  const ResponsesRequest r = parsed_ok(R"({"model":"m","input":"Hello"})");
  ASSERT_EQ(r.input.size(), 1u);
  EXPECT_EQ(r.input[0], J(R"({"type":"message","role":"user","content":"Hello"})"));
  EXPECT_FALSE(r.stream);
  EXPECT_FALSE(r.previous_response_id);
}

TEST(ParseRequest, EachRefusedFieldIsNamed) {
  struct Case {
    const char* body;
    const char* param;
  };
  const Case cases[] = {
      {R"({"model":"m","input":"x","frobnicate":1})", "frobnicate"},
      {R"({"model":"m","input":"x","conversation":"conv_1"})", "conversation"},
      {R"({"model":"m","input":"x","prompt":{"id":"p"}})", "prompt"},
      {R"({"input":"x"})", "model"},
      {R"({"model":"m"})", "input"},
      {R"({"model":"m","input":7})", "input"},
      {R"({"model":"m","input":"x","tools":[{"type":"function","name":"f"},{"type":"web_search"}]})",
       "tools[1].type"},
      {R"({"model":"m","input":"x","tools":[{"type":"file_search","vector_store_ids":[]}]})",
       "tools[0].type"},
      {R"({"model":"m","input":"x","tools":[{"type":"computer_use_preview"}]})", "tools[0].type"},
      {R"({"model":"m","input":"x","tools":[{"type":"function"}]})", "tools[0].name"},
      {R"({"model":"m","input":[{"role":"user","content":"a"},{"type":"item_reference","id":"x"}]})",
       "input[1].type"},
      {R"({"model":"m","input":[{"role":"user","content":[{"type":"input_audio"}]}]})",
       "input[0].content[0].type"},
      {R"({"model":"m","input":[{"role":"tool","content":"a"}]})", "input[0].role"},
      {R"({"model":"m","input":[{"type":"function_call","call_id":"c","name":"f"}]})",
       "input[0].arguments"},
      {R"({"model":"m","input":[{"type":"function_call_output","output":"x"}]})",
       "input[0].call_id"},
      {R"({"model":"m","input":"x","tool_choice":{"type":"file_search"}})", "tool_choice.type"},
      {R"({"model":"m","input":"x","tool_choice":"sometimes"})", "tool_choice"},
      {R"({"model":"m","input":"x","background":true})", "background"},
      {R"({"model":"m","input":"x","temperature":"hot"})", "temperature"},
      {R"({"model":"m","input":"x","max_output_tokens":0})", "max_output_tokens"},
      {R"({"model":"m","input":"x","stream":"yes"})", "stream"},
      {R"({"model":"m","input":"x","text":{"format":{"type":"xml"}}})", "text.format.type"},
  };
  for (const auto& c : cases) {
    const RequestError e = refused(c.body);
    EXPECT_EQ(e.param, c.param) << c.body;
    EXPECT_NE(e.message.find(c.param), std::string::npos) << e.message;
  }
  EXPECT_EQ(refused("{not json").param, "body");
  EXPECT_EQ(refused("[1]").param, "body");
}

// ---------------------------------------------------------------------------------------------
// expand, to_openai_body

constexpr std::string_view kChatText =
    R"({"id":"chatcmpl-1","object":"chat.completion","created":1700000001,"model":"claude-x",)"
    R"("choices":[{"index":0,"message":{"role":"assistant","content":"Hello there","refusal":null},)"
    R"("logprobs":null,"finish_reason":"stop"}],)"
    R"("usage":{"prompt_tokens":12,"completion_tokens":2,"total_tokens":14,)"
    R"("prompt_tokens_details":{"cached_tokens":4}}})";

constexpr std::string_view kChatTool =
    R"({"id":"chatcmpl-2","object":"chat.completion","created":1700000002,"model":"claude-x",)"
    R"("choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[)"
    R"({"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}},)"
    R"({"id":"call_2","type":"function","function":{"name":"get_time","arguments":"{}"}}]},)"
    R"("logprobs":null,"finish_reason":"tool_calls"}],)"
    R"("usage":{"prompt_tokens":30,"completion_tokens":9,"total_tokens":39}})";

std::string output_of(std::string_view chat, std::string_view id, const ResponsesRequest& r) {
  auto resp = from_chat_response(chat, id, r);
  EXPECT_TRUE(resp);
  auto items = output_items_of(resp.value_or("{}"));
  EXPECT_TRUE(items);
  return items.value_or("[]");
}

// The chain a next turn gets: this turn's (expanded) input, then its output.
std::string chain_after(const ResponsesRequest& expanded, const std::string& output) {
  json::array chain = expanded.input;
  const json::value items = J(output);
  for (const auto& v : items.as_array()) chain.push_back(v);
  return json::serialize(chain);
}

TEST(Expand, ThreeTurnsCarryTheWholeChainAndNotTheInstructions) {
  // Turn 1.
  const ResponsesRequest t1 =
      parsed_ok(R"({"model":"m","instructions":"Be brief.","input":"Hi","tools":[)"
                R"({"type":"function","name":"get_weather","parameters":{"type":"object"}}]})");
  const std::string out1 = output_of(kChatText, "resp_one", t1);
  // Turn 2: a new question; the model calls two tools.
  const ResponsesRequest t2 = parsed_ok(
      R"({"model":"m","previous_response_id":"resp_one","input":"Weather in Oslo?","temperature":0.5})");
  auto e2 = expand(t2, chain_after(t1, out1));
  ASSERT_TRUE(e2);
  ASSERT_EQ(e2->input.size(), 3u);
  EXPECT_EQ(e2->input[0], J(R"({"type":"message","role":"user","content":"Hi"})"));
  EXPECT_EQ(e2->input[1].at("role"), "assistant");
  EXPECT_EQ(e2->input[1].at("content").at(0).at("text"), "Hello there");
  EXPECT_FALSE(e2->input[1].as_object().contains("id"));  // gateway ids are not sent on
  EXPECT_EQ(e2->input[2].at("content"), "Weather in Oslo?");
  EXPECT_FALSE(e2->instructions);  // not inherited
  EXPECT_TRUE(e2->expanded);
  EXPECT_EQ(e2->previous_response_id, "resp_one");  // kept for the echo
  const std::string out2 = output_of(kChatTool, "resp_two", *e2);
  // Turn 3: the tool results.
  const ResponsesRequest t3 = parsed_ok(
      R"({"model":"m","previous_response_id":"resp_two","instructions":"Answer in French.","input":[)"
      R"({"type":"function_call_output","call_id":"call_1","output":"12C"},)"
      R"({"type":"function_call_output","call_id":"call_2","output":"noon"}]})");
  auto e3 = expand(t3, chain_after(*e2, out2));
  ASSERT_TRUE(e3);
  std::vector<std::string> kinds;
  for (const auto& item : e3->input) kinds.emplace_back(item.at("type").as_string());
  const std::vector<std::string> expected = {"message",
                                             "message",
                                             "message",
                                             "function_call",
                                             "function_call",
                                             "function_call_output",
                                             "function_call_output"};
  EXPECT_EQ(kinds, expected);
  EXPECT_EQ(e3->input[3].at("call_id"), "call_1");
  EXPECT_EQ(e3->input[4].at("name"), "get_time");
  EXPECT_EQ(e3->instructions, "Answer in French.");
  // Pass-through body: the full list, no previous_response_id, store false, the rest kept.
  const json::value body = J(to_openai_body(*e3));
  EXPECT_EQ(body.at("input").as_array(), e3->input);
  EXPECT_FALSE(body.as_object().contains("previous_response_id"));
  EXPECT_EQ(body.at("store"), false);
  EXPECT_EQ(body.at("instructions"), "Answer in French.");
  EXPECT_EQ(body.at("model"), "m");
}

TEST(Expand, DropsReasoningWithoutEncryptedContentAndRefusesABadChain) {
  const ResponsesRequest r = parsed_ok(R"({"model":"m","input":"next"})");
  auto e = expand(r, R"([{"type":"reasoning","id":"rs_1","summary":[]},)"
                     R"({"type":"reasoning","id":"rs_2","summary":[],"encrypted_content":"abc"},)"
                     R"({"type":"message","role":"user","content":"a"}])");
  ASSERT_TRUE(e);
  ASSERT_EQ(e->input.size(), 3u);
  EXPECT_EQ(e->input[0].at("encrypted_content"), "abc");
  EXPECT_FALSE(expand(r, "{}"));
  EXPECT_FALSE(expand(r, "[1]"));
  EXPECT_FALSE(expand(r, "not json"));
}

TEST(ToOpenAIBody, KeepsEveryOtherFieldAsSent) {
  const ResponsesRequest r = parsed_ok(
      R"({"model":"gpt-4o","input":"x","store":true,"include":["reasoning.encrypted_content"],)"
      R"("reasoning":{"effort":"low"},"metadata":{"a":"b"},"previous_response_id":"resp_1"})");
  const json::value body = J(to_openai_body(expand(r, json::array())));
  EXPECT_EQ(body, J(R"({"model":"gpt-4o","input":[{"type":"message","role":"user","content":"x"}],)"
                    R"("store":false,"include":["reasoning.encrypted_content"],)"
                    R"("reasoning":{"effort":"low"},"metadata":{"a":"b"}})"));
}

// ---------------------------------------------------------------------------------------------
// to_chat_request

TEST(ToChatRequest, MapsInstructionsItemsToolsAndSettings) {
  const ResponsesRequest r = parsed_ok(R"({"model":"alias","instructions":"Be brief.",
    "input":[
      {"role":"developer","content":"Use metric units."},
      {"role":"user","content":[{"type":"input_text","text":"Weather?"},
                                {"type":"input_image","image_url":"https://x/a.png","detail":"high"}]},
      {"type":"message","role":"assistant","id":"msg_1","status":"completed",
       "content":[{"type":"output_text","text":"Let me check.","annotations":[]}]},
      {"type":"function_call","id":"fc_1","call_id":"call_1","name":"get_weather","arguments":"{\"city\":\"Oslo\"}"},
      {"type":"function_call","call_id":"call_2","name":"get_time","arguments":"{}"},
      {"type":"function_call_output","call_id":"call_1","output":"12C"},
      {"type":"function_call_output","call_id":"call_2","output":[{"type":"input_text","text":"noon"}]},
      {"type":"function_call","call_id":"call_3","name":"get_time","arguments":"{}"},
      {"type":"function_call_output","call_id":"call_3","output":"1pm"},
      {"type":"reasoning","id":"rs_1","summary":[]}],
    "tools":[{"type":"function","name":"get_weather","description":"Weather",
              "parameters":{"type":"object","properties":{"city":{"type":"string"}}},"strict":true},
             {"type":"function","name":"get_time","parameters":null}],
    "tool_choice":{"type":"function","name":"get_weather"},"parallel_tool_calls":true,
    "temperature":0.5,"top_p":0.9,"max_output_tokens":256,"user":"u1","stream":true,
    "text":{"format":{"type":"json_schema","name":"w","schema":{"type":"object"},"strict":true}}})");
  const json::value chat = J(chat_ok(r, "claude-3-5-haiku-latest"));
  EXPECT_EQ(chat.at("model"), "claude-3-5-haiku-latest");
  EXPECT_EQ(chat.at("messages"), J(R"([
    {"role":"system","content":"Be brief."},
    {"role":"system","content":"Use metric units."},
    {"role":"user","content":[{"type":"text","text":"Weather?"},
                              {"type":"image_url","image_url":{"url":"https://x/a.png","detail":"high"}}]},
    {"role":"assistant","content":"Let me check.","tool_calls":[
      {"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}},
      {"id":"call_2","type":"function","function":{"name":"get_time","arguments":"{}"}}]},
    {"role":"tool","tool_call_id":"call_1","content":"12C"},
    {"role":"tool","tool_call_id":"call_2","content":"noon"},
    {"role":"assistant","content":null,"tool_calls":[
      {"id":"call_3","type":"function","function":{"name":"get_time","arguments":"{}"}}]},
    {"role":"tool","tool_call_id":"call_3","content":"1pm"}])"));
  EXPECT_EQ(chat.at("tools"), J(R"([
    {"type":"function","function":{"name":"get_weather","description":"Weather",
      "parameters":{"type":"object","properties":{"city":{"type":"string"}}},"strict":true}},
    {"type":"function","function":{"name":"get_time"}}])"));
  EXPECT_EQ(chat.at("tool_choice"), J(R"({"type":"function","function":{"name":"get_weather"}})"));
  EXPECT_EQ(chat.at("parallel_tool_calls"), true);
  EXPECT_EQ(chat.at("temperature"), 0.5);
  EXPECT_EQ(chat.at("top_p"), 0.9);
  EXPECT_EQ(chat.at("max_tokens"), 256);
  EXPECT_EQ(chat.at("user"), "u1");
  EXPECT_EQ(chat.at("stream"), true);
  EXPECT_EQ(chat.at("stream_options"), J(R"({"include_usage":true})"));
  EXPECT_EQ(
      chat.at("response_format"),
      J(R"({"type":"json_schema","json_schema":{"name":"w","schema":{"type":"object"},"strict":true}})"));
  // Nothing of the Responses-only fields leaks into the chat body.
  for (const char* k :
       {"input", "instructions", "max_output_tokens", "text", "store", "previous_response_id"}) {
    EXPECT_FALSE(chat.as_object().contains(k)) << k;
  }
}

TEST(ToChatRequest, StringInputAndNoStreamingGiveAPlainBody) {
  const json::value chat =
      J(chat_ok(parsed_ok(R"({"model":"m","input":"Hi","tool_choice":"auto"})")));
  EXPECT_EQ(
      chat,
      J(R"({"model":"claude-x","messages":[{"role":"user","content":"Hi"}],"tool_choice":"auto"})"));
}

TEST(ToChatRequest, RefusesWhatChatCannotCarryNamingTheItem) {
  const ResponsesRequest r =
      parsed_ok(R"({"model":"m","input":[{"role":"user","content":"a"},)"
                R"({"role":"user","content":[{"type":"input_image","file_id":"file_1"}]}]})");
  auto c = to_chat_request(r, "x");
  ASSERT_TRUE(std::holds_alternative<RequestError>(c));
  EXPECT_EQ(std::get<RequestError>(c).param, "input[1].content[0]");
  const ResponsesRequest sys = parsed_ok(
      R"({"model":"m","input":[{"role":"system","content":[{"type":"input_image","image_url":"u"}]}]})");
  auto c2 = to_chat_request(sys, "x");
  ASSERT_TRUE(std::holds_alternative<RequestError>(c2));
  EXPECT_EQ(std::get<RequestError>(c2).param, "input[0].content[0]");
}

// ---------------------------------------------------------------------------------------------
// from_chat_response

TEST(FromChatResponse, TextAnswerHasTheSDKShape) {
  const ResponsesRequest r = parsed_ok(
      R"({"model":"my-alias","input":"Hi","instructions":"Be brief.","metadata":{"a":"b"},"previous_response_id":"resp_0"})");
  auto text = from_chat_response(kChatText, "resp_abc", r);
  ASSERT_TRUE(text);
  const json::value resp = J(*text);
  EXPECT_EQ(resp.at("id"), "resp_abc");
  EXPECT_EQ(resp.at("object"), "response");
  EXPECT_EQ(resp.at("created_at"), 1700000001);
  EXPECT_EQ(resp.at("status"), "completed");
  EXPECT_EQ(resp.at("model"), "my-alias");
  EXPECT_TRUE(resp.at("error").is_null());
  EXPECT_TRUE(resp.at("incomplete_details").is_null());
  EXPECT_EQ(resp.at("output"), J(R"([{"id":"msg_abc","type":"message","status":"completed",
    "content":[{"type":"output_text","annotations":[],"text":"Hello there"}],"role":"assistant"}])"));
  EXPECT_EQ(resp.at("usage"), J(R"({"input_tokens":12,"input_tokens_details":{"cached_tokens":4},
    "output_tokens":2,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":14})"));
  // Echoed settings, with OpenAI's defaults.
  EXPECT_EQ(resp.at("instructions"), "Be brief.");
  EXPECT_EQ(resp.at("previous_response_id"), "resp_0");
  EXPECT_EQ(resp.at("metadata"), J(R"({"a":"b"})"));
  EXPECT_EQ(resp.at("text"), J(R"({"format":{"type":"text"}})"));
  EXPECT_EQ(resp.at("tool_choice"), "auto");
  EXPECT_EQ(resp.at("tools"), json::array());
  EXPECT_EQ(resp.at("temperature"), 1.0);
  EXPECT_EQ(resp.at("top_p"), 1.0);
  EXPECT_EQ(resp.at("parallel_tool_calls"), true);
  EXPECT_EQ(resp.at("store"), true);
  EXPECT_TRUE(resp.at("max_output_tokens").is_null());
}

TEST(FromChatResponse, ToolCallsBecomeFunctionCallItems) {
  const ResponsesRequest r =
      parsed_ok(R"({"model":"m","input":"x","store":false,"temperature":0.2})");
  const json::value resp = J(from_chat_response(kChatTool, "resp_t", r).value_or("{}"));
  EXPECT_EQ(resp.at("status"), "completed");
  EXPECT_EQ(resp.at("output"), J(R"([
    {"id":"fc_t_0","type":"function_call","status":"completed","arguments":"{\"city\":\"Oslo\"}",
     "call_id":"call_1","name":"get_weather"},
    {"id":"fc_t_1","type":"function_call","status":"completed","arguments":"{}",
     "call_id":"call_2","name":"get_time"}])"));
  EXPECT_EQ(resp.at("store"), false);
  EXPECT_EQ(resp.at("temperature"), 0.2);
  EXPECT_EQ(resp.at("usage").at("total_tokens"), 39);
}

TEST(FromChatResponse, LengthIsIncompleteAndErrorsAreNotAnswers) {
  const ResponsesRequest r = parsed_ok(R"({"model":"m","input":"x","max_output_tokens":2})");
  std::string cut(kChatText);
  cut.replace(cut.find(R"("stop")"), 6, R"("length")");
  const json::value resp = J(from_chat_response(cut, "resp_l", r).value_or("{}"));
  EXPECT_EQ(resp.at("status"), "incomplete");
  EXPECT_EQ(resp.at("incomplete_details"), J(R"({"reason":"max_output_tokens"})"));
  EXPECT_EQ(resp.at("output").at(0).at("status"), "incomplete");
  EXPECT_EQ(resp.at("max_output_tokens"), 2);
  EXPECT_FALSE(from_chat_response(R"({"error":{"message":"boom"}})", "resp_e", r));
  EXPECT_FALSE(from_chat_response(R"({"choices":[]})", "resp_e", r));
  EXPECT_FALSE(from_chat_response("nope", "resp_e", r));
}

// ---------------------------------------------------------------------------------------------
// ChatToResponsesStream

// A chat stream as a provider sends it: role chunk, text over three deltas, one tool call whose
// arguments are split over three deltas, the finish chunk, the usage chunk, [DONE].
Events chat_stream(bool with_tool, std::string_view finish = "stop") {
  const std::string head =
      R"(data: {"id":"chatcmpl-9","object":"chat.completion.chunk","created":1700000009,"model":"claude-x","choices":[)";
  auto chunk = [&](std::string_view choice, std::string_view tail = R"(,"usage":null})") {
    return head + std::string(choice) + "]" + std::string(tail);
  };
  Events e;
  e.push_back(
      chunk(R"({"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null})"));
  e.push_back(chunk(R"({"index":0,"delta":{"content":"Let"},"finish_reason":null})"));
  e.push_back(": keep-alive");
  e.push_back(chunk(R"({"index":0,"delta":{"content":" me"},"finish_reason":null})"));
  e.push_back(chunk(R"({"index":0,"delta":{"content":" check."},"finish_reason":null})"));
  if (with_tool) {
    e.push_back(chunk(
        R"({"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_7","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null})"));
    e.push_back(chunk(
        R"({"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"ci"}}]},"finish_reason":null})"));
    e.push_back(chunk(
        R"({"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ty\":\"Os"}}]},"finish_reason":null})"));
    e.push_back(chunk(
        R"({"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"lo\"}"}}]},"finish_reason":null})"));
  }
  e.push_back(chunk(R"({"index":0,"delta":{},"finish_reason":")" + std::string(finish) + R"("})"));
  e.push_back(
      head.substr(0, head.size() - std::string_view(R"("choices":[)").size()) +
      R"("choices":[],"usage":{"prompt_tokens":40,"completion_tokens":11,"total_tokens":51}})");
  e.push_back("data: [DONE]");
  return e;
}

Events convert(ChatToResponsesStream& conv, const Events& chat) {
  Events out;
  for (const auto& ev : chat) conv.feed(ev, out);
  return out;
}

void expect_well_formed(const Events& out) {
  for (std::size_t i = 0; i < out.size(); ++i) {
    ASSERT_TRUE(out[i].starts_with("event: ")) << out[i];
    const json::value data = J(cache::event_data(out[i]));
    EXPECT_EQ(data.at("sequence_number"), static_cast<int64_t>(i)) << out[i];
    EXPECT_EQ(cache::event_type(out[i]), std::string_view(data.at("type").as_string()));
  }
}

TEST(ChatToResponsesStream, TextAndAToolCallGiveTheFullEventSequence) {
  const ResponsesRequest r = parsed_ok(
      R"({"model":"m","input":"Weather?","stream":true,"tools":[{"type":"function","name":"get_weather"}]})");
  const Events chat = chat_stream(true, "tool_calls");
  ChatToResponsesStream conv("resp_s1", r);
  const Events out = convert(conv, chat);
  expect_well_formed(out);
  std::vector<std::string> types;
  for (const auto& e : out) types.push_back(type_of(e));
  const std::vector<std::string> expected = {"response.created",
                                             "response.in_progress",
                                             "response.output_item.added",
                                             "response.content_part.added",
                                             "response.output_text.delta",
                                             "response.output_text.delta",
                                             "response.output_text.delta",
                                             "response.output_text.done",
                                             "response.content_part.done",
                                             "response.output_item.done",
                                             "response.output_item.added",
                                             "response.function_call_arguments.delta",
                                             "response.function_call_arguments.delta",
                                             "response.function_call_arguments.delta",
                                             "response.function_call_arguments.done",
                                             "response.output_item.done",
                                             "response.completed"};
  EXPECT_EQ(types, expected);
  // Details the SDK's accumulator reads.
  const json::value created = J(cache::event_data(out[0]));
  EXPECT_EQ(created.at("response").at("status"), "in_progress");
  EXPECT_EQ(created.at("response").at("output"), json::array());
  const json::value added = J(cache::event_data(out[2]));
  EXPECT_EQ(added.at("item").at("content"), json::array());
  EXPECT_EQ(added.at("output_index"), 0);
  const json::value delta = J(cache::event_data(out[5]));
  EXPECT_EQ(delta.at("delta"), " me");
  EXPECT_EQ(delta.at("item_id"), "msg_s1");
  EXPECT_EQ(delta.at("output_index"), 0);
  EXPECT_EQ(delta.at("content_index"), 0);
  EXPECT_EQ(J(cache::event_data(out[7])).at("text"), "Let me check.");
  const json::value call_added = J(cache::event_data(out[10]));
  EXPECT_EQ(call_added.at("output_index"), 1);
  EXPECT_EQ(call_added.at("item").at("call_id"), "call_7");
  EXPECT_EQ(call_added.at("item").at("arguments"), "");
  const json::value args_done = J(cache::event_data(out[14]));
  EXPECT_EQ(args_done.at("arguments"), R"({"city":"Oslo"})");
  EXPECT_EQ(args_done.at("item_id"), "fc_s1_0");
  // response.completed holds the same object as the non-streaming conversion of the answer.
  ASSERT_TRUE(conv.done());
  EXPECT_FALSE(conv.failed());
  ASSERT_TRUE(conv.final_response());
  const auto assembled = cache::assemble_chat_completion(chat);
  ASSERT_TRUE(assembled);
  const auto expected_response = from_chat_response(*assembled, "resp_s1", r);
  ASSERT_TRUE(expected_response);
  EXPECT_EQ(J(*conv.final_response()), J(*expected_response));
  EXPECT_EQ(J(cache::event_data(out.back())).at("response"), J(*expected_response));
  EXPECT_EQ(J(*conv.final_response()).at("usage").at("output_tokens"), 11);
  // And response_from_events finds it, as it would in a pass-through stream.
  EXPECT_EQ(J(response_from_events(out).value_or("{}")), J(*expected_response));
  // Events after the end are ignored.
  Events more;
  conv.feed(chat[1], more);
  EXPECT_TRUE(more.empty());
}

TEST(ChatToResponsesStream, LengthEndsWithResponseIncomplete) {
  const ResponsesRequest r = parsed_ok(R"({"model":"m","input":"x","stream":true})");
  const Events chat = chat_stream(false, "length");
  ChatToResponsesStream conv("resp_s2", r);
  const Events out = convert(conv, chat);
  expect_well_formed(out);
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(type_of(out.back()), "response.incomplete");
  EXPECT_EQ(J(*conv.final_response()).at("status"), "incomplete");
  EXPECT_EQ(J(*conv.final_response()),
            J(*from_chat_response(*cache::assemble_chat_completion(chat), "resp_s2", r)));
  EXPECT_EQ(J(response_from_events(out).value_or("{}")).at("status"), "incomplete");
}

TEST(ChatToResponsesStream, AnErrorChunkOrACutStreamFails) {
  const ResponsesRequest r = parsed_ok(R"({"model":"m","input":"x","stream":true})");
  Events chat = chat_stream(false);
  {
    ChatToResponsesStream conv("resp_f1", r);
    Events out;
    conv.feed(chat[0], out);
    conv.feed(chat[1], out);
    conv.feed(R"(data: {"error":{"message":"overloaded","type":"server_error"}})", out);
    expect_well_formed(out);
    EXPECT_EQ(type_of(out.back()), "response.failed");
    EXPECT_EQ(J(cache::event_data(out.back())).at("response").at("error").at("message"),
              "overloaded");
    EXPECT_TRUE(conv.failed());
    EXPECT_FALSE(conv.final_response());
    EXPECT_FALSE(response_from_events(out));
  }
  {
    ChatToResponsesStream conv("resp_f2", r);
    Events out;
    for (std::size_t i = 0; i < 4; ++i) conv.feed(chat[i], out);
    EXPECT_FALSE(conv.done());
    conv.finish(out);
    EXPECT_TRUE(conv.failed());
    EXPECT_EQ(type_of(out.back()), "response.failed");
    expect_well_formed(out);
  }
}

TEST(ChatToResponsesStream, AnEmptyAnswerStillHasAMessageItem) {
  const ResponsesRequest r = parsed_ok(R"({"model":"m","input":"x","stream":true})");
  const Events chat = {
      R"(data: {"id":"c","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null}]})",
      R"(data: {"id":"c","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})",
      "data: [DONE]"};
  ChatToResponsesStream conv("resp_e", r);
  const Events out = convert(conv, chat);
  expect_well_formed(out);
  ASSERT_TRUE(conv.final_response());
  EXPECT_EQ(J(*conv.final_response()),
            J(*from_chat_response(*cache::assemble_chat_completion(chat), "resp_e", r)));
  EXPECT_EQ(J(*conv.final_response()).at("output").at(0).at("content").at(0).at("text"), "");
}

// ---------------------------------------------------------------------------------------------
// output_items_of / response_from_events

TEST(PassThrough, OutputItemsAndTheCompletedResponse) {
  EXPECT_EQ(
      J(output_items_of(R"({"id":"resp_1","output":[{"type":"message","id":"m"}]})").value_or("")),
      J(R"([{"type":"message","id":"m"}])"));
  EXPECT_FALSE(output_items_of(R"({"id":"resp_1"})"));
  EXPECT_FALSE(output_items_of("nope"));
  const Events events = {
      R"(event: response.created
data: {"type":"response.created","sequence_number":0,"response":{"id":"resp_1","status":"in_progress","output":[]}})",
      R"(event: response.output_text.delta
data: {"type":"response.output_text.delta","sequence_number":1,"delta":"response.completed"})",
      R"(event: response.completed
data: {"type":"response.completed","sequence_number":2,"response":{"id":"resp_1","status":"completed","output":[{"type":"message"}]}})"};
  EXPECT_EQ(J(response_from_events(events).value_or("{}")),
            J(R"({"id":"resp_1","status":"completed","output":[{"type":"message"}]})"));
  const Events cut(events.begin(), events.begin() + 2);
  EXPECT_FALSE(response_from_events(cut));
}

// ---------------------------------------------------------------------------------------------
// ResponsesStore against redis-server

class Store : public ::testing::Test {
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
  void TearDown() override {
    client_->stop();
    run_for(io_, std::chrono::milliseconds(5));
  }
  SaveResult save(const ResponsesStore& s, std::string_view tenant, const StoredResponse& rec) {
    auto r = run_until_done(io_, s.save(*client_, tenant, rec));
    EXPECT_TRUE(r.ok()) << r.error().to_string();
    return r.ok() ? *r : SaveResult{};
  }
  std::optional<StoredResponse> load(const ResponsesStore& s, std::string_view tenant,
                                     std::string_view id) {
    auto r = run_until_done(io_, s.load(*client_, tenant, id));
    EXPECT_TRUE(r.ok()) << r.error().to_string();
    return r.ok() ? *r : std::nullopt;
  }
  bool remove(const ResponsesStore& s, std::string_view tenant, std::string_view id) {
    auto r = run_until_done(io_, s.remove(*client_, tenant, id));
    EXPECT_TRUE(r.ok()) << r.error().to_string();
    return r.ok() && *r;
  }

  static StoredResponse record(std::string id, std::string input) {
    StoredResponse s;
    s.id = std::move(id);
    s.model = "gpt-4o";
    s.created_at = 1700000123;
    s.input = std::move(input);
    s.output =
        R"([{"type":"message","role":"assistant","content":[{"type":"output_text","text":"ok","annotations":[]}]}])";
    s.response = R"({"id":")" + s.id + R"(","object":"response","output":[]})";
    return s;
  }

  static test::RedisServer* server_;
  boost::asio::io_context io_;
  std::unique_ptr<redis::Client> client_;
};

test::RedisServer* Store::server_ = nullptr;

TEST_F(Store, SaveLoadRemoveRoundTrip) {
  const ResponsesStore store(std::chrono::seconds(3600), 1 << 20);
  const StoredResponse rec =
      record("resp_1", R"([{"type":"message","role":"user","content":"Hi"}])");
  const SaveResult saved = save(store, "acme", rec);
  EXPECT_EQ(saved.trimmed_items, 0u);
  EXPECT_EQ(saved.stored_bytes, rec.input.size() + rec.output.size());
  auto got = load(store, "acme", "resp_1");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->id, "resp_1");
  EXPECT_EQ(got->model, "gpt-4o");
  EXPECT_EQ(got->created_at, 1700000123);
  EXPECT_EQ(J(got->input), J(rec.input));
  EXPECT_EQ(got->output, rec.output);
  EXPECT_EQ(got->response, rec.response);
  // chain(): input then output.
  const json::value chain = J(got->chain().value_or("[]"));
  ASSERT_EQ(chain.as_array().size(), 2u);
  EXPECT_EQ(chain.at(1).at("role"), "assistant");
  // The documented layout: one hash under rs:{32 hex}, with a TTL.
  const std::string key = ResponsesStore::key("acme", "resp_1");
  EXPECT_EQ(key.size(), 3u + 1 + 32 + 1);
  EXPECT_TRUE(key.starts_with("rs:{"));
  EXPECT_EQ(server_->cli("TYPE", key), "hash");
  EXPECT_EQ(server_->cli("HGET", key, "model"), "gpt-4o");
  const long ttl = std::stol(server_->cli("TTL", key));
  EXPECT_GT(ttl, 3590);
  EXPECT_LE(ttl, 3600);
  EXPECT_TRUE(remove(store, "acme", "resp_1"));
  EXPECT_FALSE(load(store, "acme", "resp_1"));
  EXPECT_FALSE(remove(store, "acme", "resp_1"));
  EXPECT_FALSE(load(store, "acme", "resp_unknown"));
}

TEST_F(Store, AnotherTenantWithTheSameIdFindsNothing) {
  const ResponsesStore store(std::chrono::seconds(60), 1 << 20);
  save(store, "acme", record("resp_x", "[]"));
  EXPECT_TRUE(load(store, "acme", "resp_x"));
  EXPECT_FALSE(load(store, "globex", "resp_x"));
  EXPECT_FALSE(remove(store, "globex", "resp_x"));
  EXPECT_TRUE(load(store, "acme", "resp_x"));  // still there
  // No ambiguity between tenant and id bytes.
  EXPECT_NE(ResponsesStore::key("a", "bc"), ResponsesStore::key("ab", "c"));
}

TEST_F(Store, RecordsExpireAfterTheTtl) {
  const ResponsesStore store(std::chrono::seconds(1), 1 << 20);
  save(store, "acme", record("resp_ttl", "[]"));
  EXPECT_TRUE(load(store, "acme", "resp_ttl"));
  const long pttl = std::stol(server_->cli("PTTL", ResponsesStore::key("acme", "resp_ttl")));
  EXPECT_GT(pttl, 0);
  EXPECT_LE(pttl, 1000);
  std::this_thread::sleep_for(std::chrono::milliseconds(1300));
  EXPECT_FALSE(load(store, "acme", "resp_ttl"));
}

TEST_F(Store, ASaveReplacesTheRecordWhole) {
  const ResponsesStore store(std::chrono::seconds(60), 1 << 20);
  save(store, "acme", record("resp_r", R"([{"type":"message","role":"user","content":"one"}])"));
  StoredResponse second = record("resp_r", "[]");
  second.model = "other";
  save(store, "acme", second);
  auto got = load(store, "acme", "resp_r");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->model, "other");
  EXPECT_EQ(got->input, "[]");
}

TEST_F(Store, ALongChainIsTrimmedOldestFirstByWholeItems) {
  // Ten user messages of ~60 bytes each; the bound leaves room for about four plus the output.
  std::string input = "[";
  for (int i = 0; i < 10; ++i) {
    if (i > 0) input += ',';
    input += R"({"type":"message","role":"user","content":"message number )" + std::to_string(i) +
             R"( padded...."})";
  }
  input += ']';
  const StoredResponse rec = record("resp_long", input);
  const std::size_t item = json::serialize(J(input).at(0)).size();
  const ResponsesStore store(std::chrono::seconds(60), rec.output.size() + 4 * (item + 1) + 2);
  const SaveResult saved = save(store, "acme", rec);
  EXPECT_EQ(saved.trimmed_items, 6u);
  EXPECT_LE(saved.stored_bytes, store.max_chain_bytes());
  auto got = load(store, "acme", "resp_long");
  ASSERT_TRUE(got);
  const json::array kept = J(got->input).as_array();
  ASSERT_EQ(kept.size(), 4u);
  EXPECT_EQ(kept[0].at("content"), "message number 6 padded....");  // the newest four remain
  EXPECT_EQ(kept[3].at("content"), "message number 9 padded....");
  EXPECT_EQ(got->output, rec.output);  // output is never trimmed
}

TEST(TrimChain, ATrimmedCallTakesItsOutputWithIt) {
  const std::string input =
      R"([{"type":"message","role":"user","content":"question one, long enough to be cut"},)"
      R"({"type":"function_call","call_id":"c1","name":"f","arguments":"{}"},)"
      R"({"type":"function_call_output","call_id":"c1","output":"r1"},)"
      R"({"type":"message","role":"user","content":"q2"}])";
  std::size_t trimmed = 0;
  // Room for the last two items only: the call goes, so its output must go as well.
  const std::size_t last_two =
      json::serialize(J(input).at(2)).size() + json::serialize(J(input).at(3)).size() + 3;
  auto out = trim_chain(input, 0, last_two, &trimmed);
  ASSERT_TRUE(out);
  EXPECT_EQ(J(*out), J(R"([{"type":"message","role":"user","content":"q2"}])"));
  EXPECT_EQ(trimmed, 3u);
  // A bound that fits everything trims nothing.
  out = trim_chain(input, 0, 1 << 20, &trimmed);
  EXPECT_EQ(J(*out), J(input));
  EXPECT_EQ(trimmed, 0u);
  EXPECT_FALSE(trim_chain("{}", 0, 10, &trimmed));
}

TEST_F(Store, BadRecordsAreRefusedBeforeRedis) {
  const ResponsesStore store(std::chrono::seconds(60), 1 << 20);
  StoredResponse bad = record("resp_bad", "not json");
  auto r = run_until_done(io_, store.save(*client_, "acme", bad));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, redis::ErrorKind::kInvalidArgument);
  bad = record("resp_bad", "[]");
  bad.output = "{}";
  r = run_until_done(io_, store.save(*client_, "acme", bad));
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(load(store, "acme", "resp_bad"));
}

}  // namespace
}  // namespace redline::responses
