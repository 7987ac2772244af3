// Connection tests against real redis-server processes: RESP3 types from a live server,
// automatic pipelining under 1,000 concurrent coroutines, AUTH/ACL/RESP2 fallback/SELECT/TLS,
// and failure handling (timeouts while paused, restart mid-load, back-pressure, pushes).
#include "redis/connection.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <cmath>
#include <cstdio>

#include "redis/async_test_util.h"
#include "support/redis_server.h"

namespace redline::redis {
namespace {

namespace asio = boost::asio;
using test::RedisServer;
using test::RedisServerOptions;
using testing::run_for;
using testing::run_until_done;
using testing::sleep_for;

ConnectionOptions options_for(const RedisServer& server) {
  auto o = parse_url(server.url());
  EXPECT_TRUE(o.ok());
  ConnectionOptions opts = o.ok() ? o.value() : ConnectionOptions{};
  if (server.options().tls) opts.ca_file = server.ca_file().string();
  return opts;
}

struct Fixture {
  explicit Fixture(RedisServerOptions so = {}) : server(so) {}
  std::shared_ptr<Connection> connect(ConnectionOptions o) {
    conn = Connection::create(io.get_executor(), std::move(o));
    return conn;
  }
  std::shared_ptr<Connection> connect() { return connect(options_for(server)); }
  Result<Reply> exec(const Command& c) { return run_until_done(io, conn->execute(c)); }
  ~Fixture() {
    if (conn) conn->stop();
    run_for(io, std::chrono::milliseconds(20));
  }
  RedisServer server;
  asio::io_context io;
  std::shared_ptr<Connection> conn;
};

TEST(RedisUrl, ParsesAllParts) {
  auto o = parse_url("redis://user:p%40ss@example.com:6380/3");
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->host, "example.com");
  EXPECT_EQ(o->port, 6380);
  EXPECT_EQ(o->user, "user");
  EXPECT_EQ(o->password, "p@ss");
  EXPECT_EQ(o->db, 3);
  EXPECT_FALSE(o->tls);
  o = parse_url("rediss://:secret@[::1]");
  ASSERT_TRUE(o.ok());
  EXPECT_TRUE(o->tls);
  EXPECT_EQ(o->host, "::1");
  EXPECT_EQ(o->port, 6379);
  EXPECT_EQ(o->user, "");
  EXPECT_EQ(o->password, "secret");
  EXPECT_EQ(parse_url("redis://localhost").value().port, 6379);
  EXPECT_EQ(parse_url("http://x").kind(), ErrorKind::kInvalidArgument);
  EXPECT_EQ(parse_url("redis://h:99999").kind(), ErrorKind::kInvalidArgument);
  EXPECT_EQ(parse_url("redis://h:1/x").kind(), ErrorKind::kInvalidArgument);
  EXPECT_EQ(parse_url("redis://:pw@").kind(), ErrorKind::kInvalidArgument);
}

TEST(RedisConnection, HelloThreeAndBasicCommands) {
  Fixture f;
  f.connect();
  auto ok = run_until_done(f.io, f.conn->connect());
  ASSERT_TRUE(ok.ok()) << ok.error().to_string();
  EXPECT_EQ(f.conn->protocol(), 3);
  EXPECT_EQ(f.exec(Command("SET", "k", "v")).value().str(), "OK");
  EXPECT_EQ(f.exec(Command("GET", "k")).value().str(), "v");
  EXPECT_TRUE(f.exec(Command("GET", "missing")).value().is_null());
  auto err = f.exec(Command("INCR", "k"));
  ASSERT_FALSE(err.ok());
  EXPECT_EQ(err.kind(), ErrorKind::kServerError);
  EXPECT_TRUE(err.error().starts_with("ERR value is not an integer"));
  auto hello = f.exec(Command("HELLO", "3"));
  ASSERT_TRUE(hello.ok());
  EXPECT_EQ(hello->type(), Type::kMap);
  EXPECT_EQ(hello->find("proto")->integer(), 3);
  EXPECT_EQ(hello->find("server")->str(), "redis");
}

// Every RESP3 type as a real redis 7 produces it (DEBUG PROTOCOL <type>).
TEST(RedisConnection, EveryResp3TypeFromARealServer) {
  Fixture f;
  f.connect();
  auto debug = [&](const char* type) { return f.exec(Command("DEBUG", "PROTOCOL", type)); };
  EXPECT_EQ(debug("string").value().type(), Type::kBulkString);
  EXPECT_EQ(debug("integer").value().type(), Type::kInteger);
  auto d = debug("double").value();
  EXPECT_EQ(d.type(), Type::kDouble);
  EXPECT_NEAR(d.as_double(), 3.141, 0.01);
  auto big = debug("bignum").value();
  EXPECT_EQ(big.type(), Type::kBigNumber);
  EXPECT_EQ(big.str(), "1234567999999999999999999999999999999");
  EXPECT_TRUE(debug("null").value().is_null());
  EXPECT_EQ(debug("array").value().type(), Type::kArray);
  EXPECT_EQ(debug("set").value().type(), Type::kSet);
  auto m = debug("map").value();
  EXPECT_EQ(m.type(), Type::kMap);
  EXPECT_EQ(m.size(), 3u);
  auto attrib = debug("attrib").value();
  EXPECT_EQ(attrib.type(), Type::kBulkString);
  EXPECT_FALSE(attrib.attributes().empty());
  auto verbatim = debug("verbatim").value();
  EXPECT_EQ(verbatim.type(), Type::kVerbatim);
  EXPECT_EQ(verbatim.format(), "txt");
  EXPECT_EQ(debug("true").value().boolean(), true);
  EXPECT_EQ(debug("false").value().type(), Type::kBoolean);
  // "push" sends an out-of-band push followed by its regular reply: the push goes to the
  // handler and the reply still matches the command.
  std::vector<Reply> pushes;
  f.conn->on_push([&](const Reply& r) { pushes.push_back(r); });
  auto after_push = debug("push");
  ASSERT_TRUE(after_push.ok()) << after_push.error().to_string();
  EXPECT_EQ(pushes.size(), 1u);
  if (!pushes.empty()) {
    EXPECT_EQ(pushes[0].type(), Type::kPush);
  }
  EXPECT_EQ(f.exec(Command("PING")).value().str(), "PONG");
  // Scores as doubles, including inf.
  ASSERT_TRUE(f.exec(Command("ZADD", "z", "+inf", "m")).ok());
  auto score = f.exec(Command("ZSCORE", "z", "m")).value();
  EXPECT_EQ(score.type(), Type::kDouble);
  EXPECT_TRUE(std::isinf(score.as_double()));
}

// 100,000 commands from 1,000 coroutines: every reply matches its command, and automatic
// pipelining sends them in far fewer writes than commands.
TEST(RedisConnection, HundredThousandPipelinedCommandsStayMatched) {
  Fixture f;
  f.connect();
  ASSERT_TRUE(run_until_done(f.io, f.conn->connect()).ok());
  const auto before = f.conn->stats();
  constexpr int kCoroutines = 1000, kPerCoroutine = 100;
  int finished = 0, mismatches = 0, errors = 0;
  auto worker = [&](int id) -> asio::awaitable<void> {
    for (int i = 0; i < kPerCoroutine; ++i) {
      const std::string expect = std::to_string(id) + ":" + std::to_string(i);
      Command cmd("ECHO", expect);
      auto r = co_await f.conn->execute(cmd);
      if (!r.ok()) {
        ++errors;
      } else if (r->str() != expect) {
        ++mismatches;
      }
    }
    ++finished;
  };
  auto t0 = std::chrono::steady_clock::now();
  for (int c = 0; c < kCoroutines; ++c) asio::co_spawn(f.io, worker(c), asio::detached);
  while (finished < kCoroutines) f.io.run_one();
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  EXPECT_EQ(mismatches, 0);
  EXPECT_EQ(errors, 0);
  const auto& s = f.conn->stats();
  uint64_t writes = s.writes - before.writes, sent = s.commands_sent - before.commands_sent;
  EXPECT_EQ(sent, uint64_t{kCoroutines * kPerCoroutine});
  EXPECT_EQ(s.replies - before.replies, uint64_t{kCoroutines * kPerCoroutine});
  std::printf("[ pipeline ] %llu commands in %llu writes (%.1f commands/write), %lld ms\n",
              static_cast<unsigned long long>(sent), static_cast<unsigned long long>(writes),
              writes ? double(sent) / double(writes) : 0.0, static_cast<long long>(ms));
  EXPECT_LT(writes * 20, sent);  // at least 20 commands per write on average
}

TEST(RedisConnection, CommandsOfOneTurnLeaveInOneWrite) {
  Fixture f;
  f.connect();
  ASSERT_TRUE(run_until_done(f.io, f.conn->connect()).ok());
  auto writes0 = f.conn->stats().writes;
  int done = 0, failed = 0;
  auto set = [&](int i) -> asio::awaitable<void> {
    Command cmd("SET", "key" + std::to_string(i), i);
    auto r = co_await f.conn->execute(cmd);
    if (!r.ok()) ++failed;
    ++done;
  };
  for (int i = 0; i < 50; ++i) asio::co_spawn(f.io, set(i), asio::detached);
  while (done < 50) f.io.run_one();
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(f.conn->stats().writes - writes0, 1u);
  // A batch is one write and one result per command, errors in place.
  std::vector<Command> cmds = {Command("SET", "a", "1"), Command("INCR", "a"),
                               Command("HINCRBY", "a", "f", 1), Command("GET", "a")};
  auto w0 = f.conn->stats().writes;
  auto results = run_until_done(f.io, f.conn->batch(cmds));
  ASSERT_EQ(results.size(), 4u);
  EXPECT_EQ(results[1].value().integer(), 2);
  EXPECT_EQ(results[2].kind(), ErrorKind::kServerError);
  EXPECT_TRUE(results[2].error().starts_with("WRONGTYPE"));
  EXPECT_EQ(results[3].value().str(), "2");
  EXPECT_EQ(f.conn->stats().writes - w0, 1u);
}

TEST(RedisConnection, AuthSuccessAndClearFailure) {
  RedisServerOptions so;
  so.password = "right";
  Fixture f(so);
  f.connect();
  EXPECT_EQ(f.exec(Command("PING")).value().str(), "PONG");
  auto bad = options_for(f.server);
  bad.password = "wrong";
  auto other = Connection::create(f.io.get_executor(), bad);
  auto r = run_until_done(f.io, other->connect());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.kind(), ErrorKind::kAuthFailed);
  EXPECT_NE(r.error().message.find("WRONGPASS"), std::string::npos) << r.error().message;
  auto cmd = run_until_done(f.io, other->execute(Command("PING")));
  EXPECT_FALSE(cmd.ok());
  other->stop();
  // No password at all: the server's NOAUTH comes back as a typed auth failure.
  auto none = options_for(f.server);
  none.password.clear();
  auto anon = Connection::create(f.io.get_executor(), none);
  auto r2 = run_until_done(f.io, anon->execute(Command("GET", "x")));
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.kind(), ErrorKind::kAuthFailed);
  EXPECT_NE(r2.error().message.find("NOAUTH"), std::string::npos) << r2.error().to_string();
  anon->stop();
}

TEST(RedisConnection, AclUserSetNameAndSelect) {
  RedisServerOptions so;
  so.acl_user = "gateway";
  so.acl_password = "gw";
  Fixture f(so);
  auto o = options_for(f.server);
  o.db = 3;
  o.client_name = "redline-test";
  f.connect(o);
  EXPECT_EQ(f.exec(Command("ACL", "WHOAMI")).value().str(), "gateway");
  EXPECT_EQ(f.exec(Command("CLIENT", "GETNAME")).value().str(), "redline-test");
  ASSERT_TRUE(f.exec(Command("SET", "in-db-3", "yes")).ok());
  EXPECT_EQ(f.server.cli("-n", "3", "GET", "in-db-3"), "yes");
  EXPECT_EQ(f.server.cli("GET", "in-db-3"), "");
}

TEST(RedisConnection, FallsBackToResp2WhenHelloIsRefused) {
  RedisServerOptions so;
  so.acl_user = "gateway";
  so.acl_password = "gw";
  so.extra_config = {"rename-command HELLO \"\""};
  Fixture f(so);
  auto o = options_for(f.server);
  o.db = 2;
  o.client_name = "resp2-client";
  f.connect(o);
  ASSERT_TRUE(run_until_done(f.io, f.conn->connect()).ok());
  EXPECT_EQ(f.conn->protocol(), 2);
  EXPECT_EQ(f.exec(Command("ACL", "WHOAMI")).value().str(), "gateway");
  EXPECT_EQ(f.exec(Command("CLIENT", "GETNAME")).value().str(), "resp2-client");
  ASSERT_TRUE(f.exec(Command("HSET", "h", "a", "1")).ok());
  auto all = f.exec(Command("HGETALL", "h")).value();
  EXPECT_EQ(all.type(), Type::kArray);  // RESP2: a flat array, not a map
  EXPECT_TRUE(f.exec(Command("GET", "nope")).value().is_null());
}

TEST(RedisConnection, TlsRoundTripWithCaVerification) {
  RedisServerOptions so;
  so.tls = true;
  so.password = "tls-pass";
  Fixture f(so);
  f.connect();
  EXPECT_EQ(f.exec(Command("SET", "t", "tls")).value().str(), "OK");
  EXPECT_EQ(f.exec(Command("GET", "t")).value().str(), "tls");
  // Without the throwaway CA the certificate cannot be verified.
  auto o = options_for(f.server);
  o.ca_file.clear();
  auto untrusted = Connection::create(f.io.get_executor(), o);
  auto r = run_until_done(f.io, untrusted->connect());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.kind(), ErrorKind::kTlsError);
  EXPECT_NE(r.error().message.find("certificate verify failed"), std::string::npos)
      << r.error().message;
  untrusted->stop();
}

TEST(RedisConnection, TimeoutWhilePausedThenRecovers) {
  Fixture f;
  auto o = options_for(f.server);
  o.command_timeout = std::chrono::milliseconds(150);
  f.connect(o);
  ASSERT_TRUE(f.exec(Command("SET", "p", "1")).ok());
  f.server.pause();
  auto t0 = std::chrono::steady_clock::now();
  auto r = f.exec(Command("GET", "p"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.kind(), ErrorKind::kTimeout);
  EXPECT_NE(r.error().message.find("timed out after 150 ms"), std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1000));
  EXPECT_EQ(f.exec(Command("INCR", "p")).kind(), ErrorKind::kTimeout);
  f.server.resume();
  // The late replies of the timed-out commands are consumed and dropped: FIFO stays aligned.
  auto after = f.exec(Command("GET", "p"));
  ASSERT_TRUE(after.ok()) << after.error().to_string();
  EXPECT_EQ(after->str(), "2");
  EXPECT_EQ(f.conn->stats().discarded, 2u);
  EXPECT_EQ(f.conn->stats().timeouts, 2u);
  EXPECT_EQ(f.conn->stats().disconnects, 0u);
}

TEST(RedisConnection, HungServerIsResetAndReconnectedAfterStall) {
  Fixture f;
  auto o = options_for(f.server);
  o.command_timeout = std::chrono::milliseconds(100);
  o.stall_reset = std::chrono::milliseconds(300);
  o.connect_timeout = std::chrono::milliseconds(200);
  o.reconnect_max = std::chrono::milliseconds(100);
  f.connect(o);
  ASSERT_TRUE(f.exec(Command("PING")).ok());
  f.server.pause();
  std::map<ErrorKind, int> kinds;
  auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(800)) {
    auto r = f.exec(Command("PING"));
    ASSERT_FALSE(r.ok());
    ++kinds[r.kind()];
    run_for(f.io, std::chrono::milliseconds(20));
  }
  EXPECT_GT(kinds[ErrorKind::kTimeout], 0);
  EXPECT_EQ(f.conn->stats().disconnects, 1u);       // the stall reset
  EXPECT_GT(f.conn->stats().connect_failures, 0u);  // handshakes to a hung server time out
  EXPECT_GT(kinds[ErrorKind::kNotConnected], 0);    // meanwhile commands fail fast
  f.server.resume();
  Result<Reply> r = Error{ErrorKind::kNotConnected, ""};
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (!r.ok() && std::chrono::steady_clock::now() < deadline) {
    run_for(f.io, std::chrono::milliseconds(20));
    r = f.exec(Command("PING"));
  }
  ASSERT_TRUE(r.ok()) << r.error().to_string();
}

// Something that is not Redis answering on the port: a typed protocol error, not a hang.
TEST(RedisConnection, GarbageFromThePeerIsAProtocolError) {
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  auto serve = [&]() -> asio::awaitable<void> {
    auto sock = co_await acceptor.async_accept(asio::use_awaitable);
    char buf[256];
    co_await sock.async_read_some(asio::buffer(buf), asio::use_awaitable);
    const std::string reply = "HTTP/1.1 400 Bad Request\r\n\r\n";
    co_await asio::async_write(sock, asio::buffer(reply), asio::use_awaitable);
  };
  asio::co_spawn(io, serve(), asio::detached);
  ConnectionOptions o;
  o.port = acceptor.local_endpoint().port();
  auto conn = Connection::create(io.get_executor(), o);
  auto r = run_until_done(io, conn->connect());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.kind(), ErrorKind::kProtocolError);
  EXPECT_NE(r.error().message.find("unexpected type byte 'H'"), std::string::npos)
      << r.error().message;
  conn->stop();
  run_for(io, std::chrono::milliseconds(10));
}

TEST(RedisConnection, BoundedQueueGivesBackPressure) {
  Fixture f;
  auto o = options_for(f.server);
  o.max_queue = 10;
  o.command_timeout = std::chrono::milliseconds(200);
  f.connect(o);
  ASSERT_TRUE(f.exec(Command("PING")).ok());
  f.server.pause();
  int full = 0, timeouts = 0, done = 0;
  auto ping = [&]() -> asio::awaitable<void> {
    Command cmd("PING");
    auto r = co_await f.conn->execute(cmd);
    if (!r.ok() && r.kind() == ErrorKind::kQueueFull) ++full;
    if (!r.ok() && r.kind() == ErrorKind::kTimeout) ++timeouts;
    ++done;
  };
  for (int i = 0; i < 25; ++i) asio::co_spawn(f.io, ping(), asio::detached);
  while (done < 25) f.io.run_one();
  EXPECT_EQ(full, 15);
  EXPECT_EQ(timeouts, 10);
  // Timed-out commands still occupy the queue until their late replies are consumed.
  EXPECT_EQ(f.exec(Command("PING")).kind(), ErrorKind::kQueueFull);
  f.server.resume();
  run_for(f.io, std::chrono::milliseconds(100));
  EXPECT_EQ(f.conn->queued(), 0u);
  EXPECT_TRUE(f.exec(Command("PING")).ok());
}

TEST(RedisConnection, ServerRestartMidLoadReconnects) {
  Fixture f;
  auto o = options_for(f.server);
  o.command_timeout = std::chrono::milliseconds(500);
  o.reconnect_max = std::chrono::milliseconds(100);
  f.connect(o);
  ASSERT_TRUE(run_until_done(f.io, f.conn->connect()).ok());
  bool stop_load = false;
  int ok = 0, failed = 0, ok_after_restart = 0;
  bool restarted = false;
  std::map<ErrorKind, int> kinds;
  auto load = [&]() -> asio::awaitable<void> {
    while (!stop_load) {
      Command cmd("INCR", "counter");
      auto r = co_await f.conn->execute(cmd);
      if (r.ok()) {
        ++ok;
        if (restarted) ++ok_after_restart;
      } else {
        ++failed;
        ++kinds[r.kind()];
        co_await sleep_for(std::chrono::milliseconds(5));
      }
    }
  };
  for (int i = 0; i < 20; ++i) asio::co_spawn(f.io, load(), asio::detached);
  run_for(f.io, std::chrono::milliseconds(100));
  f.server.restart();  // blocks this thread: the client sees the drop when we resume
  restarted = true;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (ok_after_restart < 100 && std::chrono::steady_clock::now() < deadline) {
    run_for(f.io, std::chrono::milliseconds(20));
  }
  stop_load = true;
  run_for(f.io, std::chrono::milliseconds(100));
  EXPECT_GE(ok_after_restart, 100);
  EXPECT_GT(failed, 0);
  for (auto& [k, n] : kinds) {
    EXPECT_TRUE(k == ErrorKind::kConnectionLost || k == ErrorKind::kNotConnected)
        << error_kind_name(k);
  }
  EXPECT_GE(f.conn->stats().connects, 2u);
}

TEST(RedisConnection, PushesReachTheSubscriberAndDropsAreSignalled) {
  Fixture f;
  auto o = options_for(f.server);
  o.init_commands.push_back(Command("CLIENT", "TRACKING", "ON"));
  f.connect(o);
  std::vector<std::string> invalidated;
  int drops = 0;
  f.conn->on_push([&](const Reply& r) {
    if (r.size() >= 2 && r[0].str() == "invalidate" && r[1].type() == Type::kArray) {
      for (const auto& k : r[1].elements()) invalidated.push_back(k.str());
    }
  });
  f.conn->on_disconnect([&](const Error&) { ++drops; });
  ASSERT_TRUE(f.exec(Command("SET", "tracked", "1")).ok());
  ASSERT_TRUE(f.exec(Command("GET", "tracked")).ok());
  f.server.cli("SET", "tracked", "2");  // another client changes the key
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (invalidated.empty() && std::chrono::steady_clock::now() < deadline) {
    run_for(f.io, std::chrono::milliseconds(10));
  }
  ASSERT_EQ(invalidated.size(), 1u);
  EXPECT_EQ(invalidated[0], "tracked");
  EXPECT_EQ(f.exec(Command("GET", "tracked")).value().str(), "2");
  f.server.kill(SIGKILL);
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (drops == 0 && std::chrono::steady_clock::now() < deadline) {
    run_for(f.io, std::chrono::milliseconds(10));
  }
  EXPECT_EQ(drops, 1);
  auto r = f.exec(Command("GET", "tracked"));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.kind() == ErrorKind::kNotConnected || r.kind() == ErrorKind::kConnectionLost);
}

TEST(RedisConnection, ConnectRefusedIsTypedAndFast) {
  asio::io_context io;
  ConnectionOptions o;
  o.port = static_cast<uint16_t>(test::free_port());
  auto conn = Connection::create(io.get_executor(), o);
  auto r = run_until_done(io, conn->execute(Command("PING")));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.kind(), ErrorKind::kNotConnected);
  EXPECT_NE(r.error().message.find("refused"), std::string::npos) << r.error().message;
  conn->stop();
  EXPECT_EQ(run_until_done(io, conn->execute(Command("PING"))).kind(), ErrorKind::kStopped);
}

}  // namespace
}  // namespace redline::redis
