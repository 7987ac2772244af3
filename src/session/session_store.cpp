// Conversation sessions: the JSON work (merging a stored history into a request body, taking
// the assistant's reply out of an answer) and the Redis side (the append and load scripts,
// the per-tenant index). It does not decide when a session is used; the pipeline does.
#include "session/session_store.h"

#include <spdlog/spdlog.h>

#include <boost/json.hpp>
#include <charconv>
#include <chrono>

#include "cache/replay.h"
#include "common/scoped_key.h"
#include "redis/script.h"
#include "redline_scripts.h"

namespace redline::session {

namespace json = boost::json;

namespace {

// --- JSON helpers ------------------------------------------------------------------------

std::optional<json::value> parse_json(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) {
    return std::nullopt;
  }
  return v;
}

bool is_system_role(std::string_view role) {
  return role == "system" || role == "developer";
}

std::string_view role_of(const json::object& message) {
  const json::value* role = message.if_contains("role");
  if (role == nullptr || !role->is_string()) {
    return {};
  }
  return role->get_string();
}

// A message serialized compactly with "role" as its first member, so that stored_role() reads
// the role of stored messages without parsing them.
std::string serialize_role_first(const json::object& message) {
  auto it = message.find("role");
  if (it == message.end() || it == message.begin()) {
    return json::serialize(message);
  }
  json::object o(message.storage());
  o.reserve(message.size());
  o.emplace("role", it->value());
  for (const auto& kv : message) {
    if (kv.key() != "role") {
      o.emplace(kv.key(), kv.value());
    }
  }
  return json::serialize(o);
}

// The role of a stored message: read from its `{"role":"..."` prefix when it has one (every
// message this module writes does), else parsed. nullopt when it is not a JSON object.
std::optional<std::string> stored_role(std::string_view message) {
  constexpr std::string_view kPrefix = R"({"role":")";
  if (message.starts_with(kPrefix)) {
    const size_t end = message.find('"', kPrefix.size());
    const std::string_view role = message.substr(kPrefix.size(), end - kPrefix.size());
    if (end != std::string_view::npos && role.find('\\') == std::string_view::npos) {
      return std::string(role);
    }
  }
  auto v = parse_json(message);
  if (!v || !v->is_object()) {
    return std::nullopt;
  }
  return std::string(role_of(v->get_object()));
}

std::string_view api_name(Api api) {
  return api == Api::kChat ? "chat" : "messages";
}

std::string api_mismatch_message(Api stored) {
  return "this session was started with the " +
         std::string(stored == Api::kChat ? "OpenAI chat completions" : "Anthropic messages") +
         " API; a session cannot switch APIs";
}

// --- Redis helpers -------------------------------------------------------------------------

const redis::Script& append_script() {
  static const redis::Script script(scripts::session_append);
  return script;
}

const redis::Script& load_script() {
  static const redis::Script script(scripts::session_load);
  return script;
}

// The per-tenant index: tenant bytes outside [A-Za-z0-9._@-] are %XX-escaped, so the key is
// unambiguous and carries no accidental hash tag.
std::string index_key(std::string_view tenant) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out = "s:i:";
  out.reserve(out.size() + tenant.size());
  for (unsigned char c : tenant) {
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '-' || c == '.' || c == '_' || c == '@';
    if (plain) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  return out;
}

std::string messages_key(std::string_view meta_key) {
  return std::string(meta_key) + ":m";
}

int64_t now_unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::optional<int64_t> to_int(std::string_view s) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) {
    return std::nullopt;
  }
  return v;
}

redis::Error bad_reply(std::string_view what, const redis::Reply& reply) {
  return redis::Error{
      redis::ErrorKind::kProtocolError,
      "session " + std::string(what) + ": unexpected reply " + reply.debug_string()};
}

// {api, system, bytes, pttl, {tagged messages}} or {} -> History.
redis::Result<History> parse_history(const redis::Reply& r) {
  if (r.type() != redis::Type::kArray) {
    return bad_reply("load", r);
  }
  History h;
  if (r.size() == 0) {
    return h;
  }
  if (r.size() != 5 || !r[0].is_string() || !r[1].is_string() || !r[2].is_string() ||
      r[3].type() != redis::Type::kInteger || r[4].type() != redis::Type::kArray) {
    return bad_reply("load", r);
  }
  if (r[0].str() == "chat") {
    h.api = Api::kChat;
  } else if (r[0].str() == "messages") {
    h.api = Api::kMessages;
  } else {
    return bad_reply("load", r);
  }
  const auto bytes = to_int(r[2].str());
  if (!bytes || *bytes < 0) {
    return bad_reply("load", r);
  }
  h.exists = true;
  h.system = r[1].str();
  h.bytes = static_cast<uint64_t>(*bytes);
  h.ttl_ms = r[3].integer();
  h.messages.reserve(r[4].size());
  for (const auto& e : r[4].elements()) {
    if (!e.is_string() || e.str().empty()) {
      return bad_reply("load", r);
    }
    h.messages.push_back(e.str().substr(1));  // drop the 's' / 'm' tag
  }
  return h;
}

}  // namespace

bool is_api_mismatch(const redis::Error& e) {
  return e.kind == redis::ErrorKind::kServerError && e.starts_with("SESSION_API_MISMATCH");
}

bool valid_session_id(std::string_view id, std::size_t max_id_bytes) {
  if (id.empty() || id.size() > max_id_bytes) {
    return false;
  }
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

// --- merge_history ---------------------------------------------------------------------------

std::variant<Merged, MergeError> merge_history(Api api, const History& history,
                                               std::string_view body) {
  if (history.exists && history.api != api) {
    return MergeError{"session_api_mismatch", api_mismatch_message(history.api)};
  }
  auto parsed = parse_json(body);
  if (!parsed) {
    return MergeError{"invalid_request_error", "body: invalid JSON"};
  }
  if (!parsed->is_object()) {
    return MergeError{"invalid_request_error", "body: expected a JSON object"};
  }
  json::object& obj = parsed->get_object();
  json::value* messages = obj.if_contains("messages");
  if (messages == nullptr || !messages->is_array()) {
    return MergeError{"invalid_request_error", "messages: expected an array"};
  }

  Merged out;
  const json::array& turn = messages->get_array();
  out.new_messages.reserve(turn.size());
  std::vector<bool> turn_system;
  turn_system.reserve(turn.size());
  for (size_t i = 0; i < turn.size(); ++i) {
    if (!turn[i].is_object()) {
      return MergeError{"invalid_request_error",
                        "messages[" + std::to_string(i) + "]: expected an object"};
    }
    const json::object& m = turn[i].get_object();
    out.new_messages.push_back(serialize_role_first(m));
    turn_system.push_back(api == Api::kChat && is_system_role(role_of(m)));
  }
  // OpenAI: the turn's leading system/developer messages open the conversation; any system or
  // developer message in the turn replaces the stored ones.
  size_t leading = 0;
  while (leading < turn_system.size() && turn_system[leading]) {
    ++leading;
  }
  const bool replaces_system =
      std::find(turn_system.begin(), turn_system.end(), true) != turn_system.end();

  size_t reserve = 2 + body.size();
  for (const auto& m : history.messages) {
    reserve += m.size() + 1;
  }
  std::string array;
  array.reserve(reserve);
  array += '[';
  auto add = [&](std::string_view m) {
    if (array.size() > 1) {
      array += ',';
    }
    array += m;
  };
  for (size_t i = 0; i < leading; ++i) {
    add(out.new_messages[i]);
  }
  for (const auto& m : history.messages) {
    if (replaces_system) {
      const auto role = stored_role(m);
      if (role && is_system_role(*role)) {
        continue;
      }
    }
    add(m);
  }
  for (size_t i = leading; i < out.new_messages.size(); ++i) {
    add(out.new_messages[i]);
  }
  array += ']';
  obj.erase("messages");

  // Anthropic: a `system` sent this turn replaces the stored one; otherwise the stored one is set.
  std::string system;
  if (api == Api::kMessages) {
    const json::value* sent = obj.if_contains("system");
    if (sent != nullptr && !sent->is_null()) {
      out.new_system = json::serialize(*sent);
    } else {
      obj.erase("system");
      system = history.system;
    }
  }

  const std::string rest = json::serialize(obj);  // "{...}"
  out.body.reserve(array.size() + rest.size() + system.size() + 32);
  out.body += '{';
  if (!system.empty()) {
    out.body += R"("system":)";
    out.body += system;
    out.body += ',';
  }
  out.body += R"("messages":)";
  out.body += array;
  if (rest.size() > 2) {
    out.body += ',';
    out.body.append(rest, 1);
  } else {
    out.body += '}';
  }
  return out;
}

// --- reply_message -----------------------------------------------------------------------------

std::optional<std::string> reply_message(Api api, std::string_view body) {
  auto parsed = parse_json(body);
  if (!parsed || !parsed->is_object()) {
    return std::nullopt;
  }
  const json::object& obj = parsed->get_object();
  if (obj.contains("error")) {
    return std::nullopt;
  }
  json::object out;
  out.emplace("role", "assistant");
  if (api == Api::kMessages) {
    // {"type":"message","role":"assistant","content":[...],...}; errors are {"type":"error"}.
    const json::value* type = obj.if_contains("type");
    const json::value* content = obj.if_contains("content");
    if ((type != nullptr && (!type->is_string() || type->get_string() != "message")) ||
        content == nullptr || !content->is_array() || content->get_array().empty()) {
      return std::nullopt;
    }
    out.emplace("content", *content);
    return json::serialize(out);
  }
  const json::value* choices = obj.if_contains("choices");
  if (choices == nullptr || !choices->is_array() || choices->get_array().empty() ||
      !choices->get_array()[0].is_object()) {
    return std::nullopt;
  }
  const json::value* message = choices->get_array()[0].get_object().if_contains("message");
  if (message == nullptr || !message->is_object()) {
    return std::nullopt;
  }
  const json::object& m = message->get_object();
  // What an assistant message of a request may carry; null fields, annotations, audio and
  // other response-only fields are left out.
  const json::value* content = m.if_contains("content");
  const json::value* refusal = m.if_contains("refusal");
  const json::value* tool_calls = m.if_contains("tool_calls");
  const json::value* function_call = m.if_contains("function_call");
  const bool has_tools =
      tool_calls != nullptr && tool_calls->is_array() && !tool_calls->get_array().empty();
  const bool has_function = function_call != nullptr && function_call->is_object();
  const bool has_refusal = refusal != nullptr && refusal->is_string();
  if (content != nullptr && !content->is_null()) {
    out.emplace("content", *content);
  } else {
    // content is required unless the message calls tools.
    out.emplace("content", has_tools || has_function ? json::value(nullptr) : json::value(""));
  }
  if (has_refusal) {
    out.emplace("refusal", *refusal);
  }
  if (has_tools) {
    out.emplace("tool_calls", *tool_calls);
  }
  if (has_function) {
    out.emplace("function_call", *function_call);
  }
  return json::serialize(out);
}

std::optional<std::string> reply_message_from_events(Api api, std::span<const std::string> events) {
  const auto body =
      api == Api::kChat ? cache::assemble_chat_completion(events) : cache::assemble_message(events);
  if (!body) {
    return std::nullopt;
  }
  return reply_message(api, *body);
}

// --- SessionStore ------------------------------------------------------------------------------

SessionStore::SessionStore(const config::SessionConfig& config) : config_(config) {}

std::string SessionStore::key(std::string_view tenant, std::string_view id) const {
  return "s:{" + scoped_tag(tenant, id) + "}";
}

boost::asio::awaitable<redis::Result<History>> SessionStore::load(redis::Client& redis,
                                                                  std::string_view tenant,
                                                                  std::string_view id) const {
  const std::string meta = key(tenant, id);
  const std::string list = messages_key(meta);
  const redis::Command cmd = load_script().call({meta, list});
  auto reply = co_await load_script().run(redis, cmd);
  if (!reply) {
    co_return reply.error();
  }
  co_return parse_history(*reply);
}

boost::asio::awaitable<redis::Result<uint64_t>> SessionStore::append(redis::Client& redis,
                                                                     std::string_view tenant,
                                                                     std::string_view id, Api api,
                                                                     const Merged& turn,
                                                                     std::string_view reply) const {
  const int64_t ttl_ms = std::chrono::duration_cast<std::chrono::milliseconds>(config_.ttl).count();
  std::vector<std::string> args = {std::string(api_name(api)),
                                   std::to_string(ttl_ms),
                                   std::to_string(config_.max_messages),
                                   std::to_string(config_.max_bytes),
                                   std::string(tenant),
                                   std::string(id),
                                   api == Api::kMessages ? turn.new_system : std::string()};
  args.reserve(args.size() + 2 * (turn.new_messages.size() + 1));
  bool leading = true;  // still in the turn's leading system/developer messages
  for (size_t i = 0; i < turn.new_messages.size(); ++i) {
    const std::string& m = turn.new_messages[i];
    const auto role = stored_role(m);
    if (!role) {
      co_return redis::Error{
          redis::ErrorKind::kInvalidArgument,
          "session append: new_messages[" + std::to_string(i) + "] is not a JSON object"};
    }
    const bool system = api == Api::kChat && is_system_role(*role);
    leading = leading && system;
    args.emplace_back(!system ? "m" : leading ? "h" : "s");
    args.push_back(m);
  }
  if (!reply.empty()) {
    args.emplace_back("m");
    args.emplace_back(reply);
  }
  const std::string meta = key(tenant, id);
  const std::string list = messages_key(meta);
  const std::vector<std::string_view> keys = {meta, list};
  const std::vector<std::string_view> views(args.begin(), args.end());

  const std::string index = index_key(tenant);
  const int64_t now = now_unix_ms();
  const std::vector<redis::Command> cmds = {
      append_script().call(keys, views), redis::Command("ZADD", index, now, id),
      redis::Command("ZREMRANGEBYSCORE", index, "-inf", "(" + std::to_string(now - ttl_ms)),
      redis::Command("PEXPIRE", index, ttl_ms)};
  auto results = co_await append_script().run_batch(redis, cmds);
  for (size_t i = 1; i < results.size(); ++i) {
    if (!results[i]) {
      spdlog::warn("session: index {} not updated: {}", index, results[i].error().to_string());
    }
  }
  if (results.empty() || !results[0]) {
    co_return results.empty() ? redis::Error{redis::ErrorKind::kInvalidArgument, "no result"}
                              : results[0].error();
  }
  const redis::Reply& r = *results[0];
  if (r.type() != redis::Type::kInteger || r.integer() < 0) {
    co_return bad_reply("append", r);
  }
  co_return static_cast<uint64_t>(r.integer());
}

boost::asio::awaitable<redis::Result<bool>> SessionStore::remove(redis::Client& redis,
                                                                 std::string_view tenant,
                                                                 std::string_view id) const {
  const std::string meta = key(tenant, id);
  const std::string list = messages_key(meta);
  const std::string index = index_key(tenant);
  const std::vector<redis::Command> cmds = {redis::Command("DEL", meta, list),
                                            redis::Command("ZREM", index, id)};
  auto results = co_await redis.batch(cmds);
  if (results.size() != 2 || !results[0]) {
    co_return results.size() != 2 ? redis::Error{redis::ErrorKind::kInvalidArgument, "no result"}
                                  : results[0].error();
  }
  if (!results[1]) {
    spdlog::warn("session: index {} not updated: {}", index, results[1].error().to_string());
  }
  if (results[0]->type() != redis::Type::kInteger) {
    co_return bad_reply("remove", *results[0]);
  }
  co_return results[0]->integer() > 0;
}

boost::asio::awaitable<redis::Result<std::vector<std::string>>> SessionStore::list(
    redis::Client& redis, std::string_view tenant, std::size_t limit) const {
  std::vector<std::string> ids;
  if (limit == 0) {
    co_return ids;
  }
  const int64_t ttl_ms = std::chrono::duration_cast<std::chrono::milliseconds>(config_.ttl).count();
  const std::string index = index_key(tenant);
  const int64_t stop = limit > (1ULL << 40) ? -1 : static_cast<int64_t>(limit) - 1;
  const std::vector<redis::Command> cmds = {
      redis::Command("ZREMRANGEBYSCORE", index, "-inf",
                     "(" + std::to_string(now_unix_ms() - ttl_ms)),
      redis::Command("ZREVRANGE", index, 0, stop)};
  auto results = co_await redis.batch(cmds);
  for (auto& r : results) {
    if (!r) {
      co_return r.error();
    }
  }
  if (results.size() != 2 || results[1]->type() != redis::Type::kArray) {
    co_return redis::Error{redis::ErrorKind::kProtocolError, "session list: unexpected reply"};
  }
  ids.reserve(results[1]->size());
  for (const auto& e : results[1]->elements()) {
    ids.push_back(e.str());
  }
  co_return ids;
}

}  // namespace redline::session
