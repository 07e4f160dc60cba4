#!/bin/bash
# mountprof.sh - where an operation through a casfs mount goes: for each of
# compare's file workloads (open-trunc-write-close and open-read-close, 1
# and 32 threads on distinct files), the FUSE requests per operation (a
# second mount with -d, counted by opcode), the requests node 0 answered
# per operation (its /metrics: queries, accepts, prepares, batches), the
# threads of the casfs process and their states, and the CPU time per
# operation of casfs, of the three casd nodes and of memfs (the floor,
# tests/bench/memfs.c) doing the same. Not a ctest test.
#
# Usage: tests/bench/mountprof.sh [--perf] [--count N] [MOUNT OPTIONS]
#   --perf     also record the casfs process with perf (cpu-clock) during
#              each workload, and print where its CPU time went: its own
#              code, libcurl, libc, and the kernel by the system call that
#              entered it (needs perf: Debian's linux-perf)
#   --count N  operations per thread (default 400 with 1 thread, 40 with 32)
#   MOUNT OPTIONS: -o options for the measured mount, e.g. max_threads=10
# CAS_BIN names a Release build folder (default ./build-release) with
# casd, casctl, casfs, tests/fsload and tests/memfs built.
set -u
[ -z "${CAS_BIN:-}" ] || CAS_BIN=$(realpath -- "$CAS_BIN")
cd "$(dirname "$0")/../.." || exit 1
PERF=0
COUNT=
while [ $# -gt 0 ]; do
	case $1 in
	--perf) PERF=1 ;;
	--count)
		COUNT=$2
		shift
		;;
	*) break ;;
	esac
	shift
done
OPTS=${1:-}
export CAS_BIN=${CAS_BIN:-$PWD/build-release}
for f in casd casctl casfs tests/fsload tests/memfs; do
	[ -x "$CAS_BIN/$f" ] || {
		echo "mountprof.sh: no $CAS_BIN/$f; build it (cmake --build ... --target casd casctl casfs fsload memfs)" >&2
		exit 1
	}
done
[ "$PERF" = 0 ] || command -v perf >/dev/null || {
	echo "mountprof.sh: --perf needs perf (apt-get install linux-perf)" >&2
	exit 1
}

. tests/lib.sh
cas_start_cluster 3
M=$CAS_TMP/mnt
cas_mount "$M" "$OPTS"
MP=${CAS_EXTRA_PIDS[-1]}
# The counting mount: every request logged.
D=$CAS_TMP/debug
mkdir -p "$D"
"$CAS_BIN/casfs" -d -o "nodes=$(cas_nodes)${OPTS:+,$OPTS}" "$D" >"$CAS_TMP/debug.log" 2>&1 &
CAS_EXTRA_PIDS+=($!)
CAS_MOUNTS+=("$D")
cas_wait_until 100 mountpoint -q "$D" || fail "casfs -d did not mount"
F=$CAS_TMP/floor
mkdir -p "$F"
"$CAS_BIN/tests/memfs" -f "$F" >"$CAS_TMP/memfs.log" 2>&1 &
FP=$!
CAS_EXTRA_PIDS+=("$FP")
CAS_MOUNTS+=("$F")
cas_wait_until 100 mountpoint -q "$F" || fail "memfs did not mount"

TCK=$(getconf CLK_TCK)
# cpu PID...: their user and system time so far, in clock ticks.
cpu() {
	local p s=0
	for p in "$@"; do s=$((s + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
	echo "$s"
}
# node_requests: node 0's answered requests: "query accept prepare batch".
node_requests() {
	curl -s "$(cas_url 0)/metrics" | awk '
		/^casd_requests_total\{kind="(query|accept|prepare|batch)",result="ok"\}/ {
			split($1, a, "\""); n[a[2]] = $2 }
		END { print n["query"] + 0, n["accept"] + 0, n["prepare"] + 0, n["batch"] + 0 }'
}
# states PID: "N threads: S states" of a process, e.g. "38 threads: 30 S 8 R".
states() {
	local t out tasks=(/proc/"$1"/task/*)
	out=$(for t in "${tasks[@]}"; do awk '{print $3}' "$t/stat" 2>/dev/null; done |
		sort | uniq -c | awk '{printf " %s %s", $1, $2}')
	echo "${#tasks[@]} threads:$out"
}

echo "mountprof.sh: casfs mount options: ${OPTS:-(defaults)}; load average" \
	"$(cut -d' ' -f1-3 /proc/loadavg) before the run, $(nproc) cores"
for wl in write1 read1 write32 read32; do
	case $wl in
	*32) n=${COUNT:-40} ;;
	*) n=${COUNT:-400} ;;
	esac
	echo "== $wl: $n operations per thread"
	# FUSE requests per operation, on the counting mount (fsload first
	# makes each thread's file: a LOOKUP and a CREATE, WRITE, FLUSH and
	# RELEASE more per thread).
	l0=$(wc -l <"$CAS_TMP/debug.log")
	"$CAS_BIN/tests/fsload" --count "$n" "$D" "$wl" >"$CAS_TMP/out" || fail "fsload $wl on $D"
	read -r _ ops _ <"$CAS_TMP/out"
	echo "  FUSE requests per operation:$(tail -n +$((l0 + 1)) "$CAS_TMP/debug.log" |
		grep -o 'opcode: [A-Z_]*' | sort | uniq -c |
		awk -v ops="$ops" '{printf " %s %.2f", $3, $1 / ops}')"
	for target in casfs memfs; do
		if [ $target = casfs ]; then
			dir=$M
			pids=("$MP")
		else
			dir=$F
			pids=("$FP")
		fi
		c0=$(cpu "${pids[@]}")
		n0=$(cpu "${CAS_PIDS[@]}")
		read -r q0 a0 p0 b0 < <(node_requests)
		if [ $target = casfs ] && [ "$PERF" = 1 ]; then
			perf record -q -e cpu-clock -F 999 -g -p "$MP" -o "$CAS_TMP/perf.data" \
				>/dev/null 2>&1 &
			perf_pid=$!
			sleep 1 # attached before the first operation
		fi
		"$CAS_BIN/tests/fsload" --count "$n" "$dir" "$wl" >"$CAS_TMP/out" &
		load=$!
		sleep 0.5
		[ $target = casfs ] && st=$(states "$MP")
		wait "$load" || fail "fsload $wl on $dir"
		if [ $target = casfs ] && [ "$PERF" = 1 ]; then
			kill -INT "$perf_pid"
			wait "$perf_pid"
		fi
		c1=$(cpu "${pids[@]}")
		n1=$(cpu "${CAS_PIDS[@]}")
		read -r q1 a1 p1 b1 < <(node_requests)
		read -r _ ops p50 p99 rate <"$CAS_TMP/out"
		awk -v t=$target -v ops="$ops" -v p50="$p50" -v p99="$p99" -v rate="$rate" \
			-v us=$((1000000 / TCK)) -v fc=$((c1 - c0)) -v nc=$((n1 - n0)) \
			-v q=$((q1 - q0)) -v a=$((a1 - a0)) -v p=$((p1 - p0)) -v b=$((b1 - b0)) 'BEGIN {
			printf "  %s: p50 %d us, p99 %d us, %d ops/s; CPU per operation: %s %.0f us", \
				t, p50, p99, rate, t, fc * us / ops
			if (t == "casfs")
				printf ", casd (3 nodes) %.0f us; node 0 answered per operation:" \
					" %.2f queries, %.2f accepts, %.2f prepares, %.2f batches", \
					nc * us / ops, q / ops, a / ops, p / ops, b / ops
			printf "\n" }'
		[ $target = casfs ] && echo "  casfs during the run: $st"
		if [ $target = casfs ] && [ "$PERF" = 1 ]; then
			echo "  casfs CPU by where it went (perf samples):"
			perf script -i "$CAS_TMP/perf.data" 2>/dev/null | awk '
				function flush() {
					if (n == 0) return
					total++
					if (first_dso ~ /kernel/) key = "kernel, entered by " (user ? user : "?")
					else key = first_dso
					count[key]++
					n = 0; user = ""
				}
				/^[^ \t]/ { flush(); next }
				/^$/ { flush(); next }
				{
					dso = $NF; gsub(/[()]/, "", dso); sub(/.*\//, "", dso)
					sym = $2; sub(/\+0x[0-9a-f]+$/, "", sym)
					if (n == 0) first_dso = dso
					if (user == "" && dso !~ /kernel/) user = sym
					n++
				}
				END {
					flush()
					for (k in count) printf "    %5.1f%% %s\n", 100 * count[k] / total, k
				}' | sort -rn | head -n 12
		fi
	done
done
