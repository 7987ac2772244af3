#!/usr/bin/env bash
# make bench: wrk POSTs a chat completion to the mock provider directly (baseline) and
# through Redline in three scenarios (miss path with the cache off, L1 hit, Redis hit),
# interleaved, same pinning for all, at several connection counts; then the Redis client
# vs redis-benchmark -P 16 (GET/SET 2 KB, pinned). Writes bench/results/latest.md and
# .json with req/s, latency percentiles and the ratios. Rate-limit, cluster, streaming and
# nginx scenarios arrive with the performance issue. Processes are started here and
# stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5s}
REPS=${REPS:-3}
CONNS=${CONNS:-"1 32 256"}
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=g++ -DREDLINE_TESTS=ON >/dev/null
cmake --build build -j "$(nproc)" --target redline redline-mock redis_client_bench >/dev/null

source scripts/lib.sh
# Two cores: the system under test on core 0, load generator and provider on core 1.
pin_sut="taskset -c 0"; pin_load="taskset -c 1"
[[ $(nproc) -lt 2 ]] && { pin_sut=""; pin_load=""; }

mock_port=$(free_port); redis_port=$(free_port)
$pin_load build/redline-mock --listen "127.0.0.1:$mock_port" --threads 1 --no-record >"$tmp/mock.log" 2>&1 &
track $!
$pin_load redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" \
  >"$tmp/redis.log" 2>&1 &
track $!

# One gateway per scenario, all on core 0 (only the one under load is busy):
#   miss   - cache off: gateway + provider vs provider alone
#   hit_l1 - every request after the first is an L1 hit
#   hit_l2 - L1 off: every hit is a Redis GET
declare -A gw_port
start_gateway() {  # name cache-yaml [extra-yaml]
  local port admin; port=$(free_port); admin=$(free_port)
  cat >"$tmp/$1.yaml" <<YAML
listen: "127.0.0.1:$port"
threads: 1
admin: {listen: "127.0.0.1:$admin"}
logging: {access_log: false, level: warn}
redis: {urls: ["redis://127.0.0.1:$redis_port"]}
cache: $2
providers:
  - {name: mock, type: openai, base_url: "http://127.0.0.1:$mock_port/v1", api_key: bench}
${3:-}
YAML
  $pin_sut build/redline --config "$tmp/$1.yaml" >"$tmp/$1.log" 2>&1 &
  track $!
  gw_port[$1]=$port
}
start_gateway miss "{enabled: false}"
start_gateway hit_l1 "{enabled: true}"
start_gateway hit_l2 "{enabled: true, l1: {enabled: false}}"
# miss path again, with a request and a token limit that never refuse (one Redis script call)
start_gateway miss_rl "{enabled: false}" "rate_limits:
  - {scope: global, algorithm: sliding-window-counter, requests: 1000000000, tokens: 100000000000, window: 60}"
wait_port "$mock_port" && wait_port "$redis_port"
for t in "${!gw_port[@]}"; do wait_port "${gw_port[$t]}"; done
for t in hit_l1 hit_l2; do  # warm: the first request is the miss that stores the entry
  curl -s -o /dev/null -X POST -H 'content-type: application/json' \
    -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Benchmark me, please."}]}' \
    "http://127.0.0.1:${gw_port[$t]}/v1/chat/completions" ||
    { echo "warm-up of $t failed"; tail -n 20 "$tmp"/*.log; exit 1; }
done

run_wrk() {  # target-url conns -> "rps p50 p90 p99" (ms)
  $pin_load wrk -t1 -c"$2" -d"$DURATION" --latency -s bench/post.lua "$1/v1/chat/completions" 2>&1 |
    awk '/Requests\/sec/ {rps=$2}
         /^ +50%/ {p50=$2} /^ +90%/ {p90=$2} /^ +99%/ {p99=$2}
         function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
         END {printf "%s %.3f %.3f %.3f\n", rps, ms(p50), ms(p90), ms(p99)}'
}

results="$tmp/rows"
for c in $CONNS; do
  for rep in $(seq "$REPS"); do
    for target in mock miss miss_rl hit_l1 hit_l2; do
      port=$mock_port; [[ $target != mock ]] && port=${gw_port[$target]}
      echo "$target $c $rep $(run_wrk "http://127.0.0.1:$port" "$c")" | tee -a "$results"
    done
  done
done

python3 - "$results" <<'PY'
import json, sys, statistics, platform, subprocess, datetime
rows = [l.split() for l in open(sys.argv[1])]
out = {"date": datetime.datetime.utcnow().isoformat() + "Z", "machine": platform.processor() or platform.machine(),
       "cpus": subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip(), "scenarios": []}
names = {"miss": "miss path (cache off, gateway -> mock)", "miss_rl": "miss path + rate limit (1 script call)",
         "hit_l1": "cache hit, L1", "hit_l2": "cache hit, Redis (L1 off)"}
md = ["# Redline benchmark", "",
      f"{out['date']}, {out['cpus']} cores. Medians of the interleaved repetitions. Baseline: the mock provider "
      "answering the same POST directly, measured in the same run.", "",
      "| scenario | conns | mock req/s | gateway req/s | ratio | mock p50/p90/p99 ms | gateway p50/p90/p99 ms | gateway - mock p50 ms |",
      "|---|---:|---:|---:|---:|---:|---:|---:|"]
def med(t, c, i): return statistics.median(float(r[i]) for r in rows if r[0] == t and int(r[1]) == c)
for t in ("miss", "miss_rl", "hit_l1", "hit_l2"):
    for c in sorted({int(r[1]) for r in rows}):
        m = {k: med("mock", c, i) for k, i in (("rps", 3), ("p50", 4), ("p90", 5), ("p99", 6))}
        g = {k: med(t, c, i) for k, i in (("rps", 3), ("p50", 4), ("p90", 5), ("p99", 6))}
        out["scenarios"].append({"scenario": t, "connections": c, "mock": m, "gateway": g, "ratio_rps": g["rps"] / m["rps"]})
        md.append(f"| {names[t]} | {c} | {m['rps']:.0f} | {g['rps']:.0f} | {g['rps']/m['rps']:.2f} | "
                  f"{m['p50']:.3f}/{m['p90']:.3f}/{m['p99']:.3f} | {g['p50']:.3f}/{g['p90']:.3f}/{g['p99']:.3f} | {g['p50']-m['p50']:.3f} |")
open("bench/results/latest.json", "w").write(json.dumps(out, indent=2) + "\n")
open("bench/results/latest.md", "w").write("\n".join(md) + "\n")
print("\n".join(md))
PY

echo "== Redis client (2 KB GET/SET, 200 coroutines, one thread) vs redis-benchmark -P 16"
build/bench/redis_client_bench --ops "${REDIS_OPS:-400000}" --coroutines 200 | tee "$tmp/redis.txt"
{ echo; echo "## Redis client vs redis-benchmark -P 16 (same server, same run)"; echo; echo '```'
  cat "$tmp/redis.txt"; echo '```'; } >> bench/results/latest.md

