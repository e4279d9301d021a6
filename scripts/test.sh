#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine: installs what it
# needs, builds from scratch, runs ctest (unit tests and every integration
# suite), the driver's suite under valgrind, ctest again under
# AddressSanitizer + UndefinedBehaviorSanitizer, a short run of every fuzz
# target, and the 60 s soak.  Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh

jobs=$(nproc 2>/dev/null || echo 2)

echo "== build and test (RelWithDebInfo)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"

echo "== the driver's integration test under valgrind"
bash tests/driver_valgrind.sh build/exhookctl

echo "== build and test under ASan + UBSan"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DEXH_SANITIZE=ON -DEXH_BENCH=OFF >/dev/null
cmake --build build-asan -j"$jobs"
# EXH_TIME_SCALE: the suites' waits and the deadline tests' broker timeouts
# are 3x longer here (sanitized code is several times slower).
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  EXH_TIME_SCALE=3 ctest --test-dir build-asan --output-on-failure -j"$jobs"

echo "== fuzz smoke: every target for 10 s (its seeds first)"
bash tests/fuzz/run.sh 10

echo "== soak: the driver under mixed load for 60 s (RSS, fds, threads must stay flat)"
bash tests/soak.sh --seconds 60 build/exhookctl

echo "== all tests passed"
