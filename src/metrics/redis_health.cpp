// The Redis health poller (see redis_health.h). One round: find each target's nodes, poll
// them all in parallel (one pipelined INFO + SLOWLOG LEN + SLOWLOG GET [+ CLUSTER INFO] per
// node), work out replication lag from each master's and replica's offsets, then publish the
// round to the snapshot and the redline_redis_* metrics.
#include "metrics/redis_health.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <cctype>
#include <charconv>
#include <map>
#include <mutex>

namespace redline::metrics {

namespace asio = boost::asio;

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == ' ')) s.remove_suffix(1);
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  return s;
}

double to_double(std::string_view s) {
  double v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

// "ip=127.0.0.1,port=7004,state=online,offset=123,lag=0" -> field
std::string_view kv_field(std::string_view list, std::string_view key) {
  while (!list.empty()) {
    const auto comma = list.find(',');
    const auto item = list.substr(0, comma);
    if (item.size() > key.size() && item.substr(0, key.size()) == key && item[key.size()] == '=') {
      return item.substr(key.size() + 1);
    }
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return {};
}

std::pair<std::string, uint16_t> split_address(const std::string& address) {
  const auto colon = address.rfind(':');
  uint16_t port = 0;
  if (colon != std::string::npos) {
    std::from_chars(address.data() + colon + 1, address.data() + address.size(), port);
  }
  return {address.substr(0, colon), port};
}

// A replica as its master's INFO lists it.
struct ReplicaEntry {
  std::string address;
  double offset = 0;
  double lag = -1;
};

struct Polled {
  NodeHealth health;
  std::vector<ReplicaEntry> replicas;  // masters: their replicas
};

Options node_options() {
  Options o;
  o.max_values_per_label = 512;
  o.max_series = 1024;
  return o;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> parse_info(std::string_view text) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    const auto line = trim(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (line.empty() || line.front() == '#') continue;
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    out.emplace_back(std::string(line.substr(0, colon)), std::string(line.substr(colon + 1)));
  }
  return out;
}

std::vector<std::string> parse_cluster_nodes(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    const auto line = trim(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    // <id> <ip:port@cport[,hostname]> <flags> <master> ...
    const auto a = line.find(' ');
    if (a == std::string_view::npos) continue;
    const auto b = line.find(' ', a + 1);
    if (b == std::string_view::npos) continue;
    auto addr = line.substr(a + 1, b - a - 1);
    const auto c = line.find(' ', b + 1);
    const auto flags = line.substr(b + 1, c == std::string_view::npos ? c : c - b - 1);
    addr = addr.substr(0, addr.find_first_of("@,"));
    if (flags.find("noaddr") != std::string_view::npos || addr.empty() || addr.front() == ':') {
      continue;
    }
    out.emplace_back(addr);
  }
  return out;
}

struct RedisHealth::Impl : std::enable_shared_from_this<Impl> {
  struct Target {
    RedisTarget config;
    std::vector<redis::ConnectionOptions> seeds;
    std::vector<std::string> nodes;  // addresses polled each round
    std::map<std::string, std::shared_ptr<redis::Connection>> conns;
  };

  Impl(asio::any_io_executor e, RedisHealthOptions o, Registry& r)
      : ex(std::move(e)),
        options(std::move(o)),
        reg(r),
        timer(std::in_place, ex),
        up(gauge("redline_redis_up", "1 when the node answered the last health poll.")),
        is_master(gauge("redline_redis_is_master", "1 for a master, 0 for a replica.")),
        used_memory(gauge("redline_redis_used_memory_bytes", "INFO used_memory.")),
        max_memory(gauge("redline_redis_max_memory_bytes", "INFO maxmemory (0: no limit).")),
        clients(gauge("redline_redis_connected_clients", "INFO connected_clients.")),
        ops(gauge("redline_redis_ops_per_second", "INFO instantaneous_ops_per_sec.")),
        offset(gauge("redline_redis_replication_offset_bytes",
                     "Replication offset (masters: master_repl_offset, replicas: "
                     "slave_repl_offset).")),
        lag_bytes(gauge("redline_redis_replication_lag_bytes",
                        "Replicas: bytes behind their master (master offset - replica offset).")),
        lag_seconds(gauge("redline_redis_replication_lag_seconds",
                          "Replicas: seconds since the master last heard from the replica.")),
        link_up(gauge("redline_redis_master_link_up",
                      "Replicas: 1 when the link to the master "
                      "is up.")),
        cluster_ok(gauge("redline_redis_cluster_state_ok",
                         "Cluster nodes: 1 when cluster_state "
                         "is ok.")),
        slots_assigned(gauge("redline_redis_cluster_slots_assigned",
                             "CLUSTER INFO slots "
                             "assigned (of 16384).")),
        slots_ok(gauge("redline_redis_cluster_slots_ok", "CLUSTER INFO slots served.")),
        slots_pfail(gauge("redline_redis_cluster_slots_pfail", "CLUSTER INFO slots in PFAIL.")),
        slots_fail(gauge("redline_redis_cluster_slots_fail", "CLUSTER INFO slots in FAIL.")),
        known_nodes(gauge("redline_redis_cluster_known_nodes", "CLUSTER INFO known nodes.")),
        slowlog_len(gauge("redline_redis_slowlog_length", "SLOWLOG LEN.")),
        evicted(counter("redline_redis_evicted_keys_total", "INFO evicted_keys.")),
        expired(counter("redline_redis_expired_keys_total", "INFO expired_keys.")),
        hits(counter("redline_redis_keyspace_hits_total", "INFO keyspace_hits.")),
        misses(counter("redline_redis_keyspace_misses_total", "INFO keyspace_misses.")),
        rejected(counter("redline_redis_rejected_connections_total",
                         "INFO rejected_connections (maxclients reached).")),
        poll_errors(counter("redline_redis_health_poll_errors_total",
                            "Health polls a node did not answer.")) {
    for (auto& t : options.targets) {
      Target target;
      target.config = t;
      for (const auto& url : t.urls) {
        auto o = redis::options_from_url(url, t.connection);
        if (!o.ok()) {
          spdlog::warn("redis health: {}: {}", t.name, o.error().to_string());
          continue;
        }
        o->connect_timeout = options.timeout;
        o->command_timeout = options.timeout;
        o->client_name = "redline-health";
        o->readonly = false;
        target.seeds.push_back(std::move(*o));
      }
      targets.push_back(std::move(target));
    }
  }

  GaugeFamily& gauge(const char* name, const char* help) {
    return reg.gauge(name, help, {"redis", "node"}, node_options());
  }
  CounterFamily& counter(const char* name, const char* help) {
    return reg.counter(name, help, {"redis", "node"}, node_options());
  }

  std::shared_ptr<redis::Connection> connection(Target& t, const std::string& address) {
    auto it = t.conns.find(address);
    if (it != t.conns.end()) return it->second;
    redis::ConnectionOptions o = t.seeds.empty() ? redis::ConnectionOptions{} : t.seeds.front();
    auto [host, port] = split_address(address);
    o.host = host;
    o.port = port;
    auto c = redis::Connection::create(ex, std::move(o));
    c->start();
    t.conns.emplace(address, c);
    return c;
  }

  static std::string address_of(const redis::ConnectionOptions& o) {
    return o.host + ":" + std::to_string(o.port);
  }

  // Which addresses to poll this round.
  asio::awaitable<void> discover(Target& t) {
    if (!t.config.cluster) {
      if (t.nodes.empty() && !t.seeds.empty()) t.nodes.push_back(address_of(t.seeds.front()));
      co_return;
    }
    std::vector<std::string> candidates = t.nodes;
    for (const auto& s : t.seeds) {
      const auto a = address_of(s);
      if (std::find(candidates.begin(), candidates.end(), a) == candidates.end()) {
        candidates.push_back(a);
      }
    }
    for (const auto& a : candidates) {
      auto conn = connection(t, a);
      const redis::Command cmd("CLUSTER", "NODES");
      auto r = co_await conn->execute(cmd, options.timeout);
      if (stopped) co_return;
      if (!r.ok() || !r->is_string()) continue;
      auto found = parse_cluster_nodes(r->str());
      if (found.empty()) continue;
      t.nodes = std::move(found);
      break;
    }
    if (t.nodes.empty()) {
      for (const auto& s : t.seeds) t.nodes.push_back(address_of(s));
    }
    // Forget connections to nodes the cluster no longer lists.
    for (auto it = t.conns.begin(); it != t.conns.end();) {
      if (std::find(t.nodes.begin(), t.nodes.end(), it->first) == t.nodes.end()) {
        it->second->stop();
        it = t.conns.erase(it);
      } else {
        ++it;
      }
    }
  }

  asio::awaitable<Polled> poll_node(Target& t, std::string address) {
    Polled p;
    NodeHealth& h = p.health;
    h.redis = t.config.name;
    h.address = address;
    h.cluster = t.config.cluster;
    auto conn = connection(t, address);
    std::vector<redis::Command> cmds;
    cmds.emplace_back("INFO");
    cmds.emplace_back("SLOWLOG", "LEN");
    cmds.emplace_back("SLOWLOG", "GET", static_cast<int64_t>(options.slowlog_entries));
    if (t.config.cluster) cmds.emplace_back("CLUSTER", "INFO");
    const std::span<const redis::Command> view(cmds);
    auto res = co_await conn->batch(view, options.timeout);
    if (res.size() != cmds.size() || !res[0].ok() || !res[0]->is_string()) {
      h.error = res.empty() || res[0].ok() ? "no INFO reply" : res[0].error().to_string();
      co_return p;
    }
    h.up = true;
    std::map<std::string, std::string, std::less<>> info;
    for (auto& [k, v] : parse_info(res[0]->str())) info.emplace(std::move(k), std::move(v));
    auto num = [&](std::string_view k) {
      auto it = info.find(k);
      return it == info.end() ? 0.0 : to_double(it->second);
    };
    auto str = [&](std::string_view k) {
      auto it = info.find(k);
      return it == info.end() ? std::string() : it->second;
    };
    h.role = str("role") == "slave" ? "replica" : "master";
    h.used_memory = num("used_memory");
    h.max_memory = num("maxmemory");
    h.maxmemory_policy = str("maxmemory_policy");
    h.evicted_keys = num("evicted_keys");
    h.expired_keys = num("expired_keys");
    h.keyspace_hits = num("keyspace_hits");
    h.keyspace_misses = num("keyspace_misses");
    h.connected_clients = num("connected_clients");
    h.rejected_connections = num("rejected_connections");
    h.ops_per_sec = num("instantaneous_ops_per_sec");
    if (h.role == "replica") {
      h.master = str("master_host") + ":" + str("master_port");
      h.master_link_up = str("master_link_status") == "up";
      h.repl_offset = num("slave_repl_offset");
      const double io = num("master_last_io_seconds_ago");
      if (info.contains("master_last_io_seconds_ago") && io >= 0) h.lag_seconds = io;
    } else {
      h.repl_offset = num("master_repl_offset");
      for (const auto& [k, v] : info) {
        if (!k.starts_with("slave") || k.size() < 6 || !std::isdigit(k[5])) continue;
        ReplicaEntry e;
        e.address = std::string(kv_field(v, "ip")) + ":" + std::string(kv_field(v, "port"));
        e.offset = to_double(kv_field(v, "offset"));
        const auto lag = kv_field(v, "lag");
        if (!lag.empty()) e.lag = to_double(lag);
        p.replicas.push_back(std::move(e));
      }
    }
    if (res[1].ok() && res[1]->type() == redis::Type::kInteger) {
      h.slowlog_length = static_cast<double>(res[1]->integer());
    }
    if (res[2].ok() && res[2]->is_aggregate()) {
      for (const auto& entry : res[2]->elements()) {
        if (!entry.is_aggregate() || entry.size() < 4) continue;
        SlowlogEntry s;
        s.id = entry[0].integer();
        s.time = entry[1].integer();
        s.duration_us = entry[2].integer();
        for (const auto& arg : entry[3].elements()) s.command.push_back(arg.str());
        if (entry.size() > 4) s.client = entry[4].str();
        h.slowlog.push_back(std::move(s));
      }
    }
    if (t.config.cluster && res[3].ok() && res[3]->is_string()) {
      std::map<std::string, std::string, std::less<>> ci;
      for (auto& [k, v] : parse_info(res[3]->str())) ci.emplace(std::move(k), std::move(v));
      auto cnum = [&](std::string_view k) {
        auto it = ci.find(k);
        return it == ci.end() ? 0.0 : to_double(it->second);
      };
      h.cluster_state = ci.contains("cluster_state") ? ci["cluster_state"] : "";
      h.slots_assigned = cnum("cluster_slots_assigned");
      h.slots_ok = cnum("cluster_slots_ok");
      h.slots_pfail = cnum("cluster_slots_pfail");
      h.slots_fail = cnum("cluster_slots_fail");
      h.known_nodes = cnum("cluster_known_nodes");
    }
    co_return p;
  }

  // Polls one address into `out`, then counts down `pending` and wakes the waiter.
  asio::awaitable<void> poll_into(Target& t, std::string address, Polled& out, std::size_t& pending,
                                  asio::steady_timer& done) {
    out = co_await poll_node(t, std::move(address));
    if (--pending == 0) done.cancel();
  }

  asio::awaitable<std::vector<Polled>> poll_all(Target& t, std::vector<std::string> addrs) {
    std::vector<Polled> out(addrs.size());
    if (addrs.empty()) co_return out;
    std::size_t pending = addrs.size();
    asio::steady_timer done(ex, asio::steady_timer::time_point::max());
    for (std::size_t i = 0; i < addrs.size(); ++i) {
      asio::co_spawn(ex, poll_into(t, addrs[i], out[i], pending, done), asio::detached);
    }
    while (pending > 0) {
      auto [ec] = co_await done.async_wait(kNoThrow);
      (void)ec;
    }
    co_return out;
  }

  asio::awaitable<std::vector<NodeHealth>> poll_target(Target& t) {
    co_await discover(t);
    auto polled = co_await poll_all(t, t.nodes);
    if (!t.config.cluster) {
      // A standalone master's replicas, found in its INFO, are polled too.
      std::vector<std::string> extra;
      for (const auto& p : polled) {
        for (const auto& r : p.replicas) {
          if (std::find(t.nodes.begin(), t.nodes.end(), r.address) == t.nodes.end() &&
              std::find(extra.begin(), extra.end(), r.address) == extra.end()) {
            extra.push_back(r.address);
          }
        }
      }
      if (!extra.empty()) {
        t.nodes.insert(t.nodes.end(), extra.begin(), extra.end());
        auto more = co_await poll_all(t, extra);
        for (auto& m : more) polled.push_back(std::move(m));
      }
    }
    // Replication lag: the master's offset (same round) minus the replica's, and the
    // seconds since the master last heard from it (its INFO's lag=), else the replica's
    // master_last_io_seconds_ago.
    std::map<std::string, const Polled*> by_address;
    for (const auto& p : polled) by_address[p.health.address] = &p;
    for (auto& p : polled) {
      NodeHealth& h = p.health;
      if (!h.up || h.role != "replica") continue;
      auto m = by_address.find(h.master);
      if (m == by_address.end() || !m->second->health.up) continue;
      h.lag_bytes = std::max(0.0, m->second->health.repl_offset - h.repl_offset);
      for (const auto& r : m->second->replicas) {
        if (r.address == h.address && r.lag >= 0) h.lag_seconds = r.lag;
      }
    }
    std::vector<NodeHealth> out;
    for (auto& p : polled) out.push_back(std::move(p.health));
    co_return out;
  }

  // A target is reachable when the gateway can use it: standalone, its configured node (the
  // first polled) answered; a cluster, some node answered and says the cluster is ok.
  static bool target_reachable(const Target& t, const std::vector<NodeHealth>& nodes) {
    if (nodes.empty()) return false;
    if (!t.config.cluster) return nodes.front().up;
    return std::any_of(nodes.begin(), nodes.end(),
                       [](const NodeHealth& n) { return n.up && n.cluster_state == "ok"; });
  }

  asio::awaitable<void> round() {
    std::vector<NodeHealth> all;
    std::vector<std::pair<std::string, bool>> reach;
    for (auto& t : targets) {
      auto nodes = co_await poll_target(t);
      if (stopped) co_return;
      reach.emplace_back(t.config.name, target_reachable(t, nodes));
      for (auto& n : nodes) all.push_back(std::move(n));
    }
    publish(std::move(all), std::move(reach));
  }

  void publish(std::vector<NodeHealth> all, std::vector<std::pair<std::string, bool>> reach) {
    for (const auto& h : all) {
      const std::array<std::string_view, 2> l{h.redis, h.address};
      up.labels_span(l).set(h.up ? 1 : 0);
      if (!h.up) {
        poll_errors.labels_span(l).inc();
        continue;
      }
      auto set = [&](GaugeFamily& g, double v) { g.labels_span(l).set(static_cast<int64_t>(v)); };
      set(is_master, h.role == "master" ? 1 : 0);
      set(used_memory, h.used_memory);
      set(max_memory, h.max_memory);
      set(clients, h.connected_clients);
      set(ops, h.ops_per_sec);
      set(offset, h.repl_offset);
      set(slowlog_len, h.slowlog_length);
      if (h.lag_bytes) set(lag_bytes, *h.lag_bytes);
      if (h.lag_seconds) set(lag_seconds, *h.lag_seconds);
      if (h.master_link_up) set(link_up, *h.master_link_up ? 1 : 0);
      if (h.cluster) {
        set(cluster_ok, h.cluster_state == "ok" ? 1 : 0);
        set(slots_assigned, h.slots_assigned);
        set(slots_ok, h.slots_ok);
        set(slots_pfail, h.slots_pfail);
        set(slots_fail, h.slots_fail);
        set(known_nodes, h.known_nodes);
      }
      auto total = [&](CounterFamily& c, double v) {
        c.labels_span(l).set_total(static_cast<uint64_t>(v));
      };
      total(evicted, h.evicted_keys);
      total(expired, h.expired_keys);
      total(hits, h.keyspace_hits);
      total(misses, h.keyspace_misses);
      total(rejected, h.rejected_connections);
    }
    std::lock_guard lock(mu);
    latest = std::move(all);
    reachable = std::move(reach);
    ++rounds;
  }

  asio::awaitable<void> loop(std::shared_ptr<Impl> self) {
    while (!stopped) {
      co_await round();
      if (stopped || !timer) break;
      timer->expires_after(options.interval);
      auto [ec] = co_await timer->async_wait(kNoThrow);
      (void)ec;
    }
  }

  void stop() {
    if (stopped) return;
    stopped = true;
    if (timer) timer->cancel();
    for (auto& t : targets) {
      for (auto& [a, c] : t.conns) c->stop();
      t.conns.clear();
    }
    timer.reset();
  }

  asio::any_io_executor ex;
  RedisHealthOptions options;
  Registry& reg;
  std::vector<Target> targets;
  std::optional<asio::steady_timer> timer;
  bool stopped = false;
  GaugeFamily &up, &is_master, &used_memory, &max_memory, &clients, &ops, &offset, &lag_bytes,
      &lag_seconds, &link_up, &cluster_ok, &slots_assigned, &slots_ok, &slots_pfail, &slots_fail,
      &known_nodes, &slowlog_len;
  CounterFamily &evicted, &expired, &hits, &misses, &rejected, &poll_errors;

  mutable std::mutex mu;
  std::vector<NodeHealth> latest;
  std::vector<std::pair<std::string, bool>> reachable;  // per target, from the latest round
  uint64_t rounds = 0;
};

RedisHealth::RedisHealth(asio::any_io_executor ex, RedisHealthOptions options, Registry& registry)
    : impl_(std::make_shared<Impl>(std::move(ex), std::move(options), registry)) {}

RedisHealth::~RedisHealth() {
  impl_->stop();
}

void RedisHealth::start() {
  asio::co_spawn(impl_->ex, impl_->loop(impl_), asio::detached);
}

void RedisHealth::stop() {
  impl_->stop();
}

asio::awaitable<void> RedisHealth::poll_once() {
  auto keep = impl_;
  co_await keep->round();
}

std::vector<NodeHealth> RedisHealth::nodes() const {
  std::lock_guard lock(impl_->mu);
  return impl_->latest;
}

uint64_t RedisHealth::rounds() const {
  std::lock_guard lock(impl_->mu);
  return impl_->rounds;
}

std::optional<bool> RedisHealth::reachable(std::string_view target) const {
  std::lock_guard lock(impl_->mu);
  for (const auto& [name, ok] : impl_->reachable) {
    if (name == target) return ok;
  }
  return std::nullopt;
}

std::vector<std::pair<std::string, std::optional<bool>>> RedisHealth::reachability() const {
  std::vector<std::pair<std::string, std::optional<bool>>> out;
  for (const auto& t : impl_->options.targets) out.emplace_back(t.name, reachable(t.name));
  return out;
}

boost::json::array RedisHealth::nodes_json(bool with_slowlog) const {
  boost::json::array out;
  for (const auto& h : nodes()) {
    boost::json::object o;
    o["redis"] = h.redis;
    o["node"] = h.address;
    o["up"] = h.up;
    if (!h.up) {
      o["error"] = h.error;
      out.push_back(std::move(o));
      continue;
    }
    o["role"] = h.role;
    if (!h.master.empty()) o["master"] = h.master;
    o["used_memory"] = h.used_memory;
    o["max_memory"] = h.max_memory;
    o["maxmemory_policy"] = h.maxmemory_policy;
    o["evicted_keys"] = h.evicted_keys;
    o["expired_keys"] = h.expired_keys;
    o["keyspace_hits"] = h.keyspace_hits;
    o["keyspace_misses"] = h.keyspace_misses;
    o["connected_clients"] = h.connected_clients;
    o["rejected_connections"] = h.rejected_connections;
    o["ops_per_sec"] = h.ops_per_sec;
    o["repl_offset"] = h.repl_offset;
    if (h.lag_bytes) o["lag_bytes"] = *h.lag_bytes;
    if (h.lag_seconds) o["lag_seconds"] = *h.lag_seconds;
    if (h.master_link_up) o["master_link_up"] = *h.master_link_up;
    if (h.cluster) {
      o["cluster_state"] = h.cluster_state;
      o["slots_assigned"] = h.slots_assigned;
      o["slots_ok"] = h.slots_ok;
    }
    o["slowlog_length"] = h.slowlog_length;
    if (with_slowlog) {
      boost::json::array entries;
      for (const auto& s : h.slowlog) {
        boost::json::object e;
        e["id"] = s.id;
        e["time"] = s.time;
        e["duration_us"] = s.duration_us;
        boost::json::array cmd;
        for (const auto& a : s.command) cmd.emplace_back(a);
        e["command"] = std::move(cmd);
        e["client"] = s.client;
        entries.push_back(std::move(e));
      }
      o["slowlog"] = std::move(entries);
    }
    out.push_back(std::move(o));
  }
  return out;
}

}  // namespace redline::metrics
