#!/bin/bash
# bench.sh - starts a local three-node cluster and runs casbench against it.
# Not a ctest test. Usage: tests/bench.sh [casbench options], with CAS_BIN
# naming the build folder (default ./build). Node data lives under $TMPDIR
# (default /tmp): its fsync speed shapes the figures.
CAS_BIN=${CAS_BIN:-./build}
. "$(dirname "$0")/lib.sh"
# casbench is built with the tests (tests/bench/casbench.c): in $CAS_BIN/tests.
CASBENCH=$CAS_BIN/tests/casbench
[ -x "$CASBENCH" ] || fail "no casbench in $CAS_BIN/tests (set CAS_BIN to the build folder)"
cas_start_cluster 3
"$CASBENCH" --nodes "$(cas_nodes)" "$@"
