#!/usr/bin/env bash
# fs_lock.sh - lock.sh gives mutual exclusion across mounts; only the owner releases.
. "$CAS_SRC/tests/lib.sh"

cas_start_cluster 3
m1=$CAS_TMP/m1 m2=$CAS_TMP/m2
# Six workers contend for one register, with the default deadline (see
# fs_counter.sh).
cas_mount "$m1"
cas_mount "$m2"
lock=$CAS_SRC/examples/lock.sh

# Ownership rules.
"$lock" acquire "$m1/L" alice 5 || fail "alice cannot take a free lock"
[ "$(cat "$m2/L")" = alice ] || fail "the lock file holds '$(cat "$m2/L")'"
"$lock" acquire "$m2/L" alice 5 || fail "alice cannot take her own lock again"
"$lock" acquire "$m2/L" bob 1 2>/dev/null
[ $? = 2 ] || fail "bob took alice's lock, or did not time out"
"$lock" release "$m2/L" bob 2>/dev/null
[ $? = 3 ] || fail "bob released alice's lock"
"$lock" release "$m2/L" alice || fail "alice cannot release"
[ -s "$m1/L" ] && fail "released lock not empty"

# Mutual exclusion: workers on both mounts do an unprotected
# read-increment-write of a plain file under the lock; a lost update would
# show in the total. An "inside" marker catches two holders at once.
echo 0 >"$m1/total"
worker() { # MOUNT NAME ROUNDS
	local i v
	for ((i = 0; i < $3; i++)); do
		"$lock" acquire "$1/L" "$2" 60 || return 1
		mkdir "$1/inside" 2>/dev/null || { echo "$2 entered while held" >&2; return 1; }
		v=$(cat "$1/total") && echo $((v + 1)) >"$1/total" || return 1
		rmdir "$1/inside" || return 1
		"$lock" release "$1/L" "$2" || return 1
	done
}
pids=()
for w in 1 2 3; do
	worker "$m1" "m1-w$w" 6 2>>"$CAS_TMP/lock.err" &
	pids+=($!)
	worker "$m2" "m2-w$w" 6 2>>"$CAS_TMP/lock.err" &
	pids+=($!)
done
for p in "${pids[@]}"; do
	wait "$p" || fail "a worker failed: $(cat "$CAS_TMP/lock.err")"
done
[ "$(cat "$m2/total")" = 36 ] || fail "total is $(cat "$m2/total"), want 36: the lock let two in"
echo ok
