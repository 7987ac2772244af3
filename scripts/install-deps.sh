#!/usr/bin/env bash
# Installs Redline's build and test dependencies from Debian 12's apt repositories.
# Idempotent: packages already present are skipped, so a second run is a no-op.
# Pinned to the Boost 1.81 packages; never installs libboost-dev (that pulls 1.74).
set -euo pipefail

PKGS=(
  build-essential cmake make ninja-build ccache pkg-config g++ clang-14 lld-14 libclang-rt-14-dev
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libssl-dev openssl ca-certificates
  libsimdjson-dev libxxhash-dev libzstd-dev libyaml-cpp-dev libspdlog-dev libfmt-dev
  libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev libmimalloc-dev
  redis-server redis-tools curl python3
  prometheus  # promtool: tests check the /metrics text (the service is disabled below)
  chromium    # headless: the dashboard test opens the admin page
)
# make bench: load generator, the nginx baselines, callgrind (bench/callgrind.sh)
if [[ "${1:-}" == "--bench" ]]; then PKGS+=(wrk nginx-light valgrind); fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then exit 0; fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# Debian enables and starts redis-server (and prometheus, which would take :9090, the admin
# port's default) on install; Redline's tests start their own Redis and need only promtool.
if command -v systemctl >/dev/null 2>&1; then
  for svc in redis-server prometheus; do
    if dpkg-query -W "$svc" >/dev/null 2>&1; then
      $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
    fi
  done
fi
