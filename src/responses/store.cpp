// ResponsesStore (see store.h): one Redis hash per stored response, written by one script call
// (replace + TTL atomically), read by one HMGET, deleted by one DEL. The chain bound is applied
// here, before the write, by trim_chain().
#include "responses/store.h"


#include <boost/json.hpp>
#include <charconv>
#include <unordered_set>
#include <vector>

#include "common/json_text.h"
#include "common/scoped_key.h"
#include "redis/script.h"
#include "redline_scripts.h"

namespace redline::responses {

namespace json = boost::json;

namespace {

const redis::Script& save_script() {
  static const redis::Script script(scripts::responses_save);
  return script;
}

std::optional<json::array> parse_array(std::string_view text) {
  boost::system::error_code ec;
  json::parse_options opts;
  opts.max_depth = 512;
  json::value v = json::parse(text, ec, {}, opts);
  if (ec || !v.is_array()) return std::nullopt;
  return std::move(v.get_array());
}

std::string_view str_of(const json::value& item, std::string_view key) {
  if (!item.is_object()) return {};
  const json::value* v = item.get_object().if_contains(key);
  return v != nullptr && v->is_string() ? std::string_view(v->get_string()) : std::string_view();
}

redis::Error bad_reply(std::string_view what, const redis::Reply& reply) {
  return redis::Error{
      redis::ErrorKind::kProtocolError,
      "responses " + std::string(what) + ": unexpected reply " + reply.debug_string()};
}

}  // namespace

std::optional<std::string> StoredResponse::chain() const {
  auto in = parse_array(input);
  auto out = parse_array(output);
  if (!in || !out) return std::nullopt;
  for (auto& v : *out) in->push_back(std::move(v));
  return json_text(*in);
}

std::optional<std::string> trim_chain(std::string_view input, std::size_t output_bytes,
                                      std::size_t max_bytes, std::size_t* trimmed) {
  auto items = parse_array(input);
  if (!items) return std::nullopt;
  std::vector<std::string> texts;
  texts.reserve(items->size());
  std::size_t total = 2;  // "[]"
  for (const auto& v : *items) {
    texts.push_back(json_text(v));
    total += texts.back().size() + (texts.size() > 1 ? 1 : 0);
  }
  std::size_t first = 0;
  while (first < texts.size() && total + output_bytes > max_bytes) {
    total -= texts[first].size() + (texts.size() - first > 1 ? 1 : 0);
    ++first;
  }
  // A tool result whose call was dropped would be refused by every provider: drop it too.
  std::unordered_set<std::string_view> calls;
  for (std::size_t i = first; i < items->size(); ++i) {
    if (str_of((*items)[i], "type") == "function_call")
      calls.insert(str_of((*items)[i], "call_id"));
  }
  std::string out = "[";
  std::size_t kept = 0;
  for (std::size_t i = first; i < items->size(); ++i) {
    const json::value& item = (*items)[i];
    if (first > 0 && str_of(item, "type") == "function_call_output" &&
        !calls.contains(str_of(item, "call_id"))) {
      continue;
    }
    if (kept++ > 0) out += ',';
    out += texts[i];
  }
  out += ']';
  if (trimmed != nullptr) *trimmed = items->size() - kept;
  return out;
}

ResponsesStore::ResponsesStore(std::chrono::seconds ttl, std::size_t max_chain_bytes)
    : ttl_(ttl), max_chain_bytes_(max_chain_bytes) {}

std::string ResponsesStore::key(std::string_view tenant, std::string_view id) {
  return "rs:{" + scoped_tag(tenant, id) + "}";
}

boost::asio::awaitable<redis::Result<SaveResult>> ResponsesStore::save(
    redis::Client& redis, std::string_view tenant, const StoredResponse& record) const {
  if (!parse_array(record.output)) {
    co_return redis::Error{redis::ErrorKind::kInvalidArgument,
                           "responses save: output is not a JSON array"};
  }
  SaveResult result;
  auto input =
      trim_chain(record.input, record.output.size(), max_chain_bytes_, &result.trimmed_items);
  if (!input) {
    co_return redis::Error{redis::ErrorKind::kInvalidArgument,
                           "responses save: input is not a JSON array"};
  }
  result.stored_bytes = input->size() + record.output.size();
  const std::string k = key(tenant, record.id);
  const std::string ttl_ms =
      std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(ttl_).count());
  const std::string created = std::to_string(record.created_at);
  const std::vector<std::string_view> keys = {k};
  const std::vector<std::string_view> args = {
      ttl_ms,  "id",   record.id, "model",       record.model, "created_at",   created,
      "input", *input, "output",  record.output, "response",   record.response};
  const redis::Command cmd = save_script().call(keys, args);
  auto reply = co_await save_script().run(redis, cmd);
  if (!reply) co_return reply.error();
  if (reply->type() != redis::Type::kInteger) co_return bad_reply("save", *reply);
  co_return result;
}

boost::asio::awaitable<redis::Result<std::optional<StoredResponse>>> ResponsesStore::load(
    redis::Client& redis, std::string_view tenant, std::string_view id) const {
  const std::string k = key(tenant, id);
  const redis::Command cmd("HMGET", k, "id", "model", "created_at", "input", "output", "response");
  auto reply = co_await redis.execute(cmd);
  if (!reply) co_return reply.error();
  const redis::Reply& r = *reply;
  if (r.type() != redis::Type::kArray || r.size() != 6) co_return bad_reply("load", r);
  if (r[0].is_null()) co_return std::optional<StoredResponse>();
  for (std::size_t i = 0; i < 6; ++i) {
    if (!r[i].is_string()) co_return bad_reply("load", r);
  }
  StoredResponse s;
  s.id = r[0].str();
  s.model = r[1].str();
  const std::string& created = r[2].str();
  auto [p, ec] = std::from_chars(created.data(), created.data() + created.size(), s.created_at);
  if (ec != std::errc() || p != created.data() + created.size()) co_return bad_reply("load", r);
  s.input = r[3].str();
  s.output = r[4].str();
  s.response = r[5].str();
  if (s.id != id) co_return std::optional<StoredResponse>();  // a hash collision: not ours
  co_return std::optional<StoredResponse>(std::move(s));
}

boost::asio::awaitable<redis::Result<bool>> ResponsesStore::remove(redis::Client& redis,
                                                                   std::string_view tenant,
                                                                   std::string_view id) const {
  const std::string k = key(tenant, id);
  const redis::Command cmd("DEL", k);
  auto reply = co_await redis.execute(cmd);
  if (!reply) co_return reply.error();
  if (reply->type() != redis::Type::kInteger) co_return bad_reply("remove", *reply);
  co_return reply->integer() > 0;
}

}  // namespace redline::responses
