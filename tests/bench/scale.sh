#!/bin/bash
# scale.sh - how casd holds up as registers grow: fill time, read and cas
# latency on random existing keys, start-up time, resident memory and disk
# per register at each size. A measurement, not a ctest test.
#
# Usage: CAS_BIN=BUILD tests/bench/scale.sh [--nodes 1|3] [--sizes "N ..."]
#        [--threads N] [--samples N]
# BUILD is a build folder with casd and tests/bench_fill (configure with
# -DCMAKE_BUILD_TYPE=Release, then make casd bench_fill). Node data lives
# under $TMPDIR (default /tmp): 10^6 registers take about 300 MB.
CAS_BIN=${CAS_BIN:-./build}
. "$(dirname "$0")/../lib.sh"

NODES=1
SIZES="10000 100000 1000000"
THREADS=64
SAMPLES=2000
while [ $# -gt 0 ]; do
	case $1 in
	--nodes) NODES=$2 ;;
	--sizes) SIZES=$2 ;;
	--threads) THREADS=$2 ;;
	--samples) SAMPLES=$2 ;;
	*) fail "unknown option $1 (see the head of $0)" ;;
	esac
	shift 2 || fail "$1 needs a value"
done
FILL=$CAS_BIN/tests/bench_fill
[ -x "$FILL" ] || fail "no tests/bench_fill in $CAS_BIN (make bench_fill)"
[ -x "$CAS_BIN/casd" ] || fail "no casd in $CAS_BIN"

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# mem PID: "VmRSS RssAnon RssFile" in MiB.
mem() {
	awk '/^(VmRSS|RssAnon|RssFile):/ { v[$1] = $2 / 1024 }
	     END { printf "%.1f %.1f %.1f", v["VmRSS:"], v["RssAnon:"], v["RssFile:"] }' \
		"/proc/$1/status"
}

# restart_node I: stops node I (SIGTERM) and starts it again on its port;
# sets START_MS to the milliseconds from exec to /v1/health answering.
restart_node() {
	local i=$1 t0
	cas_stop_node "$i" TERM
	t0=$(now_ms)
	"$CAS_BIN/casd" --listen "127.0.0.1:${CAS_PORTS[$i]}" --data "$CAS_TMP/n$i" \
		>>"$CAS_TMP/n$i.log" 2>&1 &
	CAS_PIDS[$i]=$!
	until curl -sf -o /dev/null "$(cas_url "$i")/v1/health"; do
		[ $(($(now_ms) - t0)) -lt 60000 ] || fail "node $i did not restart"
		kill -0 "${CAS_PIDS[$i]}" 2>/dev/null ||
			fail "node $i died: $(tail -n 3 "$CAS_TMP/n$i.log")"
		sleep 0.002
	done
	START_MS=$(($(now_ms) - t0))
}

# field LINE NAME: the word after NAME in LINE.
field() { sed -n "s/.* $2 \([^ ]*\).*/\1/p" <<<"$1"; }

cas_start_cluster "$NODES"
echo "scale: $NODES node(s), $THREADS fill threads, $SAMPLES samples per op," \
	"100-byte values, data under ${TMPDIR:-/tmp}"
rows=()
from=0
for n in $SIZES; do
	line=$("$FILL" --nodes "$(cas_nodes)" --from "$from" --to "$n" \
		--threads "$THREADS" --samples 0) || fail "fill to $n: $line"
	echo "$line"
	fill_s=$(field "$line" seconds)
	puts=$(field "$line" puts_per_s)
	from=$n
	rss_fill=$(mem "${CAS_PIDS[0]}")
	echo "casd after fill: VmRSS RssAnon RssFile (MiB) $rss_fill"

	start=0
	for ((i = 0; i < NODES; i++)); do
		restart_node "$i"
		echo "node $i start-up: $START_MS ms"
		[ "$START_MS" -gt "$start" ] && start=$START_MS
	done
	rss_start=$(mem "${CAS_PIDS[0]}")
	echo "casd after restart: VmRSS RssAnon RssFile (MiB) $rss_start"

	out=$("$FILL" --nodes "$(cas_nodes)" --from "$n" --to "$n" --samples "$SAMPLES" \
		--seed "$n") || fail "samples at $n: $out"
	echo "$out"
	rd=$(grep '^read' <<<"$out")
	cs=$(grep '^cas' <<<"$out")
	rss_sample=$(mem "${CAS_PIDS[0]}")
	echo "casd after samples: VmRSS RssAnon RssFile (MiB) $rss_sample"
	kib=$(du -sk "$CAS_TMP/n0" | cut -f1)
	rows+=("$(printf '%8s %7s %7s %6s %6s %6s %6s %6s %7s %8s %8s %7s' "$n" "$fill_s" "$puts" \
		"$start" "$(field "$rd" p50_us)" "$(field "$rd" p99_us)" "$(field "$cs" p50_us)" \
		"$(field "$cs" p99_us)" "${rss_fill%% *}" "${rss_start%% *}" "${rss_sample%% *}" \
		"$((kib * 1024 / n))")")
done

echo
echo "registers  fill_s  puts/s  start  read_us      cas_us       VmRSS MiB (node 0)        disk"
echo "                           ms      p50    p99    p50    p99 after:fill  restart  samples  B/reg"
printf '%s\n' "${rows[@]}"
grep -h 'store:' "$CAS_TMP"/n*.log | tail -n "$NODES"
