#!/usr/bin/env bash
# fs_gc.sh - casctl gc takes casfs's orphans and nothing else: an inode
# record no directory names (a create that stopped between its two
# steps), a directory its parent does not name, an inode without names,
# an empty value;
# every file and directory of the tree, and what another application
# keeps under look-alike keys, survive (fs/FORMAT.md, "Deletion").
. "$CAS_SRC/tests/lib.sh"

cas_start_cluster 3
m1=$CAS_TMP/m1
cas_mount "$m1"
key_of() { getfattr --only-values -n user.casfs.key "$1" 2>/dev/null || fail "no key for $1"; }
version_of() { casctl version "$1" || fail "casctl version $1"; }

# A tree that must survive, with a hard link and a nested directory.
mkdir -p "$m1/d/e" || fail "mkdir"
echo one >"$m1/d/e/f" && echo two >"$m1/g" && ln "$m1/g" "$m1/d/g2" || fail "files"
snapshot() { (cd "$m1" && find . -printf '%p %y %n %s\n' | sort && cat d/e/f g d/g2); }
before=$(snapshot) || fail "snapshot"

# Orphans made by hand: copies of real records under fresh ids.
casctl get "$(key_of "$m1/g")" >"$CAS_TMP/file.rec" || fail "get file"
casctl get "$(key_of "$m1/d/e")" >"$CAS_TMP/dir.rec" || fail "get dir"
of=i/$(cas_random_hex 16) od=i/$(cas_random_hex 16)
casctl put "$of" "$CAS_TMP/file.rec" >/dev/null || fail "put orphan file"
casctl put "$od" "$CAS_TMP/dir.rec" >/dev/null || fail "put orphan dir"
# Look-alike keys of another application: not casfs records.
other=h/$(cas_random_hex 16) other2=i/$(cas_random_hex 16)
echo "not a held register" | casctl put "$other" >/dev/null || fail "put $other"
echo "not a record" | casctl put "$other2" >/dev/null || fail "put $other2"

casctl gc --grace 1 --dry-run >"$CAS_TMP/dry.out" 2>&1 || fail "dry run: $(cat "$CAS_TMP/dry.out")"
grep -q "garbage $of (casfs)" "$CAS_TMP/dry.out" || fail "dry run misses $of: $(cat "$CAS_TMP/dry.out")"
grep -q "garbage $od (casfs)" "$CAS_TMP/dry.out" || fail "dry run misses $od"
[ "$(version_of "$of")" = 1 ] && [ "$(version_of "$od")" = 1 ] || fail "the dry run deleted"

casctl gc --grace 1 >"$CAS_TMP/gc.out" 2>&1 || fail "gc: $(cat "$CAS_TMP/gc.out")"
grep -q "deleted $of (casfs)" "$CAS_TMP/gc.out" || fail "gc left $of: $(cat "$CAS_TMP/gc.out")"
grep -q "deleted $od (casfs)" "$CAS_TMP/gc.out" || fail "gc left $od"
[ "$(version_of "$of")" = 0 ] && [ "$(version_of "$od")" = 0 ] || fail "orphans still there"
[ "$(version_of "$other")" = 1 ] && [ "$(version_of "$other2")" = 1 ] ||
	fail "gc took another application's keys: $(cat "$CAS_TMP/gc.out")"
grep "(casfs)" "$CAS_TMP/gc.out" | grep -v -e "$of" -e "$od" &&
	fail "gc deleted more than the orphans"
after=$(snapshot) || fail "snapshot after gc"
[ "$before" = "$after" ] || fail "the tree changed: $(diff <(echo "$before") <(echo "$after"))"

# An inode without names left behind (its unlink's delete did not run):
# a record with nlink 0, made by hand from the file's.
python3 - "$CAS_TMP/file.rec" "$CAS_TMP/dead.rec" <<'PY' || fail "make a record with nlink 0"
import sys
b = bytearray(open(sys.argv[1], "rb").read())
b[56:60] = (0).to_bytes(4, "little")
open(sys.argv[2], "wb").write(b)
PY
on=i/$(cas_random_hex 16)
casctl put "$on" "$CAS_TMP/dead.rec" >/dev/null || fail "put $on"
# An empty value, as a roll back of a creation left before deletion
# existed: absent to casfs, but no tombstone.
oe=i/$(cas_random_hex 16)
casctl put "$oe" </dev/null >/dev/null || fail "put $oe"
casctl gc --grace 1 >"$CAS_TMP/gc2.out" 2>&1 || fail "gc: $(cat "$CAS_TMP/gc2.out")"
[ "$(version_of "$on")" = 0 ] || fail "gc left the nameless $on: $(cat "$CAS_TMP/gc2.out")"
[ "$(version_of "$oe")" = 0 ] || fail "gc left the empty $oe: $(cat "$CAS_TMP/gc2.out")"
[ "$(snapshot)" = "$before" ] || fail "the tree changed"
echo "ok"
