// Renders a Registry: the Prometheus text exposition format 0.0.4 (GET /metrics) and the JSON
// of GET /admin/stats (percentiles per latency family, counter and gauge series). Reading
// sums every thread's slot of every series; it takes each family's mutex in turn, never
// more than one, and never blocks a thread that records.
#include <fmt/format.h>

#include <boost/json.hpp>
#include <cmath>

#include "metrics/registry.h"

namespace redline::metrics {

namespace {

void append_value(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else if (v == std::floor(v) && std::abs(v) < 9.007199254740992e15) {
    fmt::format_to(std::back_inserter(out), "{}", static_cast<int64_t>(v));
  } else {
    fmt::format_to(std::back_inserter(out), "{}", v);
  }
}

void append_escaped(std::string& out, std::string_view s, bool quote) {
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quote && c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

// {a="x",b="y"[,le="0.5"]} or nothing when there are no labels at all.
void append_labels(std::string& out, const std::vector<Label>& names,
                   const std::vector<std::string>& values, std::string_view le = {}) {
  if (names.empty() && le.empty()) return;
  out += '{';
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i) out += ',';
    out += names[i].name;
    out += "=\"";
    append_escaped(out, values[i], true);
    out += '"';
  }
  if (!le.empty()) {
    if (!names.empty()) out += ',';
    out += "le=\"";
    out += le;
    out += '"';
  }
  out += '}';
}

std::string bound_text(double b) {
  std::string s;
  append_value(s, b);
  return s;
}

}  // namespace

std::string Registry::render() {
  tick();
  std::string out;
  out.reserve(16 * 1024);
  for (Family* f : families()) {
    out += "# HELP ";
    out += f->name();
    out += ' ';
    append_escaped(out, f->help(), false);
    out += "\n# TYPE ";
    out += f->name();
    out += ' ';
    out += kind_name(f->kind());
    out += '\n';
    std::lock_guard lock(f->mu_);
    if (f->kind() != Kind::kHistogram) {
      for (uint32_t s = 0; s < f->series_.size(); ++s) {
        out += f->name();
        append_labels(out, f->labels(), f->series_[s]);
        out += ' ';
        append_value(out, f->stored(s) + f->tracked(s));
        out += '\n';
      }
      continue;
    }
    auto* h = static_cast<HistogramFamily*>(f);
    std::vector<std::string> les;
    for (double b : h->bounds()) les.push_back(bound_text(b));
    les.emplace_back("+Inf");
    for (uint32_t s = 0; s < f->series_.size(); ++s) {
      const auto m = h->merged_buckets(s);
      uint64_t cumulative = 0;
      for (std::size_t b = 0; b < m.prom.size(); ++b) {
        cumulative += m.prom[b];
        out += f->name();
        out += "_bucket";
        append_labels(out, f->labels(), f->series_[s], les[b]);
        out += ' ';
        append_value(out, static_cast<double>(cumulative));
        out += '\n';
      }
      out += f->name();
      out += "_sum";
      append_labels(out, f->labels(), f->series_[s]);
      out += ' ';
      append_value(out, static_cast<double>(m.sum) * f->options().unit);
      out += '\n';
      out += f->name();
      out += "_count";
      append_labels(out, f->labels(), f->series_[s]);
      out += ' ';
      append_value(out, static_cast<double>(m.count));
      out += '\n';
    }
  }
  return out;
}

namespace {

boost::json::object labels_json(const std::vector<std::string>& names,
                                const std::vector<std::string>& values) {
  boost::json::object o;
  for (std::size_t i = 0; i < names.size() && i < values.size(); ++i) o[names[i]] = values[i];
  return o;
}

// Durations in milliseconds (families in seconds), other histograms in their own unit.
boost::json::object percentiles_json(const Percentiles& p, double factor) {
  boost::json::object o;
  o["count"] = p.count;
  o["mean"] = p.mean * factor;
  o["p50"] = p.p50 * factor;
  o["p90"] = p.p90 * factor;
  o["p99"] = p.p99 * factor;
  o["p999"] = p.p999 * factor;
  o["window_seconds"] = std::round(p.window_seconds * 10) / 10;
  return o;
}

}  // namespace

std::string Registry::stats_json() {
  return boost::json::serialize(stats_object());
}

boost::json::object Registry::stats_object() {
  boost::json::object root;
  root["uptime_seconds"] = std::chrono::duration<double>(clock_() - started_).count();
  boost::json::object latency, counters, gauges;
  for (const auto& h : histogram_stats()) {
    const bool seconds = h.name.ends_with("_seconds");
    const double factor = seconds ? 1000.0 : 1.0;
    boost::json::object o;
    o["unit"] = seconds ? "ms" : "value";
    o["since_start"] = percentiles_json(h.since_start, factor);
    o["last_minute"] = percentiles_json(h.last_minute, factor);
    if (!h.label_names.empty()) {
      boost::json::array rows;
      for (const auto& s : h.series) {
        boost::json::object r;
        r["labels"] = labels_json(h.label_names, s.labels);
        r["since_start"] = percentiles_json(s.since_start, factor);
        r["last_minute"] = percentiles_json(s.last_minute, factor);
        rows.push_back(std::move(r));
      }
      o["series"] = std::move(rows);
    }
    latency[h.name] = std::move(o);
  }
  for (Family* f : families()) {
    if (f->kind() == Kind::kHistogram) continue;
    std::vector<std::string> names;
    for (const auto& l : f->labels()) names.push_back(l.name);
    boost::json::object o;
    boost::json::array rows;
    double total = 0;
    for (const auto& s : f->snapshot()) {
      total += s.value;
      if (names.empty()) continue;
      boost::json::object r;
      r["labels"] = labels_json(names, s.labels);
      r["value"] = s.value;
      rows.push_back(std::move(r));
    }
    o["total"] = total;
    if (!names.empty()) o["series"] = std::move(rows);
    (f->kind() == Kind::kCounter ? counters : gauges)[f->name()] = std::move(o);
  }
  root["latency"] = std::move(latency);
  root["counters"] = std::move(counters);
  root["gauges"] = std::move(gauges);
  return root;
}

}  // namespace redline::metrics
