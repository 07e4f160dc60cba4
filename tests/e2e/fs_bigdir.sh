#!/usr/bin/env bash
# fs_bigdir.sh - a directory of many thousand names, made from two mounts
# at once: split into buckets, listed whole by ls and find, renamed across
# buckets, kept by casctl gc, emptied and removed.
. "$CAS_SRC/tests/lib.sh"

# Each name costs a create and, at the end, an unlink transaction: 2000
# keep the test near a minute on a loaded machine; CAS_BIGDIR_N for more.
N=${CAS_BIGDIR_N:-2000}
cas_start_cluster 3
m1=$CAS_TMP/m1 m2=$CAS_TMP/m2
cas_mount "$m1"
cas_mount "$m2"
mkdir "$m1/big" || fail "mkdir"

# Two writers per mount, each its own names: every create is one
# exclusive open, so a name made twice would fail.
make_names() { # mount, first writer, writers
	local w
	for ((w = $2; w < $2 + $3; w++)); do
		(cd "$1/big" && for ((i = w; i < N; i += 4)); do
			: >"f$i" || exit 1
		done) &
	done
	wait
}
make_names "$m1" 0 2 &
p1=$!
make_names "$m2" 2 2 &
p2=$!
wait $p1 || fail "creates on m1"
wait $p2 || fail "creates on m2"

# Split: the directory's inode register says so (its depth, byte 6).
key=$(getfattr --only-values -n user.casfs.key "$m1/big") || fail "key"
depth=$(casctl get "$key" | od -An -tu1 -j6 -N1 | tr -d ' ')
[ "${depth:-0}" -gt 0 ] || fail "$N entries and the directory is not split (depth $depth)"
b1="b/${key#i/}/00000001"
[ "$(casctl version "$b1")" -gt 0 ] || fail "split, and no bucket 1"

# Listed whole, on both mounts, by readdir in pages.
n=$(ls "$m1/big" 2>"$CAS_TMP/ls.err" | wc -l)
[ "$n" = "$N" ] || fail "ls on m1 lists $n of $N: $(head -3 "$CAS_TMP/ls.err")"
[ "$(find "$m2/big" -type f | wc -l)" = "$N" ] || fail "find on m2 lists $(find "$m2/big" -type f | wc -l)"
[ "$(ls "$m2/big" | sort | uniq -d | wc -l)" = 0 ] || fail "ls lists a name twice"
for i in 0 1 $((N / 2)) $((N - 1)); do
	[ -e "$m2/big/f$i" ] || fail "lookup of f$i on m2"
done
# A name made again is refused, in whichever bucket it is.
(set -o noclobber; : >"$m2/big/f7") 2>/dev/null && fail "f7 made twice"

# Renames between buckets, and across directories, from both mounts.
mkdir "$m1/other" || fail "mkdir other"
for i in $(seq 0 12 400); do
	mv "$m1/big/f$i" "$m1/big/r$i" || fail "rename f$i"
done
# 450 names into another directory by rename alone: it splits too.
(cd "$m2/big" && mv $(seq -f 'f%.0f' 1 4 1800) "$m2/other/") || fail "move out"
[ "$(ls "$m2/big" | wc -l)" = $((N - 450)) ] || fail "after renames ls lists $(ls "$m2/big" | wc -l)"
[ "$(ls "$m1/other" | wc -l)" = 450 ] || fail "other lists $(ls "$m1/other" | wc -l)"
[ -e "$m1/big/r12" ] && [ ! -e "$m1/big/f12" ] && [ -e "$m1/other/f9" ] || fail "renamed names"
okey=$(getfattr --only-values -n user.casfs.key "$m1/other") || fail "key of other"
[ "$(casctl get "$okey" | od -An -tu1 -j6 -N1 | tr -d ' ')" -gt 0 ] ||
	fail "450 names renamed in and the directory is not split"

# casctl gc keeps every file of a split directory.
casctl gc --grace 1 >"$CAS_TMP/gc.out" 2>&1 || fail "gc: $(cat "$CAS_TMP/gc.out")"
[ "$(ls "$m1/big" | wc -l)" = $((N - 450)) ] || fail "after gc ls lists $(ls "$m1/big" | wc -l)"
[ -e "$m1/big/f$((N - 1))" ] && cat "$m1/big/r12" && cat "$m2/other/f5" || fail "gc took a file of the split directory"

# Emptied from both mounts; rmdir merges the buckets back and removes it.
rmdir "$m1/big" 2>/dev/null && fail "rmdir of a full directory"
ls "$m1/big" >"$CAS_TMP/names" || fail "ls"
(cd "$m1/big" && awk 'NR % 2' "$CAS_TMP/names" | xargs -r -n 100 -P 2 rm) &
p1=$!
(cd "$m2/big" && awk '!(NR % 2)' "$CAS_TMP/names" | xargs -r -n 100 -P 2 rm) &
p2=$!
wait $p1 || fail "rm on m1"
wait $p2 || fail "rm on m2"
[ -z "$(ls -A "$m1/big")" ] || fail "not empty: $(ls -A "$m1/big" | head)"
rmdir "$m1/big" || fail "rmdir of the emptied directory"
[ ! -e "$m2/big" ] || fail "m2 still sees big"
[ "$(casctl version "$b1")" = 0 ] || fail "bucket 1 left after rmdir"
echo "ok"
