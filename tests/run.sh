#!/usr/bin/env bash
# run.sh - the whole test suite: installs what it needs, builds with
# AddressSanitizer and UBSan (warnings are errors), and runs every test;
# then builds a second tree with clang and no ASan for the fuzz targets
# and the valgrind pass, and runs those.
# Usage: tests/run.sh [ctest arguments for the first tree...]
set -eu
cd "$(dirname "$0")/.."

tests/deps.sh
rc=0
# The formatter first: a difference fails the run, after every test ran.
tests/format.sh || rc=$?
build=${CAS_BUILD:-build-test}
cmake -S . -B "$build" -DCAS_WERROR=ON -DCAS_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$build" -j"$(nproc)"
# FUSE daemons keep global state that LeakSanitizer cannot always see
# freed at exit; leaks are still reported for every other program.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir "$build" --output-on-failure -j2 "$@" || rc=$?

# The second tree: libFuzzer needs clang; the fuzz targets bring their own
# sanitizers, and valgrind cannot run what ASan built. Only what the fuzz
# and valgrind labels use is built. -gdwarf-4: valgrind 3.19 cannot read
# the DWARF 5 that clang 14 writes by default.
fuzz_build=${CAS_FUZZ_BUILD:-$build-clang}
cmake -S . -B "$fuzz_build" -DCMAKE_C_COMPILER=clang -DCMAKE_C_FLAGS=-gdwarf-4 \
	-DCAS_WERROR=ON -DCAS_SANITIZE=OFF -DCAS_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$fuzz_build" -j"$(nproc)" --target fuzz casd casctl
ctest --test-dir "$fuzz_build" --output-on-failure -j2 -L 'fuzz|valgrind' || rc=$?
exit $rc
