#!/usr/bin/env bash
# Training run for the profile-guided build (scripts/pgo-build.sh): runs the instrumented
# gateway (BIN) through its common paths against the mock provider and a local redis-server,
# one configuration after another, each stopped with SIGTERM so its counters are written:
#   - cache on with a (never refusing) rate limit: L1 hits at 32 connections, unique bodies
#     (lookup miss, limit decision, provider call, store), one-connection hits, streams;
#   - cache on with L1 off: Redis-tier hits, the same mix;
#   - cache off: the plain miss path, the same mix.
# Streams go through bench/ttfe (a new connection each). Needs wrk, redline-mock (MOCK) and
# ttfe (TTFE). D is the length of each wrk run.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:?BIN: the instrumented gateway}; MOCK=${MOCK:-build/redline-mock}; TTFE=${TTFE:-build/bench/ttfe}
D=${D:-2s}; STREAMS=${STREAMS:-100}
source scripts/lib.sh
mock=$(free_port); redis=$(free_port)
$MOCK --listen "127.0.0.1:$mock" --threads 1 --no-record >"$tmp/mock.log" 2>&1 &
track $!
redis-server --port "$redis" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" >"$tmp/redis.log" 2>&1 &
track $!
wait_port "$mock" && wait_port "$redis" || { echo "pgo-train: the mock or redis-server did not start"; exit 1; }
url_path=/v1/chat/completions
stream_body='{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Stream me, please."}]}'

train() {  # name cache-yaml [extra-yaml]
  local port admin gw
  port=$(free_port); admin=$(free_port)
  cat >"$tmp/$1.yaml" <<YAML
listen: "127.0.0.1:$port"
threads: 1
admin: {listen: "127.0.0.1:$admin"}
logging: {access_log: false, level: warn}
redis: {urls: ["redis://127.0.0.1:$redis"]}
cache: $2
providers:
  - {name: mock, type: openai, base_url: "http://127.0.0.1:$mock/v1", api_key: train}
${3:-}
YAML
  "$BIN" --config "$tmp/$1.yaml" >"$tmp/$1.log" 2>&1 &
  gw=$!
  track "$gw"
  wait_port "$port" || { echo "pgo-train: the gateway ($1) did not start"; cat "$tmp/$1.log"; exit 1; }
  wrk -t1 -c32 -d"$D" -s bench/post.lua "http://127.0.0.1:$port$url_path" >/dev/null
  NONCE="$1-$RANDOM" wrk -t1 -c8 -d"$D" -s bench/unique.lua "http://127.0.0.1:$port$url_path" >/dev/null
  wrk -t1 -c1 -d1s -s bench/post.lua "http://127.0.0.1:$port$url_path" >/dev/null
  "$TTFE" 127.0.0.1 "$port" "$url_path" "$stream_body" "$STREAMS" >/dev/null
  kill -TERM "$gw"
  wait "$gw" || { echo "pgo-train: the gateway ($1) exited with $?"; cat "$tmp/$1.log"; exit 1; }
  unset 'pids[-1]'  # stopped and reaped: not the cleanup's to kill
}
train limits "{enabled: true}" "rate_limits:
  - {scope: global, algorithm: sliding-window-counter, requests: 1000000000, tokens: 100000000000, window: 60}"
train redis_tier "{enabled: true, l1: {enabled: false}}"
train cache_off "{enabled: false}"
echo "pgo-train: done"
