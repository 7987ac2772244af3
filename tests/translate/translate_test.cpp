// Tests for Chat Completions <-> Messages translation (src/translate/translate.h): table-driven
// request mappings in both directions, every refused field named, round trips, answers (finish
// and stop reasons, usage, ids), errors of any shape, and streams fed event by event, cross-
// checked against cache/replay.h: assembling a translated stream gives the translated
// assembled answer.
#include "translate/translate.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <ctime>
#include <string>
#include <vector>

#include "cache/replay.h"
#include "cache/sse.h"

namespace redline::translate {
namespace {

namespace json = boost::json;
using Events = std::vector<std::string>;

json::value parsed(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  EXPECT_FALSE(ec) << "not JSON: " << text;
  return v;
}

RequestOptions opts() {
  RequestOptions o;
  o.upstream_model = "up-model";
  o.default_max_tokens = 1024;
  return o;
}

// The translated body, parsed; fails the test when the request was refused.
json::value translated(Api from, Api to, std::string_view body) {
  auto r = translate_request(from, to, body, opts());
  if (const auto* u = std::get_if<Untranslatable>(&r)) {
    ADD_FAILURE() << "refused: " << u->message << " (param " << u->param << ")\n" << body;
    return nullptr;
  }
  return parsed(std::get<std::string>(r));
}

std::string text_of(const json::value& v) {
  return json::serialize(v);
}

// ================================================================================================
// Requests: Chat -> Messages
// ================================================================================================

struct MappingCase {
  const char* name;
  const char* input;
  const char* expected;
};

void PrintTo(const MappingCase& c, std::ostream* os) {
  *os << c.name;
}

class ChatToMessagesRequest : public testing::TestWithParam<MappingCase> {};

TEST_P(ChatToMessagesRequest, Maps) {
  const MappingCase& c = GetParam();
  const json::value out = translated(Api::kChat, Api::kMessages, c.input);
  EXPECT_EQ(out, parsed(c.expected))
      << "actual:   " << text_of(out) << "\nexpected: " << c.expected;
}

const MappingCase kChatToMessages[] = {
    {"plain_user", R"({"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}]})",
     R"({"model":"up-model","max_tokens":1024,"messages":[{"role":"user","content":"Hi"}]})"},
    {"system_string",
     R"({"model":"m","messages":[{"role":"system","content":"Be brief"},{"role":"user","content":"Hi"}]})",
     R"({"model":"up-model","max_tokens":1024,"system":"Be brief",
         "messages":[{"role":"user","content":"Hi"}]})"},
    {"system_and_developer_become_blocks",
     R"({"model":"m","messages":[{"role":"system","content":"A"},{"role":"developer","content":[{"type":"text","text":"B"}]},
         {"role":"user","content":"Hi"}]})",
     R"({"model":"up-model","max_tokens":1024,"system":[{"type":"text","text":"A"},{"type":"text","text":"B"}],
         "messages":[{"role":"user","content":"Hi"}]})"},
    {"system_parts",
     R"({"model":"m","messages":[{"role":"system","content":[{"type":"text","text":"A"},{"type":"text","text":"B"}]},
         {"role":"user","content":"Hi"}]})",
     R"({"model":"up-model","max_tokens":1024,"system":[{"type":"text","text":"A"},{"type":"text","text":"B"}],
         "messages":[{"role":"user","content":"Hi"}]})"},
    {"max_tokens", R"({"messages":[{"role":"user","content":"x"}],"max_tokens":100})",
     R"({"model":"up-model","max_tokens":100,"messages":[{"role":"user","content":"x"}]})"},
    {"max_completion_tokens_wins",
     R"({"messages":[{"role":"user","content":"x"}],"max_tokens":100,"max_completion_tokens":200})",
     R"({"model":"up-model","max_tokens":200,"messages":[{"role":"user","content":"x"}]})"},
    {"sampling", R"({"messages":[{"role":"user","content":"x"}],"temperature":0.7,"top_p":0.9})",
     R"({"model":"up-model","max_tokens":1024,"messages":[{"role":"user","content":"x"}],
         "temperature":0.7,"top_p":0.9})"},
    {"temperature_one_is_allowed",
     R"({"messages":[{"role":"user","content":"x"}],"temperature":1})",
     R"({"model":"up-model","max_tokens":1024,"messages":[{"role":"user","content":"x"}],"temperature":1})"},
    {"stop_string", R"({"messages":[{"role":"user","content":"x"}],"stop":"END"})",
     R"({"model":"up-model","max_tokens":1024,"messages":[{"role":"user","content":"x"}],"stop_sequences":["END"]})"},
    {"stop_array", R"({"messages":[{"role":"user","content":"x"}],"stop":["a","b"]})",
     R"({"model":"up-model","max_tokens":1024,"messages":[{"role":"user","content":"x"}],"stop_sequences":["a","b"]})"},
    {"stream",
     R"({"messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":true}})",
     R"({"model":"up-model","max_tokens":1024,"messages":[{"role":"user","content":"x"}],"stream":true})"},
    {"user", R"({"messages":[{"role":"user","content":"x"}],"user":"u-1"})",
     R"({"model":"up-model","max_tokens":1024,"messages":[{"role":"user","content":"x"}],"metadata":{"user_id":"u-1"}})"},
    {"safety_identifier_wins_over_user",
     R"({"messages":[{"role":"user","content":"x"}],"user":"old","safety_identifier":"new"})",
     R"({"model":"up-model","max_tokens":1024,"messages":[{"role":"user","content":"x"}],"metadata":{"user_id":"new"}})"},
    {"harmless_and_neutral_fields",
     R"({"messages":[{"role":"user","content":"x"}],"metadata":{"k":"v"},"store":false,"n":1,"logprobs":false,
         "presence_penalty":0,"frequency_penalty":0.0,"response_format":{"type":"text"},"modalities":["text"],
         "seed":null,"logit_bias":{},"prompt_cache_key":"p","top_logprobs":null,"audio":null})",
     R"({"model":"up-model","max_tokens":1024,"messages":[{"role":"user","content":"x"}]})"},
    {"service_tier", R"({"messages":[{"role":"user","content":"x"}],"service_tier":"default"})",
     R"({"model":"up-model","max_tokens":1024,"messages":[{"role":"user","content":"x"}],"service_tier":"standard_only"})"},
    {"tools_and_auto",
     R"({"messages":[{"role":"user","content":"x"}],"tool_choice":"auto","tools":[{"type":"function","function":
         {"name":"get","description":"Gets","parameters":{"type":"object","properties":{"q":{"type":"string"}}}}}]})",
     R"({"model":"up-model","max_tokens":1024,"messages":[{"role":"user","content":"x"}],
         "tools":[{"name":"get","description":"Gets","input_schema":{"type":"object","properties":{"q":{"type":"string"}}}}],
         "tool_choice":{"type":"auto"}})"},
    {"tool_without_parameters",
     R"({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"now","strict":false}}]})",
     R"({"model":"up-model","max_tokens":1024,"messages":[{"role":"user","content":"x"}],
         "tools":[{"name":"now","input_schema":{"type":"object","properties":{}}}]})"},
    {"tool_choice_required_is_any",
     R"({"messages":[{"role":"user","content":"x"}],"tool_choice":"required","tools":[{"type":"function","function":{"name":"f"}}]})",
     R"({"model":"up-model","max_tokens":1024,"messages":[{"role":"user","content":"x"}],
         "tools":[{"name":"f","input_schema":{"type":"object","properties":{}}}],"tool_choice":{"type":"any"}})"},
    {"tool_choice_none",
     R"({"messages":[{"role":"user","content":"x"}],"tool_choice":"none","parallel_tool_calls":false,
         "tools":[{"type":"function","function":{"name":"f"}}]})",
     R"({"model":"up-model","max_tokens":1024,"messages":[{"role":"user","content":"x"}],
         "tools":[{"name":"f","input_schema":{"type":"object","properties":{}}}],"tool_choice":{"type":"none"}})"},
    {"tool_choice_function_is_tool",
     R"({"messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"function","function":{"name":"f"}},
         "tools":[{"type":"function","function":{"name":"f"}}]})",
     R"({"model":"up-model","max_tokens":1024,"messages":[{"role":"user","content":"x"}],
         "tools":[{"name":"f","input_schema":{"type":"object","properties":{}}}],"tool_choice":{"type":"tool","name":"f"}})"},
    {"parallel_false_without_tool_choice",
     R"({"messages":[{"role":"user","content":"x"}],"parallel_tool_calls":false,"tools":[{"type":"function","function":{"name":"f"}}]})",
     R"({"model":"up-model","max_tokens":1024,"messages":[{"role":"user","content":"x"}],
         "tools":[{"name":"f","input_schema":{"type":"object","properties":{}}}],
         "tool_choice":{"type":"auto","disable_parallel_tool_use":true}})"},
    {"parallel_false_with_required",
     R"({"messages":[{"role":"user","content":"x"}],"parallel_tool_calls":false,"tool_choice":"required",
         "tools":[{"type":"function","function":{"name":"f"}}]})",
     R"({"model":"up-model","max_tokens":1024,"messages":[{"role":"user","content":"x"}],
         "tools":[{"name":"f","input_schema":{"type":"object","properties":{}}}],
         "tool_choice":{"type":"any","disable_parallel_tool_use":true}})"},
    {"tool_choice_auto_without_tools_is_dropped",
     R"({"messages":[{"role":"user","content":"x"}],"tool_choice":"auto","parallel_tool_calls":false})",
     R"({"model":"up-model","max_tokens":1024,"messages":[{"role":"user","content":"x"}]})"},
    {"tool_calls_and_results_merged",
     R"({"messages":[
         {"role":"user","content":"Weather in Paris and Rome?"},
         {"role":"assistant","content":"Checking.","refusal":null,"annotations":[],"tool_calls":[
           {"id":"call_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}},
           {"id":"call_2","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Rome\"}"}}]},
         {"role":"tool","tool_call_id":"call_1","content":"18C"},
         {"role":"tool","tool_call_id":"call_2","content":[{"type":"text","text":"21C"}]},
         {"role":"user","content":"Thanks"}]})",
     R"({"model":"up-model","max_tokens":1024,"messages":[
         {"role":"user","content":"Weather in Paris and Rome?"},
         {"role":"assistant","content":[{"type":"text","text":"Checking."},
           {"type":"tool_use","id":"call_1","name":"weather","input":{"city":"Paris"}},
           {"type":"tool_use","id":"call_2","name":"weather","input":{"city":"Rome"}}]},
         {"role":"user","content":[{"type":"tool_result","tool_use_id":"call_1","content":"18C"},
           {"type":"tool_result","tool_use_id":"call_2","content":[{"type":"text","text":"21C"}]},
           {"type":"text","text":"Thanks"}]}]})"},
    {"tool_call_with_null_content_and_empty_arguments",
     R"({"messages":[{"role":"user","content":"x"},{"role":"assistant","content":null,"tool_calls":[
         {"id":"c","type":"function","function":{"name":"now","arguments":""}}]},{"role":"tool","tool_call_id":"c","content":""}]})",
     R"({"model":"up-model","max_tokens":1024,"messages":[{"role":"user","content":"x"},
         {"role":"assistant","content":[{"type":"tool_use","id":"c","name":"now","input":{}}]},
         {"role":"user","content":[{"type":"tool_result","tool_use_id":"c"}]}]})"},
    {"consecutive_users_merged",
     R"({"messages":[{"role":"user","content":"a"},{"role":"user","content":[{"type":"text","text":"b"}]}]})",
     R"({"model":"up-model","max_tokens":1024,"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]})"},
    {"empty_assistant_dropped_then_merged",
     R"({"messages":[{"role":"user","content":"a"},{"role":"assistant","content":""},{"role":"user","content":"b"}]})",
     R"({"model":"up-model","max_tokens":1024,"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]})"},
    {"images",
     R"({"messages":[{"role":"user","content":[{"type":"text","text":"What is this?"},
         {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},
         {"type":"image_url","image_url":{"url":"https://example.com/cat.jpg","detail":"auto"}}]}]})",
     R"({"model":"up-model","max_tokens":1024,"messages":[{"role":"user","content":[{"type":"text","text":"What is this?"},
         {"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},
         {"type":"image","source":{"type":"url","url":"https://example.com/cat.jpg"}}]}]})"},
    {"assistant_text_parts",
     R"({"messages":[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"text","text":"b"}]}]})",
     R"({"model":"up-model","max_tokens":1024,"messages":[{"role":"user","content":"a"},
         {"role":"assistant","content":[{"type":"text","text":"b"}]}]})"},
};

INSTANTIATE_TEST_SUITE_P(Table, ChatToMessagesRequest, testing::ValuesIn(kChatToMessages),
                         [](const auto& info) { return std::string(info.param.name); });

// ================================================================================================
// Requests: Messages -> Chat
// ================================================================================================

class MessagesToChatRequest : public testing::TestWithParam<MappingCase> {};

TEST_P(MessagesToChatRequest, Maps) {
  const MappingCase& c = GetParam();
  const json::value out = translated(Api::kMessages, Api::kChat, c.input);
  EXPECT_EQ(out, parsed(c.expected))
      << "actual:   " << text_of(out) << "\nexpected: " << c.expected;
}

const MappingCase kMessagesToChat[] = {
    {"plain_user",
     R"({"model":"claude","max_tokens":300,"messages":[{"role":"user","content":"Hi"}]})",
     R"({"model":"up-model","messages":[{"role":"user","content":"Hi"}],"max_completion_tokens":300})"},
    {"default_max_tokens", R"({"messages":[{"role":"user","content":"Hi"}]})",
     R"({"model":"up-model","messages":[{"role":"user","content":"Hi"}],"max_completion_tokens":1024})"},
    {"system_string",
     R"({"max_tokens":5,"system":"Be brief","messages":[{"role":"user","content":"Hi"}]})",
     R"({"model":"up-model","messages":[{"role":"system","content":"Be brief"},{"role":"user","content":"Hi"}],
         "max_completion_tokens":5})"},
    {"system_blocks",
     R"({"max_tokens":5,"system":[{"type":"text","text":"A","cache_control":{"type":"ephemeral"}},{"type":"text","text":"B"}],
         "messages":[{"role":"user","content":"Hi"}]})",
     R"({"model":"up-model","messages":[{"role":"system","content":[{"type":"text","text":"A"},{"type":"text","text":"B"}]},
         {"role":"user","content":"Hi"}],"max_completion_tokens":5})"},
    {"sampling_and_stops",
     R"({"max_tokens":5,"messages":[{"role":"user","content":"x"}],"temperature":0.2,"top_p":0.5,"stop_sequences":["\n\nHuman:"],
         "top_k":null,"thinking":{"type":"disabled"}})",
     R"({"model":"up-model","messages":[{"role":"user","content":"x"}],"max_completion_tokens":5,"temperature":0.2,
         "top_p":0.5,"stop":["\n\nHuman:"]})"},
    {"stream_asks_for_usage",
     R"({"max_tokens":5,"messages":[{"role":"user","content":"x"}],"stream":true})",
     R"({"model":"up-model","messages":[{"role":"user","content":"x"}],"max_completion_tokens":5,"stream":true,
         "stream_options":{"include_usage":true}})"},
    {"stream_false",
     R"({"max_tokens":5,"messages":[{"role":"user","content":"x"}],"stream":false})",
     R"({"model":"up-model","messages":[{"role":"user","content":"x"}],"max_completion_tokens":5})"},
    {"metadata_user",
     R"({"max_tokens":5,"messages":[{"role":"user","content":"x"}],"metadata":{"user_id":"u-9"}})",
     R"({"model":"up-model","messages":[{"role":"user","content":"x"}],"max_completion_tokens":5,"user":"u-9"})"},
    {"service_tier",
     R"({"max_tokens":5,"messages":[{"role":"user","content":"x"}],"service_tier":"standard_only"})",
     R"({"model":"up-model","messages":[{"role":"user","content":"x"}],"max_completion_tokens":5,"service_tier":"default"})"},
    {"tools_any_no_parallel",
     R"({"max_tokens":5,"messages":[{"role":"user","content":"x"}],
         "tools":[{"name":"get","description":"Gets","input_schema":{"type":"object"},"cache_control":{"type":"ephemeral"}}],
         "tool_choice":{"type":"any","disable_parallel_tool_use":true}})",
     R"({"model":"up-model","messages":[{"role":"user","content":"x"}],"max_completion_tokens":5,
         "tools":[{"type":"function","function":{"name":"get","description":"Gets","parameters":{"type":"object"}}}],
         "tool_choice":"required","parallel_tool_calls":false})"},
    {"tool_choice_tool",
     R"({"max_tokens":5,"messages":[{"role":"user","content":"x"}],"tools":[{"type":"custom","name":"f","input_schema":{"type":"object"}}],
         "tool_choice":{"type":"tool","name":"f"}})",
     R"({"model":"up-model","messages":[{"role":"user","content":"x"}],"max_completion_tokens":5,
         "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],
         "tool_choice":{"type":"function","function":{"name":"f"}}})"},
    {"tool_choice_none_and_auto",
     R"({"max_tokens":5,"messages":[{"role":"user","content":"x"}],"tools":[{"name":"f","input_schema":{"type":"object"}}],
         "tool_choice":{"type":"none"}})",
     R"({"model":"up-model","messages":[{"role":"user","content":"x"}],"max_completion_tokens":5,
         "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":"none"})"},
    {"tool_use_and_results",
     R"({"max_tokens":5,"messages":[
         {"role":"user","content":"Weather?"},
         {"role":"assistant","content":[{"type":"text","text":"Checking."},
           {"type":"tool_use","id":"toolu_1","name":"weather","input":{"city":"Paris"}},
           {"type":"tool_use","id":"toolu_2","name":"weather","input":{}}]},
         {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"18C"},
           {"type":"tool_result","tool_use_id":"toolu_2","content":[{"type":"text","text":"21C"}]},
           {"type":"tool_result","tool_use_id":"toolu_3"},
           {"type":"text","text":"Thanks"}]}]})",
     R"({"model":"up-model","messages":[
         {"role":"user","content":"Weather?"},
         {"role":"assistant","content":"Checking.","tool_calls":[
           {"id":"toolu_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}},
           {"id":"toolu_2","type":"function","function":{"name":"weather","arguments":"{}"}}]},
         {"role":"tool","tool_call_id":"toolu_1","content":"18C"},
         {"role":"tool","tool_call_id":"toolu_2","content":[{"type":"text","text":"21C"}]},
         {"role":"tool","tool_call_id":"toolu_3","content":""},
         {"role":"user","content":[{"type":"text","text":"Thanks"}]}],"max_completion_tokens":5})"},
    {"tool_use_only",
     R"({"max_tokens":5,"messages":[{"role":"user","content":"x"},{"role":"assistant","content":[
         {"type":"tool_use","id":"t","name":"f","input":{"n":1.5}}]}]})",
     R"({"model":"up-model","messages":[{"role":"user","content":"x"},{"role":"assistant","content":null,"tool_calls":[
         {"id":"t","type":"function","function":{"name":"f","arguments":"{\"n\":1.5}"}}]}],"max_completion_tokens":5})"},
    {"images",
     R"({"max_tokens":5,"messages":[{"role":"user","content":[
         {"type":"image","source":{"type":"base64","media_type":"image/jpeg","data":"/9j/4AAQ"}},
         {"type":"image","source":{"type":"url","url":"https://example.com/a.png"}},
         {"type":"text","text":"Compare"}]}]})",
     R"({"model":"up-model","messages":[{"role":"user","content":[
         {"type":"image_url","image_url":{"url":"data:image/jpeg;base64,/9j/4AAQ"}},
         {"type":"image_url","image_url":{"url":"https://example.com/a.png"}},
         {"type":"text","text":"Compare"}]}],"max_completion_tokens":5})"},
    {"assistant_text_blocks",
     R"({"max_tokens":5,"messages":[{"role":"user","content":"x"},{"role":"assistant","content":[
         {"type":"text","text":"a"},{"type":"text","text":"b"}]}]})",
     R"({"model":"up-model","messages":[{"role":"user","content":"x"},{"role":"assistant","content":[
         {"type":"text","text":"a"},{"type":"text","text":"b"}]}],"max_completion_tokens":5})"},
};

INSTANTIATE_TEST_SUITE_P(Table, MessagesToChatRequest, testing::ValuesIn(kMessagesToChat),
                         [](const auto& info) { return std::string(info.param.name); });

// ================================================================================================
// Untranslatable fields, each named
// ================================================================================================

struct RefusedCase {
  const char* name;
  Api from;
  const char* body;
  const char* param;
};

void PrintTo(const RefusedCase& c, std::ostream* os) {
  *os << c.name;
}

class Refused : public testing::TestWithParam<RefusedCase> {};

TEST_P(Refused, NamesTheField) {
  const RefusedCase& c = GetParam();
  const Api to = c.from == Api::kChat ? Api::kMessages : Api::kChat;
  auto r = translate_request(c.from, to, c.body, opts());
  ASSERT_TRUE(std::holds_alternative<Untranslatable>(r))
      << "translated: " << std::get<std::string>(r);
  const Untranslatable& u = std::get<Untranslatable>(r);
  EXPECT_EQ(u.param, c.param) << u.message;
  if (!u.param.empty()) {
    EXPECT_TRUE(u.message.starts_with(std::string(c.param) + ": ")) << u.message;
  }
  EXPECT_GT(u.message.size(), u.param.size() + 10) << u.message;
}

#define CHAT_BODY(extra) R"({"model":"m","messages":[{"role":"user","content":"x"}],)" extra "}"
#define MSG_BODY(extra) \
  R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],)" extra "}"

const RefusedCase kRefused[] = {
    {"n", Api::kChat, CHAT_BODY(R"("n":2)"), "n"},
    {"logprobs", Api::kChat, CHAT_BODY(R"("logprobs":true)"), "logprobs"},
    {"top_logprobs", Api::kChat, CHAT_BODY(R"("top_logprobs":3)"), "top_logprobs"},
    {"json_schema", Api::kChat,
     CHAT_BODY(
         R"("response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{}}})"),
     "response_format.type"},
    {"json_object", Api::kChat, CHAT_BODY(R"("response_format":{"type":"json_object"})"),
     "response_format.type"},
    {"audio", Api::kChat, CHAT_BODY(R"("audio":{"voice":"alloy","format":"mp3"})"), "audio"},
    {"modalities", Api::kChat, CHAT_BODY(R"("modalities":["text","audio"])"), "modalities"},
    {"seed", Api::kChat, CHAT_BODY(R"("seed":42)"), "seed"},
    {"presence_penalty", Api::kChat, CHAT_BODY(R"("presence_penalty":0.5)"), "presence_penalty"},
    {"frequency_penalty", Api::kChat, CHAT_BODY(R"("frequency_penalty":-1)"), "frequency_penalty"},
    {"logit_bias", Api::kChat, CHAT_BODY(R"("logit_bias":{"50256":-100})"), "logit_bias"},
    {"temperature_above_one", Api::kChat, CHAT_BODY(R"("temperature":1.5)"), "temperature"},
    {"temperature_not_number", Api::kChat, CHAT_BODY(R"("temperature":"hot")"), "temperature"},
    {"reasoning_effort", Api::kChat, CHAT_BODY(R"("reasoning_effort":"high")"), "reasoning_effort"},
    {"unknown_field", Api::kChat, CHAT_BODY(R"("frobnicate":true)"), "frobnicate"},
    {"functions", Api::kChat, CHAT_BODY(R"("functions":[{"name":"f"}])"), "functions"},
    {"service_tier_flex", Api::kChat, CHAT_BODY(R"("service_tier":"flex")"), "service_tier"},
    {"max_tokens_negative", Api::kChat, CHAT_BODY(R"("max_tokens":-1)"), "max_tokens"},
    {"max_completion_tokens_fraction", Api::kChat, CHAT_BODY(R"("max_completion_tokens":1.5)"),
     "max_completion_tokens"},
    {"custom_tool", Api::kChat, CHAT_BODY(R"("tools":[{"type":"custom","custom":{"name":"x"}}])"),
     "tools[0].type"},
    {"strict_tool", Api::kChat,
     CHAT_BODY(R"("tools":[{"type":"function","function":{"name":"f","strict":true}}])"),
     "tools[0].function.strict"},
    {"allowed_tools", Api::kChat,
     CHAT_BODY(
         R"("tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"allowed_tools"})"),
     "tool_choice.type"},
    {"input_audio", Api::kChat,
     R"({"messages":[{"role":"user","content":[{"type":"text","text":"x"},{"type":"input_audio","input_audio":{}}]}]})",
     "messages[0].content[1].type"},
    {"file_part", Api::kChat,
     R"({"messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"f"}}]}]})",
     "messages[0].content[0].type"},
    {"image_detail", Api::kChat,
     R"({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://e/x.png","detail":"high"}}]}]})",
     "messages[0].content[0].image_url.detail"},
    {"image_scheme", Api::kChat,
     R"({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"ftp://e/x.png"}}]}]})",
     "messages[0].content[0].image_url.url"},
    {"image_data_not_base64", Api::kChat,
     R"({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/svg+xml,<svg/>"}}]}]})",
     "messages[0].content[0].image_url.url"},
    {"role_function", Api::kChat, R"({"messages":[{"role":"function","name":"f","content":"x"}]})",
     "messages[0].name"},
    {"role_unknown", Api::kChat, R"({"messages":[{"role":"narrator","content":"x"}]})",
     "messages[0].role"},
    {"user_name", Api::kChat, R"({"messages":[{"role":"user","name":"bob","content":"x"}]})",
     "messages[0].name"},
    {"assistant_refusal", Api::kChat,
     R"({"messages":[{"role":"user","content":"x"},{"role":"assistant","content":null,"refusal":"no"}]})",
     "messages[1].refusal"},
    {"assistant_refusal_part", Api::kChat,
     R"({"messages":[{"role":"user","content":"x"},{"role":"assistant","content":[{"type":"refusal","refusal":"no"}]}]})",
     "messages[1].content[0].type"},
    {"arguments_not_json", Api::kChat,
     R"({"messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[
         {"id":"c","type":"function","function":{"name":"f","arguments":"{oops"}}]}]})",
     "messages[1].tool_calls[0].function.arguments"},
    {"tool_without_id", Api::kChat,
     R"({"messages":[{"role":"user","content":"x"},{"role":"tool","content":"r"}]})",
     "messages[1].tool_call_id"},
    {"no_messages", Api::kChat, R"({"model":"m"})", "messages"},
    {"messages_not_array", Api::kChat, R"({"messages":{}})", "messages"},
    {"not_json", Api::kChat, R"({"messages":)", ""},

    {"top_k", Api::kMessages, MSG_BODY(R"("top_k":40)"), "top_k"},
    {"thinking", Api::kMessages, MSG_BODY(R"("thinking":{"type":"enabled","budget_tokens":2048})"),
     "thinking"},
    {"metadata_other", Api::kMessages, MSG_BODY(R"("metadata":{"user_id":"u","tenant":"t"})"),
     "metadata.tenant"},
    {"server_tool", Api::kMessages,
     MSG_BODY(R"("tools":[{"type":"web_search_20250305","name":"web_search"}])"), "tools[0].type"},
    {"strict_tool_m", Api::kMessages,
     MSG_BODY(R"("tools":[{"name":"f","input_schema":{"type":"object"},"strict":true}])"),
     "tools[0].strict"},
    {"tool_without_schema", Api::kMessages, MSG_BODY(R"("tools":[{"name":"f"}])"),
     "tools[0].input_schema"},
    {"tool_choice_unknown", Api::kMessages, MSG_BODY(R"("tool_choice":{"type":"sometimes"})"),
     "tool_choice.type"},
    {"container", Api::kMessages, MSG_BODY(R"("container":"c1")"), "container"},
    {"mcp_servers", Api::kMessages, MSG_BODY(R"("mcp_servers":[])"), "mcp_servers"},
    {"service_tier_priority", Api::kMessages, MSG_BODY(R"("service_tier":"priority")"),
     "service_tier"},
    {"document", Api::kMessages,
     R"({"max_tokens":5,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"text","data":"x"}}]}]})",
     "messages[0].content[0].type"},
    {"image_file_source", Api::kMessages,
     R"({"max_tokens":5,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"f"}}]}]})",
     "messages[0].content[0].source.type"},
    {"tool_result_error", Api::kMessages,
     R"({"max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","is_error":true,"content":"boom"}]}]})",
     "messages[0].content[0].is_error"},
    {"tool_result_image", Api::kMessages,
     R"({"max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[
         {"type":"image","source":{"type":"url","url":"https://e/x.png"}}]}]}]})",
     "messages[0].content[0].content[0].type"},
    {"thinking_block", Api::kMessages,
     R"({"max_tokens":5,"messages":[{"role":"user","content":"x"},{"role":"assistant","content":[
         {"type":"thinking","thinking":"hmm","signature":"s"},{"type":"text","text":"y"}]}]})",
     "messages[1].content[0].type"},
    {"tool_use_in_user", Api::kMessages,
     R"({"max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_use","id":"t","name":"f","input":{}}]}]})",
     "messages[0].content[0].type"},
    {"system_role", Api::kMessages,
     R"({"max_tokens":5,"messages":[{"role":"system","content":"x"}]})", "messages[0].role"},
    {"system_image_block", Api::kMessages,
     R"({"max_tokens":5,"system":[{"type":"image"}],"messages":[{"role":"user","content":"x"}]})",
     "system[0].type"},
    {"max_tokens_zero", Api::kMessages,
     R"({"max_tokens":0,"messages":[{"role":"user","content":"x"}]})", "max_tokens"},
    {"content_missing", Api::kMessages, R"({"max_tokens":5,"messages":[{"role":"user"}]})",
     "messages[0].content"},
    {"not_object", Api::kMessages, R"([1,2])", ""},
};

INSTANTIATE_TEST_SUITE_P(Table, Refused, testing::ValuesIn(kRefused),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Refusal, MessageSaysWhy) {
  auto r = translate_request(Api::kChat, Api::kMessages, CHAT_BODY(R"("n":3)"), opts());
  ASSERT_TRUE(std::holds_alternative<Untranslatable>(r));
  EXPECT_EQ(std::get<Untranslatable>(r).message,
            "n: only n=1 can be translated to an Anthropic model");
  r = translate_request(Api::kChat, Api::kMessages, CHAT_BODY(R"("temperature":1.2)"), opts());
  ASSERT_TRUE(std::holds_alternative<Untranslatable>(r));
  EXPECT_NE(std::get<Untranslatable>(r).message.find("1.2 is above 1.0"), std::string::npos)
      << std::get<Untranslatable>(r).message;
}

// ================================================================================================
// Round trips
// ================================================================================================

// A Messages request survives Messages -> Chat -> Messages exactly (with the upstream model).
TEST(RoundTrip, MessagesThroughChatIsIdentity) {
  const char* requests[] = {
      R"({"model":"up-model","max_tokens":77,"messages":[{"role":"user","content":"Hi"}]})",
      R"({"model":"up-model","max_tokens":77,"system":"Be brief","temperature":0.3,"top_p":0.8,
          "stop_sequences":["X","Y"],"stream":true,"metadata":{"user_id":"u"},
          "messages":[{"role":"user","content":[{"type":"text","text":"a"},
            {"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}}]}]})",
      R"({"model":"up-model","max_tokens":77,"system":[{"type":"text","text":"S1"},{"type":"text","text":"S2"}],
          "tools":[{"name":"f","description":"d","input_schema":{"type":"object","properties":{"a":{"type":"integer"}}}}],
          "tool_choice":{"type":"tool","name":"f","disable_parallel_tool_use":true},
          "messages":[{"role":"user","content":"go"},
            {"role":"assistant","content":[{"type":"text","text":"ok"},{"type":"tool_use","id":"t1","name":"f","input":{"a":1}},
              {"type":"tool_use","id":"t2","name":"f","input":{"a":2}}]},
            {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"one"},
              {"type":"tool_result","tool_use_id":"t2","content":[{"type":"text","text":"two"}]},
              {"type":"text","text":"and?"}]},
            {"role":"assistant","content":"done"}]})",
  };
  for (const char* r : requests) {
    SCOPED_TRACE(r);
    const json::value chat = translated(Api::kMessages, Api::kChat, r);
    const json::value back = translated(Api::kChat, Api::kMessages, text_of(chat));
    EXPECT_EQ(back, parsed(r)) << "via " << text_of(chat) << "\nback " << text_of(back);
  }
}

// Chat -> Messages -> Chat keeps the meaning: the second trip changes nothing more, and the
// fields that have one spelling only come back as written.
TEST(RoundTrip, ChatThroughMessagesKeepsMeaning) {
  const char* request = R"({"model":"gpt","max_completion_tokens":50,"temperature":0.5,"stop":["Z"],
      "stream":true,"stream_options":{"include_usage":true},"user":"u","parallel_tool_calls":false,
      "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":"required",
      "messages":[{"role":"system","content":"sys"},{"role":"user","content":"q"},
        {"role":"assistant","content":"c","tool_calls":[{"id":"x","type":"function","function":{"name":"f","arguments":"{\"k\":[1,2]}"}}]},
        {"role":"tool","tool_call_id":"x","content":"r"}]})";
  const json::value chat1 = translated(Api::kMessages, Api::kChat,
                                       text_of(translated(Api::kChat, Api::kMessages, request)));
  const json::value expected =
      parsed(R"({"model":"up-model","max_completion_tokens":50,"temperature":0.5,"stop":["Z"],
      "stream":true,"stream_options":{"include_usage":true},"user":"u","parallel_tool_calls":false,
      "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":"required",
      "messages":[{"role":"system","content":"sys"},{"role":"user","content":"q"},
        {"role":"assistant","content":"c","tool_calls":[{"id":"x","type":"function","function":{"name":"f","arguments":"{\"k\":[1,2]}"}}]},
        {"role":"tool","tool_call_id":"x","content":"r"}]})");
  EXPECT_EQ(chat1, expected) << text_of(chat1);
  const json::value chat2 = translated(
      Api::kMessages, Api::kChat, text_of(translated(Api::kChat, Api::kMessages, text_of(chat1))));
  EXPECT_EQ(chat2, chat1);
}

TEST(RoundTrip, NumbersKeepTheirValue) {
  const json::value out = translated(
      Api::kChat, Api::kMessages,
      R"({"messages":[{"role":"user","content":"x"}],"temperature":0.1,"top_p":0.3333333333333333,"max_tokens":18446744073709551615})");
  EXPECT_EQ(out.at("temperature").as_double(), 0.1);
  EXPECT_EQ(out.at("top_p").as_double(), 0.3333333333333333);
  EXPECT_EQ(out.at("max_tokens").as_uint64(), 18446744073709551615ull);
}

TEST(SameApi, OnlyTheModelChanges) {
  const json::value out =
      translated(Api::kChat, Api::kChat, R"({"model":"a","messages":[],"n":4,"seed":1})");
  EXPECT_EQ(out, parsed(R"({"model":"up-model","messages":[],"n":4,"seed":1})"));
}

// ================================================================================================
// Answers
// ================================================================================================

json::value answer(Api from, Api to, std::string_view body, std::string_view model = "client-m") {
  const std::optional<std::string> r = translate_response(from, to, body, model);
  if (!r) {
    ADD_FAILURE() << "not translated: " << body;
    return nullptr;
  }
  return parsed(*r);
}

// The body with "created" checked to be now-ish and removed.
json::value without_created(json::value v) {
  if (!v.is_object()) return v;
  const json::value* created = v.get_object().if_contains("created");
  EXPECT_TRUE(created != nullptr && created->is_int64()) << text_of(v);
  if (created != nullptr && created->is_int64()) {
    EXPECT_LE(std::abs(created->get_int64() - static_cast<int64_t>(std::time(nullptr))), 5);
  }
  v.get_object().erase("created");
  return v;
}

TEST(Answer, MessageToChatCompletion) {
  const json::value out = without_created(answer(Api::kMessages, Api::kChat, R"({
      "id":"msg_01ABC","type":"message","role":"assistant","model":"claude-x",
      "content":[{"type":"text","text":"Let me "},{"type":"text","text":"check."},
        {"type":"tool_use","id":"toolu_1","name":"weather","input":{"city":"Paris","days":2}}],
      "stop_reason":"tool_use","stop_sequence":null,
      "usage":{"input_tokens":10,"cache_read_input_tokens":100,"cache_creation_input_tokens":5,"output_tokens":7}})"));
  EXPECT_EQ(out, parsed(R"({"id":"chatcmpl-01ABC","object":"chat.completion","model":"client-m",
      "choices":[{"index":0,"message":{"role":"assistant","content":"Let me check.","refusal":null,
        "tool_calls":[{"id":"toolu_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\",\"days\":2}"}}]},
        "logprobs":null,"finish_reason":"tool_calls"}],
      "usage":{"prompt_tokens":115,"completion_tokens":7,"total_tokens":122,"prompt_tokens_details":{"cached_tokens":100}}})"))
      << text_of(out);
}

TEST(Answer, MessageWithOnlyToolUseHasNullContent) {
  const json::value out =
      answer(Api::kMessages, Api::kChat, R"({"id":"msg_1","type":"message","content":[
      {"type":"tool_use","id":"t","name":"f","input":{}}],"stop_reason":"tool_use","usage":{"input_tokens":1,"output_tokens":2}})");
  EXPECT_TRUE(out.at("choices").at(0).at("message").at("content").is_null());
  EXPECT_EQ(
      out.at("choices").at(0).at("message").at("tool_calls").at(0).at("function").at("arguments"),
      "{}");
}

struct ReasonCase {
  const char* from;
  const char* to;
};

TEST(Answer, StopReasonsToFinishReasons) {
  const ReasonCase cases[] = {{"end_turn", "stop"},
                              {"stop_sequence", "stop"},
                              {"max_tokens", "length"},
                              {"tool_use", "tool_calls"},
                              {"refusal", "content_filter"},
                              {"pause_turn", "stop"},
                              {"model_context_window_exceeded", "length"}};
  for (const ReasonCase& c : cases) {
    const std::string body =
        std::string(R"({"id":"msg_1","type":"message","content":[],"stop_reason":")") + c.from +
        R"(","usage":{"input_tokens":1,"output_tokens":1}})";
    EXPECT_EQ(answer(Api::kMessages, Api::kChat, body).at("choices").at(0).at("finish_reason"),
              c.to)
        << c.from;
  }
}

TEST(Answer, FinishReasonsToStopReasons) {
  const ReasonCase cases[] = {{"stop", "end_turn"},
                              {"length", "max_tokens"},
                              {"tool_calls", "tool_use"},
                              {"function_call", "tool_use"},
                              {"content_filter", "refusal"}};
  for (const ReasonCase& c : cases) {
    const std::string body =
        std::string(
            R"({"id":"chatcmpl-1","choices":[{"index":0,"message":{"role":"assistant","content":"x"},"finish_reason":")") +
        c.from + R"("}]})";
    const json::value out = answer(Api::kChat, Api::kMessages, body);
    EXPECT_EQ(out.at("stop_reason"), c.to) << c.from;
    EXPECT_TRUE(out.at("stop_sequence").is_null());
  }
}

TEST(Answer, ChatCompletionToMessage) {
  const json::value out = answer(Api::kChat, Api::kMessages, R"({
      "id":"chatcmpl-XYZ","object":"chat.completion","created":1,"model":"gpt-4o","system_fingerprint":"fp",
      "choices":[{"index":0,"message":{"role":"assistant","content":"Sure.","refusal":null,"tool_calls":[
        {"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":[1,{\"b\":null}]}"}},
        {"id":"call_2","type":"function","function":{"name":"g","arguments":""}},
        {"id":"call_3","type":"function","function":{"name":"h","arguments":"{broken"}}]},
        "logprobs":null,"finish_reason":"tool_calls"}],
      "usage":{"prompt_tokens":120,"completion_tokens":9,"total_tokens":129,"prompt_tokens_details":{"cached_tokens":100}}})");
  EXPECT_EQ(out, parsed(R"({"id":"msg_XYZ","type":"message","role":"assistant","model":"client-m",
      "content":[{"type":"text","text":"Sure."},
        {"type":"tool_use","id":"call_1","name":"f","input":{"a":[1,{"b":null}]}},
        {"type":"tool_use","id":"call_2","name":"g","input":{}},
        {"type":"tool_use","id":"call_3","name":"h","input":"{broken"}],
      "stop_reason":"tool_use","stop_sequence":null,
      "usage":{"input_tokens":20,"output_tokens":9,"cache_read_input_tokens":100}})"))
      << text_of(out);
}

TEST(Answer, RefusalBecomesTextWithRefusalStop) {
  const json::value out =
      answer(Api::kChat, Api::kMessages, R"({"id":"chatcmpl-1","choices":[{"index":0,
      "message":{"role":"assistant","content":null,"refusal":"I can't help with that."},"finish_reason":"stop"}]})");
  EXPECT_EQ(out.at("content"), parsed(R"([{"type":"text","text":"I can't help with that."}])"));
  EXPECT_EQ(out.at("stop_reason"), "refusal");
  EXPECT_EQ(out.at("usage"), parsed(R"({"input_tokens":0,"output_tokens":0})"));
}

TEST(Answer, IdsWithoutKnownPrefixOrMissing) {
  EXPECT_EQ(
      answer(Api::kChat, Api::kMessages,
             R"({"id":"gen-42","choices":[{"message":{"content":"x"},"finish_reason":"stop"}]})")
          .at("id"),
      "msg_gen-42");
  const json::value fresh =
      answer(Api::kChat, Api::kMessages,
             R"({"choices":[{"message":{"content":"x"},"finish_reason":"stop"}]})");
  const std::string id(fresh.at("id").as_string());
  EXPECT_TRUE(id.starts_with("msg_") && id.size() > 10) << id;
}

TEST(Answer, RoundTripMessageThroughChat) {
  const char* body = R"({"id":"msg_01RT","type":"message","role":"assistant","model":"client-m",
      "content":[{"type":"text","text":"Hello"},{"type":"tool_use","id":"toolu_9","name":"f","input":{"x":1.25}}],
      "stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":30,"output_tokens":4,"cache_read_input_tokens":12}})";
  const std::optional<std::string> chat = translate_response(Api::kMessages, Api::kChat, body, "c");
  ASSERT_TRUE(chat);
  EXPECT_EQ(answer(Api::kChat, Api::kMessages, *chat), parsed(body));
}

TEST(Answer, NotAnAnswer) {
  for (const char* body : {"", "nope", "[]", R"({"type":"message"})",
                           R"({"type":"error","content":[]})", R"({"content":[1]})"}) {
    EXPECT_FALSE(translate_response(Api::kMessages, Api::kChat, body, "m")) << body;
  }
  for (const char* body : {"", "{}", R"({"choices":[]})", R"({"choices":[{"index":0}]})",
                           R"({"choices":[{"message":{"tool_calls":7}}]})"}) {
    EXPECT_FALSE(translate_response(Api::kChat, Api::kMessages, body, "m")) << body;
  }
}

// ================================================================================================
// Errors
// ================================================================================================

TEST(Error, AnthropicBodyToOpenAI) {
  EXPECT_EQ(
      parsed(translate_error(
          Api::kChat, 429,
          R"({"type":"error","error":{"type":"rate_limit_error","message":"Slow down"}})")),
      parsed(
          R"({"error":{"message":"Slow down","type":"rate_limit_error","code":"rate_limit_error","param":null}})"));
  EXPECT_EQ(
      parsed(translate_error(
          Api::kChat, 529,
          R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})")),
      parsed(
          R"({"error":{"message":"Overloaded","type":"api_error","code":"overloaded_error","param":null}})"));
}

TEST(Error, OpenAIBodyToAnthropic) {
  EXPECT_EQ(
      parsed(translate_error(
          Api::kMessages, 400,
          R"({"error":{"message":"Bad thing","type":"invalid_request_error","param":"messages","code":null}})")),
      parsed(R"({"type":"error","error":{"type":"invalid_request_error","message":"Bad thing"}})"));
  // OpenAI-shaped bodies to OpenAI keep code and param.
  EXPECT_EQ(
      parsed(translate_error(
          Api::kChat, 404,
          R"({"error":{"message":"No model","type":"invalid_request_error","param":"model","code":"model_not_found"}})")),
      parsed(
          R"({"error":{"message":"No model","type":"not_found_error","code":"model_not_found","param":"model"}})"));
}

// A raw body that is not UTF-8 still gives a JSON (so UTF-8) error: bad bytes become U+FFFD,
// and the 1 KiB cut never splits a character. Found by fuzz_translate.
TEST(Error, RawBodyThatIsNotUtf8) {
  const json::value v = parsed(translate_error(Api::kChat, 502, "bad \x9d byte \xE2\x82"));
  EXPECT_EQ(v.at("error").at("message"),
            json::value("bad \xEF\xBF\xBD byte \xEF\xBF\xBD\xEF\xBF\xBD"));
  std::string euros;
  for (int i = 0; i < 400; ++i) euros += "\xE2\x82\xAC";  // 3 bytes each
  const json::value cut = parsed(translate_error(Api::kMessages, 500, euros));
  EXPECT_EQ(cut.at("error").at("message").as_string().size(), 1023u);
  // Overlong forms and surrogates are not well-formed either.
  EXPECT_EQ(
      parsed(translate_error(Api::kChat, 500, "\xC0\xAF\xED\xA0\x80")).at("error").at("message"),
      json::value("\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"));
}

TEST(Error, TypeByStatus) {
  struct Case {
    int status;
    const char* anthropic;
    const char* openai;
  };
  const Case cases[] = {{400, "invalid_request_error", "invalid_request_error"},
                        {401, "authentication_error", "authentication_error"},
                        {403, "permission_error", "permission_error"},
                        {404, "not_found_error", "not_found_error"},
                        {413, "request_too_large", "invalid_request_error"},
                        {422, "invalid_request_error", "invalid_request_error"},
                        {429, "rate_limit_error", "rate_limit_error"},
                        {500, "api_error", "api_error"},
                        {503, "overloaded_error", "api_error"},
                        {529, "overloaded_error", "api_error"}};
  for (const Case& c : cases) {
    EXPECT_EQ(parsed(translate_error(Api::kMessages, c.status, "{}")).at("error").at("type"),
              c.anthropic)
        << c.status;
    EXPECT_EQ(parsed(translate_error(Api::kChat, c.status, "{}")).at("error").at("type"), c.openai)
        << c.status;
  }
}

TEST(Error, BodiesThatAreNotErrorShapes) {
  EXPECT_EQ(
      parsed(translate_error(Api::kMessages, 502, "upstream exploded")).at("error").at("message"),
      "upstream exploded");
  EXPECT_EQ(parsed(translate_error(Api::kChat, 502, "")).at("error").at("message"),
            "the provider answered HTTP 502");
  EXPECT_EQ(parsed(translate_error(Api::kChat, 400, R"({"error":"plain string"})"))
                .at("error")
                .at("message"),
            "plain string");
  EXPECT_EQ(parsed(translate_error(Api::kMessages, 400, R"({"message":"top level"})"))
                .at("error")
                .at("message"),
            "top level");
  const std::string huge(100000, 'x');
  EXPECT_LT(translate_error(Api::kChat, 500, huge).size(), 2000u);
  // Control characters in a raw body are escaped, so the result is always JSON.
  EXPECT_EQ(parsed(translate_error(Api::kChat, 500, "a\n\"b\"\x01")).at("error").at("message"),
            "a\n\"b\"\x01");
}

// ================================================================================================
// Streams
// ================================================================================================

Events events_of(std::string_view wire) {
  cache::SseSplitter s;
  Events out;
  s.feed(wire, out);
  EXPECT_EQ(s.pending_bytes(), 0u) << "fixture does not end with a blank line";
  return out;
}

// Feeds the events one at a time, checking finished() turns true exactly at the end.
Events translate_stream(Api from, Api to, const Events& in, bool include_usage) {
  StreamTranslator t(from, to, "client-m", include_usage);
  Events out;
  for (const std::string& e : in) {
    EXPECT_FALSE(t.finished()) << "finished before " << e;
    t.feed(e, out);
  }
  return out;
}

std::vector<json::object> data_objects(const Events& events) {
  std::vector<json::object> out;
  for (const std::string& e : events) {
    const std::string data = cache::event_data(e);
    if (data == "[DONE]") continue;
    json::value v = parsed(data);
    EXPECT_TRUE(v.is_object()) << e;
    if (v.is_object()) out.push_back(v.get_object());
  }
  return out;
}

// A Messages stream with text, a ping, a tool call whose input is split over many deltas,
// and usage in message_start and message_delta.
constexpr std::string_view kMessagesStream =
    "event: message_start\n"
    R"(data: {"type":"message_start","message":{"id":"msg_01S","type":"message","role":"assistant","content":[],"model":"claude-x","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_read_input_tokens":3,"output_tokens":1}}})"
    "\n\n"
    "event: content_block_start\n"
    R"(data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})"
    "\n\n"
    "event: ping\ndata: {\"type\": \"ping\"}\n\n"
    "event: content_block_delta\n"
    R"(data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let me "}})"
    "\n\n"
    "event: content_block_delta\n"
    R"(data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"look."}})"
    "\n\n"
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
    "event: content_block_start\n"
    R"(data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_A","name":"weather","input":{}}})"
    "\n\n"
    "event: content_block_delta\n"
    R"(data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}})"
    "\n\n"
    "event: content_block_delta\n"
    R"(data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"ci"}})"
    "\n\n"
    "event: content_block_delta\n"
    R"(data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ty\": \"Par"}})"
    "\n\n"
    "event: content_block_delta\n"
    R"(data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"is\"}"}})"
    "\n\n"
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n"
    "event: content_block_start\n"
    R"(data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_B","name":"time","input":{}}})"
    "\n\n"
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":2}\n\n"
    "event: message_delta\n"
    R"(data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":42}})"
    "\n\n"
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

// Tool-call arguments compared as parsed JSON (a provider's spacing is its own).
json::value normalized_arguments(json::value body) {
  if (!body.is_object()) return body;
  json::value* choices = body.get_object().if_contains("choices");
  if (choices == nullptr || !choices->is_array()) return body;
  for (json::value& c : choices->get_array()) {
    json::value* calls = c.get_object()["message"].get_object().if_contains("tool_calls");
    if (calls == nullptr) continue;
    for (json::value& call : calls->get_array()) {
      json::value& args = call.get_object()["function"].get_object()["arguments"];
      args = parsed(args.as_string());
    }
  }
  return body;
}

TEST(StreamMessagesToChat, ChunksAsTheSdkAccumulatesThem) {
  const Events out = translate_stream(Api::kMessages, Api::kChat, events_of(kMessagesStream), true);
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out.back(), "data: [DONE]");
  const std::vector<json::object> chunks = data_objects(out);
  // role, 2 texts, tool A start, 3 argument pieces, tool B start, B's "{}", finish, usage
  ASSERT_EQ(chunks.size(), 11u) << cache::frame_events(out);
  for (const json::object& c : chunks) {
    EXPECT_EQ(c.at("id"), "chatcmpl-01S");
    EXPECT_EQ(c.at("object"), "chat.completion.chunk");
    EXPECT_TRUE(c.at("created").is_int64());
    EXPECT_EQ(c.at("model"), "client-m");
    EXPECT_TRUE(c.contains("usage"));
  }
  for (std::size_t i = 0; i + 1 < chunks.size(); ++i) {
    const json::array& choices = chunks[i].at("choices").as_array();
    ASSERT_EQ(choices.size(), 1u);
    EXPECT_EQ(choices[0].at("index"), 0);
    EXPECT_TRUE(choices[0].at("logprobs").is_null());
    EXPECT_TRUE(choices[0].as_object().contains("delta"));
    EXPECT_TRUE(chunks[i].at("usage").is_null());
  }
  EXPECT_EQ(json::value(chunks[0].at("choices").at(0).at("delta")),
            parsed(R"({"role":"assistant","content":"","refusal":null})"));
  EXPECT_EQ(
      json::value(chunks[3].at("choices").at(0).at("delta")),
      parsed(
          R"({"tool_calls":[{"index":0,"id":"toolu_A","type":"function","function":{"name":"weather","arguments":""}}]})"));
  EXPECT_EQ(json::value(chunks[5].at("choices").at(0).at("delta")),
            parsed(R"({"tool_calls":[{"index":0,"function":{"arguments":"ty\": \"Par"}}]})"));
  EXPECT_EQ(chunks[7].at("choices").at(0).at("delta").at("tool_calls").at(0).at("index"), 1);
  EXPECT_EQ(json::value(chunks[8].at("choices").at(0).at("delta")),
            parsed(R"({"tool_calls":[{"index":1,"function":{"arguments":"{}"}}]})"));
  EXPECT_EQ(chunks[9].at("choices").at(0).at("finish_reason"), "tool_calls");
  EXPECT_TRUE(chunks[10].at("choices").as_array().empty());
  EXPECT_EQ(
      json::value(chunks[10].at("usage")),
      parsed(
          R"({"prompt_tokens":28,"completion_tokens":42,"total_tokens":70,"prompt_tokens_details":{"cached_tokens":3}})"));

  // Cross-check: assembling the translated stream = translating the assembled source.
  const std::optional<std::string> assembled = cache::assemble_chat_completion(out);
  ASSERT_TRUE(assembled) << cache::frame_events(out);
  const std::optional<std::string> source = cache::assemble_message(events_of(kMessagesStream));
  ASSERT_TRUE(source);
  EXPECT_EQ(normalized_arguments(without_created(parsed(*assembled))),
            normalized_arguments(without_created(answer(Api::kMessages, Api::kChat, *source))))
      << *assembled;
}

TEST(StreamMessagesToChat, WithoutUsage) {
  const Events out =
      translate_stream(Api::kMessages, Api::kChat, events_of(kMessagesStream), false);
  const std::vector<json::object> chunks = data_objects(out);
  ASSERT_EQ(chunks.size(), 10u);
  for (const json::object& c : chunks) {
    EXPECT_FALSE(c.contains("usage")) << json::serialize(c);
    EXPECT_EQ(c.at("choices").as_array().size(), 1u);
  }
  const std::optional<std::string> assembled = cache::assemble_chat_completion(out);
  ASSERT_TRUE(assembled);
  EXPECT_FALSE(parsed(*assembled).as_object().contains("usage"));
}

TEST(StreamMessagesToChat, PingsAndCommentsProduceNothing) {
  StreamTranslator t(Api::kMessages, Api::kChat, "m", true);
  Events out;
  t.feed("event: ping\ndata: {\"type\": \"ping\"}", out);
  t.feed(": keep-alive", out);
  t.feed("data: not json", out);
  EXPECT_TRUE(out.empty());
  EXPECT_FALSE(t.finished());
}

TEST(StreamMessagesToChat, ErrorEventEndsTheStream) {
  StreamTranslator t(Api::kMessages, Api::kChat, "m", true);
  Events out;
  for (const std::string& e :
       events_of(kMessagesStream.substr(0, kMessagesStream.find("event: ping")))) {
    t.feed(e, out);
  }
  const std::size_t before = out.size();
  t.feed(
      "event: error\ndata: "
      "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}",
      out);
  ASSERT_EQ(out.size(), before + 2);
  EXPECT_EQ(
      parsed(cache::event_data(out[before])),
      parsed(
          R"({"error":{"message":"Overloaded","type":"api_error","code":"overloaded_error","param":null}})"));
  EXPECT_EQ(out.back(), "data: [DONE]");
  EXPECT_TRUE(t.finished());
  t.feed("event: message_stop\ndata: {\"type\":\"message_stop\"}", out);
  EXPECT_EQ(out.size(), before + 2) << "nothing after the end";
  EXPECT_FALSE(cache::assemble_chat_completion(out)) << "an error stream does not assemble";
}

TEST(StreamMessagesToChat, StopReasons) {
  for (const ReasonCase& c :
       {ReasonCase{"end_turn", "stop"}, ReasonCase{"max_tokens", "length"},
        ReasonCase{"stop_sequence", "stop"}, ReasonCase{"refusal", "content_filter"}}) {
    StreamTranslator t(Api::kMessages, Api::kChat, "m", false);
    Events out;
    t.feed(std::string("event: message_delta\ndata: "
                       "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"") +
               c.from + "\"},\"usage\":{\"output_tokens\":1}}",
           out);
    ASSERT_EQ(out.size(), 2u);  // role chunk (no message_start came), finish chunk
    EXPECT_EQ(parsed(cache::event_data(out[1])).at("choices").at(0).at("finish_reason"), c.to);
  }
}

// A Chat stream: role chunk, content, two tool calls streamed OpenAI's way (id and name
// first, then argument pieces), the finish chunk, the usage chunk, [DONE].
constexpr std::string_view kChatStream =
    R"(data: {"id":"chatcmpl-77","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null})"
    "\n\n"
    R"(data: {"id":"chatcmpl-77","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"On "},"logprobs":null,"finish_reason":null}],"usage":null})"
    "\n\n"
    R"(data: {"id":"chatcmpl-77","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"it."},"logprobs":null,"finish_reason":null}],"usage":null})"
    "\n\n"
    R"(data: {"id":"chatcmpl-77","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_A","type":"function","function":{"name":"weather","arguments":""}}]},"logprobs":null,"finish_reason":null}],"usage":null})"
    "\n\n"
    R"(data: {"id":"chatcmpl-77","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"ci"}}]},"logprobs":null,"finish_reason":null}],"usage":null})"
    "\n\n"
    R"(data: {"id":"chatcmpl-77","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ty\":\"Rome\"}"}}]},"logprobs":null,"finish_reason":null}],"usage":null})"
    "\n\n"
    R"(data: {"id":"chatcmpl-77","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_B","type":"function","function":{"name":"time","arguments":"{}"}}]},"logprobs":null,"finish_reason":null}],"usage":null})"
    "\n\n"
    R"(data: {"id":"chatcmpl-77","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}],"usage":null})"
    "\n\n"
    R"(data: {"id":"chatcmpl-77","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":50,"completion_tokens":20,"total_tokens":70,"prompt_tokens_details":{"cached_tokens":10}}})"
    "\n\n"
    "data: [DONE]\n\n";

std::vector<std::string> names_of(const Events& events) {
  std::vector<std::string> out;
  for (const std::string& e : events) out.emplace_back(cache::event_type(e));
  return out;
}

TEST(StreamChatToMessages, EventsAsTheSdkAccumulatesThem) {
  const Events out = translate_stream(Api::kChat, Api::kMessages, events_of(kChatStream), true);
  const std::vector<std::string> expected_names = {
      "message_start",      "content_block_start", "content_block_delta", "content_block_delta",
      "content_block_stop", "content_block_start", "content_block_delta", "content_block_delta",
      "content_block_stop", "content_block_start", "content_block_delta", "content_block_stop",
      "message_delta",      "message_stop"};
  EXPECT_EQ(names_of(out), expected_names) << cache::frame_events(out);
  const std::vector<json::object> events = data_objects(out);
  ASSERT_EQ(events.size(), expected_names.size());
  for (std::size_t i = 0; i < events.size(); ++i)
    EXPECT_EQ(events[i].at("type"), json::value(expected_names[i]));
  EXPECT_EQ(
      json::value(events[0]),
      parsed(
          R"({"type":"message_start","message":{"id":"msg_77","type":"message","role":"assistant","content":[],
                "model":"client-m","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0}}})"));
  EXPECT_EQ(
      json::value(events[1]),
      parsed(
          R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})"));
  EXPECT_EQ(
      json::value(events[2]),
      parsed(
          R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"On "}})"));
  EXPECT_EQ(
      json::value(events[5]),
      parsed(
          R"({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"call_A","name":"weather","input":{}}})"));
  EXPECT_EQ(
      json::value(events[7]),
      parsed(
          R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ty\":\"Rome\"}"}})"));
  EXPECT_EQ(events[11].at("index"), 2);
  EXPECT_EQ(
      json::value(events[12]),
      parsed(R"({"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},
                "usage":{"input_tokens":40,"output_tokens":20,"cache_read_input_tokens":10}})"));

  const std::optional<std::string> assembled = cache::assemble_message(out);
  ASSERT_TRUE(assembled) << cache::frame_events(out);
  const std::optional<std::string> source = cache::assemble_chat_completion(events_of(kChatStream));
  ASSERT_TRUE(source);
  EXPECT_EQ(parsed(*assembled), answer(Api::kChat, Api::kMessages, *source)) << *assembled;
}

TEST(StreamChatToMessages, ErrorChunk) {
  StreamTranslator t(Api::kChat, Api::kMessages, "m", true);
  Events out;
  t.feed(R"(data: {"error":{"message":"Rate limited","type":"rate_limit_error","code":null}})",
         out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(cache::event_type(out[0]), "error");
  EXPECT_EQ(
      parsed(cache::event_data(out[0])),
      parsed(R"({"type":"error","error":{"type":"rate_limit_error","message":"Rate limited"}})"));
  EXPECT_TRUE(t.finished());
  t.feed("data: [DONE]", out);
  EXPECT_EQ(out.size(), 1u);
}

TEST(StreamChatToMessages, EmptyStreamStillWellFormed) {
  const Events out =
      translate_stream(Api::kChat, Api::kMessages, {": comment", "data: [DONE]"}, true);
  EXPECT_EQ(names_of(out),
            (std::vector<std::string>{"message_start", "message_delta", "message_stop"}));
  const std::optional<std::string> assembled = cache::assemble_message(out);
  ASSERT_TRUE(assembled);
  EXPECT_EQ(parsed(*assembled).at("content"), json::array());
}

TEST(StreamChatToMessages, TextAfterToolOpensANewBlockAndLatePiecesAreNotMisplaced) {
  const Events in = {
      R"(data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"{"}}]}}]})",
      R"(data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"b","function":{"name":"g","arguments":"{}"}}]}}]})",
      R"(data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"}"}}]}}]})",
      R"(data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":"after"}},{"index":1,"delta":{"content":"other choice"}}]})",
      R"(data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})",
      "data: [DONE]"};
  const Events out = translate_stream(Api::kChat, Api::kMessages, in, true);
  std::string all = cache::frame_events(out);
  EXPECT_EQ(all.find("other choice"), std::string::npos);
  // The piece for the closed block 0 is not put into block 1.
  for (const json::object& e : data_objects(out)) {
    if (e.at("type") == "content_block_delta" && e.at("index") == 1) {
      EXPECT_EQ(e.at("delta").at("partial_json"), "{}");
    }
  }
  // start, "{" for call a; stop a, start b, "{}"; the late "}" for a is not placeable; stop b,
  // start text, "after", stop; message_delta, message_stop.
  EXPECT_EQ(names_of(out).size(), 12u) << all;
  EXPECT_EQ(all.find("\"}\""), std::string::npos) << all;
}

// Both directions over bodies synthesized by cache/replay.h: translating the stream then
// assembling equals assembling then translating.
TEST(StreamCrossCheck, SynthesizedMessagesBodies) {
  const char* bodies[] = {
      R"({"id":"msg_1","type":"message","role":"assistant","model":"x","content":[{"type":"text","text":"Hello there"}],
          "stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":2}})",
      R"({"id":"msg_2","type":"message","role":"assistant","model":"x","content":[],
          "stop_reason":"max_tokens","stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":0}})",
      R"({"id":"msg_3","type":"message","role":"assistant","model":"x","content":[
          {"type":"thinking","thinking":"hmm","signature":"sig"},{"type":"text","text":"A"},
          {"type":"tool_use","id":"t1","name":"f","input":{"deep":{"list":[1,2.5,"x",null,true]}}},
          {"type":"tool_use","id":"t2","name":"g","input":{}}],
          "stop_reason":"tool_use","stop_sequence":null,
          "usage":{"input_tokens":9,"cache_creation_input_tokens":4,"cache_read_input_tokens":2,"output_tokens":11}})",
  };
  for (const char* body : bodies) {
    SCOPED_TRACE(body);
    const Events source = cache::synthesize_message_events(body);
    ASSERT_FALSE(source.empty());
    const Events out = translate_stream(Api::kMessages, Api::kChat, source, true);
    const std::optional<std::string> assembled = cache::assemble_chat_completion(out);
    ASSERT_TRUE(assembled) << cache::frame_events(out);
    EXPECT_EQ(without_created(parsed(*assembled)),
              without_created(answer(Api::kMessages, Api::kChat, body)));
  }
}

TEST(StreamCrossCheck, SynthesizedChatBodies) {
  const char* bodies[] = {
      R"({"id":"chatcmpl-1","object":"chat.completion","created":5,"model":"g","choices":[{"index":0,
          "message":{"role":"assistant","content":"Hi!","refusal":null},"logprobs":null,"finish_reason":"stop"}],
          "usage":{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6}})",
      R"({"id":"chatcmpl-2","object":"chat.completion","created":5,"model":"g","choices":[{"index":0,
          "message":{"role":"assistant","content":"Calling","tool_calls":[
            {"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}},
            {"id":"c2","type":"function","function":{"name":"g","arguments":"{\"b\":[true]}"}}]},
          "logprobs":null,"finish_reason":"tool_calls"}],
          "usage":{"prompt_tokens":40,"completion_tokens":12,"total_tokens":52,"prompt_tokens_details":{"cached_tokens":32}}})",
      R"({"id":"chatcmpl-3","object":"chat.completion","created":5,"model":"g","choices":[{"index":0,
          "message":{"role":"assistant","content":"cut","refusal":null},"logprobs":null,"finish_reason":"length"}],
          "usage":{"prompt_tokens":4,"completion_tokens":1,"total_tokens":5}})",
      R"({"id":"chatcmpl-4","object":"chat.completion","created":5,"model":"g","choices":[{"index":0,
          "message":{"role":"assistant","content":null,"refusal":"No."},"logprobs":null,"finish_reason":"stop"}],
          "usage":{"prompt_tokens":4,"completion_tokens":1,"total_tokens":5}})",
  };
  for (const char* body : bodies) {
    SCOPED_TRACE(body);
    const Events source = cache::synthesize_chat_completion_events(body, true);
    ASSERT_FALSE(source.empty());
    const Events out = translate_stream(Api::kChat, Api::kMessages, source, true);
    const std::optional<std::string> assembled = cache::assemble_message(out);
    ASSERT_TRUE(assembled) << cache::frame_events(out);
    const json::value expected = answer(Api::kChat, Api::kMessages, body);
    EXPECT_EQ(parsed(*assembled), expected);
  }
}

TEST(StreamTranslatorApi, MoveKeepsState) {
  StreamTranslator a(Api::kChat, Api::kMessages, "m", true);
  Events out;
  a.feed(R"(data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":"x"}}]})", out);
  StreamTranslator b(std::move(a));
  b.feed("data: [DONE]", out);
  EXPECT_TRUE(b.finished());
  EXPECT_TRUE(cache::assemble_message(out).has_value());
}

TEST(StreamTranslatorApi, SameApiPassesThrough) {
  StreamTranslator t(Api::kMessages, Api::kMessages, "m", false);
  Events out;
  t.feed("event: ping\ndata: {}", out);
  t.feed("event: message_stop\ndata: {\"type\":\"message_stop\"}", out);
  EXPECT_EQ(out.size(), 2u);
  EXPECT_TRUE(t.finished());
}

}  // namespace
}  // namespace redline::translate
