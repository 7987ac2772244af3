// A Lua script called by SHA: EVALSHA first, and on NOSCRIPT (never loaded, SCRIPT FLUSH, a
// failover to a node that never saw it) the same call is sent once more as EVAL, which also
// caches it on that node. Sources come from the embedded .lua files (redline_scripts.h).
#pragma once

#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "redis/client.h"

namespace redline::redis {

class Script {
 public:
  explicit Script(std::string_view source);

  const std::string& sha() const { return sha_; }  // lowercase hex SHA1, as Redis computes it
  std::string_view source() const { return source_; }

  // EVALSHA <sha> <numkeys> keys... args... (routed in a cluster by its first key).
  Command call(std::span<const std::string_view> keys,
               std::span<const std::string_view> args = {}) const;
  Command call(std::initializer_list<std::string_view> keys,
               std::initializer_list<std::string_view> args = {}) const {
    return call(std::span<const std::string_view>(keys.begin(), keys.size()),
                std::span<const std::string_view>(args.begin(), args.size()));
  }
  // The EVAL form of a call() command.
  Command as_eval(const Command& evalsha) const;

  // Runs a call() command, falling back to EVAL on NOSCRIPT.
  Awaitable<Result<Reply>> run(Client& client, const Command& evalsha) const;
  // Runs several calls (of this script) as one batch; NOSCRIPT ones are retried as EVAL.
  Awaitable<std::vector<Result<Reply>>> run_batch(Client& client,
                                                  std::span<const Command> calls) const;

 private:
  std::string source_;
  std::string sha_;
};

// True for the server error that means "load the script first".
inline bool is_noscript(const Error& e) {
  return e.kind == ErrorKind::kServerError && e.starts_with("NOSCRIPT");
}

}  // namespace redline::redis
