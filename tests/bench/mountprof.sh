#!/bin/bash
# mountprof.sh - where an operation through a casfs mount goes: for each of
# compare's file workloads (open-trunc-write-close and open-read-close, 1
# and 32 threads on distinct files), the FUSE requests per operation (a
# second mount with -d, counted by opcode), the mount's rounds per
# operation and the mean time of its handler of each FUSE request (its
# -o metrics=), the requests node 0 answered per operation (its
# /metrics: queries, accepts, prepares, batches; a node that a round did
# not wait for may never answer), the threads of the casfs process and
# their states, and the CPU time per operation of casfs, of the three
# casd nodes and of memfs (the floor, tests/bench/memfs.c) doing the
# same. Not a ctest test.
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
# A TCP port on loopback that nothing listens on.
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 12000))
		[ -n "$(ss -Hltn "sport = :$p" 2>/dev/null)" ] || break
	done
	echo "$p"
}
METRICS=127.0.0.1:$(free_port)
cas_mount "$M" "metrics=$METRICS${OPTS:+,$OPTS}"
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

# cpu PID...: the CPU time their threads have run so far, in µs (from each
# thread's schedstat, finer than the clock ticks of /proc/PID/stat;
# threads that have exited are not counted, and these processes keep
# theirs).
cpu() {
	local p
	for p in "$@"; do cat /proc/"$p"/task/*/schedstat 2>/dev/null; done |
		awk '{ s += $1 } END { printf "%.0f\n", s / 1000 }'
}
# node_requests: node 0's answered requests: "query accept prepare batch".
node_requests() {
	curl -s "$(cas_url 0)/metrics" | awk '
		/^casd_requests_total\{kind="(query|accept|prepare|batch)",result="ok"\}/ {
			split($1, a, "\""); n[a[2]] = $2 }
		END { print n["query"] + 0, n["accept"] + 0, n["prepare"] + 0, n["batch"] + 0 }'
}
# mount_metrics: the measured mount's rounds and handler times, one
# "name value" a line (rounds_read, rounds_change, ..., sum_lookup,
# count_lookup, ...).
mount_metrics() {
	curl -s "http://$METRICS/metrics" | awk '
		/^casfs_rounds_total/ { split($1, a, "\""); n["rounds_" a[2]] += $2 }
		/^casfs_fuse_request_seconds_(sum|count)/ {
			split($1, a, "\""); k = ($1 ~ /_sum/) ? "sum_" : "count_"; n[k a[2]] = $2 }
		END { for (k in n) print k, n[k] }'
}
# metrics_delta BEFORE AFTER OPS: rounds per operation by kind, and the
# mean time of each FUSE handler with its count per operation.
metrics_delta() {
	awk -v ops="$3" '
		FNR == NR { b[$1] = $2; next }
		{ d[$1] = $2 - b[$1] }
		END {
			printf "  rounds per operation:"
			for (k in d) if (k ~ /^rounds_/ && d[k] > 0) {
				name = k; sub(/^rounds_/, "", name); printf " %s %.2f", name, d[k] / ops }
			printf "\n  casfs handlers, per operation and mean time:"
			for (k in d) if (k ~ /^count_/ && d[k] > 0) {
				name = k; sub(/^count_/, "", name)
				printf " %s %.2f x %.0f us", name, d[k] / ops, d["sum_" name] * 1e6 / d[k] }
			printf "\n" }' "$1" "$2"
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
		[ $target = memfs ] || mount_metrics >"$CAS_TMP/before"
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
		[ $target = memfs ] || mount_metrics >"$CAS_TMP/after"
		read -r _ ops p50 p99 rate <"$CAS_TMP/out"
		awk -v t=$target -v ops="$ops" -v p50="$p50" -v p99="$p99" -v rate="$rate" \
			-v us=1 -v fc=$((c1 - c0)) -v nc=$((n1 - n0)) \
			-v q=$((q1 - q0)) -v a=$((a1 - a0)) -v p=$((p1 - p0)) -v b=$((b1 - b0)) 'BEGIN {
			printf "  %s: p50 %d us, p99 %d us, %d ops/s; CPU per operation: %s %.0f us", \
				t, p50, p99, rate, t, fc * us / ops
			if (t == "casfs")
				printf ", casd (3 nodes) %.0f us; node 0 answered per operation:" \
					" %.2f queries, %.2f accepts, %.2f prepares, %.2f batches", \
					nc * us / ops, q / ops, a / ops, p / ops, b / ops
			printf "\n" }'
		if [ $target = casfs ]; then
			metrics_delta "$CAS_TMP/before" "$CAS_TMP/after" "$ops"
			echo "  casfs during the run: $st"
		fi
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
