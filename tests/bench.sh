#!/bin/bash
# bench.sh - starts a local three-node cluster and runs casbench against it.
# Not a ctest test. Usage: tests/bench.sh [casbench options], with CAS_BIN
# naming the build folder (default ./build). Node data lives under $TMPDIR
# (default /tmp): its fsync speed shapes the figures.
CAS_BIN=${CAS_BIN:-./build}
. "$(dirname "$0")/lib.sh"
[ -x "$CAS_BIN/casbench" ] || fail "no casbench in $CAS_BIN (set CAS_BIN to the build folder)"
cas_start_cluster 3
"$CAS_BIN/casbench" --nodes "$(cas_nodes)" "$@"
