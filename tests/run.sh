#!/usr/bin/env bash
# run.sh - the whole test suite: installs what it needs, builds with
# AddressSanitizer and UBSan (warnings are errors), and runs every test.
# Usage: tests/run.sh [ctest arguments...]
set -eu
cd "$(dirname "$0")/.."

tests/deps.sh
build=${CAS_BUILD:-build-test}
cmake -S . -B "$build" -DCAS_WERROR=ON -DCAS_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$build" -j"$(nproc)"
# FUSE daemons keep global state that LeakSanitizer cannot always see
# freed at exit; leaks are still reported for every other program.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir "$build" --output-on-failure -j2 "$@"
