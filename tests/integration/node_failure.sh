# node_failure.sh - SIGKILLed nodes: with one down everything works; with
# two down reads and writes fail with exit 4 within the deadline; restarted,
# the cluster works again and every acknowledged value is there.
. "$CAS_SRC/tests/lib.sh"
cas_start_cluster 3

# acked KEY VALUE: writes VALUE and remembers it as acknowledged.
declare -A ACKED
acked() {
	echo "$2" | casctl put "$1" >/dev/null || fail "put $1 failed"
	ACKED[$1]=$2
}

# elapsed_ms CMD...: runs CMD, sets RC and MS (its run time).
elapsed_ms() {
	local t0 t1
	RC=0
	t0=$(date +%s%N)
	"$@" >"$CAS_TMP/out" 2>"$CAS_TMP/err" || RC=$?
	t1=$(date +%s%N)
	MS=$(((t1 - t0) / 1000000))
}

check_acked() {
	local k
	for k in "${!ACKED[@]}"; do
		[ "$(casctl get "$k")" = "${ACKED[$k]}" ] ||
			fail "$1: $k is '$(casctl get "$k")', want '${ACKED[$k]}'"
	done
}

for i in 1 2 3 4 5; do acked "k$i" "all up $i"; done

# A frozen node (SIGSTOP: connections are taken, nothing answers) must not
# slow anything down: a majority answers and the client does not wait.
kill -STOP "${CAS_PIDS[2]}"
for i in 1 2 3; do
	elapsed_ms casctl --timeout 10 put frozen "$CAS_TMP/out"
	[ "$RC" -eq 0 ] || fail "put with a frozen node exited $RC: $(cat "$CAS_TMP/err")"
	[ "$MS" -lt 3000 ] || fail "put with a frozen node took $MS ms: it waited for it"
	elapsed_ms casctl --timeout 10 get k1
	[ "$RC" -eq 0 ] && [ "$MS" -lt 3000 ] || fail "get with a frozen node: exit $RC, $MS ms"
done
kill -CONT "${CAS_PIDS[2]}"

# One node down: get, put, cas and version all work.
cas_stop_node 2
check_acked "one down"
acked k1 "one down"
v=$(casctl version k1) || fail "version with one node down"
echo "cas one down" | casctl cas k1 "$v" >/dev/null || fail "cas with one node down"
ACKED[k1]="cas one down"
echo stale | casctl cas k1 "$v" >/dev/null 2>&1
[ $? -eq 3 ] || fail "stale cas with one node down did not exit 3"
check_acked "one down, after writes"
casctl status >"$CAS_TMP/status" || fail "status with one node down exited $?"
grep -q "$(cas_url 2) unreachable" "$CAS_TMP/status" || fail "status: $(cat "$CAS_TMP/status")"

# Two nodes down: no majority. Every command exits 4 within its deadline.
cas_stop_node 1
for cmd in "get k1" "version k1" "put k1 $CAS_TMP/status" "cas k1 1 $CAS_TMP/status"; do
	# shellcheck disable=SC2086
	elapsed_ms casctl --timeout 2 $cmd
	[ "$RC" -eq 4 ] || fail "'$cmd' with two nodes down exited $RC: $(cat "$CAS_TMP/err")"
	[ "$MS" -lt 3500 ] || fail "'$cmd' with two nodes down took $MS ms (timeout 2 s)"
	[ "$(wc -l <"$CAS_TMP/err")" -eq 1 ] || fail "'$cmd': not one line: $(cat "$CAS_TMP/err")"
done
elapsed_ms casctl --timeout 0.3 get k1
[ "$RC" -eq 4 ] && [ "$MS" -lt 1500 ] || fail "--timeout 0.3: exit $RC after $MS ms"
elapsed_ms casctl --timeout 1 status
[ "$RC" -eq 4 ] || fail "status with two nodes down exited $RC"

# Back up: node 1 first (a majority again), then node 2.
cas_start_node 1
check_acked "node 1 back"
acked k6 "two of three"
cas_start_node 2
check_acked "all back"
acked k7 "all back"
v=$(casctl version k7) || fail "version after restart"
echo "final" | casctl cas k7 "$v" >/dev/null || fail "cas after restart"
ACKED[k7]=final

# Only the restarted nodes up with one other: they hold what was acked.
cas_stop_node 0
check_acked "node 0 down after restarts"
casctl status >/dev/null || fail "status after restarts exited $?"

echo "node failure: ok"
