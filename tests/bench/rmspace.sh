#!/usr/bin/env bash
# rmspace.sh - does rm give the space back? Creates N small files through a
# mount (folders of 1,000, P processes at once), removes them all, runs
# `casctl gc`, and prints every node's keys and bytes (GET /v1/health)
# after each step; then the same cycle again, which must not grow the
# data files (LMDB reuses the pages the first cycle freed). Not a ctest
# test. Usage: CAS_BIN=build-release tests/bench/rmspace.sh [N [P [CYCLES]]]
# (defaults: 100000 files, 16 processes, 2 cycles).
CAS_BIN=${CAS_BIN:-./build-release}
CAS_SRC=${CAS_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$CAS_SRC/tests/lib.sh"
n=${1:-100000}
p=${2:-16}
cycles=${3:-2}
dirs=$(((n + 999) / 1000))
cas_start_cluster 3
m=$CAS_TMP/m
cas_mount "$m"
CTL=("$CAS_BIN/casctl" --nodes "$(cas_nodes)")

# use STEP: a table row with each node's keys, bytes and data file size.
use() {
	local i h keys bytes row="| $1"
	for i in 0 1 2; do
		h=$(cas_curl -sf "$(cas_url "$i")/v1/health") || fail "health of node $i"
		keys=$(sed -n 's/.*"keys":"\([0-9]*\)".*/\1/p' <<<"$h")
		bytes=$(sed -n 's/.*"bytes":"\([0-9]*\)".*/\1/p' <<<"$h")
		row+=" | $keys / $bytes / $(stat -c %s "$CAS_TMP/n$i/data.mdb")"
	done
	echo "$row | $2 |"
}

echo "| step | node 0: keys / bytes / data.mdb | node 1 | node 2 | seconds |"
echo "|---|--:|--:|--:|--:|"
use "empty" 0
for ((cycle = 1; cycle <= cycles; cycle++)); do
	t0=$(date +%s)
	seq 0 $((dirs - 1)) | xargs -P "$p" -I{} sh -c '
		mkdir "$1/d{}" && i=0 && while [ $i -lt 1000 ]; do
			echo x >"$1/d{}/f$i" || exit 1; i=$((i + 1)); done' _ "$m" ||
		fail "creating the files"
	use "cycle $cycle: $((dirs * 1000)) files created" $(($(date +%s) - t0))
	t0=$(date +%s)
	seq 0 $((dirs - 1)) | xargs -P "$p" -I{} rm -rf "$m/d{}" || fail "removing the files"
	use "cycle $cycle: removed" $(($(date +%s) - t0))
	t0=$(date +%s)
	"${CTL[@]}" gc >"$CAS_TMP/gc.out" 2>&1 || fail "casctl gc: $(tail -n 5 "$CAS_TMP/gc.out")"
	use "cycle $cycle: after casctl gc" $(($(date +%s) - t0))
done
