// Typed errors and a small expected-like result type for the Redis layer, so callers can
// tell a timeout from a lost connection or a server error and degrade instead of hang.
// No exceptions are thrown on the hot path; value() on an error is a programming bug (asserts).
#pragma once

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace redline::redis {

// Every way a Redis call can fail. Metrics and logs use error_kind_name().
enum class ErrorKind : unsigned char {
  kTimeout,          // the per-command deadline passed; the reply is discarded when it arrives
  kConnectionLost,   // the connection dropped while the command was queued or in flight
  kNotConnected,     // no connection to the node right now (reconnecting, backing off)
  kServerError,      // Redis answered with an error reply (message holds it, e.g. "ERR ...")
  kProtocolError,    // the server sent bytes that are not valid RESP
  kQueueFull,        // back-pressure: too many commands queued on the connection
  kAuthFailed,       // AUTH / HELLO AUTH refused (wrong password or user)
  kTlsError,         // TLS handshake or certificate verification failed
  kClusterDown,      // no node serves the slot (CLUSTERDOWN, or redirects exhausted)
  kInvalidArgument,  // bad URL, empty command, cross-slot batch that cannot be routed, ...
  kStopped,          // the client was stopped
};

constexpr std::string_view error_kind_name(ErrorKind k) {
  switch (k) {
    case ErrorKind::kTimeout:
      return "timeout";
    case ErrorKind::kConnectionLost:
      return "connection_lost";
    case ErrorKind::kNotConnected:
      return "not_connected";
    case ErrorKind::kServerError:
      return "server_error";
    case ErrorKind::kProtocolError:
      return "protocol_error";
    case ErrorKind::kQueueFull:
      return "queue_full";
    case ErrorKind::kAuthFailed:
      return "auth_failed";
    case ErrorKind::kTlsError:
      return "tls_error";
    case ErrorKind::kClusterDown:
      return "cluster_down";
    case ErrorKind::kInvalidArgument:
      return "invalid_argument";
    case ErrorKind::kStopped:
      return "stopped";
  }
  return "unknown";
}

struct Error {
  ErrorKind kind = ErrorKind::kServerError;
  std::string message;

  // "redis timeout: GET timed out after 200 ms"
  std::string to_string() const {
    return "redis " + std::string(error_kind_name(kind)) + ": " + message;
  }
  // For server errors: true when the message starts with `prefix` (e.g. "MOVED", "NOSCRIPT").
  bool starts_with(std::string_view prefix) const {
    return std::string_view(message).substr(0, prefix.size()) == prefix;
  }
};

// Holds either a T or an Error. Result<void> holds nothing or an Error.
template <typename T>
class [[nodiscard]] Result {
 public:
  // An empty result is an error; it exists so Result can travel through completion handlers.
  Result() : v_(std::in_place_index<1>, Error{ErrorKind::kInvalidArgument, "no result"}) {}
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}      // NOLINT: implicit
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT: implicit
  Result(ErrorKind kind, std::string message)
      : v_(std::in_place_index<1>, Error{kind, std::move(message)}) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    assert(ok());
    return *std::get_if<0>(&v_);
  }
  const T& value() const& {
    assert(ok());
    return *std::get_if<0>(&v_);
  }
  T&& value() && {
    assert(ok());
    return std::move(*std::get_if<0>(&v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const {
    assert(!ok());
    return *std::get_if<1>(&v_);
  }
  ErrorKind kind() const { return error().kind; }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT: implicit
  Result(ErrorKind kind, std::string message) : error_{kind, std::move(message)}, ok_(false) {}

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const {
    assert(!ok_);
    return error_;
  }
  ErrorKind kind() const { return error().kind; }

 private:
  Error error_;
  bool ok_ = true;
};

}  // namespace redline::redis
