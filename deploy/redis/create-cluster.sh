#!/usr/bin/env bash
# Creates (start) or removes (stop) a local 6-node Redis Cluster, 3 masters + 3 replicas,
# from one of this folder's cluster configs. Each node runs in its own data directory with a
# pidfile; stop signals exactly those PIDs. For a laptop or CI box, not for production.
#
#   deploy/redis/create-cluster.sh start [state-cluster.conf|cache-cluster.conf]
#   deploy/redis/create-cluster.sh stop
#
# Environment: PORTS (default "7000 7001 7002 7003 7004 7005"), BUS_PORT_OFFSET (default
# 10000: the cluster bus of port P is P+offset), DATA_DIR (default ./var/redis-cluster),
# MAXMEMORY (override for small machines, e.g. 256mb), REDIS_SERVER / REDIS_CLI binaries.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cmd=${1:-start}
conf=${2:-state-cluster.conf}
[[ $conf == /* ]] || conf="$here/$conf"
read -r -a ports <<<"${PORTS:-7000 7001 7002 7003 7004 7005}"
offset=${BUS_PORT_OFFSET:-10000}
data=${DATA_DIR:-./var/redis-cluster}
server=${REDIS_SERVER:-redis-server}
cli=${REDIS_CLI:-redis-cli}

case "$cmd" in
start)
  [[ ${#ports[@]} -eq 6 ]] || { echo "need exactly 6 ports, got: ${ports[*]}" >&2; exit 2; }
  [[ -f $conf ]] || { echo "no such config: $conf" >&2; exit 2; }
  mkdir -p "$data"
  data=$(cd "$data" && pwd)
  addrs=()
  for p in "${ports[@]}"; do
    dir="$data/$p"
    mkdir -p "$dir"
    args=("$conf" --port "$p" --cluster-port $((p + offset)) --dir "$dir"
      --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log")
    [[ -n ${MAXMEMORY:-} ]] && args+=(--maxmemory "$MAXMEMORY")
    "$server" "${args[@]}"
    addrs+=("127.0.0.1:$p")
  done
  for p in "${ports[@]}"; do
    for _ in $(seq 100); do
      [[ $("$cli" -p "$p" PING 2>/dev/null) == PONG ]] && break
      sleep 0.05
    done
  done
  "$cli" --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes
  for p in "${ports[@]}"; do
    for _ in $(seq 200); do
      "$cli" -p "$p" CLUSTER INFO | grep -q '^cluster_state:ok' && break
      sleep 0.05
    done
  done
  echo "cluster ready: ${addrs[*]}"
  ;;
stop)
  # SIGTERM every node first (each saves and exits on its own), then wait for all of them.
  pids=()
  for p in "${ports[@]}"; do
    pidfile="$data/$p/redis.pid"
    if [[ -f $pidfile ]]; then
      pid=$(cat "$pidfile")
      kill "$pid" 2>/dev/null && pids+=("$pid")
    fi
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  done
  echo "cluster stopped (data left in $data)"
  ;;
*)
  echo "usage: $0 start [config] | stop" >&2
  exit 2
  ;;
esac
