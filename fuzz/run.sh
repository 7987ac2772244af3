#!/usr/bin/env bash
# make fuzz: runs every libFuzzer target for N seconds each on a copy of its corpus,
# in a coverage-instrumented clang build (build-fuzz). New crashes land in fuzz/crashes/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=clang++-14 \
  -DCMAKE_CXX_FLAGS="-O1 -g" -DREDLINE_SANITIZE=ON -DREDLINE_FUZZ=ON -DREDLINE_FUZZ_COVERAGE=ON \
  -DREDLINE_TESTS=OFF -DCMAKE_EXE_LINKER_FLAGS="-fuse-ld=lld" >/dev/null
cmake --build build-fuzz -j "$(nproc)"
mkdir -p fuzz/crashes
for bin in build-fuzz/fuzz/fuzz_*; do
  name=${bin##*/fuzz_}
  work=$(mktemp -d)
  [ -d "fuzz/corpus/$name" ] && cp -r "fuzz/corpus/$name/." "$work/"
  echo "== fuzz_$name for ${secs}s"
  "$bin" -max_total_time="$secs" -artifact_prefix="fuzz/crashes/${name}-" -print_final_stats=1 "$work" 2>&1 |
    grep -E "^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss|.*cov:)" | tail -3 || true
  rm -rf "$work"
done
