#!/usr/bin/env bash
# Redis CPU of the rate-limit script: starts its own redis-server on a free port, loads the
# script assembled from src/ratelimit/*.lua (the order of src/ratelimit/script.cpp), runs
# EVALSHA check and settle calls with the limiter's argument layout through redis-benchmark
# (one connection, sequential) and prints INFO commandstats' usec_per_call of evalsha per
# scenario. Each scenario is one never-refusing global policy limiting requests and tokens
# (two limiter states in one call, as bench/callgrind.sh's miss_cl path sends), then a settle
# of the token state. Times are Redis' own (the script's execution), not the round trip.
# Usage: bench/micro/ratelimit_script.sh [LUA_DIR] (default src/ratelimit; pass a copy of an
# older revision's .lua files to compare). Environment: SCRIPT_N (20000 calls per scenario).
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${1:-src/ratelimit}
N=${SCRIPT_N:-20000}
source scripts/lib.sh

for part in ratelimit_common fixed_window sliding_window_log sliding_window_counter \
  token_bucket ratelimit_main; do
  cat "$dir/$part.lua"
  echo
done >"$tmp/script.lua"

port=$(free_port)
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" \
  >"$tmp/redis.log" 2>&1 &
track $!
wait_port "$port"
cli() { redis-cli -p "$port" "$@"; }
sha=$(cli -x SCRIPT LOAD <"$tmp/script.lua")

# The handle a check returns for the window algorithms (the window index) at 60 s windows.
idx=$(($(date +%s) / 60))
big=1000000000
run() {  # label, then the command's arguments
  local label=$1
  shift
  cli CONFIG RESETSTAT >/dev/null
  redis-benchmark -p "$port" -c 1 -n "$N" -q "$@" >/dev/null
  local stat
  stat=$(cli INFO commandstats | tr -d '\r' | grep '^cmdstat_evalsha:')
  local calls=${stat#*calls=}
  calls=${calls%%,*}
  local upc=${stat#*usec_per_call=}
  upc=${upc%%,*}
  local failed=${stat#*failed_calls=}
  failed=${failed%%,*}
  printf '%-28s usec_per_call %6s  (calls %s, failed %s)\n' "$label" "$upc" "$calls" "$failed"
}

for alg in fw swc tb swl; do
  keys=("rl:{global-60s-$alg}:req" "rl:{global-60s-$alg}:tok")
  nkeys=2
  handle=$idx
  if [[ $alg == swl ]]; then
    keys=("rl:{global-60s-swl}:req" "rl:{global-60s-swl}:req:meta" "rl:{global-60s-swl}:tok"
      "rl:{global-60s-swl}:tok:meta")
    nkeys=4
    handle=1  # not found after the first settle: the lookup is what it costs
  fi
  [[ $alg == tb ]] && handle=0
  run "check $alg (2 states)" EVALSHA "$sha" "$nkeys" "${keys[@]}" check "" 2 \
    "$alg" "$big" 60000 "$big" 1 0 1 "$alg" "${big}00" 60000 "${big}00" 4200 0 4200
  tok=("${keys[@]:$((nkeys / 2))}")
  run "settle $alg (1 state)" EVALSHA "$sha" "$((nkeys / 2))" "${tok[@]}" settle "" 1 \
    "$alg" "${big}00" 60000 "${big}00" 4200 "$handle" 950
done
