// MockServer: one io_context, one SO_REUSEPORT acceptor and one Handler per thread, so
// a connection lives on one thread from accept to close and the request path takes no
// locks (bar the optional last-request recorder). What connections say is in session.cpp
// and handler.cpp.
#include "mock/mock_server.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <optional>
#include <random>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

#include "mock/handler.h"
#include "mock/session.h"

namespace redline::mock {
namespace {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using reuse_port = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

tcp::endpoint resolve_listen(const std::string& host, uint16_t port) {
  boost::system::error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (!ec) return {address, port};
  asio::io_context ioc;
  tcp::resolver resolver(ioc);
  auto results = resolver.resolve(host, std::to_string(port), ec);
  if (ec || results.empty()) {
    throw std::system_error(ec ? ec : asio::error::host_not_found,
                            "redline-mock: cannot resolve listen host " + host);
  }
  for (const auto& r : results) {
    if (r.endpoint().address().is_v4()) return r.endpoint();
  }
  return results.begin()->endpoint();
}

}  // namespace

struct Worker {
  Worker(SharedState& shared, uint32_t index) : handler(shared, state) { state.index = index; }

  asio::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  ThreadState state;
  Handler handler;
  std::thread thread;
};

struct MockServer::Impl {
  explicit Impl(MockOptions options) : shared(std::move(options)) {}

  SharedState shared;
  std::optional<ssl::context> tls;
  std::vector<std::unique_ptr<Worker>> workers;
  uint16_t port = 0;
  bool started = false;
  bool stopped = false;
};

namespace {

asio::awaitable<void> accept_loop(Worker& worker, ssl::context* tls) {
  boost::system::error_code ec;
  auto token = asio::redirect_error(asio::use_awaitable, ec);
  asio::steady_timer backoff(worker.ioc);
  for (;;) {
    tcp::socket socket = co_await worker.acceptor.async_accept(token);
    if (ec) {
      if (ec == asio::error::operation_aborted || !worker.acceptor.is_open()) co_return;
      // Out of descriptors or similar: pause rather than spin on the error.
      backoff.expires_after(std::chrono::milliseconds(10));
      co_await backoff.async_wait(token);
      continue;
    }
    asio::co_spawn(worker.ioc, serve_connection(std::move(socket), tls, worker.handler),
                   asio::detached);
  }
}

void listen_on(tcp::acceptor& acceptor, const tcp::endpoint& endpoint, bool shared_port) {
  acceptor.open(endpoint.protocol());
  acceptor.set_option(asio::socket_base::reuse_address(true));
  if (shared_port) acceptor.set_option(reuse_port(true));
  acceptor.bind(endpoint);
  acceptor.listen(asio::socket_base::max_listen_connections);
}

}  // namespace

MockServer::MockServer(MockOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

MockServer::~MockServer() {
  stop();
}

uint16_t MockServer::port() const {
  return impl_->port;
}

void MockServer::start() {
  Impl& m = *impl_;
  if (m.started) throw std::logic_error("MockServer::start called twice");
  m.started = true;
  const MockOptions& o = m.shared.options;

  if (!o.tls_cert.empty() || !o.tls_key.empty()) {
    m.tls.emplace(ssl::context::tls_server);
    m.tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                       ssl::context::single_dh_use);
    m.tls->use_certificate_chain_file(o.tls_cert);
    m.tls->use_private_key_file(o.tls_key, ssl::context::pem);
  }

  std::random_device rd;
  m.shared.nonce = rd();
  unsigned threads = o.threads > 0 ? static_cast<unsigned>(o.threads)
                                   : std::max(1u, std::thread::hardware_concurrency());
  tcp::endpoint endpoint = resolve_listen(o.host, o.port);
  for (unsigned i = 0; i < threads; ++i) {
    auto worker = std::make_unique<Worker>(m.shared, i);
    listen_on(worker->acceptor, endpoint, threads > 1);
    if (i == 0) {
      m.port = worker->acceptor.local_endpoint().port();
      endpoint.port(m.port);
    }
    m.shared.threads.push_back(&worker->state);
    m.workers.push_back(std::move(worker));
  }
  ssl::context* tls = m.tls ? &*m.tls : nullptr;
  for (auto& w : m.workers) {
    asio::co_spawn(w->ioc, accept_loop(*w, tls), asio::detached);
    w->thread = std::thread([&ioc = w->ioc] { ioc.run(); });
  }
}

void MockServer::stop() {
  Impl& m = *impl_;
  if (!m.started || m.stopped) return;
  m.stopped = true;
  for (auto& w : m.workers) w->ioc.stop();
  for (auto& w : m.workers) {
    if (w->thread.joinable()) w->thread.join();
  }
  // Destroying each io_context destroys its suspended connection coroutines and sockets.
  m.workers.clear();
  m.shared.threads.clear();
}

}  // namespace redline::mock
