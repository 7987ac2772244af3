// ClusterClient (see cluster.h): key slots, slot map parsing, routing, redirects and retries,
// topology refreshes and parallel per-node batches. Everything runs on the caller's executor
// thread; background coroutines hold `alive_` and bail out if the client was destroyed.
#include "redis/cluster.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>
#include <set>

namespace redline::redis {

namespace asio = boost::asio;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

constexpr std::array<uint16_t, 256> make_crc16_table() {
  std::array<uint16_t, 256> t{};
  for (int i = 0; i < 256; ++i) {
    uint16_t crc = static_cast<uint16_t>(i << 8);
    for (int b = 0; b < 8; ++b) {
      crc = (crc & 0x8000) ? static_cast<uint16_t>((crc << 1) ^ 0x1021)
                           : static_cast<uint16_t>(crc << 1);
    }
    t[i] = crc;
  }
  return t;
}
constexpr auto kCrc16Table = make_crc16_table();

// Upper-cased command name in a small buffer (names are short; longer ones never match).
std::string upper_name(const Command& cmd) {
  std::string n(cmd.arg(0).substr(0, 32));
  for (char& c : n) {
    if (c >= 'a' && c <= 'z') {
      c = static_cast<char>(c - 'a' + 'A');
    }
  }
  return n;
}

bool equals_ci(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'a' && x <= 'z') {
      x = static_cast<char>(x - 'a' + 'A');
    }
    if (y >= 'a' && y <= 'z') {
      y = static_cast<char>(y - 'a' + 'A');
    }
    if (x != y) {
      return false;
    }
  }
  return true;
}

const std::set<std::string, std::less<>>& keyless_commands() {
  static const std::set<std::string, std::less<>> s = {
      "PING",       "ECHO",        "INFO",         "TIME",         "DBSIZE",   "FLUSHALL",
      "FLUSHDB",    "CLUSTER",     "CLIENT",       "CONFIG",       "SCRIPT",   "FUNCTION",
      "COMMAND",    "DEBUG",       "HELLO",        "AUTH",         "SELECT",   "READONLY",
      "READWRITE",  "ASKING",      "SLOWLOG",      "LATENCY",      "ACL",      "LASTSAVE",
      "ROLE",       "WAIT",        "MULTI",        "EXEC",         "DISCARD",  "KEYS",
      "SCAN",       "RANDOMKEY",   "SAVE",         "BGSAVE",       "MONITOR",  "PUBLISH",
      "SWAPDB",     "LOLWUT",      "MODULE",       "BGREWRITEAOF", "SHUTDOWN", "SUBSCRIBE",
      "PSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "PUBSUB",       "WAITAOF"};
  return s;
}

const std::set<std::string, std::less<>>& read_only_commands() {
  static const std::set<std::string, std::less<>> s = {
      "GET",           "MGET",        "STRLEN",    "GETRANGE",   "EXISTS",  "TTL",
      "PTTL",          "TYPE",        "HGET",      "HMGET",      "HGETALL", "HEXISTS",
      "HLEN",          "HKEYS",       "HVALS",     "HSTRLEN",    "LRANGE",  "LLEN",
      "LINDEX",        "SMEMBERS",    "SISMEMBER", "SMISMEMBER", "SCARD",   "ZRANGE",
      "ZRANGEBYSCORE", "ZREVRANGE",   "ZSCORE",    "ZMSCORE",    "ZCARD",   "ZCOUNT",
      "ZRANK",         "ZREVRANK",    "XRANGE",    "XREVRANGE",  "XLEN",    "EVAL_RO",
      "EVALSHA_RO",    "FCALL_RO",    "BITCOUNT",  "GETBIT",     "DUMP",    "PFCOUNT",
      "EXPIRETIME",    "PEXPIRETIME", "OBJECT",    "MEMORY"};
  return s;
}

// "MOVED 3999 127.0.0.1:6381" / "ASK 3999 127.0.0.1:6381" -> slot, address. An empty host
// (":6381") means "the node you asked".
bool parse_redirect(std::string_view msg, std::string_view asked, uint16_t& slot,
                    std::string& address) {
  auto sp1 = msg.find(' ');
  if (sp1 == std::string_view::npos) {
    return false;
  }
  auto sp2 = msg.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) {
    return false;
  }
  std::string_view s = msg.substr(sp1 + 1, sp2 - sp1 - 1);
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || v >= kClusterSlots) {
    return false;
  }
  slot = static_cast<uint16_t>(v);
  std::string_view addr = msg.substr(sp2 + 1);
  if (auto sp = addr.find(' '); sp != std::string_view::npos) {
    addr = addr.substr(0, sp);
  }
  if (addr.empty()) {
    return false;
  }
  if (addr[0] == ':') {
    address = std::string(asked.substr(0, asked.rfind(':'))) + std::string(addr);
  } else {
    address = std::string(addr);
  }
  return true;
}

std::string join_host_port(std::string_view host, int64_t port) {
  std::string h(host);
  if (h.find(':') != std::string::npos) {
    h = "[" + h + "]";  // IPv6
  }
  return h + ":" + std::to_string(port);
}

// A node's preferred address in CLUSTER SHARDS: endpoint, else ip, else the queried host.
std::string node_host(const Reply& node, std::string_view queried_host) {
  for (const char* field : {"endpoint", "ip"}) {
    const Reply* v = node.find(field);
    if (v && v->is_string() && !v->str().empty() && v->str() != "?") {
      return v->str();
    }
  }
  return std::string(queried_host);
}

// Joins N awaited sub-tasks on one executor without locks.
class WaitGroup {
 public:
  explicit WaitGroup(const Connection::Executor& ex) : timer_(ex) {
    timer_.expires_at(asio::steady_timer::time_point::max());
  }
  void add(size_t n = 1) { count_ += n; }
  void done() {
    if (--count_ == 0) {
      timer_.cancel();
    }
  }
  Awaitable<void> wait() {
    while (count_ > 0) {
      co_await timer_.async_wait(use_tuple);
    }
  }

 private:
  asio::steady_timer timer_;
  size_t count_ = 0;
};

bool is_retryable_cluster_error(const Result<Reply>& r) {
  if (r.ok() || r.kind() != ErrorKind::kServerError) {
    return false;
  }
  const Error& e = r.error();
  return e.starts_with("MOVED ") || e.starts_with("ASK ") || e.starts_with("TRYAGAIN") ||
         e.starts_with("CLUSTERDOWN");
}

}  // namespace

uint16_t crc16(std::string_view data) {
  uint16_t crc = 0;
  for (unsigned char c : data) {
    crc = static_cast<uint16_t>((crc << 8) ^ kCrc16Table[((crc >> 8) ^ c) & 0xff]);
  }
  return crc;
}

uint16_t key_slot(std::string_view key) {
  auto open = key.find('{');
  if (open != std::string_view::npos) {
    auto close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  return crc16(key) & (kClusterSlots - 1);
}

std::optional<std::string_view> routing_key(const Command& cmd) {
  if (cmd.size() < 2) {
    return std::nullopt;
  }
  const std::string name = upper_name(cmd);
  if (keyless_commands().count(name)) {
    return std::nullopt;
  }
  if (name == "EVAL" || name == "EVALSHA" || name == "EVAL_RO" || name == "EVALSHA_RO" ||
      name == "FCALL" || name == "FCALL_RO") {
    if (cmd.size() < 4 || cmd.arg(2) == "0") {
      return std::nullopt;
    }
    return cmd.arg(3);
  }
  if (name == "XREAD" || name == "XREADGROUP") {
    for (size_t i = 1; i + 1 < cmd.size(); ++i) {
      if (equals_ci(cmd.arg(i), "STREAMS")) {
        return cmd.arg(i + 1);
      }
    }
    return std::nullopt;
  }
  if (name == "OBJECT" || name == "MEMORY" || name == "XINFO") {
    if (cmd.size() < 3) {
      return std::nullopt;
    }
    return cmd.arg(2);
  }
  return cmd.arg(1);
}

bool is_read_only(const Command& cmd) {
  return !cmd.empty() && read_only_commands().count(upper_name(cmd)) > 0;
}

bool SlotMap::complete() const {
  for (auto o : owner) {
    if (o < 0) {
      return false;
    }
  }
  return true;
}

Result<SlotMap> parse_cluster_shards(const Reply& reply, std::string_view queried_host, bool tls) {
  if (reply.type() != Type::kArray) {
    return Error{ErrorKind::kProtocolError, "CLUSTER SHARDS: expected an array"};
  }
  SlotMap map;
  for (const Reply& shard : reply.elements()) {
    const Reply* slots = shard.find("slots");
    const Reply* nodes = shard.find("nodes");
    if (!slots || !nodes || !slots->is_aggregate() || !nodes->is_aggregate()) {
      return Error{ErrorKind::kProtocolError, "CLUSTER SHARDS: shard without slots/nodes"};
    }
    ClusterShard out;
    for (const Reply& node : nodes->elements()) {
      const Reply* role = node.find("role");
      const Reply* health = node.find("health");
      const Reply* port = tls && node.find("tls-port") ? node.find("tls-port") : node.find("port");
      if (!role || !port || port->type() != Type::kInteger) {
        continue;
      }
      std::string addr = join_host_port(node_host(node, queried_host), port->integer());
      // Redis 7.0 reports a replica that has not replicated any write yet (offset 0) as
      // "loading"; a replica that really is loading answers -LOADING and the read is retried
      // on the master, so only "failed" replicas are left out.
      const bool online = !health || health->str() != "failed";
      if (role->str() == "master") {
        out.master = addr;
      } else if (online) {
        out.replicas.push_back(addr);
      }
    }
    if (out.master.empty() || slots->elements().empty()) {
      continue;
    }
    const auto index = static_cast<int16_t>(map.shards.size());
    const auto& ranges = slots->elements();
    for (size_t i = 0; i + 1 < ranges.size(); i += 2) {
      int64_t a = ranges[i].integer(), b = ranges[i + 1].integer();
      if (ranges[i].type() != Type::kInteger || ranges[i + 1].type() != Type::kInteger || a < 0 ||
          b >= kClusterSlots || a > b) {
        return Error{ErrorKind::kProtocolError, "CLUSTER SHARDS: bad slot range"};
      }
      for (int64_t s = a; s <= b; ++s) {
        map.owner[static_cast<size_t>(s)] = index;
      }
    }
    map.shards.push_back(std::move(out));
  }
  return map;
}

Result<SlotMap> parse_cluster_slots(const Reply& reply, std::string_view queried_host) {
  if (reply.type() != Type::kArray) {
    return Error{ErrorKind::kProtocolError, "CLUSTER SLOTS: expected an array"};
  }
  SlotMap map;
  std::map<std::string, int16_t> by_master;
  for (const Reply& range : reply.elements()) {
    if (range.type() != Type::kArray || range.size() < 3 || range[0].type() != Type::kInteger ||
        range[1].type() != Type::kInteger) {
      return Error{ErrorKind::kProtocolError, "CLUSTER SLOTS: bad entry"};
    }
    auto addr_of = [&](const Reply& node) -> std::string {
      if (node.type() != Type::kArray || node.size() < 2 || node[1].type() != Type::kInteger) {
        return {};
      }
      std::string host = node[0].str();
      if (host.empty() || host == "?") {
        host = std::string(queried_host);
      }
      return join_host_port(host, node[1].integer());
    };
    std::string master = addr_of(range[2]);
    if (master.empty()) {
      return Error{ErrorKind::kProtocolError, "CLUSTER SLOTS: bad node"};
    }
    auto [it, inserted] = by_master.try_emplace(master, static_cast<int16_t>(map.shards.size()));
    if (inserted) {
      ClusterShard shard;
      shard.master = master;
      for (size_t i = 3; i < range.size(); ++i) {
        std::string r = addr_of(range[i]);
        if (!r.empty()) {
          shard.replicas.push_back(r);
        }
      }
      map.shards.push_back(std::move(shard));
    }
    int64_t a = range[0].integer(), b = range[1].integer();
    if (a < 0 || b >= kClusterSlots || a > b) {
      return Error{ErrorKind::kProtocolError, "CLUSTER SLOTS: bad slot range"};
    }
    for (int64_t s = a; s <= b; ++s) {
      map.owner[static_cast<size_t>(s)] = it->second;
    }
  }
  return map;
}

Result<std::vector<ConnectionOptions>> ClusterClient::seeds_from_urls(
    const ClientOptions& options) {
  std::vector<ConnectionOptions> seeds;
  for (const auto& url : options.urls) {
    auto o = options_from_url(url, options.connection);
    if (!o.ok()) {
      return o.error();
    }
    o->db = 0;  // clusters have one database
    seeds.push_back(std::move(*o));
  }
  if (seeds.empty()) {
    return Error{ErrorKind::kInvalidArgument, "no cluster seed URL"};
  }
  return seeds;
}

ClusterClient::ClusterClient(Connection::Executor ex, ClientOptions options)
    : ex_(std::move(ex)),
      options_(std::move(options)),
      refresh_done_(ex_),
      periodic_(ex_),
      alive_(std::make_shared<bool>(true)) {
  refresh_done_.expires_at(asio::steady_timer::time_point::max());
  auto seeds = seeds_from_urls(options_);
  if (seeds.ok()) {
    seeds_ = std::move(*seeds);
  }
  node_template_ = seeds_.empty() ? options_.connection : seeds_.front();
  node_template_.readonly = options_.read_from_replicas;
  node_template_.db = 0;
}

ClusterClient::~ClusterClient() {
  *alive_ = false;
  try {
    stop();
  } catch (...) {  // nothing sensible to do while destroying
  }
}

void ClusterClient::stop() {
  if (stopped_) {
    return;
  }
  stopped_ = true;
  for (auto& [addr, conn] : nodes_) {
    conn->stop();
  }
  periodic_.cancel();
  refresh_done_.cancel();
}

ClientStats ClusterClient::stats() const {
  ClientStats total;
  for (const auto& [addr, conn] : nodes_) {
    const auto& s = conn->stats();
    total.writes += s.writes;
    total.commands_sent += s.commands_sent;
    total.replies += s.replies;
    total.pushes += s.pushes;
    total.timeouts += s.timeouts;
    total.discarded += s.discarded;
    total.connects += s.connects;
    total.connect_failures += s.connect_failures;
    total.disconnects += s.disconnects;
  }
  return total;
}

std::shared_ptr<Connection> ClusterClient::connection(const std::string& address) {
  auto it = nodes_.find(address);
  if (it != nodes_.end()) {
    return it->second;
  }
  ConnectionOptions o = node_template_;
  auto colon = address.rfind(':');
  std::string host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[') {
    host = host.substr(1, host.size() - 2);
  }
  o.host = host;
  o.port = static_cast<uint16_t>(std::atoi(address.c_str() + colon + 1));
  auto conn = Connection::create(ex_, std::move(o));
  if (on_push_) {
    conn->on_push(on_push_);
  }
  if (on_disconnect_) {
    conn->on_disconnect(on_disconnect_);
  }
  if (stopped_) {
    conn->stop();
  }
  nodes_.emplace(address, conn);
  return conn;
}

void ClusterClient::on_push(PushHandler handler) {
  on_push_ = std::move(handler);
  for (auto& [addr, conn] : nodes_) {
    conn->on_push(on_push_);
  }
}

void ClusterClient::on_disconnect(DisconnectHandler handler) {
  on_disconnect_ = std::move(handler);
  for (auto& [addr, conn] : nodes_) {
    conn->on_disconnect(on_disconnect_);
  }
}

std::string ClusterClient::master_for_slot(uint16_t slot) const {
  auto o = map_.owner[slot];
  return o < 0 ? std::string() : map_.shards[static_cast<size_t>(o)].master;
}

std::optional<std::string> ClusterClient::route(const Command& cmd, std::optional<uint16_t> slot,
                                                bool master_only) {
  if (!slot) {
    if (map_.shards.empty()) {
      return std::nullopt;
    }
    return map_.shards[rr_++ % map_.shards.size()].master;
  }
  auto o = map_.owner[*slot];
  if (o < 0) {
    return std::nullopt;
  }
  const ClusterShard& shard = map_.shards[static_cast<size_t>(o)];
  if (options_.read_from_replicas && !master_only && !shard.replicas.empty() && is_read_only(cmd)) {
    return shard.replicas[rr_++ % shard.replicas.size()];
  }
  return shard.master;
}

void ClusterClient::apply_moved(uint16_t slot, const std::string& address) {
  for (size_t i = 0; i < map_.shards.size(); ++i) {
    if (map_.shards[i].master == address) {
      map_.owner[slot] = static_cast<int16_t>(i);
      return;
    }
  }
  ClusterShard shard;
  shard.master = address;
  map_.shards.push_back(std::move(shard));
  map_.owner[slot] = static_cast<int16_t>(map_.shards.size() - 1);
}

Awaitable<Result<void>> ClusterClient::connect() {
  if (stopped_) {
    co_return Error{ErrorKind::kStopped, "cluster client stopped"};
  }
  if (!started_) {
    started_ = true;
    asio::co_spawn(ex_, periodic_refresh(), asio::detached);
  }
  if (!map_.shards.empty()) {
    co_return Result<void>();
  }
  co_return co_await refresh();
}

Awaitable<Result<void>> ClusterClient::refresh() {
  auto alive = alive_;
  if (refreshing_) {
    while (refreshing_ && *alive && !stopped_) {
      co_await refresh_done_.async_wait(use_tuple);
    }
    if (!*alive || stopped_) {
      co_return Error{ErrorKind::kStopped, "cluster client stopped"};
    }
    if (last_refresh_error_) {
      co_return *last_refresh_error_;
    }
    co_return Result<void>();
  }
  refreshing_ = true;
  // Ask known masters first, then replicas, then the seeds; skip nodes we know are down.
  std::vector<std::string> candidates;
  std::set<std::string> seen;
  auto consider = [&](const std::string& a) {
    if (seen.insert(a).second) {
      candidates.push_back(a);
    }
  };
  for (const auto& s : map_.shards) {
    consider(s.master);
  }
  for (const auto& s : map_.shards) {
    for (const auto& r : s.replicas) {
      consider(r);
    }
  }
  for (const auto& s : seeds_) {
    consider(join_host_port(s.host, s.port));
  }
  std::stable_partition(candidates.begin(), candidates.end(), [&](const std::string& a) {
    auto it = nodes_.find(a);
    return it == nodes_.end() || it->second->state() != Connection::State::kBackoff;
  });

  Result<void> outcome =
      Error{ErrorKind::kClusterDown, "no cluster node answered CLUSTER SHARDS / CLUSTER SLOTS"};
  const Millis timeout = std::min(node_template_.command_timeout, Millis(1000));
  for (const auto& addr : candidates) {
    auto conn = connection(addr);
    Command shards_cmd("CLUSTER", "SHARDS");
    auto r = co_await conn->execute(shards_cmd, timeout);
    if (!*alive || stopped_) {
      co_return Error{ErrorKind::kStopped, "cluster client stopped"};
    }
    Result<SlotMap> parsed = Error{ErrorKind::kProtocolError, "no reply"};
    if (r.ok()) {
      parsed = parse_cluster_shards(*r, conn->options().host, node_template_.tls);
    } else if (r.kind() == ErrorKind::kServerError) {
      // Redis < 7: no CLUSTER SHARDS.
      Command slots_cmd("CLUSTER", "SLOTS");
      r = co_await conn->execute(slots_cmd, timeout);
      if (!*alive || stopped_) {
        co_return Error{ErrorKind::kStopped, "cluster client stopped"};
      }
      if (r.ok()) {
        parsed = parse_cluster_slots(*r, conn->options().host);
      }
    }
    if (!r.ok()) {
      outcome = Error{r.kind(), "topology from " + addr + ": " + r.error().message};
      continue;
    }
    if (!parsed.ok()) {
      outcome = parsed.error();
      continue;
    }
    if (parsed->shards.empty()) {
      outcome = Error{ErrorKind::kClusterDown, addr + " reports no slots assigned"};
      continue;
    }
    map_ = std::move(*parsed);
    outcome = Result<void>();
    break;
  }
  ++refreshes_;
  last_refresh_ = std::chrono::steady_clock::now();
  refreshing_ = false;
  if (outcome.ok()) {
    last_refresh_error_.reset();
    // Drop connections to nodes that left the topology and are down (e.g. a failed master).
    std::set<std::string> live;
    for (const auto& s : map_.shards) {
      live.insert(s.master);
      live.insert(s.replicas.begin(), s.replicas.end());
    }
    for (auto it = nodes_.begin(); it != nodes_.end();) {
      if (!live.count(it->first) && it->second->state() == Connection::State::kBackoff) {
        it->second->stop();
        it = nodes_.erase(it);
      } else {
        ++it;
      }
    }
    if (options_.connect_all_masters) {
      for (const auto& shard : map_.shards) {
        auto conn = connection(shard.master);
        if (conn->state() == Connection::State::kIdle) {
          asio::co_spawn(ex_, conn->connect(), [conn](const std::exception_ptr&, Result<void>) {});
        }
      }
    }
  } else {
    last_refresh_error_ = outcome.error();
    spdlog::warn("redis cluster: {}", outcome.error().to_string());
  }
  refresh_done_.cancel();
  co_return outcome;
}

void ClusterClient::request_refresh() {
  if (stopped_ || refreshing_) {
    return;
  }
  auto now = std::chrono::steady_clock::now();
  if (now - last_refresh_ < options_.min_refresh_gap) {
    return;
  }
  last_refresh_ = now;
  auto alive = alive_;
  asio::co_spawn(ex_, refresh(), [alive](const std::exception_ptr&, const Result<void>&) {});
}

Awaitable<void> ClusterClient::periodic_refresh() {
  auto alive = alive_;
  while (*alive && !stopped_) {
    periodic_.expires_after(options_.refresh_interval);
    co_await periodic_.async_wait(use_tuple);
    if (!*alive || stopped_) {
      co_return;
    }
    if (std::chrono::steady_clock::now() - last_refresh_ >= options_.min_refresh_gap) {
      auto r = co_await refresh();
      (void)r;
      if (!*alive) {
        co_return;
      }
    }
  }
}

Awaitable<Result<Reply>> ClusterClient::execute(const Command& cmd) {
  return execute_from(cmd, std::nullopt);
}

Awaitable<Result<Reply>> ClusterClient::execute(const Command& cmd, Millis timeout) {
  return execute_from(cmd, std::nullopt, timeout);
}

Awaitable<Result<Reply>> ClusterClient::execute_from(const Command& cmd,
                                                     std::optional<Target> target, Millis timeout) {
  if (stopped_) {
    co_return Error{ErrorKind::kStopped, "cluster client stopped"};
  }
  if (map_.shards.empty() || !started_) {
    auto c = co_await connect();
    if (!c.ok()) {
      co_return c.error();
    }
  }
  auto key = routing_key(cmd);
  std::optional<uint16_t> slot;
  if (key) {
    slot = key_slot(*key);
  }
  int redirects = 0, retries = 0;
  bool master_only = false;
  for (;;) {
    if (!target) {
      auto addr = route(cmd, slot, master_only);
      if (!addr) {
        auto refreshed = co_await refresh();
        (void)refreshed;
        addr = route(cmd, slot, master_only);
        if (!addr) {
          co_return Error{ErrorKind::kClusterDown,
                          "no node serves slot " + std::to_string(slot.value_or(0))};
        }
      }
      target = Target{*addr, false};
    }
    auto conn = connection(target->address);
    Result<Reply> r;
    if (target->asking) {
      std::vector<Command> two;
      two.emplace_back("ASKING");
      two.push_back(cmd);
      const Millis t = timeout.count() > 0 ? timeout : conn->options().command_timeout;
      const std::span<const Command> view(two);
      auto rs = co_await conn->batch(view, t);
      r = std::move(rs[1]);
    } else if (timeout.count() > 0) {
      r = co_await conn->execute(cmd, timeout);
    } else {
      r = co_await conn->execute(cmd);
    }
    if (r.ok()) {
      co_return r;
    }
    const Error& e = r.error();
    if (e.kind == ErrorKind::kServerError) {
      const bool moved = e.starts_with("MOVED ");
      if (moved || e.starts_with("ASK ")) {
        uint16_t to_slot = 0;
        std::string address;
        if (!parse_redirect(e.message, target->address, to_slot, address)) {
          co_return r;
        }
        if (++redirects > options_.max_redirects) {
          co_return Error{ErrorKind::kClusterDown, "too many redirects, last: " + e.message};
        }
        ++redirects_;
        if (moved) {
          apply_moved(to_slot, address);
          request_refresh();
        }
        target = Target{address, !moved};
        continue;
      }
      if (e.starts_with("LOADING") && !master_only && options_.read_from_replicas) {
        master_only = true;  // a replica still loading its data set: read from the master
        target.reset();
        continue;
      }
      const bool down = e.starts_with("CLUSTERDOWN");
      if (down || e.starts_with("TRYAGAIN")) {
        if (++retries > options_.max_retries) {
          if (down) {
            co_return Error{ErrorKind::kClusterDown, e.message};
          }
          co_return r;
        }
        if (down) {
          request_refresh();
        }
        asio::steady_timer pause(ex_);
        pause.expires_after(
            std::min(options_.retry_backoff * (1 << std::min(retries, 10)), Millis(200)));
        co_await pause.async_wait(use_tuple);
        if (stopped_) {
          co_return Error{ErrorKind::kStopped, "cluster client stopped"};
        }
        target.reset();
        continue;
      }
      co_return r;
    }
    if (e.kind == ErrorKind::kConnectionLost || e.kind == ErrorKind::kNotConnected ||
        e.kind == ErrorKind::kTimeout) {
      request_refresh();  // maybe a failover: find the new master for the next command
    }
    co_return r;
  }
}

Awaitable<std::vector<Result<Reply>>> ClusterClient::batch(std::span<const Command> cmds) {
  std::vector<Result<Reply>> results(cmds.size());
  if (cmds.empty()) {
    co_return results;
  }
  if (stopped_ || map_.shards.empty() || !started_) {
    auto c = co_await connect();
    if (!c.ok()) {
      for (auto& r : results) {
        r = c.error();
      }
      co_return results;
    }
  }
  // Split per node, keeping input order inside each node's pipeline.
  std::map<std::string, std::vector<size_t>> by_node;
  std::vector<size_t> unroutable;
  for (size_t i = 0; i < cmds.size(); ++i) {
    auto key = routing_key(cmds[i]);
    std::optional<uint16_t> slot;
    if (key) {
      slot = key_slot(*key);
    }
    auto addr = route(cmds[i], slot, false);
    if (addr) {
      by_node[*addr].push_back(i);
    } else {
      unroutable.push_back(i);
    }
  }
  WaitGroup wg(ex_);
  auto run_node = [](std::shared_ptr<Connection> conn, std::vector<const Command*> part,
                     const std::vector<size_t>* index,
                     std::vector<Result<Reply>>* out) -> Awaitable<void> {
    const std::span<const Command* const> view(part);
    auto rs = co_await conn->batch(view, conn->options().command_timeout);
    for (size_t k = 0; k < rs.size(); ++k) {
      (*out)[(*index)[k]] = std::move(rs[k]);
    }
  };
  for (const auto& [addr, index] : by_node) {
    std::vector<const Command*> part;
    part.reserve(index.size());
    for (size_t i : index) {
      part.push_back(&cmds[i]);
    }
    wg.add();
    asio::co_spawn(ex_, run_node(connection(addr), std::move(part), &index, &results),
                   [&wg](const std::exception_ptr&) { wg.done(); });
  }
  co_await wg.wait();
  // Redirected, retryable or unroutable commands go through the single-command path, in
  // parallel again.
  std::vector<size_t> again = unroutable;
  bool failed_node = false;
  for (size_t i = 0; i < results.size(); ++i) {
    if (is_retryable_cluster_error(results[i])) {
      again.push_back(i);
    }
    if (!results[i].ok() && results[i].kind() != ErrorKind::kServerError) {
      failed_node = true;
    }
  }
  if (failed_node) {
    request_refresh();
  }
  if (again.empty()) {
    co_return results;
  }
  auto run_one = [](ClusterClient* self, const Command* cmd,
                    Result<Reply>* out) -> Awaitable<void> {
    *out = co_await self->execute_from(*cmd, std::nullopt);
  };
  WaitGroup wg2(ex_);
  for (size_t i : again) {
    wg2.add();
    asio::co_spawn(ex_, run_one(this, &cmds[i], &results[i]),
                   [&wg2](const std::exception_ptr&) { wg2.done(); });
  }
  co_await wg2.wait();
  co_return results;
}

}  // namespace redline::redis
