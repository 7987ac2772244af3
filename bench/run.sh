#!/usr/bin/env bash
# make bench: Redline against nginx and the mock provider, in one run, on this machine.
#
# Starts (all on loopback, free ports, in a temp dir, stopped by PID on exit): the C++ mock
# provider (immediate answers, and a second one that streams slowly), a standalone
# redis-server, a 3-master + 3-replica Redis Cluster, nginx (one worker: a proxy_cache server
# with the POST body in the key, a proxy_pass server unbuffered with upstream keep-alive, and
# the same for streams), Portkey's open-source gateway (node, pass-through only: an optional
# reference, skipped with one line when npm or its install fails; PORTKEY=0 skips it) and one
# Redline process per scenario. Then:
#   1. wrk -t1 -c{1,32,256} with a Lua POST script against every target, repetitions
#      interleaved across ALL targets (the order rotates per repetition), same pinning for all;
#   2. time to first SSE event (bench/ttfe.cpp) through Redline, nginx, Portkey and the mock alone;
#   3. redis-cli --latency (one Redis round trip), Redis round trips per request from each
#      gateway's own counter, Redis CPU per operation from INFO commandstats deltas,
#      how cache keys and commands spread over the cluster's masters;
#   4. RSS of a gateway before and after 10,000 idle keep-alive connections;
#   5. Google Benchmark microbenchmarks and the Redis client benchmark;
# and writes bench/results/latest.md and latest.json (bench/report.py) with medians,
# ratios to the baselines and the issue's targets marked PASS/MISS.
#
# Environment: DURATION (wrk run, default 5s), REPS (>= 3), CONNS ("1 32 256"),
# TTFE_N (streams per repetition and target), IDLE_CONNS (10000), QUICK=1 for a smoke run
# (1 s runs, 1 repetition, 32 connections only, fewer streams and connections).
# CALLGRIND=0 skips bench/callgrind.sh (run at the end; its table is appended to latest.md).
# Pinning on 2 cores: every system under test (Redline, nginx, Portkey) on core 0; wrk, the other
# clients, the mock providers and every redis-server on core 1.
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
  DURATION=${DURATION:-1s}; REPS=${REPS:-1}; CONNS=${CONNS:-"32"}
  TTFE_N=${TTFE_N:-30}; IDLE_CONNS=${IDLE_CONNS:-2000}; MICRO_TIME=${MICRO_TIME:-0.02}
  REDIS_OPS=${REDIS_OPS:-50000}; STATS_SECONDS=${STATS_SECONDS:-1}
fi
DURATION=${DURATION:-5s}
REPS=${REPS:-3}
CONNS=${CONNS:-"1 32 256"}
TTFE_N=${TTFE_N:-200}
IDLE_CONNS=${IDLE_CONNS:-10000}
MICRO_TIME=${MICRO_TIME:-0.1}
REDIS_OPS=${REDIS_OPS:-400000}
STATS_SECONDS=${STATS_SECONDS:-3}
STREAM_DELAY_MS=${STREAM_DELAY_MS:-5}
# Portkey's gateway from npm, installed once into a cache outside the repository. Its
# @hono/node-server dependency is held at 1.14.1: from 1.14.2 on, node-server's Response keeps
# the upstream fetch response's immutable headers for a streamed body, and Portkey's
# updateHeaders() then throws "TypeError: immutable" on every stream (Portkey-AI/gateway#1389).
PORTKEY=${PORTKEY:-1}
PORTKEY_VERSION=1.15.2
PORTKEY_NODE_SERVER=1.14.1
PORTKEY_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/redline-bench/portkey/$PORTKEY_VERSION

# 10,000 idle connections need that many descriptors in the gateway and in the client.
ulimit -n "$(ulimit -Hn)"
if (($(ulimit -n) < IDLE_CONNS + 1000)); then
  echo "bench: ulimit -n is $(ulimit -n); using $(($(ulimit -n) - 1000)) idle connections" >&2
  IDLE_CONNS=$(($(ulimit -n) - 1000))
fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=g++ -DREDLINE_TESTS=ON >/dev/null
cmake --build build -j "$(nproc)" --target redline redline-mock redis_client_bench micro_bench \
  ttfe idle_conns >/dev/null
# The gateway under test is the profile-guided release build (scripts/pgo-build.sh, as
# `make build-pgo`); PGO=0 measures the plain build instead. Either way the plain build also
# runs in the interleaved time-to-first-event comparison ("stream_plain"), so both are shown.
PGO=${PGO:-1}
GW=build/redline; gw_build="g++ -O3 Release (plain)"
if [[ $PGO == 1 ]]; then
  ./scripts/pgo-build.sh
  GW=build-pgo/redline; gw_build="g++ -O3 Release, profile-guided (make build-pgo)"
fi

source scripts/lib.sh

# --- Portkey: install when missing --------------------------------------------------------
# Sets portkey_js to its server script, or prints one line and leaves it empty (the rest of
# the bench runs without it); portkey_status ends up in versions.txt.
portkey_js=""; portkey_status="skipped"
portkey_install() {
  local js=$PORTKEY_DIR/node_modules/@portkey-ai/gateway/build/start-server.js
  local stamp="@portkey-ai/gateway@$PORTKEY_VERSION @hono/node-server@$PORTKEY_NODE_SERVER"
  if [[ $PORTKEY != 1 ]]; then
    portkey_status="skipped (PORTKEY=$PORTKEY)"; echo "bench: Portkey skipped (PORTKEY=$PORTKEY)"; return
  fi
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    portkey_status="skipped (no node/npm)"; echo "bench: Portkey skipped: node or npm is not installed"; return
  fi
  if [[ ! -f $js || $(cat "$PORTKEY_DIR/.installed" 2>/dev/null) != "$stamp" ]]; then
    echo "bench: installing Portkey ($stamp) into $PORTKEY_DIR"
    mkdir -p "$PORTKEY_DIR"
    rm -rf "$PORTKEY_DIR/node_modules" "$PORTKEY_DIR/package-lock.json" "$PORTKEY_DIR/.installed"
    cat >"$PORTKEY_DIR/package.json" <<JSON
{"name": "redline-bench-portkey", "private": true,
 "overrides": {"@hono/node-server": "$PORTKEY_NODE_SERVER"}}
JSON
    # --ignore-scripts: the package ships built (build/start-server.js); its postinstall only
    # runs patch-package, which has no patches in the published package.
    if ! (cd "$PORTKEY_DIR" && nice -n 10 npm install --no-audit --no-fund --ignore-scripts --save-exact \
      "@portkey-ai/gateway@$PORTKEY_VERSION") >"$tmp/portkey-install.log" 2>&1 || [[ ! -f $js ]]; then
      portkey_status="skipped (npm install failed)"
      echo "bench: Portkey skipped: npm install @portkey-ai/gateway@$PORTKEY_VERSION failed: $(grep -m1 'npm error' "$tmp/portkey-install.log" || tail -n 1 "$tmp/portkey-install.log")"
      rm -rf "$PORTKEY_DIR/node_modules"; return
    fi
    echo "$stamp" >"$PORTKEY_DIR/.installed"
  fi
  portkey_js=$js
  portkey_status="@portkey-ai/gateway $PORTKEY_VERSION (node $(node --version), @hono/node-server $(node -p "require('$PORTKEY_DIR/node_modules/@hono/node-server/package.json').version"))"
}
portkey_install
# nginx keeps its cache on tmpfs when there is one (the entry is read from memory either way)
shm=""
if [[ -d /dev/shm && -w /dev/shm ]]; then shm=$(mktemp -d /dev/shm/redline-bench.XXXXXX); fi
trap 'cleanup; [[ -n $shm ]] && rm -rf "$shm"' EXIT
res="$tmp/res"; mkdir -p "$res"

pin_sut="taskset -c 0"; pin_load="taskset -c 1"; pin_both="taskset -c 0,1"
if [[ $(nproc) -lt 2 ]]; then pin_sut=""; pin_load=""; pin_both=""; fi
CHAT='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Benchmark me, please."}]}'
STREAM_BODY='{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Stream me, please."}]}'
PATH_CHAT=/v1/chat/completions
commands="$res/commands.txt"; : >"$commands"
log_cmd() { echo "$*" >>"$commands"; }

# --- providers and Redis ------------------------------------------------------------------
mock_port=$(free_port); smock_port=$(free_port); hmock_port=$(free_port); redis_port=$(free_port)
$pin_load build/redline-mock --listen "127.0.0.1:$mock_port" --threads 1 --no-record >"$tmp/mock.log" 2>&1 &
track $!
log_cmd "$pin_load build/redline-mock --listen 127.0.0.1:PORT --threads 1 --no-record"
# The streaming mock sends its first event at once, then one event every STREAM_DELAY_MS.
$pin_load build/redline-mock --listen "127.0.0.1:$smock_port" --threads 1 --no-record --words 8 \
  --stream-delay-ms "$STREAM_DELAY_MS" >"$tmp/smock.log" 2>&1 &
track $!
log_cmd "$pin_load build/redline-mock --listen 127.0.0.1:PORT --threads 1 --no-record --words 8 --stream-delay-ms $STREAM_DELAY_MS"
# A second one sends all its events at once: streams back to back, with no idle time between
# them, show what a stream costs with warm caches (a reference next to the target above).
$pin_load build/redline-mock --listen "127.0.0.1:$hmock_port" --threads 1 --no-record --words 8 \
  --stream-delay-ms 0 >"$tmp/hmock.log" 2>&1 &
track $!
log_cmd "$pin_load build/redline-mock --listen 127.0.0.1:PORT --threads 1 --no-record --words 8 --stream-delay-ms 0"
$pin_load redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" \
  >"$tmp/redis.log" 2>&1 &
track $!
log_cmd "$pin_load redis-server --port PORT --bind 127.0.0.1 --save '' --appendonly no"

# Redis Cluster: 3 masters + 3 replicas, all on core 1 next to the standalone server.
cluster_port() {  # a free port whose cluster bus port (+10000) is free and below 65536
  python3 -c 'import socket
while True:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]
    if p + 10000 > 65535: continue
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 10000)); print(p); break
    except OSError: pass'
}
cluster_ports=()
for i in 1 2 3 4 5 6; do
  p=$(cluster_port); cluster_ports+=("$p"); mkdir -p "$tmp/cluster/$p"
  $pin_load redis-server --port "$p" --bind 127.0.0.1 --save "" --appendonly no \
    --cluster-enabled yes --cluster-config-file "$tmp/cluster/$p/nodes.conf" --dir "$tmp/cluster/$p" \
    >"$tmp/cluster/$p/redis.log" 2>&1 &
  track $!
done
log_cmd "$pin_load redis-server --port PORT --cluster-enabled yes ... (x6); redis-cli --cluster create ... --cluster-replicas 1 --cluster-yes"
for p in "$mock_port" "$smock_port" "$redis_port" "${cluster_ports[@]}"; do wait_port "$p"; done
redis-cli --cluster create $(printf '127.0.0.1:%s ' "${cluster_ports[@]}") --cluster-replicas 1 \
  --cluster-yes >"$tmp/cluster-create.log" 2>&1 ||
  { echo "bench: cluster create failed"; cat "$tmp/cluster-create.log"; exit 1; }
for _ in $(seq 100); do
  ok=1
  for p in "${cluster_ports[@]}"; do
    redis-cli -p "$p" cluster info | grep -q 'cluster_state:ok' || ok=0
  done
  ((ok)) && break
  sleep 0.2
done
((ok)) || { echo "bench: cluster not ok"; exit 1; }
cluster_urls=$(printf '"redis://127.0.0.1:%s", ' "${cluster_ports[@]:0:3}")

# --- nginx --------------------------------------------------------------------------------
# master_process on with one worker: the shape nginx runs in production (the cache manager
# and loader are separate processes that stay idle here); the master is pinned, so the
# worker inherits core 0, and stopping the master by PID stops the worker.
ngx_hit_port=$(free_port); ngx_pass_port=$(free_port); ngx_stream_port=$(free_port); ngx_hstream_port=$(free_port)
ngx="$tmp/nginx"; mkdir -p "$ngx/logs"
cache_dir=${shm:-$ngx}/cache
user_line=""
[[ $(id -u) -eq 0 ]] && user_line="user $(id -un) $(id -gn);"  # else nginx ignores it
proxy_common='proxy_http_version 1.1; proxy_set_header Connection "";'
cat >"$ngx/nginx.conf" <<NGINX
$user_line
worker_processes 1;
daemon off;
master_process on;
pid $ngx/nginx.pid;
error_log $ngx/logs/error.log warn;
events { worker_connections 20000; }
http {
  access_log off;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_timeout 65; keepalive_requests 100000000;
  client_body_temp_path $ngx/client_body; proxy_temp_path $ngx/proxy;
  fastcgi_temp_path $ngx/fastcgi; uwsgi_temp_path $ngx/uwsgi; scgi_temp_path $ngx/scgi;
  # the whole body must sit in one memory buffer for \$request_body to be the key
  client_body_buffer_size 64k; client_body_in_single_buffer on; client_max_body_size 1m;
  proxy_cache_path $cache_dir levels=1:2 keys_zone=bench:16m max_size=256m inactive=60m use_temp_path=off;
  upstream mock { server 127.0.0.1:$mock_port; keepalive 64; keepalive_requests 100000000; }
  upstream smock { server 127.0.0.1:$smock_port; keepalive 64; keepalive_requests 100000000; }
  upstream hmock { server 127.0.0.1:$hmock_port; keepalive 64; keepalive_requests 100000000; }
  server {  # (a) proxy_cache of the POST, body in the key
    listen 127.0.0.1:$ngx_hit_port;
    location / {
      proxy_pass http://mock; $proxy_common
      proxy_cache bench; proxy_cache_methods POST; proxy_cache_key "\$request_uri|\$request_body";
      proxy_cache_valid 200 10m;
      proxy_ignore_headers Cache-Control Expires Set-Cookie Vary X-Accel-Expires;
      add_header X-Cache-Status \$upstream_cache_status;
    }
  }
  server {  # (b) proxy_pass, unbuffered, keep-alive upstream: misses
    listen 127.0.0.1:$ngx_pass_port;
    location / { proxy_pass http://mock; $proxy_common proxy_buffering off; }
  }
  server {  # (b) the same for streams
    listen 127.0.0.1:$ngx_stream_port;
    location / { proxy_pass http://smock; $proxy_common proxy_buffering off; }
  }
  server {  # (b) the same for back-to-back streams
    listen 127.0.0.1:$ngx_hstream_port;
    location / { proxy_pass http://hmock; $proxy_common proxy_buffering off; }
  }
}
NGINX
$pin_sut nginx -p "$ngx" -c "$ngx/nginx.conf" -e "$ngx/logs/error.log" >"$ngx/logs/stdout.log" 2>&1 &
track $!
log_cmd "$pin_sut nginx -p \$tmp/nginx -c \$tmp/nginx/nginx.conf -e \$tmp/nginx/logs/error.log"
cp "$ngx/nginx.conf" "$res/nginx.conf"

# --- Portkey ------------------------------------------------------------------------------
# Its node server as `npx @portkey-ai/gateway` starts it (build/start-server.js, --port=N;
# --headless: no web UI, no log stream), its own default settings, one node process on core 0.
# It routes per request by headers (provider openai, custom host = a mock's /v1).
pk_port=""
if [[ -n $portkey_js ]]; then
  pk_port=$(free_port)
  $pin_sut node "$portkey_js" --port="$pk_port" --headless >"$tmp/portkey.log" 2>&1 &
  track $!
  log_cmd "$pin_sut node \$PORTKEY_DIR/node_modules/@portkey-ai/gateway/build/start-server.js --port=PORT --headless   ($portkey_status)"
fi
export PORTKEY_CUSTOM_HOST="http://127.0.0.1:$mock_port/v1"  # read by bench/portkey.lua
pk_headers() {  # upstream port -> Portkey's routing headers, one per line
  printf '%s\n' "x-portkey-provider: openai" "x-portkey-custom-host: http://127.0.0.1:$1/v1" \
    "authorization: Bearer bench"
}

# --- gateways -----------------------------------------------------------------------------
declare -A gw_port gw_admin gw_pid
start_gateway() {  # name pin threads redis-yaml cache-yaml [extra-yaml]
  local name=$1 pin=$2 threads=$3 port admin
  port=$(free_port); admin=$(free_port)
  cat >"$tmp/$name.yaml" <<YAML
listen: "127.0.0.1:$port"
threads: $threads
admin: {listen: "127.0.0.1:$admin"}
logging: {access_log: false, level: warn}
limits: {max_connections: $((IDLE_CONNS + 1000)), max_connections_per_ip: 0}  # one client address opens them all
redis: $4
cache: $5
providers:
  - {name: mock, type: openai, base_url: "http://127.0.0.1:${PROVIDER_PORT:-$mock_port}/v1", api_key: bench}
${6:-}
YAML
  $pin ${GW_BIN:-$GW} --config "$tmp/$name.yaml" >"$tmp/$name.log" 2>&1 &
  gw_pid[$name]=$!
  track $!
  gw_port[$name]=$port; gw_admin[$name]=$admin
  cp "$tmp/$name.yaml" "$res/gateway-$name.yaml"
}
standalone="{urls: [\"redis://127.0.0.1:$redis_port\"]}"
cluster="{mode: cluster, urls: [${cluster_urls%, }]}"
cluster_rr="{mode: cluster, urls: [${cluster_urls%, }], read_from_replicas: true}"
never_refuse="rate_limits:
  - {scope: global, algorithm: sliding-window-counter, requests: 1000000000, tokens: 100000000000, window: 60}"
start_gateway miss "$pin_sut" 1 "$standalone" "{enabled: false}"
start_gateway miss_cl "$pin_sut" 1 "$standalone" "{enabled: true}" "$never_refuse"
start_gateway rl "$pin_sut" 1 "$standalone" "{enabled: false}" "$never_refuse"
start_gateway hit_l1 "$pin_sut" 1 "$standalone" "{enabled: true}"
start_gateway hit_l2 "$pin_sut" 1 "$standalone" "{enabled: true, l1: {enabled: false}}"
start_gateway hit_l1_t2 "$pin_both" 2 "$standalone" "{enabled: true}"
start_gateway cl_hit "$pin_sut" 1 "$cluster" "{enabled: true, l1: {enabled: false}}"
start_gateway cl_hit_rr "$pin_sut" 1 "$cluster_rr" "{enabled: true, l1: {enabled: false}}"
start_gateway cl_store "$pin_sut" 1 "$cluster" "{enabled: true, l1: {enabled: false}}" "$never_refuse"
PROVIDER_PORT=$smock_port start_gateway stream "$pin_sut" 1 "$standalone" "{enabled: false}"
GW_BIN=build/redline PROVIDER_PORT=$smock_port start_gateway stream_plain "$pin_sut" 1 "$standalone" "{enabled: false}"
PROVIDER_PORT=$hmock_port start_gateway hstream "$pin_sut" 1 "$standalone" "{enabled: false}"
start_gateway idle "$pin_sut" 1 "$standalone" "{enabled: true}"
log_cmd "$pin_sut $GW --config gateway-<scenario>.yaml   ($gw_build; stream_plain: build/redline)   (threads: 2 on taskset -c 0,1; files in bench/results/configs/)"

for p in "$ngx_hit_port" "$ngx_pass_port" "$ngx_stream_port" "$ngx_hstream_port" "${gw_port[@]}" "${gw_admin[@]}"; do
  wait_port "$p" || { echo "bench: port $p did not open"; tail -n 20 "$tmp"/*.log "$ngx"/logs/*; exit 1; }
done

post() {  # port [body] -> response headers on stdout
  curl -s -o /dev/null -D - -X POST -H 'content-type: application/json' -d "${2:-$CHAT}" \
    "http://127.0.0.1:$1$PATH_CHAT"
}
# Portkey must open its port and pass the mock's answer through (200, the mock's body and
# x-request-id), or it is left out with one line.
if [[ -n $pk_port ]]; then
  pk_ok=0
  if wait_port "$pk_port"; then
    mapfile -t pk_h < <(pk_headers "$mock_port")
    pk_args=(); for h in "${pk_h[@]}"; do pk_args+=(-H "$h"); done
    pk_code=$(curl -s -o "$tmp/portkey-answer.json" -D "$tmp/portkey-answer.head" -w '%{http_code}' -X POST \
      -H 'content-type: application/json' "${pk_args[@]}" -d "$CHAT" "http://127.0.0.1:$pk_port$PATH_CHAT" || true)
    if [[ $pk_code == 200 ]] && grep -q '"system_fingerprint":"fp_redline_mock"' "$tmp/portkey-answer.json" &&
      grep -qi '^x-request-id: req_' "$tmp/portkey-answer.head"; then
      pk_ok=1
    fi
  fi
  if ((!pk_ok)); then
    echo "bench: Portkey skipped: no 200 from the mock through it (status ${pk_code:-none}; $(tail -n 3 "$tmp/portkey.log" | tr -d '\033' | tr -s '\r\n' '  '))"
    portkey_status="skipped (did not answer: ${pk_code:-no port})"; pk_port=""
  fi
fi
# Warm-up and sanity: nginx must cache by body (same body HIT, other body MISS), every
# gateway hit target must answer hit.
post "$ngx_hit_port" >/dev/null
post "$ngx_hit_port" | grep -qi 'x-cache-status: HIT' || { echo "bench: nginx did not cache"; exit 1; }
post "$ngx_hit_port" '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"other"}]}' |
  grep -qi 'x-cache-status: MISS' || { echo "bench: nginx cache key ignores the body"; exit 1; }
# (The store happens after the answer, and a replica sees it a moment later: retry briefly.)
for t in hit_l1 hit_l2 hit_l1_t2 cl_hit cl_hit_rr idle; do
  post "${gw_port[$t]}" >/dev/null
  hit=0
  for _ in $(seq 50); do
    if post "${gw_port[$t]}" | grep -qi 'x-redline-cache: hit'; then hit=1; break; fi
    sleep 0.1
  done
  ((hit)) || { echo "bench: warm-up of $t is not a hit"; tail -n 20 "$tmp/$t.log"; exit 1; }
done

# --- wrk ----------------------------------------------------------------------------------
# target -> "port lua"
declare -A target=(
  [mock]="$mock_port post" [ngx_hit]="$ngx_hit_port post" [ngx_pass]="$ngx_pass_port post"
  [miss]="${gw_port[miss]} post" [miss_cl]="${gw_port[miss_cl]} unique" [rl]="${gw_port[rl]} post"
  [hit_l1]="${gw_port[hit_l1]} post" [hit_l2]="${gw_port[hit_l2]} post"
  [hit_l1_t2]="${gw_port[hit_l1_t2]} post" [cl_hit]="${gw_port[cl_hit]} post"
  [cl_hit_rr]="${gw_port[cl_hit_rr]} post"
  # 4-deep pipelined (bench/pipeline.lua): threads 2 vs 1 with the load generator's CPU cut
  [ngx_hit_p4]="$ngx_hit_port pipeline" [hit_l1_p4]="${gw_port[hit_l1]} pipeline"
  [hit_l1_t2_p4]="${gw_port[hit_l1_t2]} pipeline"
  # a ~3 KB answer (bench/post_big.lua), compressed in Redis
  [ngx_hit_big]="$ngx_hit_port post_big" [hit_l1_big]="${gw_port[hit_l1]} post_big"
  [hit_l2_big]="${gw_port[hit_l2]} post_big"
)
order=(mock ngx_hit ngx_pass miss miss_cl rl hit_l1 hit_l2 hit_l1_t2 cl_hit cl_hit_rr
  ngx_hit_p4 hit_l1_p4 hit_l1_t2_p4 ngx_hit_big hit_l1_big hit_l2_big)
if [[ -n $pk_port ]]; then  # Portkey's pass-through next to nginx's, interleaved like every target
  target[pk_pass]="$pk_port portkey"
  order=("${order[@]:0:3}" pk_pass "${order[@]:3}")
fi
log_cmd "$pin_load wrk -t1 -c{$(echo $CONNS | tr ' ' ,)} -d$DURATION --latency -s bench/{post,post_big,unique,pipeline,portkey}.lua http://127.0.0.1:PORT$PATH_CHAT"
run_wrk() {  # name conns duration -> "rps p50 p90 p99 p999 errors" (latencies in ms)
  local port lua; read -r port lua <<<"${target[$1]}"
  NONCE="$1-$2-$RANDOM$RANDOM" $pin_load wrk -t1 -c"$2" -d"$3" --latency -s "bench/$lua.lua" \
    "http://127.0.0.1:$port$PATH_CHAT" 2>&1 | tee -a "$res/wrk-raw.txt" |
    awk '/^RESULT/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
                     err = v["connect"] + v["read"] + v["write"] + v["timeout"] + v["status"]
                     printf "%.1f %.3f %.3f %.3f %.3f %d\n", v["requests"] / v["duration_us"] * 1e6,
                       v["p50"] / 1000, v["p90"] / 1000, v["p99"] / 1000, v["p999"] / 1000, err }'
}
metrics() {  # gateway -> "round_trips requests"
  curl -s "http://127.0.0.1:${gw_admin[$1]}/metrics" | awk '
    /^redline_redis_round_trips_total[{ ]/ { rt += $NF }
    /^redline_requests_total[{ ]/ { rq += $NF }
    END { printf "%d %d\n", rt, rq }'
}
redis_latency() {  # one Redis round trip from core 0 (where the gateways run): avg ms
  $pin_sut redis-cli -p "$redis_port" --latency --raw | awk '{print $3}'
}

echo "== warm-up"
for t in "${order[@]}"; do run_wrk "$t" 32 1s >/dev/null; done
for t in "${!gw_port[@]}"; do echo "$t $(metrics "$t")"; done >"$res/metrics-before.txt"

echo "== wrk: ${#order[@]} targets x conns {$CONNS} x $REPS reps x $DURATION"
: >"$res/wrk.txt"; : >"$res/redis-latency.txt"
for c in $CONNS; do
  for rep in $(seq "$REPS"); do
    n=${#order[@]}
    for i in $(seq 0 $((n - 1))); do
      t=${order[$(((i + rep - 1) % n))]}
      echo "$t $c $rep $(run_wrk "$t" "$c" "$DURATION")" | tee -a "$res/wrk.txt"
    done
    echo "$c $rep $(redis_latency)" >>"$res/redis-latency.txt"
  done
done
for t in "${!gw_port[@]}"; do echo "$t $(metrics "$t")"; done >"$res/metrics-after.txt"

# --- time to first event ------------------------------------------------------------------
echo "== time to first event: $TTFE_N streams x $REPS reps"
log_cmd "$pin_load build/bench/ttfe 127.0.0.1 MOCK_PORT,NGINX_PORT,REDLINE_PORT,REDLINE_PLAIN_PORT $PATH_CHAT '$STREAM_BODY' $TTFE_N   (interleaved, shuffled per round)"
log_cmd "$pin_load build/bench/ttfe 127.0.0.1 PORT $PATH_CHAT '$STREAM_BODY' $TTFE_N   (back to back: one block per target)"
if [[ -n $pk_port ]]; then
  log_cmd "$pin_load build/bench/ttfe 127.0.0.1 PORT $PATH_CHAT '$STREAM_BODY' $TTFE_N 5 $(pk_headers PORT | sed "s/.*/'&'/" | tr '\n' ' ')  (Portkey)"
fi
: >"$res/ttfe.txt"
# The three targets of the comparison (the mock alone, nginx, Redline) share one bench/ttfe
# run per repetition: one stream to each per round, in a shuffled order, so drift hits them
# alike (run one after another, the mock alone moved by up to 60 us between blocks, more than
# the gap measured). The back-to-back set stays one block per target: with streams of
# another target in between, it would no longer be back to back.
for rep in $(seq "$REPS"); do
  ports="$smock_port,$ngx_stream_port,${gw_port[stream]},${gw_port[stream_plain]}"
  out=$($pin_load build/bench/ttfe 127.0.0.1 "$ports" "$PATH_CHAT" "$STREAM_BODY" "$TTFE_N" || true)
  for t in smock ngx_stream stream stream_plain; do
    case $t in smock) port=$smock_port ;; ngx_stream) port=$ngx_stream_port ;; *) port=${gw_port[$t]} ;; esac
    echo "$t $rep $(grep "^port=$port " <<<"$out" | cut -d' ' -f2-)" | tee -a "$res/ttfe.txt"
  done
  for t in ${pk_port:+pk_stream} hmock ngx_hstream hstream; do
    extra=()
    case $t in
      hmock) port=$hmock_port ;; ngx_hstream) port=$ngx_hstream_port ;; hstream) port=${gw_port[hstream]} ;;
      pk_stream) port=$pk_port; mapfile -t extra < <(echo 5; pk_headers "$smock_port") ;;  # warm-up 5, headers
    esac
    echo "$t $rep $($pin_load build/bench/ttfe 127.0.0.1 "$port" "$PATH_CHAT" "$STREAM_BODY" "$TTFE_N" "${extra[@]}" || true)" |
      tee -a "$res/ttfe.txt"
  done
done

# --- Redis CPU per operation (standalone) ---------------------------------------------------
# Per phase: CONFIG RESETSTAT, wrk at 32 connections, then INFO commandstats and the server's
# CPU time delta, divided by the requests the phase sent.
echo "== Redis CPU per operation"
redis_cpu() { redis-cli -p "$1" info cpu | awk -F: '/^used_cpu_(sys|user):/ {s += $2} END {printf "%.6f\n", s}'; }
: >"$res/redis-ops.txt"
for t in hit_l2 rl miss_cl; do
  redis-cli -p "$redis_port" config resetstat >/dev/null
  cpu0=$(redis_cpu "$redis_port")
  out=$(run_wrk "$t" 32 "${STATS_SECONDS}s")
  cpu1=$(redis_cpu "$redis_port")
  # completed requests of that wrk run (its RESULT line), not req/s x seconds
  reqs=$(awk '/^RESULT/ {split($2, a, "="); r = a[2]} END {print r + 0}' "$res/wrk-raw.txt")
  [[ -n $out ]] || reqs=0
  {
    echo "PHASE $t requests=$reqs redis_cpu_s=$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN {printf "%.6f", b - a}')"
    redis-cli -p "$redis_port" info commandstats | grep '^cmdstat_' | tr -d '\r'
  } >>"$res/redis-ops.txt"
done

# --- Cluster: how keys and commands spread over the masters ---------------------------------
# cl_store sends unique bodies (one tenant, "default", as an open gateway does): every request
# is a lookup miss, a store of a new c: key and a rate-limit decision. Then per node: DBSIZE,
# c: keys, and the commands each node executed (cl_hit/cl_hit_rr ran before, in the wrk loop).
echo "== cluster spread"
: >"$res/cluster.txt"
for p in "${cluster_ports[@]}"; do
  echo "NODE $p before $(redis-cli -p "$p" info commandstats | grep -E '^cmdstat_(get|mget|set|evalsha|eval):' | tr -d '\r' | tr '\n' ' ')" >>"$res/cluster.txt"
  redis-cli -p "$p" config resetstat >/dev/null
done
target[cl_store]="${gw_port[cl_store]} unique"
run_wrk cl_store 32 "$((STATS_SECONDS * 2))s" | sed 's/^/CLSTORE /' >>"$res/cluster.txt"
for p in "${cluster_ports[@]}"; do
  role=$(redis-cli -p "$p" info replication | awk -F: '/^role:/ {print $2}' | tr -d '\r')
  keys=$(redis-cli -p "$p" dbsize | tr -d '\r')
  ckeys=$(redis-cli -p "$p" --scan --pattern 'c:*' | grep -vc '^c:g:' || true)
  slots=$(redis-cli -p "$p" cluster nodes | awk '/myself/ {for (i = 9; i <= NF; i++) printf "%s,", $i}')
  echo "NODE $p role=$role dbsize=$keys ckeys=$ckeys slots=${slots%,} $(redis-cli -p "$p" info commandstats | grep -E '^cmdstat_(get|mget|set|evalsha|eval|incr):' | tr -d '\r' | tr '\n' ' ')" >>"$res/cluster.txt"
done
# keys per slot, every slot of every master (CLUSTER COUNTKEYSINSLOT, one pipelined client)
for p in "${cluster_ports[@]}"; do
  redis-cli -p "$p" cluster nodes | awk '/myself/ && /master/ {
      for (i = 9; i <= NF; i++) { split($i, r, "-"); if (r[2] == "") r[2] = r[1]
        for (s = r[1]; s <= r[2]; s++) print "CLUSTER COUNTKEYSINSLOT", s } }' |
    redis-cli -p "$p" | tr -d '\r' | awk -v p="$p" 'NF {n++; s += $1; if ($1 > m) m = $1}
      END {if (n) printf "SLOTS %s slots=%d keys=%d max_per_slot=%d\n", p, n, s, m}' >>"$res/cluster.txt"
done
cat "$res/cluster.txt"

# --- 10,000 idle keep-alive connections -----------------------------------------------------
echo "== $IDLE_CONNS idle keep-alive connections"
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
idle_pid=${gw_pid[idle]}
log_cmd "$pin_load build/bench/idle_conns 127.0.0.1 PORT $PATH_CHAT '$CHAT' $IDLE_CONNS"
for _ in 1 2 3; do post "${gw_port[idle]}" >/dev/null; done
rss0=$(rss "$idle_pid")
mkfifo "$tmp/idle.fifo"
$pin_load build/bench/idle_conns 127.0.0.1 "${gw_port[idle]}" "$PATH_CHAT" "$CHAT" "$IDLE_CONNS" \
  <"$tmp/idle.fifo" >"$tmp/idle.out" 2>&1 &
idle_client=$!
track "$idle_client"
exec {idle_fd}>"$tmp/idle.fifo"  # holds the client's stdin open until we close it
for _ in $(seq 600); do grep -q '^OPEN' "$tmp/idle.out" && break; sleep 0.1; done
sleep 1
rss1=$(rss "$idle_pid")
conns_open=$(curl -s "http://127.0.0.1:${gw_admin[idle]}/metrics" |
  awk '/^redline_http_connections[{ ].*server="proxy"/ {print $NF}')
echo "IDLE rss_before_kib=$rss0 rss_after_kib=$rss1 $(cat "$tmp/idle.out") gateway_open=${conns_open:-?}" |
  tee "$res/idle.txt"
exec {idle_fd}>&-
wait "$idle_client" 2>/dev/null || true

# --- microbenchmarks and the Redis client ---------------------------------------------------
echo "== microbenchmarks"
log_cmd "build/bench/micro_bench --benchmark_min_time=$MICRO_TIME --benchmark_format=json"
$pin_sut build/bench/micro_bench --benchmark_min_time="$MICRO_TIME" --benchmark_format=json \
  >"$res/micro.json" 2>"$res/micro.err" || { cat "$res/micro.err"; exit 1; }
echo "== Redis client (2 KB GET/SET, 200 coroutines, one thread) vs redis-benchmark -P 16"
log_cmd "build/bench/redis_client_bench --ops $REDIS_OPS --coroutines 200"
build/bench/redis_client_bench --ops "$REDIS_OPS" --coroutines 200 | tee "$res/redis-client.txt"

# --- versions and the report --------------------------------------------------------------
{
  echo "redline $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo '+dirty')"
  nginx -v 2>&1
  redis-server -v
  (wrk -v 2>&1 || true) | head -1
  g++ --version | head -1
  echo "gateway build: $gw_build"
  echo "portkey $portkey_status"
} >"$res/versions.txt"
echo "QUICK=$QUICK DURATION=$DURATION REPS=$REPS CONNS=$CONNS TTFE_N=$TTFE_N IDLE_CONNS=$IDLE_CONNS STREAM_DELAY_MS=$STREAM_DELAY_MS" >"$res/params.txt"
mkdir -p bench/results/configs
cp "$res"/nginx.conf "$res"/gateway-*.yaml bench/results/configs/
sed -i -E 's/127\.0\.0\.1:[0-9]+/127.0.0.1:PORT/g; s#'"$tmp"'#$tmp#g; s#'"${shm:-/nonexistent}"'#$shm#g' \
  bench/results/configs/*
python3 bench/report.py "$res" bench/results

# --- callgrind: instructions per request (stable where times are not) ------------------------
if [[ ${CALLGRIND:-1} == 1 ]]; then
  echo "== callgrind"
  CALLGRIND_N=${CALLGRIND_N:-$([[ $QUICK == 1 ]] && echo 200 || echo 2000)} bench/callgrind.sh
  { echo; sed -e 's/^## /### /' -e '1s/^# /## /' bench/results/callgrind.md; } >>bench/results/latest.md
fi
