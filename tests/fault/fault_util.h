// Shared pieces of the fault-injection tests: the real `redline` and `redline-mock` binaries
// as child processes on free loopback ports, a YAML builder, a small load generator that
// records every answer, and readers for /metrics. Only processes started here are signalled,
// by PID.
#pragma once

#include <signal.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/http_client.h"
#include "support/process.h"
#include "support/redis_server.h"

namespace redline::fault {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

inline constexpr const char* kAdminToken = "adm-tok-FAULT";

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// redline-mock as a process; `extra` are its fault flags (--fail-status, --reset, ...).
struct MockProc {
  explicit MockProc(const test::TempDir& dir, std::vector<std::string> extra = {},
                    const std::string& name = "mock")
      : port(test::free_port()) {
    std::vector<std::string> argv{test::built_binary("redline-mock"), "--listen",
                                  "127.0.0.1:" + std::to_string(port), "--threads", "2"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    proc.emplace(argv, dir.path() / (name + ".log"));
    if (!test::wait_for_port(port)) throw std::runtime_error("mock did not start");
  }
  int port;
  std::optional<test::Process> proc;
};

inline std::string redis_block(const test::RedisServer& r) {
  return "redis: {urls: [\"" + r.url() + "\"]}\n";
}

inline std::string cluster_block(const test::RedisCluster& c) {
  std::string block = "redis: {mode: cluster, urls: [";
  for (const auto& u : c.urls()) block += "\"" + u + "\",";
  block.back() = ']';
  return block + "}\n";
}

// The config every fault test starts from: two static keys of two tenants, one OpenAI-shaped
// provider (the mock), the admin API with a token. `extra` adds redis:, cache:, rate_limits:...
inline std::string base_yaml(int port, int admin_port, int mock_port, const std::string& extra,
                             const std::string& level = "info") {
  return "listen: \"127.0.0.1:" + std::to_string(port) +
         "\"\n"
         "threads: 2\n"
         "drain_timeout: 15s\n"
         "admin: {listen: \"127.0.0.1:" +
         std::to_string(admin_port) + "\", token: " + kAdminToken +
         "}\n"
         "logging: {access_log: false, level: " +
         level +
         "}\n"
         "providers:\n"
         "  - {name: openai, type: openai, base_url: \"http://127.0.0.1:" +
         std::to_string(mock_port) +
         "/v1\", api_key: sk-upstream-FAULT, retry: {max_attempts: 1}}\n"
         "keys:\n"
         "  - {key: sk-fault-a, tenant: a}\n"
         "  - {key: sk-fault-a2, tenant: a}\n"
         "  - {key: sk-fault-b, tenant: b}\n" +
         extra;
}

// One `redline` process. The config file and its output (stdout + stderr) live in `dir`.
struct GatewayProc {
  GatewayProc(const test::TempDir& dir, const std::string& name, int mock_port,
              const std::string& extra, const std::string& level = "info")
      : GatewayProc(dir, name, [&](int p, int a) { return base_yaml(p, a, mock_port, extra, level); }) {}

  template <typename MakeYaml>
  GatewayProc(const test::TempDir& dir, const std::string& name, MakeYaml make_yaml)
      : port(test::free_port()), admin(test::free_port()) {
    cfg = dir.write(name + ".yaml", make_yaml(port, admin));
    log_path = dir.path() / (name + ".log");
    start();
  }

  void start() {
    proc.emplace(std::vector<std::string>{test::built_binary("redline"), "--config", cfg.string()},
                 log_path);
    if (!test::wait_for_port(port, 20s)) {
      throw std::runtime_error("gateway did not start: " + proc->log());
    }
  }
  std::string log() const { return read_file(log_path); }
  bool running() { return proc && proc->running(); }

  int port;
  int admin;
  std::filesystem::path cfg;
  std::filesystem::path log_path;
  std::optional<test::Process> proc;
};

inline test::Headers bearer(const std::string& key, test::Headers more = {}) {
  more.emplace_back("authorization", "Bearer " + key);
  return more;
}

inline std::string chat_body(const std::string& text, bool stream = false,
                             const std::string& model = "gpt-4o-mini") {
  boost::json::object o{
      {"model", model},
      {"messages", boost::json::array{boost::json::object{{"role", "user"}, {"content", text}}}}};
  if (stream) o["stream"] = true;
  return boost::json::serialize(o);
}

inline test::HttpResponse chat(int port, const std::string& key, const std::string& body,
                               test::Headers more = {}) {
  more.emplace_back("content-type", "application/json");
  return test::http_request(port, "POST", "/v1/chat/completions", body, bearer(key, more));
}

inline test::HttpResponse admin_call(int admin_port, const std::string& method,
                                     const std::string& target, const std::string& body = "") {
  test::Headers h = bearer(kAdminToken);
  if (!body.empty()) h.emplace_back("content-type", "application/json");
  return test::http_request(admin_port, method, target, body, h);
}

// Sum of every sample of `name` on /metrics whose line contains `label` (all when empty).
inline double metric(int admin_port, const std::string& name, const std::string& label = "") {
  auto r = admin_call(admin_port, "GET", "/metrics");
  std::istringstream in(r.body);
  std::string line;
  double sum = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (line.rfind(name, 0) != 0) continue;
    const char next = line.size() > name.size() ? line[name.size()] : ' ';
    if (next != ' ' && next != '{') continue;
    if (!label.empty() && line.find(label) == std::string::npos) continue;
    sum += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return sum;
}

// One answer as the load generator saw it.
struct Sample {
  double at_ms = 0;  // since the load started
  double latency_ms = 0;
  int status = 0;    // 0: transport error (connection refused/reset)
  std::string cache;  // x-redline-cache
  std::string ratelimit;  // x-redline-ratelimit
  std::string cache_key;
  int body_index = 0;
};

// `threads` clients sending cache-aside chat requests (bodies chosen round-robin among
// `bodies`), each on a fresh connection, until stop(). Every answer is recorded.
class Load {
 public:
  Load(int port, std::vector<std::string> bodies, int threads = 3, std::string key = "sk-fault-a",
       std::chrono::milliseconds pause = 10ms)
      : port_(port), bodies_(std::move(bodies)), key_(std::move(key)), pause_(pause) {
    t0_ = Clock::now();
    for (int t = 0; t < threads; ++t) {
      workers_.emplace_back([this, t] { run(t); });
    }
  }
  ~Load() { stop(); }
  void stop() {
    stop_ = true;
    for (auto& w : workers_) {
      if (w.joinable()) w.join();
    }
  }
  double now_ms() const { return ms_since(t0_); }
  std::vector<Sample> samples() const {
    std::lock_guard lock(mu_);
    return samples_;
  }
  size_t count() const {
    std::lock_guard lock(mu_);
    return samples_.size();
  }
  // Waits until `n` more answers arrived (bounded).
  bool wait_for_more(size_t n, std::chrono::milliseconds timeout = 20s) const {
    const size_t want = count() + n;
    const auto until = Clock::now() + timeout;
    while (count() < want && Clock::now() < until) std::this_thread::sleep_for(5ms);
    return count() >= want;
  }

 private:
  void run(int t) {
    int i = t;
    while (!stop_) {
      const int idx = i++ % static_cast<int>(bodies_.size());
      Sample s;
      s.body_index = idx;
      const auto start = Clock::now();
      s.at_ms = ms_since(t0_);
      try {
        auto r = chat(port_, key_, bodies_[static_cast<size_t>(idx)]);
        s.status = r.status;
        s.cache = r.header("x-redline-cache");
        s.ratelimit = r.header("x-redline-ratelimit");
        s.cache_key = r.header("x-redline-cache-key");
      } catch (const std::exception&) {
        s.status = 0;
      }
      s.latency_ms = ms_since(start);
      {
        std::lock_guard lock(mu_);
        samples_.push_back(std::move(s));
      }
      std::this_thread::sleep_for(pause_);
    }
  }

  int port_;
  std::vector<std::string> bodies_;
  std::string key_;
  std::chrono::milliseconds pause_;
  Clock::time_point t0_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::vector<Sample> samples_;
  std::vector<std::thread> workers_;
};

inline std::map<int, int> status_counts(const std::vector<Sample>& s) {
  std::map<int, int> out;
  for (const auto& x : s) ++out[x.status];
  return out;
}

inline std::string describe(const std::map<int, int>& counts) {
  std::string out;
  for (const auto& [status, n] : counts) out += std::to_string(status) + "x" + std::to_string(n) + " ";
  return out;
}

// Bodies "<prefix>0" .. "<prefix>n-1".
inline std::vector<std::string> bodies(const std::string& prefix, int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back(chat_body(prefix + std::to_string(i)));
  return out;
}

// Polls `probe` every 20 ms until it returns true or `timeout` passes; returns the time taken
// in ms, or -1.
template <typename F>
double poll_until(F probe, std::chrono::milliseconds timeout) {
  const auto t0 = Clock::now();
  while (Clock::now() - t0 < timeout) {
    if (probe()) return ms_since(t0);
    std::this_thread::sleep_for(20ms);
  }
  return -1;
}

}  // namespace redline::fault
