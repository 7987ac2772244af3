#!/usr/bin/env bash
# Runs the official SDK checks (sdk_test.mjs) against a real gateway and mock provider
# started here on free loopback ports; stops exactly those processes by PID.
# Usage: run.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
cd "$(dirname "$0")"
if [[ ! -d node_modules/openai || ! -d node_modules/@anthropic-ai/sdk ]]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
source ../../scripts/lib.sh

mock_port=$(free_port); gw_port=$(free_port); admin_port=$(free_port); redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" \
  >"$tmp/redis.log" 2>&1 &
track $!
"$build/redline-mock" --listen "127.0.0.1:$mock_port" --stream-delay-ms 5 >"$tmp/mock.log" 2>&1 &
track $!
cat >"$tmp/redline.yaml" <<YAML
listen: "127.0.0.1:$gw_port"
threads: 2
admin: {listen: "127.0.0.1:$admin_port"}
logging: {access_log: false}
redis: {urls: ["redis://127.0.0.1:$redis_port"]}
cache: {lookup_timeout: 200ms}
providers:
  - {name: openai, type: openai, base_url: "http://127.0.0.1:$mock_port/v1", api_key: sk-upstream}
  - {name: claude, type: anthropic, base_url: "http://127.0.0.1:$mock_port", api_key: sk-upstream}
models:
  claude-3-5-haiku-latest: claude
  gpt-4o-mini: openai
keys:
  - {key: sk-sdk-test, tenant: sdk}
YAML
"$build/redline" --config "$tmp/redline.yaml" >"$tmp/redline.log" 2>&1 &
gw_pid=$!
track $gw_pid
wait_port "$redis_port" && wait_port "$mock_port" && wait_port "$gw_port" || { cat "$tmp"/*.log; exit 1; }
export REDLINE_URL="http://127.0.0.1:$gw_port" REDLINE_KEY=sk-sdk-test \
  MOCK_URL="http://127.0.0.1:$mock_port" SDK_STATE="$tmp/sdk-state.json"
node sdk_test.mjs || { cat "$tmp"/*.log; exit 1; }

# Stored responses live in Redis: a new gateway process continues the conversations.
kill "$gw_pid" && wait "$gw_pid" 2>/dev/null || true
"$build/redline" --config "$tmp/redline.yaml" >"$tmp/redline2.log" 2>&1 &
track $!
wait_port "$gw_port" || { cat "$tmp"/*.log; exit 1; }
SDK_PHASE=after-restart node sdk_test.mjs || { cat "$tmp"/*.log; exit 1; }
