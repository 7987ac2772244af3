#!/usr/bin/env bash
# Soak (not part of make test): SOAK_SECONDS (default 600) of mixed traffic (bench/soak.lua:
# cache hits, misses, streams, Messages) through one gateway backed by one redis-server and
# the mock provider, with a Redis fault every FAULT_EVERY seconds (default 60), cycling
#   kill -9 + restart 5 s later | SIGSTOP for 5 s | CLIENT KILL of every client (reconnects).
# The gateway's RSS and open file descriptors are sampled every SAMPLE_EVERY seconds (10).
# Writes bench/results/soak.md: the samples, the statuses wrk saw, and whether RSS and fds
# stayed flat (the last third of the run against the second third; the first third is warm-up
# of caches and pools). Processes are started here and stopped by PID.
#   make build && bench/soak.sh              # 10 minutes
#   SOAK_SECONDS=90 FAULT_EVERY=20 bench/soak.sh   # a quick look
set -euo pipefail
cd "$(dirname "$0")/.."
SOAK_SECONDS=${SOAK_SECONDS:-600}
FAULT_EVERY=${FAULT_EVERY:-60}
SAMPLE_EVERY=${SAMPLE_EVERY:-10}
CONNS=${CONNS:-32}
OUT=${OUT:-bench/results/soak.md}
command -v wrk >/dev/null || { echo "soak: wrk missing (make bench installs it)"; exit 1; }
[[ -x build/redline && -x build/redline-mock ]] || { echo "soak: run make build first"; exit 1; }

source scripts/lib.sh
mock_port=$(free_port); redis_port=$(free_port); gw_port=$(free_port); admin_port=$(free_port)
build/redline-mock --listen "127.0.0.1:$mock_port" --threads 1 --no-record --stream-delay-ms 2 \
  >"$tmp/mock.log" 2>&1 &
track $!
start_redis() {
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" \
    >>"$tmp/redis.log" 2>&1 &
  redis_pid=$!
  track $redis_pid
}
start_redis
cat >"$tmp/redline.yaml" <<YAML
listen: "127.0.0.1:$gw_port"
threads: 2
admin: {listen: "127.0.0.1:$admin_port"}
logging: {access_log: false, level: warn}
redis: {urls: ["redis://127.0.0.1:$redis_port"], command_timeout: 200ms}
cache: {lookup_timeout: 20ms}
providers:
  - {name: mock, type: openai, base_url: "http://127.0.0.1:$mock_port/v1", api_key: soak}
  - {name: claude, type: anthropic, base_url: "http://127.0.0.1:$mock_port", api_key: soak}
models:
  claude-3-5-haiku-latest: claude
keys:
  - {key: sk-soak, tenant: soak}
rate_limits:
  - {scope: key, algorithm: sliding-window-counter, requests: 100000000, window: 60}
YAML
build/redline --config "$tmp/redline.yaml" >"$tmp/redline.log" 2>&1 &
gw_pid=$!
track $gw_pid
wait_port "$mock_port" && wait_port "$redis_port" && wait_port "$gw_port" ||
  { tail -n 30 "$tmp"/*.log; exit 1; }

wrk -t2 -c"$CONNS" -d"${SOAK_SECONDS}s" --timeout 10s -s bench/soak.lua \
  "http://127.0.0.1:$gw_port" >"$tmp/wrk.out" 2>&1 &
wrk_pid=$!
track $wrk_pid

samples="$tmp/samples"
faults="$tmp/faults"
: >"$faults"
start=$(date +%s)
next_fault=$((start + FAULT_EVERY))
next_sample=$start
fault_n=0
while kill -0 "$wrk_pid" 2>/dev/null; do
  now=$(date +%s)
  if (( now >= next_sample )); then
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$gw_pid/status")
    fds=$(ls "/proc/$gw_pid/fd" | wc -l)
    echo "$((now - start)) $rss $fds" >>"$samples"
    next_sample=$((next_sample + SAMPLE_EVERY))
  fi
  if (( now >= next_fault && now - start < SOAK_SECONDS - 10 )); then
    case $((fault_n % 3)) in
      0) kill -9 "$redis_pid"; wait "$redis_pid" 2>/dev/null || true
         echo "$((now - start)) redis kill -9, restarted 5 s later" >>"$faults"
         sleep 5; start_redis ;;
      1) kill -STOP "$redis_pid"; echo "$((now - start)) redis SIGSTOP for 5 s" >>"$faults"
         sleep 5; kill -CONT "$redis_pid" ;;
      2) redis-cli -p "$redis_port" CLIENT KILL TYPE normal >/dev/null 2>&1 || true
         echo "$((now - start)) redis CLIENT KILL TYPE normal" >>"$faults" ;;
    esac
    fault_n=$((fault_n + 1))
    next_fault=$((next_fault + FAULT_EVERY))
  fi
  sleep 1
done
wait "$wrk_pid" || true
kill -0 "$gw_pid" 2>/dev/null || { echo "soak: the gateway died"; tail -n 50 "$tmp/redline.log"; exit 1; }

mkdir -p "$(dirname "$OUT")"
python3 - "$samples" "$faults" "$tmp/wrk.out" "$OUT" "$SOAK_SECONDS" "$FAULT_EVERY" "$CONNS" <<'PY'
import statistics, sys, datetime, platform
samples_f, faults_f, wrk_f, out, secs, every, conns = sys.argv[1:8]
rows = [tuple(int(x) for x in l.split()) for l in open(samples_f) if l.strip()]
faults = [l.strip() for l in open(faults_f) if l.strip()]
wrk = open(wrk_f).read()
n = len(rows)
second = rows[n // 3: 2 * n // 3] or rows
last = rows[2 * n // 3:] or rows
def med(xs): return statistics.median(xs) if xs else 0
rss2, rss3 = med([r[1] for r in second]), med([r[1] for r in last])
fd2, fd3 = med([r[2] for r in second]), med([r[2] for r in last])
rss_growth = (rss3 - rss2) / rss2 * 100 if rss2 else 0
flat_rss = rss_growth < 10
flat_fds = fd3 <= fd2 + 8
statuses = next((l for l in wrk.splitlines() if l.startswith("STATUSES")), "STATUSES ?")
latency = next((l for l in wrk.splitlines() if l.startswith("LATENCY")), "LATENCY ?")
reqs = next((l.strip() for l in wrk.splitlines() if "requests in" in l), "?")
with open(out, "w") as f:
    f.write(f"# Soak run ({datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, {platform.node()})\n\n")
    f.write(f"`bench/soak.sh`: {secs} s of mixed traffic (`bench/soak.lua`, wrk -t2 -c{conns}), "
            f"one Redis fault every {every} s, gateway with 2 threads, cache + rate limit on.\n\n")
    f.write(f"- wrk: {reqs}; {statuses[9:]}; {latency[8:]}\n")
    f.write(f"- RSS median, second third -> last third: {rss2/1024:.1f} MiB -> {rss3/1024:.1f} MiB "
            f"({rss_growth:+.1f} %): {'flat' if flat_rss else 'GROWING'}\n")
    f.write(f"- open fds median, second third -> last third: {fd2:.0f} -> {fd3:.0f}: "
            f"{'flat' if flat_fds else 'GROWING'}\n\n")
    f.write("Faults injected:\n\n" + "".join(f"- {x}\n" for x in faults) + "\n")
    f.write("| t (s) | RSS (MiB) | open fds |\n|---:|---:|---:|\n")
    for t, rss, fds in rows:
        f.write(f"| {t} | {rss/1024:.1f} | {fds} |\n")
print(open(out).read())
sys.exit(0 if flat_rss and flat_fds else 1)
PY
