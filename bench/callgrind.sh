#!/usr/bin/env bash
# Instructions per request of the Release gateway (threads: 1) under valgrind's callgrind:
# stable on a noisy machine, unlike times. For each path (L1 hit, miss with the cache off,
# Redis hit with L1 off) the gateway runs under callgrind, a sequential keep-alive client
# sends warm-up requests, then: zero the counters, send N requests, dump (A); zero, stay idle
# for as long as A took, dump (B, timers and the health poller alone). Ir per request =
# (Ir(A) - Ir(B)) / N. Prints the numbers and the top 15 functions by inclusive and by self
# cost (callgrind_annotate) and writes them to bench/results/callgrind.md (and the raw
# callgrind files to $CALLGRIND_KEEP when set).
# The "stream" path is a streamed miss (cache off) from a second mock that sends its first
# event at once and then one every 5 ms, each request on a new connection like bench/ttfe;
# it runs CALLGRIND_N / 10 requests (they take 50 ms each).
# The "fresh" path is the miss path with a new connection per request (what a connection
# costs: accept, set-up, teardown). "miss_cl" is a miss with the cache and a (never refusing)
# rate limit on: a different body per request, so each is a lookup, a limit decision, a
# provider call, a store and a settle. "stream_cl" is a streamed miss with the cache on: a
# different body per request on one keep-alive connection, from the mock that sends all its
# events at once (CALLGRIND_N / 10 requests): a lookup, the call with usage asked for, the
# events relayed and recorded, a store.
# Environment: CALLGRIND_N (2000 requests per path), CALLGRIND_PATHS ("l1 miss l2 stream fresh
# miss_cl stream_cl").
set -euo pipefail
cd "$(dirname "$0")/.."
N=${CALLGRIND_N:-2000}
PATHS=${CALLGRIND_PATHS:-"l1 miss l2 stream fresh miss_cl stream_cl"}
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=g++ >/dev/null
cmake --build build -j "$(nproc)" --target redline redline-mock >/dev/null
source scripts/lib.sh
pin_sut="taskset -c 0"; pin_load="taskset -c 1"
[[ $(nproc) -lt 2 ]] && { pin_sut=""; pin_load=""; }

mock_port=$(free_port); smock_port=$(free_port); redis_port=$(free_port)
$pin_load build/redline-mock --listen "127.0.0.1:$mock_port" --threads 1 --no-record >"$tmp/mock.log" 2>&1 &
track $!
$pin_load build/redline-mock --listen "127.0.0.1:$smock_port" --threads 1 --no-record --words 8 \
  --stream-delay-ms 5 >"$tmp/smock.log" 2>&1 &
track $!
$pin_load redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" \
  >"$tmp/redis.log" 2>&1 &
track $!
wait_port "$mock_port" && wait_port "$smock_port" && wait_port "$redis_port"

# Sequential keep-alive client: N POSTs of the same chat body, each answer read in full.
# With a third argument "stream": a streamed request on a new connection each time; "fresh":
# the plain request on a new connection each time; "unique": a different body each time;
# "stream_unique": a streamed request with a different body each time, on one connection.
cat >"$tmp/client.py" <<'PY'
import http.client, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
mode = sys.argv[3] if len(sys.argv) > 3 else ""
stream = mode in ("stream", "stream_unique")
fresh = mode in ("stream", "fresh")
unique = mode in ("unique", "stream_unique")
body = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Benchmark me, please."}]}'
if stream:
    body = b'{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Stream me, please."}]}'
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
t0 = time.time()
for i in range(n):
    if unique:
        body = ('{"model":"gpt-4o-mini",%s"messages":[{"role":"user","content":"Benchmark me, %d %f."}]}'
                % ('"stream":true,' if stream else "", i, t0)).encode()
    if fresh:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
    r = c.getresponse()
    data = r.read()
    if r.status != 200 or (stream and b"[DONE]" not in data):
        sys.exit(f"status {r.status}")
    if fresh:
        c.close()
print(f"{time.time() - t0:.2f}")
PY

# Shortens callgrind_annotate lines: per-request Ir, template arguments folded to <…>, no
# object paths; skips the totals and the 100 % thread wrappers; keeps 15.
cat >"$tmp/short.py" <<PY
import re, sys
n = int(sys.argv[1])
out = []
for line in sys.stdin:
    m = re.match(r"^\s*([0-9,]+) \(\s*([0-9.]+)%\)\s+(.*)$", line.rstrip())
    if not m or m.group(2) == "100.0":
        continue
    fn = re.sub(r"\s*\[/[^\]]*\]$", "", m.group(3))
    fn = re.sub(r"^(\?\?\?|[^ :]*\.[chS]|\./[^ :]*):", "", fn)
    while True:
        folded = re.sub(r"<[^<>]*>", "\u2039\u203a", fn)
        if folded == fn:
            break
        fn = folded
    fn = fn.replace("\u2039\u203a", "<…>")
    if ".Frame*)" in fn:  # a coroutine body: name(name(args)::_ZN...Frame*) [clone .actor]
        fn = fn.split("(")[0] + "  [coroutine]"
    out.append(f"{int(m.group(1).replace(',', '')) / n:>9.0f} {m.group(2):>6}%  {fn[:150]}")
    if len(out) == 15:
        break
print("Ir/req  share   function")
print("\n".join(out))
PY
# Allocations in a callgrind file: calls of glibc's malloc, or, when the gateway runs on
# mimalloc (CMake's REDLINE_MIMALLOC), calls into libmimalloc from outside it of anything but
# its free/delete entry points. Names and objects are compressed ("(7) malloc" once, "(7)"
# after); a call's callee object is its cob= line, or the caller's ob= without one.
cat >"$tmp/mallocs.py" <<'PY'
import re, sys
names, objs, ob, cob, target, total = {}, {}, None, None, None, 0
def ref(table, key, name):  # "(id) name" defines an id, "(id)" refers to it
    if name:
        table[key] = name
    return table.get(key, "")
for line in open(sys.argv[1]):
    line = line.rstrip()
    m = re.match(r"^(c?ob)=\((\d+)\)(?: (.*))?$", line)
    if m:
        o = ref(objs, m.group(2), m.group(3))
        if m.group(1) == "ob":
            ob = o
        else:
            cob = o
        continue
    m = re.match(r"^c?fn=\((\d+)\)(?: (.*))?$", line)
    if m:
        name = ref(names, m.group(1), m.group(2))
        if line.startswith("cfn="):
            callee_ob = cob if cob is not None else ob
            if "libmimalloc" in callee_ob:
                counted = "libmimalloc" not in ob and not re.search(r"free|delete|usable", name)
            else:
                counted = name == "malloc"
            target = counted
        else:
            target, cob = None, None
        continue
    if line.startswith("calls="):
        if target:
            total += int(line.split("=")[1].split()[0])
        target, cob = None, None
print(total)
PY
total_ir() { awk '/^(summary|totals):/ {print $2; exit}' "$1"; }
out=bench/results/callgrind.md
{
  echo "# callgrind: instructions per request"
  echo
  echo "$(date -u +%FT%TZ), redline $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo '+dirty'), $(valgrind --version), g++ Release (-O3), threads: 1, $N sequential keep-alive requests per path ($((N / 10)) streams, a new connection each); Ir per request = (Ir of the n requests - Ir of an idle interval as long) / n."
  echo
} >"$tmp/report.md"
declare -A label=([l1]="L1 hit" [miss]="miss, cache off (gateway -> mock)" [l2]="Redis hit (L1 off)"
  [stream]="stream, cache off, new connection each (gateway -> streaming mock, 10 events)"
  [fresh]="miss, cache off, new connection each (gateway -> mock)"
  [miss_cl]="miss, cache and a rate limit on, unique bodies (gateway -> Redis + mock)"
  [stream_cl]="stream, cache on, unique bodies, one connection (gateway -> Redis + mock, a 12-word answer)")
declare -A cache=([l1]="{enabled: true}" [miss]="{enabled: false}" [l2]="{enabled: true, l1: {enabled: false}}"
  [stream]="{enabled: false}" [fresh]="{enabled: false}" [miss_cl]="{enabled: true}"
  [stream_cl]="{enabled: true}")
summary=()
for p in $PATHS; do
  port=$(free_port); admin=$(free_port)
  n=$N; provider=$mock_port; mode=""
  [[ $p == stream ]] && { n=$((N / 10)); provider=$smock_port; mode=stream; }
  [[ $p == fresh ]] && mode=fresh
  [[ $p == stream_cl ]] && { n=$((N / 10)); mode=stream_unique; }
  limits=""
  if [[ $p == miss_cl ]]; then
    mode=unique
    limits="rate_limits: [{scope: global, algorithm: sliding-window-counter, requests: 1000000000, tokens: 100000000000, window: 60}]"
  fi
  cat >"$tmp/$p.yaml" <<YAML
listen: "127.0.0.1:$port"
threads: 1
admin: {listen: "127.0.0.1:$admin"}
logging: {access_log: false, level: warn}
redis: {urls: ["redis://127.0.0.1:$redis_port"]}
cache: ${cache[$p]}
providers:
  - {name: mock, type: openai, base_url: "http://127.0.0.1:$provider/v1", api_key: bench}
$limits
YAML
  $pin_sut valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.$p" --dump-instr=no \
    build/redline --config "$tmp/$p.yaml" >"$tmp/$p.log" 2>&1 &
  vg=$!
  track $vg
  for _ in $(seq 600); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
  $pin_load python3 "$tmp/client.py" "$port" 50 $mode >/dev/null  # warm-up (the first is the store)
  callgrind_control -z "$vg" >/dev/null 2>&1
  secs=$($pin_load python3 "$tmp/client.py" "$port" "$n" $mode)
  callgrind_control --dump="requests" "$vg" >/dev/null 2>&1
  callgrind_control -z "$vg" >/dev/null 2>&1
  sleep "$secs"
  callgrind_control --dump="idle" "$vg" >/dev/null 2>&1
  kill "$vg"; wait "$vg" 2>/dev/null || true
  a="$tmp/cg.$p.1"; b="$tmp/cg.$p.2"  # the two dumps, in order (the exit dump is cg.$p)
  [[ -f $a && -f $b ]] || { echo "callgrind: dumps missing for $p"; ls "$tmp"; tail "$tmp/$p.log"; exit 1; }
  ir_a=$(total_ir "$a"); ir_b=$(total_ir "$b")
  per=$(((ir_a - ir_b) / n))
  mallocs=$(python3 "$tmp/mallocs.py" "$a"); mallocs_idle=$(python3 "$tmp/mallocs.py" "$b")
  mpr=$(awk -v a="$mallocs" -v b="$mallocs_idle" -v n="$n" 'BEGIN {printf "%.1f", (a - b) / n}')
  summary+=("| ${label[$p]} | $n | $ir_a | $ir_b | **$per** | $mpr | $secs |")
  echo "${label[$p]}: $per Ir per request $mpr allocations per request (requests $ir_a Ir, idle $ir_b Ir, $secs s under callgrind)"
  {
    echo "## ${label[$p]}: $per instructions per request"
    echo
    echo "Top 15 by inclusive cost (the $n-request dump):"
    echo '```'
    { callgrind_annotate --inclusive=yes --threshold=100 "$a" 2>/dev/null || true; } | python3 "$tmp/short.py" "$n"
    echo '```'
    echo "Top 15 by self cost:"
    echo '```'
    { callgrind_annotate --inclusive=no --threshold=100 "$a" 2>/dev/null || true; } | python3 "$tmp/short.py" "$n"
    echo '```'
    echo
  } >>"$tmp/report.md"
  if [[ -n ${CALLGRIND_KEEP:-} ]]; then
    mkdir -p "$CALLGRIND_KEEP" && cp "$a" "$CALLGRIND_KEEP/callgrind.$p.requests"
  fi
done
{
  sed -n '1,4p' "$tmp/report.md"
  echo "| path | requests | Ir, the requests | Ir, idle as long | Ir per request | allocations per request | seconds under callgrind |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${summary[@]}"
  echo
  sed -n '5,$p' "$tmp/report.md"
} >"$out"
echo "wrote $out"
