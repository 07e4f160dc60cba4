#!/usr/bin/env bash
# fs_two_mounts.sh - what one mount does, another sees right after; a remount keeps it all.
. "$CAS_SRC/tests/lib.sh"

cas_start_cluster 3
m1=$CAS_TMP/m1 m2=$CAS_TMP/m2
cas_mount "$m1"
cas_mount "$m2"

# Writes on one mount are read on the other at once: no sleep, no retry.
for i in $(seq 1 15); do
	echo "one $i" >"$m1/f" || fail "write $i on m1"
	[ "$(cat "$m2/f")" = "one $i" ] || fail "m2 read '$(cat "$m2/f")' after m1 wrote 'one $i'"
	echo "two $i" >"$m2/f" || fail "write $i on m2"
	[ "$(cat "$m1/f")" = "two $i" ] || fail "m1 read '$(cat "$m1/f")' after m2 wrote 'two $i'"
done

# Names, attributes and xattrs too.
mkdir "$m1/d" || fail "mkdir"
[ -d "$m2/d" ] || fail "m2 does not see d"
echo x >"$m2/d/a" || fail "create on m2"
mv "$m1/d/a" "$m1/d/b" || fail "rename on m1"
[ ! -e "$m2/d/a" ] && [ "$(cat "$m2/d/b")" = x ] || fail "m2 does not see the rename"
chmod 640 "$m2/d/b" || fail "chmod"
[ "$(stat -c %a "$m1/d/b")" = 640 ] || fail "m1 sees mode $(stat -c %a "$m1/d/b")"
setfattr -n user.color -v blue "$m1/d/b" || fail "setfattr"
[ "$(getfattr --only-values -n user.color "$m2/d/b")" = blue ] || fail "m2 does not see the xattr"
rm "$m2/d/b" || fail "rm on m2"
[ ! -e "$m1/d/b" ] || fail "m1 still sees d/b"
ls "$m1/d/b" 2>&1 | grep -q "No such file" || fail "no ENOENT for a removed file"

# A tree to find again after unmounting everything and restarting the nodes.
mkdir -p "$m1/keep/sub/deeper" || fail "mkdir -p"
printf 'alpha\n' >"$m1/keep/a"
head -c 100000 /dev/urandom >"$m1/keep/sub/random" || fail "write random"
ln -s ../a "$m1/keep/sub/link"
chmod 700 "$m1/keep/sub/deeper"
setfattr -n user.note -v kept "$m1/keep/a"
snapshot() {
	(cd "$1/keep" && find . -printf '%p %y %m %s %l\n' | sort && md5sum sub/random a &&
		getfattr --absolute-names -n user.note a)
}
before=$(snapshot "$m1") || fail "snapshot"

cas_umount "$m1"
cas_umount "$m2"
for i in 0 1 2; do cas_stop_node "$i" TERM; done
for i in 0 1 2; do cas_start_node "$i"; done
cas_mount "$m1"
after=$(snapshot "$m1") || fail "snapshot after remount"
[ "$before" = "$after" ] || fail "tree changed across remount: $(diff <(echo "$before") <(echo "$after"))"
[ "$(cat "$m1/f")" = "two 15" ] || fail "f lost its content"
echo "ok"
