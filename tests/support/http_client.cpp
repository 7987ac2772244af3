// Test support: blocking HTTP client and raw socket (see http_client.h).
#include "support/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <stdexcept>

namespace redline::test {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;

struct HttpClient::Impl {
  asio::io_context ioc;
  beast::tcp_stream stream{ioc};
  beast::flat_buffer buffer;
  std::string host;
};

HttpClient::HttpClient(const std::string& host, int port) : impl_(std::make_unique<Impl>()) {
  impl_->host = host + ":" + std::to_string(port);
  asio::ip::tcp::endpoint ep(asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host),
                             static_cast<unsigned short>(port));
  impl_->stream.connect(ep);
}

HttpClient::~HttpClient() {
  beast::error_code ec;
  impl_->stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
}

bool HttpClient::is_open() const { return impl_->stream.socket().is_open(); }

static http::request<http::string_body> make_request(const std::string& host,
                                                     const std::string& method,
                                                     const std::string& target,
                                                     const std::string& body,
                                                     const Headers& headers) {
  http::request<http::string_body> req;
  req.method_string(method);
  req.target(target);
  req.version(11);
  req.set(http::field::host, host);
  bool has_ct = false;
  for (auto& [k, v] : headers) {
    req.insert(k, v);
    if (beast::iequals(k, "content-type")) has_ct = true;
  }
  if (!body.empty() && !has_ct) req.set(http::field::content_type, "application/json");
  req.body() = body;
  if (!body.empty() || method == "POST") req.prepare_payload();
  return req;
}

template <class Fields>
static void copy_headers(const Fields& fields, HttpResponse& out) {
  for (auto& f : fields) {
    std::string name(f.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out.headers[name] = std::string(f.value());
  }
}

HttpResponse HttpClient::request(const std::string& method, const std::string& target,
                                 const std::string& body, const Headers& headers) {
  auto req = make_request(impl_->host, method, target, body, headers);
  http::write(impl_->stream, req);
  http::response_parser<http::string_body> parser;
  parser.body_limit(1ull << 30);
  http::read(impl_->stream, impl_->buffer, parser);
  auto& res = parser.get();
  HttpResponse out;
  out.status = static_cast<int>(res.result_int());
  copy_headers(res, out);
  out.body = res.body();
  return out;
}

HttpResponse HttpClient::stream(const std::string& method, const std::string& target,
                                const std::string& body, const Headers& headers,
                                const std::function<void(const std::string&)>& on_data) {
  auto req = make_request(impl_->host, method, target, body, headers);
  http::write(impl_->stream, req);
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(1ull << 30);
  http::read_header(impl_->stream, impl_->buffer, parser);
  HttpResponse out;
  out.status = static_cast<int>(parser.get().result_int());
  copy_headers(parser.get(), out);
  char buf[8192];
  while (!parser.is_done()) {
    parser.get().body().data = buf;
    parser.get().body().size = sizeof buf;
    beast::error_code ec;
    http::read_some(impl_->stream, impl_->buffer, parser, ec);  // returns as bytes arrive
    if (ec && ec != http::error::need_buffer) throw beast::system_error(ec);
    std::string chunk(buf, sizeof buf - parser.get().body().size);
    if (!chunk.empty()) {
      out.body += chunk;
      on_data(chunk);
    }
  }
  return out;
}

HttpResponse http_request(int port, const std::string& method, const std::string& target,
                          const std::string& body, const Headers& headers) {
  HttpClient c("127.0.0.1", port);
  return c.request(method, target, body, headers);
}

RawConn::RawConn(int port) {
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd_);
    fd_ = -1;
    throw std::runtime_error("RawConn: connect failed");
  }
}

RawConn::~RawConn() { close(); }

void RawConn::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void RawConn::send(const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) throw std::runtime_error("RawConn: send failed");
    off += static_cast<size_t>(n);
  }
}

// Reads once with a poll timeout; returns bytes read, 0 on close, -1 on timeout/error.
static ssize_t read_some(int fd, std::string& out, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  int r = ::poll(&p, 1, static_cast<int>(timeout.count()));
  if (r <= 0) return -1;
  char buf[16384];
  ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  if (n > 0) out.append(buf, static_cast<size_t>(n));
  return n < 0 ? 0 : n;  // a reset counts as closed
}

std::string RawConn::read_all(std::chrono::milliseconds timeout) {
  std::string out = std::move(pending_);
  pending_.clear();
  while (read_some(fd_, out, timeout) > 0) {
  }
  return out;
}

std::string RawConn::read_until(const std::string& needle, std::chrono::milliseconds timeout) {
  std::string out = std::move(pending_);
  pending_.clear();
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (out.find(needle) == std::string::npos) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || read_some(fd_, out, left) <= 0) break;
  }
  return out;
}

bool RawConn::closed_by_peer(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    ssize_t n = read_some(fd_, pending_, left);
    if (n == 0) return true;
    if (n < 0) return false;
  }
}

int raw_status(const std::string& raw) {
  if (raw.rfind("HTTP/1.", 0) != 0 || raw.size() < 12) return 0;
  return std::atoi(raw.substr(9, 3).c_str());
}

}  // namespace redline::test
