// The live dashboard served at GET / on the admin port: one self-contained HTML page (inline
// CSS and script, no external fonts, scripts or images) that polls GET /admin/stats every
// second and draws requests/s, cache hit ratio, latency percentiles, rate-limit refusals,
// spend saved by the cache and each Redis node's memory, evictions, clients and replication
// lag. Rates are computed in the page from counter differences between two polls.
#include "admin/dashboard.h"

namespace redline::admin {

std::string_view dashboard_html() {
  static constexpr std::string_view kPage = R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Redline</title>
<style>
  :root { --bg:#0f1115; --panel:#181b22; --line:#2a2f3a; --text:#e6e6e6; --dim:#8a93a5;
          --red:#e5484d; --green:#3dd68c; --amber:#f5a524; }
  * { box-sizing: border-box; }
  body { margin:0; background:var(--bg); color:var(--text);
         font:14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
  header { display:flex; align-items:baseline; gap:16px; padding:14px 20px;
           border-bottom:1px solid var(--line); }
  header h1 { margin:0; font-size:18px; color:var(--red); letter-spacing:.5px; }
  header .dim { color:var(--dim); }
  main { padding:16px 20px; display:grid; gap:16px; }
  .tiles { display:grid; grid-template-columns:repeat(auto-fit, minmax(170px, 1fr)); gap:12px; }
  .tile { background:var(--panel); border:1px solid var(--line); border-radius:8px; padding:12px; }
  .tile .label { color:var(--dim); font-size:12px; text-transform:uppercase; letter-spacing:.6px; }
  .tile .value { font-size:28px; font-variant-numeric:tabular-nums; margin-top:4px; }
  .tile .sub { color:var(--dim); font-size:12px; }
  section { background:var(--panel); border:1px solid var(--line); border-radius:8px; padding:12px; }
  section h2 { margin:0 0 8px; font-size:13px; color:var(--dim); text-transform:uppercase;
               letter-spacing:.6px; }
  table { width:100%; border-collapse:collapse; font-variant-numeric:tabular-nums; }
  th, td { text-align:right; padding:4px 8px; border-bottom:1px solid var(--line); white-space:nowrap; }
  th:first-child, td:first-child { text-align:left; }
  th { color:var(--dim); font-weight:normal; font-size:12px; }
  .up { color:var(--green); } .down { color:var(--red); } .warn { color:var(--amber); }
  canvas { width:100%; height:120px; display:block; }
  .charts { display:grid; grid-template-columns:repeat(auto-fit, minmax(320px, 1fr)); gap:12px; }
</style>
</head>
<body>
<header>
  <h1>REDLINE</h1>
  <span class="dim" id="status">connecting&hellip;</span>
  <span class="dim" id="uptime"></span>
</header>
<main>
  <div class="tiles">
    <div class="tile"><div class="label">Requests / s</div><div class="value" id="rps">&ndash;</div>
      <div class="sub" id="rps-sub"></div></div>
    <div class="tile"><div class="label">Cache hit ratio</div><div class="value" id="hit">&ndash;</div>
      <div class="sub" id="hit-sub"></div></div>
    <div class="tile"><div class="label">p99 latency (1 min)</div><div class="value" id="p99">&ndash;</div>
      <div class="sub" id="p99-sub"></div></div>
    <div class="tile"><div class="label">Rate-limit refusals</div><div class="value" id="rl">&ndash;</div>
      <div class="sub" id="rl-sub"></div></div>
    <div class="tile"><div class="label">Spend saved by cache</div><div class="value" id="saved">&ndash;</div>
      <div class="sub" id="saved-sub"></div></div>
    <div class="tile"><div class="label">Connections</div><div class="value" id="conns">&ndash;</div>
      <div class="sub" id="conns-sub"></div></div>
  </div>
  <div class="charts">
    <section><h2>Requests / s (2 min)</h2><canvas id="chart-rps" width="600" height="120"></canvas></section>
    <section><h2>Request p99, ms (2 min)</h2><canvas id="chart-p99" width="600" height="120"></canvas></section>
  </div>
  <section>
    <h2>Latency (ms): last minute | since start</h2>
    <table id="latency"><thead><tr><th>family</th><th>count</th><th>p50</th><th>p90</th><th>p99</th>
      <th>p99.9</th><th>p50</th><th>p99</th><th>count</th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Redis nodes</h2>
    <table id="redis"><thead><tr><th>node</th><th>redis</th><th>role</th><th>state</th><th>memory</th>
      <th>evicted</th><th>clients</th><th>ops/s</th><th>lag bytes</th><th>lag s</th><th>slowlog</th>
    </tr></thead><tbody></tbody></table>
  </section>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const history = { rps: [], p99: [] };
let previous = null;

function series(stats, kind, name) {
  const f = (stats[kind] || {})[name];
  return f ? (f.series || [{ labels: {}, value: f.total }]) : [];
}
function sum(rows, pred) {
  return rows.filter((r) => !pred || pred(r.labels || {})).reduce((a, r) => a + r.value, 0);
}
function fmt(n, digits) {
  if (n === null || n === undefined || !isFinite(n)) return "\u2013";
  if (Math.abs(n) >= 1e9) return (n / 1e9).toFixed(1) + "G";
  if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (Math.abs(n) >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return n.toFixed(digits === undefined ? 0 : digits);
}
function bytes(n) {
  if (!n) return "0";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return n.toFixed(i ? 1 : 0) + " " + u[i];
}
function ms(v) { return v === undefined ? "\u2013" : v < 10 ? v.toFixed(2) : v.toFixed(1); }
function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text;
  if (cls) td.className = cls;
}

function draw(canvas, values, color) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = "#2a2f3a";
  ctx.beginPath(); ctx.moveTo(0, h - 0.5); ctx.lineTo(w, h - 0.5); ctx.stroke();
  if (values.length < 2) return;
  const max = Math.max(1e-9, ...values);
  ctx.strokeStyle = color;
  ctx.lineWidth = 2;
  ctx.beginPath();
  values.forEach((v, i) => {
    const x = (i / 119) * w, y = h - 4 - (v / max) * (h - 16);
    i ? ctx.lineTo(x, y) : ctx.moveTo(x, y);
  });
  ctx.stroke();
  ctx.fillStyle = "#8a93a5";
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillText("max " + fmt(max, 1), 4, 11);
}

function render(stats, now) {
  const requests = sum(series(stats, "counters", "redline_http_requests_total"), (l) => l.server === "proxy");
  const cache = series(stats, "counters", "redline_cache_results_total");
  const hits = sum(cache, (l) => l.outcome === "hit"), lookups = sum(cache);
  const limited = sum(series(stats, "counters", "redline_ratelimit_decisions_total"), (l) => l.outcome === "limited");
  const saved = sum(series(stats, "counters", "redline_cache_saved_usd_total"));
  const spend = sum(series(stats, "counters", "redline_spend_usd_total"));
  let rps = 0, hitRatio = null, limitedRate = 0;
  if (previous) {
    const dt = Math.max(0.001, (now - previous.at) / 1000);
    rps = Math.max(0, requests - previous.requests) / dt;
    limitedRate = Math.max(0, limited - previous.limited) / dt;
    const dl = lookups - previous.lookups;
    if (dl > 0) hitRatio = (hits - previous.hits) / dl;
  }
  if (hitRatio === null && lookups > 0) hitRatio = hits / lookups;
  previous = { at: now, requests, hits, lookups, limited };

  $("rps").textContent = fmt(rps, rps < 10 ? 1 : 0);
  $("rps-sub").textContent = fmt(requests) + " since start";
  $("hit").textContent = hitRatio === null ? "\u2013" : (hitRatio * 100).toFixed(1) + "%";
  $("hit-sub").textContent = fmt(hits) + " hits / " + fmt(lookups) + " lookups";
  $("rl").textContent = fmt(limitedRate, 1) + "/s";
  $("rl-sub").textContent = fmt(limited) + " since start";
  $("saved").textContent = "$" + saved.toFixed(2);
  $("saved-sub").textContent = "spent $" + spend.toFixed(2);
  const conns = sum(series(stats, "gauges", "redline_http_connections"), (l) => l.server === "proxy");
  const inflight = sum(series(stats, "gauges", "redline_http_requests_in_flight"), (l) => l.server === "proxy");
  $("conns").textContent = fmt(conns);
  $("conns-sub").textContent = fmt(inflight) + " requests in flight";

  const lat = stats.latency || {};
  const main = lat.redline_request_duration_seconds;
  const p99 = main && main.last_minute.count ? main.last_minute.p99 : 0;
  $("p99").textContent = main && main.last_minute.count ? ms(p99) + " ms" : "\u2013";
  $("p99-sub").textContent = main ? "p50 " + ms(main.last_minute.p50) + " ms, " +
      fmt(main.last_minute.count) + " requests" : "";

  history.rps.push(rps); history.p99.push(p99);
  for (const k in history) if (history[k].length > 120) history[k].shift();
  draw($("chart-rps"), history.rps, "#3dd68c");
  draw($("chart-p99"), history.p99, "#e5484d");

  const lt = $("latency").tBodies[0];
  lt.replaceChildren();
  for (const name of Object.keys(lat).sort()) {
    const f = lat[name], m = f.last_minute, s = f.since_start;
    const row = lt.insertRow();
    cell(row, name.replace(/^redline_/, "").replace(/_seconds$/, ""));
    cell(row, fmt(m.count));
    cell(row, ms(m.p50)); cell(row, ms(m.p90)); cell(row, ms(m.p99)); cell(row, ms(m.p999));
    cell(row, ms(s.p50)); cell(row, ms(s.p99)); cell(row, fmt(s.count));
  }

  const rt = $("redis").tBodies[0];
  rt.replaceChildren();
  for (const n of stats.redis || []) {
    const row = rt.insertRow();
    cell(row, n.node);
    cell(row, n.redis);
    cell(row, n.role || "\u2013");
    cell(row, n.up ? "up" : "down", n.up ? "up" : "down");
    cell(row, n.up ? bytes(n.used_memory) + (n.max_memory ? " / " + bytes(n.max_memory) : "") : "\u2013");
    cell(row, n.up ? fmt(n.evicted_keys) : "\u2013", n.evicted_keys > 0 && n.redis === "state" ? "down" : "");
    cell(row, n.up ? fmt(n.connected_clients) : "\u2013");
    cell(row, n.up ? fmt(n.ops_per_sec) : "\u2013");
    cell(row, n.lag_bytes === undefined ? "" : fmt(n.lag_bytes), n.lag_bytes > 1048576 ? "warn" : "");
    cell(row, n.lag_seconds === undefined ? "" : fmt(n.lag_seconds), n.lag_seconds > 10 ? "warn" : "");
    cell(row, n.up ? fmt(n.slowlog_length) : "\u2013");
  }
  $("uptime").textContent = "up " + fmt(stats.uptime_seconds / 60, 1) + " min";
}

async function poll() {
  try {
    const res = await fetch("/admin/stats", { cache: "no-store" });
    if (!res.ok) throw new Error("HTTP " + res.status);
    const stats = await res.json();
    render(stats, Date.now());
    $("status").textContent = "live, " + new Date().toLocaleTimeString();
    $("status").className = "dim";
  } catch (e) {
    $("status").textContent = "stats unavailable: " + e.message;
    $("status").className = "down";
  }
}
poll();
setInterval(poll, 1000);
</script>
</body>
</html>
)html";
  return kPage;
}

}  // namespace redline::admin
