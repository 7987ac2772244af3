#!/usr/bin/env bash
# make bench (first slice): the miss path. wrk POSTs a chat completion to the mock
# provider directly (baseline) and through Redline, interleaved, same pinning for both,
# at several connection counts; then the Redis client vs redis-benchmark -P 16 (GET/SET
# 2 KB, pinned); writes bench/results/latest.md and .json with req/s,
# latency percentiles and the ratios. Cache, rate-limit, cluster and nginx scenarios
# arrive with the performance issue. Processes are started here and stopped by PID.
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

mock_port=$(free_port); gw_port=$(free_port); admin_port=$(free_port)
$pin_load build/redline-mock --listen "127.0.0.1:$mock_port" --threads 1 --no-record >"$tmp/mock.log" 2>&1 &
track $!
cat >"$tmp/redline.yaml" <<YAML
listen: "127.0.0.1:$gw_port"
threads: 1
admin: {listen: "127.0.0.1:$admin_port"}
logging: {access_log: false, level: warn}
providers:
  - {name: mock, type: openai, base_url: "http://127.0.0.1:$mock_port/v1", api_key: bench}
YAML
$pin_sut build/redline --config "$tmp/redline.yaml" >"$tmp/redline.log" 2>&1 &
track $!
wait_port "$mock_port" && wait_port "$gw_port"

run_wrk() {  # target-url conns -> "rps p50 p90 p99" (ms)
  $pin_load wrk -t1 -c"$2" -d"$DURATION" --latency -s bench/post.lua "$1/v1/chat/completions" 2>&1 |
    awk '/Requests\/sec/ {rps=$2}
         /^ +50%/ {p50=$2} /^ +90%/ {p90=$2} /^ +99%/ {p99=$2}
         function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
         END {printf "%s %.3f %.3f %.3f\n", rps, ms(p50), ms(p90), ms(p99)}'
}

declare -A best
results="$tmp/rows"
for c in $CONNS; do
  for rep in $(seq "$REPS"); do
    for target in mock gateway; do
      port=$mock_port; [[ $target == gateway ]] && port=$gw_port
      echo "$target $c $rep $(run_wrk "http://127.0.0.1:$port" "$c")" | tee -a "$results"
    done
  done
done

python3 - "$results" <<'PY'
import json, sys, statistics, platform, subprocess, datetime
rows = [l.split() for l in open(sys.argv[1])]
out = {"date": datetime.datetime.utcnow().isoformat() + "Z", "machine": platform.processor() or platform.machine(),
       "cpus": subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip(), "scenarios": []}
md = ["# Redline benchmark: miss path (gateway -> mock) vs mock alone", "",
      f"{out['date']}, {out['cpus']} cores. Medians of the interleaved repetitions.", "",
      "| conns | mock req/s | gateway req/s | ratio | mock p50/p99 ms | gateway p50/p99 ms | added p50 ms |",
      "|---:|---:|---:|---:|---:|---:|---:|"]
for c in sorted({int(r[1]) for r in rows}):
    def med(t, i): return statistics.median(float(r[i]) for r in rows if r[0] == t and int(r[1]) == c)
    m = {k: med("mock", i) for k, i in (("rps", 3), ("p50", 4), ("p90", 5), ("p99", 6))}
    g = {k: med("gateway", i) for k, i in (("rps", 3), ("p50", 4), ("p90", 5), ("p99", 6))}
    out["scenarios"].append({"connections": c, "mock": m, "gateway": g, "ratio_rps": g["rps"] / m["rps"]})
    md.append(f"| {c} | {m['rps']:.0f} | {g['rps']:.0f} | {g['rps']/m['rps']:.2f} | "
              f"{m['p50']:.3f}/{m['p99']:.3f} | {g['p50']:.3f}/{g['p99']:.3f} | {g['p50']-m['p50']:.3f} |")
open("bench/results/latest.json", "w").write(json.dumps(out, indent=2) + "\n")
open("bench/results/latest.md", "w").write("\n".join(md) + "\n")
print("\n".join(md))
PY

echo "== Redis client (2 KB GET/SET, 200 coroutines, one thread) vs redis-benchmark -P 16"
build/bench/redis_client_bench --ops "${REDIS_OPS:-400000}" --coroutines 200 | tee "$tmp/redis.txt"
{ echo; echo "## Redis client vs redis-benchmark -P 16 (same server, same run)"; echo; echo '```'
  cat "$tmp/redis.txt"; echo '```'; } >> bench/results/latest.md

