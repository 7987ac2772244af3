// One accepted connection of the mock provider: optional TLS handshake, then HTTP/1.1
// requests read in order (keep-alive, pipelining, chunked bodies, 100-continue) and each
// Plan sent as decided (one write, spaced SSE chunks, a stall or a reset). It decides nothing.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

#include "mock/handler.h"

namespace redline::mock {

// Serves `socket` until the peer closes, a request asks to close, or a plan resets it.
// `tls` is null for plain HTTP. Never throws.
boost::asio::awaitable<void> serve_connection(boost::asio::ip::tcp::socket socket,
                                              boost::asio::ssl::context* tls, Handler& handler);

}  // namespace redline::mock
