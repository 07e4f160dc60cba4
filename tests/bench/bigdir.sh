#!/bin/bash
# bigdir.sh - one folder of N entries (default 10^6) through a casfs mount
# on a three-node cluster: how fast it fills (16 threads of mknod), a
# create there against one in an empty folder, a whole listing (`ls -f`,
# which readdir answers a page at a time) with its time and casfs's peak
# resident memory, a lookup, and what the nodes hold. Prints figures;
# not a ctest test. Takes about an hour for 10^6 on two cores.
#
# Usage: tests/bench/bigdir.sh [N]
# CAS_BIN names a Release build folder (default ./build-release) with
# casd, casctl, casfs and tests/fsload built.
set -u
N=${1:-1000000}
case $N in
'' | *[!0-9]*) echo "bigdir.sh: N must be a number of entries, not $N" >&2 && exit 2 ;;
esac
cd "$(dirname "$0")/../.." || exit 1
CAS_BIN=$(realpath -- "${CAS_BIN:-build-release}")
export CAS_BIN CAS_SRC=$PWD
fsload=$CAS_BIN/tests/fsload
[ -x "$fsload" ] || { echo "bigdir.sh: no $fsload (build the tests of $CAS_BIN)" >&2 && exit 1; }
. tests/lib.sh

cas_start_cluster 3
m=$CAS_TMP/m
cas_mount "$m"
pid=${CAS_EXTRA_PIDS[-1]}

# rss_kib: casfs's resident and peak resident memory, KiB.
rss_kib() { awk '/^VmRSS|^VmHWM/ {printf "%s %s ", $1, $2}' "/proc/$pid/status"; }

echo "bigdir.sh: casfs source $(git describe --always --dirty 2>/dev/null || echo '?'), $N entries, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
mkdir "$m/empty"
echo "fsload prints: workload ops p50_us p99_us ops_per_s"
echo "in a folder of 10 entries:"
"$fsload" --entries 10 --seconds 3 "$m/empty" create || fail "create in a folder of 10"
echo "in a folder of $N entries:"
t0=$(date +%s)
"$fsload" --entries "$N" --seconds 3 "$m" create || fail "fill to $N or create there"
t1=$(date +%s)
echo "filled and measured in $((t1 - t0)) s (about $((N / (t1 - t0 > 0 ? t1 - t0 : 1))) entries/s)"
echo "casfs before the listing: $(rss_kib)"
t0=$(date +%s%N)
n=$(ls -f "$m/dir" | wc -l)
t1=$(date +%s%N)
# ls -f lists . and .. too.
[ "$n" = $((N + 2)) ] || fail "ls -f listed $n names, want $((N + 2))"
echo "ls -f of $N entries: $(((t1 - t0) / 1000000)) ms; casfs after: $(rss_kib)"
name=$(ls -f "$m/dir" | grep -v '^\.' | tail -n 1)
t0=$(date +%s%N)
stat "$m/dir/$name" >/dev/null || fail "stat of a listed name"
t1=$(date +%s%N)
echo "a stat there (lookup and getattr): $(((t1 - t0) / 1000)) us"
for i in 0 1 2; do
	echo "node $i: $(cas_curl -s "${CAS_HDRS[@]}" "$(cas_url "$i")/v1/health")"
done
