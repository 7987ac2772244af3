// Conversation sessions (`x-redline-session: ID`): the gateway keeps a conversation's
// messages in the state Redis so a client sends only its new messages. The pipeline loads the
// history right after authentication (load), merges it into the request body before routing
// and caching (merge_history), and appends the turn — the client's new messages and the
// assistant's reply — when the answer completes (reply_message + append). Sessions are
// tenant-scoped, bounded (max messages / max bytes, oldest trimmed, system prompt kept) and
// expire after a sliding TTL. One turn is appended by one Lua script call, so concurrent
// turns on one session never interleave: they land whole, in completion order.
//
// Messages are stored as the client's API shapes them (OpenAI chat `messages[]` entries, or
// Anthropic `messages[]` entries plus its top-level `system`); a session remembers its API,
// and a turn through the other API is refused (400 session_api_mismatch) until translation
// lands. See README.md in this folder for the Redis layout.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <optional>
#include <span>
#include <variant>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "redis/client.h"

namespace redline::session {

enum class Api { kChat, kMessages };  // POST /v1/chat/completions | POST /v1/messages

// A session's stored state.
struct History {
  bool exists = false;
  Api api = Api::kChat;
  std::string system;                 // Anthropic top-level `system` (JSON text); "" = none
  std::vector<std::string> messages;  // JSON objects, oldest first (OpenAI system/developer
                                      // messages included, in place)
  uint64_t bytes = 0;                 // sum of the stored messages' sizes
  int64_t ttl_ms = -1;                // remaining TTL (-1: no session)
};

// Why merge_history refused a body (the pipeline answers 400 with this code and message).
struct MergeError {
  std::string code;     // "session_api_mismatch", "invalid_request_error"
  std::string message;  // names the field
};

// The result of merging: the body to send on, and what this turn adds to the session.
struct Merged {
  std::string body;                       // the request body with the history in front
  std::vector<std::string> new_messages;  // the client's new messages (JSON objects)
  std::string new_system;                 // Anthropic `system` sent this turn ("" = none)
};

// True for the error append() returns when the session was started through the other API
// (the script's SESSION_API_MISMATCH reply): the pipeline answers 400 session_api_mismatch.
// merge_history reports the same case as MergeError{"session_api_mismatch"} before the call;
// this one covers a session created through the other API in between.
bool is_api_mismatch(const redis::Error& e);

// A session id is 1..max_id_bytes of [A-Za-z0-9._:-]; anything else is a 400.
bool valid_session_id(std::string_view id, std::size_t max_id_bytes);

// Builds the request body for this turn: the stored messages, then the client's. OpenAI: a
// system/developer message sent this turn replaces the stored ones (they are left out of the
// history); otherwise the stored ones stay in place. The turn's leading system/developer
// messages (before its first other message) go in front of the history, where a client
// without a session would send them; append() stores them there too. Anthropic: a `system`
// (not null) sent this turn replaces the stored one; otherwise the stored one is set. Every
// other field of the body is kept equal in meaning (key order may change). `body` must be a
// JSON object with a `messages` array of objects; errors name the field ("messages: expected
// an array", "messages[2]: expected an object"). new_messages holds every message of the
// turn, system/developer ones included, compactly serialized with "role" first.
std::variant<Merged, MergeError> merge_history(Api api, const History& history,
                                               std::string_view body);

// The assistant message to append for a complete answer, as the client's API shapes it:
// OpenAI {"role":"assistant","content":...,"tool_calls":[...]} from choices[0].message;
// Anthropic {"role":"assistant","content":[...]} from the message's content. `body` is the
// JSON answer; for a streamed answer pass the recorded events instead (sse.h stored form),
// which are assembled first (cache/replay.h). nullopt when the answer is not a complete
// success (error body, cut stream).
std::optional<std::string> reply_message(Api api, std::string_view body);
std::optional<std::string> reply_message_from_events(Api api, std::span<const std::string> events);

class SessionStore {
 public:
  explicit SessionStore(const config::SessionConfig& config);

  // The stored history of (tenant, id); History{exists=false} when there is none. Errors are
  // Redis errors (the pipeline answers 503: it cannot continue a conversation it cannot read).
  boost::asio::awaitable<redis::Result<History>> load(redis::Client& redis, std::string_view tenant,
                                                      std::string_view id) const;

  // Appends one turn atomically (one script call): sets the API on first use, replaces the
  // stored system prompt when `turn.new_system` is set (Anthropic) or when new_messages carry
  // system/developer messages (OpenAI: the old ones are removed), pushes new_messages and
  // then `reply`, trims the oldest non-system messages while over max_messages or max_bytes,
  // and renews the TTL. Returns the stored message count after the append.
  boost::asio::awaitable<redis::Result<uint64_t>> append(redis::Client& redis, std::string_view tenant,
                                                         std::string_view id, Api api,
                                                         const Merged& turn, std::string_view reply) const;

  // Deletes a session; true when it existed.
  boost::asio::awaitable<redis::Result<bool>> remove(redis::Client& redis, std::string_view tenant,
                                                     std::string_view id) const;

  // Session ids of one tenant, most recently used first (at most `limit`): read from a
  // per-tenant index (a sorted set scored by last use, updated next to each append in the same
  // pipelined write, entries older than the TTL pruned on read), so no SCAN and no hot slot.
  boost::asio::awaitable<redis::Result<std::vector<std::string>>> list(redis::Client& redis,
                                                                     std::string_view tenant,
                                                                     std::size_t limit) const;

  // The Redis key of a session: its meta hash "s:{<hex XXH3-128>}"; the message list is that
  // key + ":m" (README.md).
  std::string key(std::string_view tenant, std::string_view id) const;

 private:
  config::SessionConfig config_;
};

}  // namespace redline::session
