#!/usr/bin/env bash
# fs_faults.sh - one node down: every write succeeds; two down: errors within the deadline, then recovery.
. "$CAS_SRC/tests/lib.sh"

cas_start_cluster 3
m1=$CAS_TMP/m1 m2=$CAS_TMP/m2 m3=$CAS_TMP/m3
cas_mount "$m1"
cas_mount "$m2"
cas_mount "$m3" timeout=2

# A writer on each mount; node 0 dies while they run.
writer() { # MOUNT NAME N
	local i
	for ((i = 1; i <= $3; i++)); do
		echo "$2 $i" >>"$1/log" || { echo "$2: append $i failed" >&2; return 1; }
		echo "$i" >"$1/$2.last" || { echo "$2: write $i failed" >&2; return 1; }
	done
}
n=40
writer "$m1" a $n 2>>"$CAS_TMP/writer.err" &
pa=$!
writer "$m2" b $n 2>>"$CAS_TMP/writer.err" &
pb=$!
cas_wait_until 300 sh -c "[ \$(cat '$m1/a.last' 2>/dev/null || echo 0) -ge 10 ]" ||
	fail "writers made no progress"
cas_stop_node 0 KILL
wait $pa || fail "a write failed with one node down: $(cat "$CAS_TMP/writer.err")"
wait $pb || fail "a write failed with one node down: $(cat "$CAS_TMP/writer.err")"
[ "$(wc -l <"$m1/log")" = $((2 * n)) ] || fail "log has $(wc -l <"$m1/log") lines, want $((2 * n))"
[ "$(cat "$m2/a.last")" = $n ] && [ "$(cat "$m1/b.last")" = $n ] || fail "last writes lost"

# Two nodes down: no majority. On the mount with -o timeout=2 each
# operation fails within 2 s (plus slack for the process) with ETIMEDOUT,
# and never hangs; the default mount gives up within its 5 s.
cas_stop_node 1 KILL
run_timed() { # LIMIT_MS CMD...: runs CMD into $out and $rc; fails the test past LIMIT_MS
	local limit=$1 t0 t1
	shift
	t0=$(date +%s%N)
	out=$("$@" 2>&1)
	rc=$?
	t1=$(date +%s%N)
	[ $(((t1 - t0) / 1000000)) -le "$limit" ] || fail "'$*' took $(((t1 - t0) / 1000000)) ms"
}
# expect_timeout LIMIT_MS WHAT CMD...: CMD must fail with ETIMEDOUT in time.
expect_timeout() {
	local limit=$1 what=$2
	shift 2
	run_timed "$limit" "$@"
	[ "$rc" != 0 ] || fail "$what without a majority succeeded"
	echo "$out" | grep -q "timed out" || fail "$what without a majority said: $out"
}
expect_timeout 3500 "read" cat "$m3/log"
expect_timeout 3500 "write" sh -c "echo x >'$m3/b.last'"
expect_timeout 3500 "cas" setfattr -n user.casfs.cas.1 -v x "$m3/log"
expect_timeout 3500 "stat" stat "$m3/log"
expect_timeout 3500 "mkdir" mkdir "$m3/newdir"
# m1 knows "log" from before: the kernel revalidates that name, and tries
# a fresh lookup when that fails; both together stay within the deadline.
expect_timeout 6500 "read on m1" cat "$m1/log"
expect_timeout 6500 "append on m2" sh -c "echo x >>'$m2/log'"

# A frozen node (not dead, just silent) and a dead one: the same.
cas_start_node 1
kill -STOP "${CAS_PIDS[1]}"
expect_timeout 3500 "read with a frozen node" cat "$m3/log"
kill -CONT "${CAS_PIDS[1]}"

# Back to a majority: everything works again, nothing was lost.
cas_start_node 0
cas_wait_until 100 sh -c "echo back >'$m3/b.last'" || fail "writes do not work again"
[ "$(cat "$m2/b.last")" = back ] || fail "read after recovery: $(cat "$m2/b.last")"
echo again >>"$m1/log" || fail "append after recovery"
[ "$(wc -l <"$m2/log")" = $((2 * n + 1)) ] || fail "log changed while the cluster was down"
echo ok
