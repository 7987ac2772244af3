// The gateway's memory of Responses API answers, so `previous_response_id` works for every
// provider and across gateway restarts: one record per response in the state Redis,
// tenant-scoped, with a TTL. The pipeline saves a record after each answer (save), reads the
// previous one to expand a turn (load + StoredResponse::chain) or to answer
// GET /v1/responses/{id} (StoredResponse::response), and deletes it for DELETE (remove). Each
// operation is one round trip. It does not convert anything (responses.h does).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "redis/client.h"

namespace redline::responses {

// One stored response.
struct StoredResponse {
  std::string id;          // "resp_..."
  std::string model;       // as the client asked for it
  int64_t created_at = 0;  // unix seconds
  std::string input;       // JSON array text: the whole input chain of this turn (expanded)
  std::string output;      // JSON array text: the output items
  std::string response;    // the Response object, JSON text (GET /v1/responses/{id})

  // The items a next turn puts in front of its input: input, then output (JSON array text).
  // nullopt when either is not a JSON array.
  std::optional<std::string> chain() const;
};

struct SaveResult {
  std::size_t trimmed_items = 0;  // input items dropped to fit max_chain_bytes
  std::size_t stored_bytes = 0;   // bytes of input + output as stored
};

class ResponsesStore {
 public:
  // `ttl`: how long a response can be continued or fetched after it was saved (not renewed by
  // reads). `max_chain_bytes`: bound on input + output as stored; see save().
  ResponsesStore(std::chrono::seconds ttl, std::size_t max_chain_bytes);

  // Stores `record` (replacing a record with the same id) with the store's TTL. When input +
  // output is larger than max_chain_bytes, the oldest input items are dropped, whole, until it
  // fits (output items are always kept, even when they alone exceed it); a function_call_output
  // whose function_call was dropped is dropped with it, so the chain stays valid for any
  // provider. `record.input` / `record.output` must be JSON arrays (else kInvalidArgument).
  boost::asio::awaitable<redis::Result<SaveResult>> save(redis::Client& redis,
                                                         std::string_view tenant,
                                                         const StoredResponse& record) const;

  // The record of (tenant, id); nullopt when there is none (unknown, expired, another tenant's).
  boost::asio::awaitable<redis::Result<std::optional<StoredResponse>>> load(
      redis::Client& redis, std::string_view tenant, std::string_view id) const;

  // Deletes a record; true when it existed.
  boost::asio::awaitable<redis::Result<bool>> remove(redis::Client& redis, std::string_view tenant,
                                                     std::string_view id) const;

  // "rs:{<32 hex digits of XXH3-128(tenant NUL id)>}".
  static std::string key(std::string_view tenant, std::string_view id);

  std::chrono::seconds ttl() const { return ttl_; }
  std::size_t max_chain_bytes() const { return max_chain_bytes_; }

 private:
  std::chrono::seconds ttl_;
  std::size_t max_chain_bytes_;
};

// The trimming rule of save(), on its own: `input` (a JSON array) cut oldest-first so that
// it + output_bytes fits max_bytes. Returns the JSON array text and sets *trimmed to the number
// of items dropped. nullopt when `input` is not a JSON array.
std::optional<std::string> trim_chain(std::string_view input, std::size_t output_bytes,
                                      std::size_t max_bytes, std::size_t* trimmed);

}  // namespace redline::responses
