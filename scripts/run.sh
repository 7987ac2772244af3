#!/usr/bin/env bash
# `make run`: serves the gateway on 127.0.0.1:8080 with config/redline.yaml.
# Starts a local redis-server (data under var/) when none answers on 127.0.0.1:6379, and
# the bundled mock provider on 127.0.0.1:8081 when OPENAI_API_KEY is not set. Everything
# it started is stopped by PID when the gateway exits.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
mkdir -p var
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "run: starting redis-server on 127.0.0.1:6379 (data in var/)"
  redis-server --bind 127.0.0.1 --port 6379 --dir "$PWD/var" --appendonly yes \
    --maxmemory-policy noeviction --daemonize no --logfile "$PWD/var/redis.log" &
  pids+=($!)
  for _ in $(seq 50); do redis-cli -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

if [[ -z "${OPENAI_API_KEY:-}" ]]; then
  echo "run: OPENAI_API_KEY is not set; using the bundled mock provider on 127.0.0.1:8081"
  "$BUILD/redline-mock" --listen 127.0.0.1:8081 --threads 1 &
  pids+=($!)
  export REDLINE_UPSTREAM="http://127.0.0.1:8081/v1"
  export REDLINE_ANTHROPIC_UPSTREAM="http://127.0.0.1:8081"
else
  export REDLINE_UPSTREAM="${REDLINE_UPSTREAM:-https://api.openai.com/v1}"
fi

cat <<'TRY'
run: try it:
  curl -s http://127.0.0.1:8080/v1/chat/completions -H 'content-type: application/json' \
    -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}'
TRY
"$BUILD/redline" --config config/redline.yaml "$@" &
gw=$!
pids+=($gw)
wait "$gw"
