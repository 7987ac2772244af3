# Redline: `make run` serves, `make test` proves it. Both install what is missing first.
SHELL := /bin/bash
JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build-asan
CMAKE_GEN := $(shell command -v ninja >/dev/null 2>&1 && echo "-G Ninja")

.PHONY: all deps build build-pgo run test test-build test-tsan bench fuzz format tidy clean check-gcc

all: build

deps:
	@./scripts/install-deps.sh

# g++ Release build: build/redline and build/redline-mock.
build: deps
	cmake -S . -B $(BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=g++
	cmake --build $(BUILD) -j $(JOBS) --target redline redline-mock

# Profile-guided g++ Release build: build-pgo/redline (instrumented build, a training run
# against the mock and a local redis-server, rebuild with the profile). The build to deploy;
# `make bench` measures it. Takes about twice as long as `make build`.
build-pgo: deps
	@./scripts/pgo-build.sh

run: build
	@./scripts/run.sh

# clang-14 ASan+UBSan build running every test against real redis-server processes.
test-build: deps
	cmake -S . -B $(ASAN_BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=clang++-14 \
	  -DCMAKE_CXX_FLAGS="-O1 -g" -DREDLINE_SANITIZE=ON -DREDLINE_FUZZ=ON -DCMAKE_EXE_LINKER_FLAGS="-fuse-ld=lld"
	cmake --build $(ASAN_BUILD) -j $(JOBS)

test: test-build
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest -j $(JOBS) --output-on-failure --timeout 600

# clang-14 ThreadSanitizer build of the concurrency-heavy tests: shared provider calls and
# L1 invalidation across threads, the Redis client, the rate limiter, the metrics.
# .ci/run runs it after the ASan and g++ builds.
test-tsan: deps
	cmake -S . -B build-tsan $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=clang++-14 \
	  -DCMAKE_CXX_FLAGS="-O1 -g" -DREDLINE_TSAN=ON -DCMAKE_EXE_LINKER_FLAGS="-fuse-ld=lld"
	cmake --build build-tsan -j $(JOBS) --target redline_proxy_tests redline_redis_tests \
	  redline_ratelimit_tests redline_metrics_tests redline_cache_tests redline_auth_tests \
	  redline_budget_tests redline_session_tests redline redline-mock
	cd build-tsan && TSAN_OPTIONS="halt_on_error=1 suppressions=$(CURDIR)/tests/tsan.supp" \
	  ctest -j $(JOBS) --output-on-failure --timeout 600 -L 'proxy|redis|ratelimit|metrics|cache|auth|budget|session'

# Warning-free g++ build of everything, tests included; GCC_TARGETS="..." builds only those
# (.ci/run: every library, both binaries, the test suites it runs with g++ and the
# benchmarks, which keeps CI inside its time on 2 cores without ccache).
GCC_TARGETS ?=
check-gcc: deps
	cmake -S . -B build-gcc $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=g++ -DCMAKE_CXX_FLAGS="-Werror"
	cmake --build build-gcc -j $(JOBS) $(if $(strip $(GCC_TARGETS)),--target $(GCC_TARGETS))

bench:
	@./scripts/install-deps.sh --bench
	@./bench/run.sh

# Every libFuzzer target for FUZZ_SECONDS each, in its own coverage-instrumented build (build-fuzz).
fuzz: deps
	@./fuzz/run.sh $${FUZZ_SECONDS:-60}

format:
	clang-format-14 -i $$(git ls-files 'src/*.cpp' 'src/*.h' 'tests/*.cpp' 'tests/*.h' 'bench/*.cpp' 'fuzz/*.cpp')

tidy:
	clang-tidy-14 -p $(ASAN_BUILD) $$(git ls-files 'src/*.cpp')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-gcc build-tsan
