#!/usr/bin/env bash
# fs_lock.sh - examples/lock.sh and examples/elect.sh across mounts: exclusion, timeouts, fencing tokens.
. "$CAS_SRC/tests/lib.sh"

cas_start_cluster 3
m1=$CAS_TMP/m1 m2=$CAS_TMP/m2
cas_mount "$m1"
cas_mount "$m2"
lock=$CAS_SRC/examples/lock.sh elect=$CAS_SRC/examples/elect.sh

# A token, growing with each acquisition; -w gives up with status 2.
t1=$("$lock" "$m1/L" sh -c 'echo $CASFS_LOCK_TOKEN') || fail "lock.sh on a free lock"
t2=$("$lock" "$m2/L" sh -c 'echo $CASFS_LOCK_TOKEN') || fail "lock.sh again"
[ -n "$t1" ] && [ "$t2" -gt "$t1" ] || fail "tokens $t1 then $t2"
"$lock" "$m1/L" sleep 3 &
holder=$!
cas_wait_until 50 sh -c "! flock -n '$m2/L' true" || fail "the holder did not take the lock"
"$lock" -w 1 "$m2/L" true 2>/dev/null
[ $? = 2 ] || fail "lock.sh -w 1 on a held lock did not give up with status 2"
wait "$holder" || fail "the holder failed"

# Mutual exclusion: an unprotected read-increment-write under lock.sh by
# workers on both mounts; a lost update would show in the total, an
# "inside" marker catches two holders at once.
echo 0 >"$m1/total"
worker() { # MOUNT ROUNDS
	local i
	for ((i = 0; i < $2; i++)); do
		"$lock" "$1/L" sh -c 'mkdir "$1/inside" || exit 1
			v=$(cat "$1/total") && echo $((v + 1)) >"$1/total" && rmdir "$1/inside"' \
			sh "$1" || return 1
	done
}
pids=()
for w in 1 2 3; do
	worker "$m1" 6 2>>"$CAS_TMP/lock.err" &
	pids+=($!)
	worker "$m2" 6 2>>"$CAS_TMP/lock.err" &
	pids+=($!)
done
for p in "${pids[@]}"; do
	wait "$p" || fail "a worker failed: $(cat "$CAS_TMP/lock.err")"
done
[ "$(cat "$m2/total")" = 36 ] || fail "total is $(cat "$m2/total"), want 36: the lock let two in"

# Election: one leader at a time, each recording its token.
mkdir "$m1/svc"
"$elect" "$m1/svc" alpha 2 >"$CAS_TMP/alpha.out" &
pa=$!
cas_wait_until 50 grep -q leader "$CAS_TMP/alpha.out" || fail "alpha was not elected"
"$elect" "$m2/svc" beta 1 >"$CAS_TMP/beta.out" &
pb=$!
sleep 0.5
grep -q leader "$CAS_TMP/beta.out" && fail "beta was elected while alpha leads"
[ "$(cut -d' ' -f1 "$m2/svc/leader")" = alpha ] || fail "leader is '$(cat "$m2/svc/leader")'"
wait "$pa" || fail "alpha failed: $(cat "$CAS_TMP/alpha.out")"
wait "$pb" || fail "beta failed: $(cat "$CAS_TMP/beta.out")"
ta=$(awk '/token/ {print $NF}' "$CAS_TMP/alpha.out")
tb=$(awk '/token/ {print $NF}' "$CAS_TMP/beta.out")
[ "$tb" -gt "$ta" ] || fail "beta's token $tb is not above alpha's $ta"
[ "$(cat "$m1/svc/leader")" = "beta $tb" ] || fail "leader is '$(cat "$m1/svc/leader")'"

# Fencing: a record with a higher token fences the leader off.
"$elect" "$m1/svc" gamma 5 >"$CAS_TMP/gamma.out" 2>&1 &
pg=$!
cas_wait_until 50 grep -q leader "$CAS_TMP/gamma.out" || fail "gamma was not elected"
echo "successor 999999999" >"$m2/svc/leader"
wait "$pg"
[ $? = 3 ] || fail "gamma was not fenced off: $(cat "$CAS_TMP/gamma.out")"
grep -q "fenced off" "$CAS_TMP/gamma.out" || fail "gamma did not say it was fenced off"
echo ok
