#!/usr/bin/env bash
# fs_conditional.sh - versions and conditional writes through user.casfs.* xattrs; plain user xattrs.
. "$CAS_SRC/tests/lib.sh"

cas_start_cluster 3
m1=$CAS_TMP/m1 m2=$CAS_TMP/m2
cas_mount "$m1"
cas_mount "$m2"
f1=$m1/f f2=$m2/f

version() { getfattr --only-values -n user.casfs.version "$1"; }

echo first >"$f1"
v=$(version "$f1") || fail "no version"
[ "$(version "$f2")" = "$v" ] || fail "the mounts disagree on the version"

# A conditional write with the current version replaces the whole content.
setfattr -n "user.casfs.cas.$v" -v second "$f2" || fail "conditional write with the current version"
[ "$(cat "$f1")" = second ] || fail "content after the conditional write: '$(cat "$f1")'"
[ "$(version "$f1")" = $((v + 1)) ] || fail "version did not move by one"

# With a stale version it fails with ESTALE and changes nothing.
out=$(setfattr -n "user.casfs.cas.$v" -v third "$f1" 2>&1) && fail "stale conditional write succeeded"
echo "$out" | grep -q "Stale file handle" || fail "stale write said: $out"
[ "$(cat "$f2")" = second ] || fail "stale write changed the content to '$(cat "$f2")'"
[ "$(version "$f2")" = $((v + 1)) ] || fail "stale write moved the version"

# Binary-safe, in one syscall.
v=$(version "$f1")
setfattr -n "user.casfs.cas.$v" -v 0x00ff0a4100 "$f1" || fail "binary conditional write"
[ "$(od -An -tx1 "$f2" | tr -d ' \n')" = 00ff0a4100 ] || fail "binary content: $(od -An -tx1 "$f2")"

# Any change of the inode moves the version, chmod too.
v=$(version "$f1")
chmod 600 "$f1"
[ "$(version "$f1")" = $((v + 1)) ] || fail "chmod did not move the version"
echo more >>"$f2"
[ "$(version "$f1")" = $((v + 2)) ] || fail "append did not move the version"

# Wrong uses get clear errors, never ENOSYS.
mkdir "$m1/d"
out=$(setfattr -n "user.casfs.cas.$(version "$m1/d")" -v x "$m1/d" 2>&1) && fail "cas on a directory"
echo "$out" | grep -q "Is a directory" || fail "cas on a directory said: $out"
out=$(setfattr -n user.casfs.cas.12x -v x "$f1" 2>&1) && fail "malformed cas name accepted"
echo "$out" | grep -q "Invalid argument" || fail "malformed cas name said: $out"
out=$(setfattr -n user.casfs.version -v 7 "$f1" 2>&1) && fail "version is writable"
echo "$out" | grep -q "Operation not permitted" || fail "writing the version said: $out"
getfattr -n user.casfs.key "$f1" | grep -q 'user.casfs.key="i/[0-9a-f]\{32\}"' || fail "no key"

# Other user.* attributes live in the inode.
setfattr -n user.a -v 1 "$f1" && setfattr -n user.b -v 2 "$f2" || fail "setfattr user.*"
[ "$(getfattr --only-values -n user.b "$f1")" = 2 ] || fail "getfattr user.b"
[ "$(getfattr -d "$f1" 2>/dev/null | grep -c '^user\.')" = 2 ] || fail "listxattr: $(getfattr -d "$f1")"
setfattr -x user.a "$f2" || fail "removexattr"
getfattr -n user.a "$f1" 2>&1 | grep -q "No such attribute" || fail "user.a still there"
setfattr -x user.a "$f2" 2>&1 | grep -q "No such attribute" || fail "removing a missing xattr"
# xattrs still work after all those errors (no ENOSYS disabled them).
setfattr -n user.c -v 3 "$f1" && [ "$(getfattr --only-values -n user.c "$f2")" = 3 ] ||
	fail "xattrs stopped working"
echo ok
