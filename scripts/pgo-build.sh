#!/usr/bin/env bash
# Profile-guided g++ Release build of the gateway into build-pgo/redline (make build-pgo):
#   1. build-pgo configured with -fprofile-generate: an instrumented gateway;
#   2. scripts/pgo-train.sh runs it through the hit, miss, store, rate-limit and streaming
#      paths (counters land next to the objects as .gcda files; old ones are removed first);
#   3. build-pgo reconfigured with -fprofile-use -fprofile-partial-training (code the training
#      did not run is optimized as in the plain build) and rebuilt.
# The profile lets g++ lay out the request path's hot code together and inline by measured
# counts: on a core that was idle between requests (a stream's first event, one-connection
# latency) fewer instruction-cache misses. Behaviour is the same code as build/redline.
# Needs the plain build's mock and ttfe (built here) and wrk (apt, like make bench).
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
DIR=${PGO_BUILD:-build-pgo}
gen=$(command -v ninja >/dev/null 2>&1 && echo "-G Ninja" || true)
# Up to date when the sources, the build files and the training are what the last
# profile-guided build was made from (HEAD's trees plus any uncommitted change to them).
# Outside a git checkout there is nothing to compare: always rebuild.
stamp=""
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  stamp=$( { git rev-parse HEAD:src HEAD:CMakeLists.txt HEAD:cmake HEAD:scripts/pgo-train.sh HEAD:bench/ttfe.cpp
    git diff HEAD -- src CMakeLists.txt cmake scripts/pgo-train.sh bench/ttfe.cpp; } 2>/dev/null | sha256sum | cut -c1-16 || true)
fi
if [[ -n $stamp && -x $DIR/redline && $(cat "$DIR/.pgo-stamp" 2>/dev/null) == "$stamp" ]]; then
  echo "pgo: $DIR/redline is up to date"; exit 0
fi
rm -f "$DIR/.pgo-stamp"
command -v wrk >/dev/null || ./scripts/install-deps.sh --bench
cmake -S . -B build $gen -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=g++ >/dev/null
cmake --build build -j "$JOBS" --target redline-mock ttfe >/dev/null
common=(-S . -B "$DIR" $gen -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=g++ -DREDLINE_TESTS=OFF
  -DREDLINE_BENCH=OFF)
echo "pgo: 1/3 instrumented build ($DIR)"
find "$DIR" -name '*.gcda' -delete 2>/dev/null || true
cmake "${common[@]}" -DCMAKE_CXX_FLAGS="-fprofile-generate -fprofile-update=atomic" \
  -DCMAKE_EXE_LINKER_FLAGS="-fprofile-generate" >/dev/null
cmake --build "$DIR" -j "$JOBS" --target redline >/dev/null
echo "pgo: 2/3 training"
BIN="$DIR/redline" ./scripts/pgo-train.sh
n=$(find "$DIR" -name '*.gcda' | wc -l)
((n > 0)) || { echo "pgo: the training wrote no profile"; exit 1; }
echo "pgo: 3/3 optimized build from $n profiles"
cmake "${common[@]}" -DCMAKE_CXX_FLAGS="-fprofile-use -fprofile-partial-training -Wno-missing-profile" \
  -DCMAKE_EXE_LINKER_FLAGS="" >/dev/null
cmake --build "$DIR" -j "$JOBS" --target redline >/dev/null
echo "$stamp" >"$DIR/.pgo-stamp"
echo "pgo: $DIR/redline"
