#!/usr/bin/env bash
# fs_counter.sh - eight counter.sh on two mounts, 25 increments each, end at exactly 200.
. "$CAS_SRC/tests/lib.sh"

cas_start_cluster 3
m1=$CAS_TMP/m1 m2=$CAS_TMP/m2
# Eight scripts hammer one register from two proposers, with the default
# deadline: a proposer that backed off leaps over the other's promises, so
# neither starves (proposer.c), and no increment may be lost or fail.
cas_mount "$m1"
cas_mount "$m2"
counter=$CAS_SRC/examples/counter.sh

echo 0 >"$m1/count"
pids=()
for m in "$m1" "$m2"; do
	for i in 1 2 3 4; do
		"$counter" "$m/count" 25 2>>"$CAS_TMP/counter.err" &
		pids+=($!)
	done
done
for p in "${pids[@]}"; do
	wait "$p" || fail "a counter failed: $(cat "$CAS_TMP/counter.err")"
done
[ "$(cat "$m2/count")" = 200 ] || fail "count is $(cat "$m2/count"), want 200"
# Each increment is one new version on top of the first write's.
v=$(getfattr --only-values -n user.casfs.version "$m1/count")
[ "$v" -ge 201 ] || fail "version $v after 200 increments"
echo ok
