#!/usr/bin/env bash
# flock.sh - latency of cluster-wide locks through a mount: uncontended
# flock(LOCK_EX) + flock(LOCK_UN) on one open file, fcntl lockf the same,
# and `flock -n FILE true` (a process per lock, as scripts do). Not a
# ctest test. Usage: CAS_BIN=build tests/bench/flock.sh [ROUNDS]
CAS_BIN=${CAS_BIN:-./build}
CAS_SRC=${CAS_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$CAS_SRC/tests/lib.sh"
n=${1:-2000}
cas_start_cluster 3
cas_mount "$CAS_TMP/m"
python3 - "$CAS_TMP/m/L" "$n" <<'PY'
import fcntl, os, sys, time
path, n = sys.argv[1], int(sys.argv[2])
fd = os.open(path, os.O_RDWR | os.O_CREAT)
def run(name, lock, unlock):
    for _ in range(50):
        lock(); unlock()
    t = []
    for _ in range(n):
        a = time.perf_counter_ns(); lock(); unlock(); t.append(time.perf_counter_ns() - a)
    t.sort()
    print(f"| {name} | {t[len(t)//2]//1000} | {t[len(t)*99//100]//1000} | {int(1e9*len(t)/sum(t))} |")
print("| operation | p50 µs | p99 µs | ops/s |\n|---|--:|--:|--:|")
run("flock acquire + release (uncontended)", lambda: fcntl.flock(fd, fcntl.LOCK_EX), lambda: fcntl.flock(fd, fcntl.LOCK_UN))
run("lockf acquire + release (uncontended)", lambda: fcntl.lockf(fd, fcntl.LOCK_EX), lambda: fcntl.lockf(fd, fcntl.LOCK_UN))
PY
t0=$(date +%s%N)
for ((i = 0; i < 200; i++)); do flock -n "$CAS_TMP/m/L" true || fail "flock -n failed"; done
echo "| \`flock -n FILE true\` loop (mean, a process each) | $((($(date +%s%N) - t0) / 200000)) | – | – |"
