// Test support: a blocking HTTP/1.1 client (Beast) for talking to the gateway and the
// mock over loopback, plus a raw socket for sending hand-made bytes.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace redline::test {

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

using Headers = std::vector<std::pair<std::string, std::string>>;

// One keep-alive connection; requests are sent one after another on it.
class HttpClient {
 public:
  HttpClient(const std::string& host, int port);
  ~HttpClient();
  HttpResponse request(const std::string& method, const std::string& target,
                       const std::string& body = {}, const Headers& headers = {});
  // Sends a request and calls on_data for each body chunk as it arrives (for SSE).
  // Returns status and headers; body holds everything received.
  HttpResponse stream(const std::string& method, const std::string& target,
                      const std::string& body, const Headers& headers,
                      const std::function<void(const std::string&)>& on_data);
  bool is_open() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One-shot request on a fresh connection.
HttpResponse http_request(int port, const std::string& method, const std::string& target,
                          const std::string& body = {}, const Headers& headers = {});

// A plain TCP connection for raw bytes (limit and protocol tests).
class RawConn {
 public:
  explicit RawConn(int port);
  ~RawConn();
  void send(const std::string& bytes);
  // Reads until the peer closes or `timeout` passes with no new bytes.
  std::string read_all(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Reads until `needle` appears in what was read or timeout; returns everything read.
  std::string read_until(const std::string& needle,
                         std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // True when the peer has closed the connection (read returns 0) within the timeout.
  bool closed_by_peer(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  void close();

 private:
  int fd_ = -1;
  std::string pending_;
};

// Parses "HTTP/1.1 NNN ..." at the start of raw response bytes; 0 when absent.
int raw_status(const std::string& raw);

}  // namespace redline::test
