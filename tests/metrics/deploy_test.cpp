// The deploy/ files: the Prometheus alerting rules parse (`promtool check rules`) and name
// only metrics Redline exports; the systemd unit passes `systemd-analyze verify` and stops
// more slowly than the gateway drains; every Kubernetes manifest parses, has its required
// fields, and fits together (probes on the admin port's /readyz and /healthz, Services,
// HPA and PDB pointing at the Deployment, the ConfigMap's config loads, the Redis StatefulSet's
// redis.conf runs in a real redis-server with noeviction and AOF). The Grafana dashboard is
// checked against a live gateway in tests/admin/grafana_dashboard_test.cpp.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "config/config_loader.h"
#include "metrics/process.h"
#include "metrics/redis_health.h"
#include "metrics/registry.h"
#include "metrics/standard.h"
#include "support/redis_server.h"

namespace redline::metrics {
namespace {

const std::filesystem::path kDeploy = std::filesystem::path(REDLINE_SOURCE_DIR) / "deploy";
const std::filesystem::path kRules = kDeploy / "prometheus/alerts.yml";

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(Deploy, PromtoolChecksAlertRules) {
  const std::string promtool = "/usr/bin/promtool";
  if (!std::filesystem::exists(promtool)) {
    GTEST_SKIP() << "promtool not installed (Debian package prometheus; scripts/install-deps.sh)";
  }
  int rc = -1;
  const auto out = test::run_command({promtool, "check", "rules", kRules.string()}, &rc);
  EXPECT_EQ(rc, 0) << out;
}

TEST(Deploy, AlertRulesNameExportedMetrics) {
  Registry reg;
  standard::declare_all(reg);
  ProcessMetrics process(reg);
  boost::asio::io_context io;
  RedisHealth health(io.get_executor(), {}, reg);  // declares the redline_redis_* families
  std::set<std::string> known;
  for (Family* f : reg.families()) {
    known.insert(f->name());
    if (f->kind() == Kind::kHistogram) {
      for (const char* s : {"_bucket", "_sum", "_count"}) known.insert(f->name() + s);
    }
  }
  const std::string rules = read_text(kRules);
  const std::regex name("redline_[a-z0-9_]+");
  int found = 0;
  for (auto it = std::sregex_iterator(rules.begin(), rules.end(), name);
       it != std::sregex_iterator(); ++it) {
    ++found;
    EXPECT_TRUE(known.contains(it->str())) << it->str();
  }
  EXPECT_GT(found, 5);
}

// --- systemd ---------------------------------------------------------------------------------

// "Key=value" lines of a unit file (comments and sections skipped; repeated keys keep all).
std::multimap<std::string, std::string> unit_entries(const std::string& text) {
  std::multimap<std::string, std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#' || line[0] == '[') continue;
    const auto eq = line.find('=');
    if (eq != std::string::npos) out.emplace(line.substr(0, eq), line.substr(eq + 1));
  }
  return out;
}

std::string unit_value(const std::multimap<std::string, std::string>& u, const std::string& key) {
  auto it = u.find(key);
  return it == u.end() ? std::string() : it->second;
}

TEST(Deploy, SystemdUnitIsHardenedAndOutlastsTheDrain) {
  const auto text = read_text(kDeploy / "systemd/redline.service");
  const auto unit = unit_entries(text);
  EXPECT_EQ(unit_value(unit, "NoNewPrivileges"), "yes");
  EXPECT_EQ(unit_value(unit, "ProtectSystem"), "strict");
  EXPECT_EQ(unit_value(unit, "DynamicUser"), "yes");
  EXPECT_EQ(unit_value(unit, "ReadOnlyPaths"), "/etc/redline");
  EXPECT_EQ(unit_value(unit, "LimitNOFILE"), "1048576");
  EXPECT_EQ(unit_value(unit, "Restart"), "on-failure");
  EXPECT_EQ(unit_value(unit, "KillSignal"), "SIGTERM");
  EXPECT_FALSE(unit.contains("ExecReload"));  // SIGHUP is not handled: reload = restart
  // TimeoutStopSec must exceed the default drain_timeout, or systemd SIGKILLs a drain.
  const auto stop = unit_value(unit, "TimeoutStopSec");
  ASSERT_FALSE(stop.empty());
  const config::Config defaults;
  EXPECT_GT(std::stoi(stop), defaults.drain_timeout.count() / 1000) << stop;
  EXPECT_NE(unit_value(unit, "ExecStart").find("--config /etc/redline/"), std::string::npos);
}

TEST(Deploy, SystemdAnalyzeVerifiesTheUnit) {
  const std::string analyze = "/usr/bin/systemd-analyze";
  if (!std::filesystem::exists(analyze)) {
    GTEST_SKIP() << "systemd-analyze not installed (Debian package systemd)";
  }
  // The binary is not installed here: verify the unit with /bin/true in its place (verify
  // checks that every Exec*= command is executable).
  test::TempDir dir;
  auto text = read_text(kDeploy / "systemd/redline.service");
  for (std::size_t at; (at = text.find("/usr/local/bin/redline")) != std::string::npos;) {
    text.replace(at, std::strlen("/usr/local/bin/redline"), "/bin/true");
  }
  const auto unit = dir.write("redline.service", text);
  int rc = -1;
  const auto out = test::run_command({analyze, "verify", unit.string()}, &rc);
  if (rc != 0 && out.find("Failed to") != std::string::npos &&
      out.find("redline.service") == std::string::npos) {
    GTEST_SKIP() << "systemd-analyze cannot run here: " << out;
  }
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out.find("redline.service:"), std::string::npos) << out;  // no warnings either
}

// --- Kubernetes ------------------------------------------------------------------------------

struct Manifest {
  std::string file;
  YAML::Node doc;
  std::string kind() const { return doc["kind"].as<std::string>(); }
  std::string name() const { return doc["metadata"]["name"].as<std::string>(); }
};

std::vector<Manifest> load_manifests() {
  std::vector<Manifest> out;
  for (const auto& entry : std::filesystem::directory_iterator(kDeploy / "kubernetes")) {
    const auto ext = entry.path().extension();
    if (ext != ".yaml" && ext != ".yml") continue;
    for (const auto& doc : YAML::LoadAllFromFile(entry.path().string())) {
      if (!doc.IsNull()) out.push_back({entry.path().filename().string(), doc});
    }
  }
  return out;
}

const Manifest* find_manifest(const std::vector<Manifest>& all, const std::string& kind,
                              const std::string& name) {
  for (const auto& m : all) {
    if (m.kind() == kind && m.name() == name) return &m;
  }
  return nullptr;
}

// The container port a probe or Service targetPort names (a name or a number), or -1.
int resolve_port(const YAML::Node& container, const YAML::Node& port) {
  for (const auto& p : container["ports"]) {
    if (port.as<std::string>() == p["name"].as<std::string>("") ||
        port.as<std::string>() == p["containerPort"].as<std::string>()) {
      return p["containerPort"].as<int>();
    }
  }
  return -1;
}

// Every label of `selector` is on `labels`.
bool selects(const YAML::Node& selector, const YAML::Node& labels) {
  if (!selector || !selector.IsMap() || selector.size() == 0) return false;
  for (const auto& kv : selector) {
    const auto v = labels[kv.first.as<std::string>()];
    if (!v || v.as<std::string>() != kv.second.as<std::string>()) return false;
  }
  return true;
}

TEST(Deploy, KubernetesManifestsHaveRequiredFields) {
  const auto all = load_manifests();
  ASSERT_GE(all.size(), 8u);
  std::set<std::string> kinds;
  for (const auto& m : all) {
    SCOPED_TRACE(m.file);
    ASSERT_TRUE(m.doc.IsMap());
    ASSERT_TRUE(m.doc["apiVersion"] && m.doc["apiVersion"].IsScalar());
    ASSERT_TRUE(m.doc["kind"] && m.doc["kind"].IsScalar());
    kinds.insert(m.kind());
    if (m.kind() == "Kustomization") continue;  // a kustomize file, not an object
    ASSERT_TRUE(m.doc["metadata"] && m.doc["metadata"]["name"]);
    EXPECT_FALSE(m.name().empty());
    const std::map<std::string, std::string> api{{"Deployment", "apps/v1"},
                                                 {"StatefulSet", "apps/v1"},
                                                 {"Service", "v1"},
                                                 {"ConfigMap", "v1"},
                                                 {"Secret", "v1"},
                                                 {"HorizontalPodAutoscaler", "autoscaling/v2"},
                                                 {"PodDisruptionBudget", "policy/v1"}};
    ASSERT_TRUE(api.contains(m.kind())) << m.kind();
    EXPECT_EQ(m.doc["apiVersion"].as<std::string>(), api.at(m.kind())) << m.kind();
  }
  for (const char* k : {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
                        "StatefulSet", "ConfigMap", "Secret", "Kustomization"}) {
    EXPECT_TRUE(kinds.contains(k)) << k;
  }
  // The kustomization lists every manifest file, and only existing ones.
  std::set<std::string> files, listed;
  for (const auto& m : all) {
    if (m.kind() != "Kustomization") files.insert(m.file);
    if (m.kind() == "Kustomization") {
      for (const auto& r : m.doc["resources"]) listed.insert(r.as<std::string>());
    }
  }
  EXPECT_EQ(files, listed);
}

TEST(Deploy, KubernetesGatewayProbesPortsAndReferences) {
  const auto all = load_manifests();
  const auto* dep = find_manifest(all, "Deployment", "redline");
  ASSERT_TRUE(dep);
  const auto spec = dep->doc["spec"];
  const auto pod = spec["template"]["spec"];
  const auto pod_labels = spec["template"]["metadata"]["labels"];
  EXPECT_TRUE(selects(spec["selector"]["matchLabels"], pod_labels));
  ASSERT_EQ(pod["containers"].size(), 1u);
  const auto c = pod["containers"][0];

  // The gateway's own config, from the ConfigMap, loads with the Secret's variables.
  const std::string config_map = pod["volumes"][0]["configMap"]["name"].as<std::string>();
  const auto* cm = find_manifest(all, "ConfigMap", config_map);
  ASSERT_TRUE(cm) << config_map;
  const auto* secret =
      find_manifest(all, "Secret", c["envFrom"][0]["secretRef"]["name"].as<std::string>());
  ASSERT_TRUE(secret);
  std::map<std::string, std::string> env;
  for (const auto& kv : secret->doc["stringData"]) {
    env[kv.first.as<std::string>()] = kv.second.as<std::string>();
  }
  env["OPENAI_API_KEY"] = "sk-test";
  env["REDLINE_THREADS"] = "2";
  const auto lookup = [&](const std::string& k) -> std::optional<std::string> {
    auto it = env.find(k);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  config::Config cfg;
  ASSERT_NO_THROW(cfg =
                      config::load_config_string(cm->doc["data"]["redline.yaml"].as<std::string>(),
                                                 "configmap.yaml", lookup)
                          .config);
  // ... and without a Secret variable it fails at start-up (no silent empty admin token).
  env.erase("REDLINE_ADMIN_TOKEN");
  EXPECT_THROW(config::load_config_string(cm->doc["data"]["redline.yaml"].as<std::string>(),
                                          "configmap.yaml", lookup),
               config::ConfigError);

  // Ports: the proxy and the admin port are the config's, and differ.
  const int http = resolve_port(c, YAML::Node("http"));
  const int admin = resolve_port(c, YAML::Node("admin"));
  EXPECT_EQ(http, cfg.listen.port);
  EXPECT_EQ(admin, cfg.admin.listen.port);
  EXPECT_NE(http, admin);
  EXPECT_EQ(cfg.listen.host, "0.0.0.0");

  // Probes: readiness on /readyz, liveness (and start-up) on /healthz, all on the admin port.
  EXPECT_EQ(c["readinessProbe"]["httpGet"]["path"].as<std::string>(), "/readyz");
  EXPECT_EQ(resolve_port(c, c["readinessProbe"]["httpGet"]["port"]), admin);
  EXPECT_EQ(c["livenessProbe"]["httpGet"]["path"].as<std::string>(), "/healthz");
  EXPECT_EQ(resolve_port(c, c["livenessProbe"]["httpGet"]["port"]), admin);
  if (c["startupProbe"]) {
    EXPECT_EQ(c["startupProbe"]["httpGet"]["path"].as<std::string>(), "/healthz");
    EXPECT_EQ(resolve_port(c, c["startupProbe"]["httpGet"]["port"]), admin);
  }

  // Non-root, read-only root file system, no privilege escalation, no capabilities.
  EXPECT_TRUE(pod["securityContext"]["runAsNonRoot"].as<bool>());
  EXPECT_NE(pod["securityContext"]["runAsUser"].as<int>(), 0);
  EXPECT_TRUE(c["securityContext"]["readOnlyRootFilesystem"].as<bool>());
  EXPECT_FALSE(c["securityContext"]["allowPrivilegeEscalation"].as<bool>());
  EXPECT_EQ(c["securityContext"]["capabilities"]["drop"][0].as<std::string>(), "ALL");
  // Resources: a CPU request (what the HPA measures against) and a memory limit.
  EXPECT_TRUE(c["resources"]["requests"]["cpu"]);
  EXPECT_TRUE(c["resources"]["limits"]["memory"]);
  // The config is mounted read-only where the command reads it.
  EXPECT_EQ(c["volumeMounts"][0]["mountPath"].as<std::string>(), "/etc/redline");
  EXPECT_TRUE(c["volumeMounts"][0]["readOnly"].as<bool>());
  EXPECT_EQ(c["command"][2].as<std::string>(), "/etc/redline/redline.yaml");
  // The kubelet waits longer than the gateway drains.
  EXPECT_GT(pod["terminationGracePeriodSeconds"].as<int>() * 1000, cfg.drain_timeout.count());

  // Services: clients reach only the proxy port, the admin Service only the admin port.
  const auto* svc = find_manifest(all, "Service", "redline");
  const auto* admin_svc = find_manifest(all, "Service", "redline-admin");
  ASSERT_TRUE(svc && admin_svc);
  EXPECT_TRUE(selects(svc->doc["spec"]["selector"], pod_labels));
  EXPECT_TRUE(selects(admin_svc->doc["spec"]["selector"], pod_labels));
  ASSERT_EQ(svc->doc["spec"]["ports"].size(), 1u);
  EXPECT_EQ(resolve_port(c, svc->doc["spec"]["ports"][0]["targetPort"]), http);
  ASSERT_EQ(admin_svc->doc["spec"]["ports"].size(), 1u);
  EXPECT_EQ(resolve_port(c, admin_svc->doc["spec"]["ports"][0]["targetPort"]), admin);

  // HPA on CPU for this Deployment; PDB selecting its pods.
  const auto* hpa = find_manifest(all, "HorizontalPodAutoscaler", "redline");
  ASSERT_TRUE(hpa);
  EXPECT_EQ(hpa->doc["spec"]["scaleTargetRef"]["kind"].as<std::string>(), "Deployment");
  EXPECT_EQ(hpa->doc["spec"]["scaleTargetRef"]["name"].as<std::string>(), dep->name());
  EXPECT_EQ(hpa->doc["spec"]["metrics"][0]["resource"]["name"].as<std::string>(), "cpu");
  EXPECT_GE(hpa->doc["spec"]["minReplicas"].as<int>(), 2);
  const auto* pdb = find_manifest(all, "PodDisruptionBudget", "redline");
  ASSERT_TRUE(pdb);
  EXPECT_TRUE(selects(pdb->doc["spec"]["selector"]["matchLabels"], pod_labels));
}

TEST(Deploy, KubernetesRedisStatefulSetRunsWithNoevictionAndAof) {
  const auto all = load_manifests();
  const auto* sts = find_manifest(all, "StatefulSet", "redis-state");
  ASSERT_TRUE(sts);
  const auto spec = sts->doc["spec"];
  EXPECT_TRUE(find_manifest(all, "Service", spec["serviceName"].as<std::string>()));
  EXPECT_TRUE(selects(spec["selector"]["matchLabels"], spec["template"]["metadata"]["labels"]));
  EXPECT_TRUE(spec["volumeClaimTemplates"][0]);
  const auto args = spec["template"]["spec"]["containers"][0]["args"];
  EXPECT_EQ(args[0].as<std::string>(), "/etc/redis/redis.conf");
  std::string conf_map;
  for (const auto& v : spec["template"]["spec"]["volumes"]) {
    if (v["configMap"]) conf_map = v["configMap"]["name"].as<std::string>();
  }
  const auto* cm = find_manifest(all, "ConfigMap", conf_map);
  ASSERT_TRUE(cm) << conf_map;
  // The same redis.conf, in a real redis-server (port and dir are the test's).
  test::TempDir dir;
  test::RedisServerOptions o;
  o.config_file = dir.write("redis.conf", cm->doc["data"]["redis.conf"].as<std::string>());
  o.extra_config = {"maxmemory 64mb"};
  test::RedisServer redis(o);
  EXPECT_NE(redis.cli("CONFIG", "GET", "maxmemory-policy").find("noeviction"), std::string::npos);
  EXPECT_NE(redis.cli("CONFIG", "GET", "appendonly").find("yes"), std::string::npos);
  EXPECT_NE(redis.cli("CONFIG", "GET", "appendfsync").find("everysec"), std::string::npos);
}

}  // namespace
}  // namespace redline::metrics
