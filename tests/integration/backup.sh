#!/usr/bin/env bash
# backup.sh - casctl dump and restore: a tree made through a mount of
# cluster A (directories, files, symbolic links, hard links, xattrs, a
# lock) is dumped and restored into a new cluster B; a mount of B shows
# the same tree, contents, versions and xattrs. A restore into a cluster
# that is not empty is refused; a dump of a changing cluster completes.
. "$CAS_SRC/tests/lib.sh"

CAS_NO_INIT=1 cas_start_cluster 6
A=$(cas_url 0),$(cas_url 1),$(cas_url 2)
B=$(cas_url 3),$(cas_url 4),$(cas_url 5)
cas_init_cluster "$A"
cas_init_cluster "$B"
ctl() { local nodes=$1; shift; "${CAS_VG[@]}" "$CAS_BIN/casctl" --nodes "$nodes" "${CAS_VG_CASCTL[@]}" "$@"; }
ma=$CAS_TMP/ma mb=$CAS_TMP/mb
cas_mount_nodes "$A" "$ma"

# The tree, through A's mount.
(
	cd "$ma" || exit 1
	mkdir -p d/e/f empty
	printf 'hello\n' >d/hello
	head -c 300000 /dev/urandom >d/e/big
	for i in $(seq 1 20); do echo "line $i" >>d/e/f/appended; done
	ln -s ../d/hello empty/../link
	ln -s /nowhere dangling
	ln d/hello d/e/hard
	setfattr -n user.color -v blue d/hello
	setfattr -n user.bin -v 0x00ff10 d/e/big
	chmod 640 d/e/big
	touch -d '2001-02-03 04:05:06' d/e/f/appended
	mv d/e/f/appended d/moved
	mkdir d/e/sub && mv d/e/sub d/sub
	echo gone >tmp && rm tmp
	flock d/hello true
) || fail "making the tree on A"

# What a mount shows: every path with its type, mode, size, links, mtime,
# target, version, xattrs and content.
listing() {
	(
		cd "$1" || exit 1
		find . -mindepth 0 | LC_ALL=C sort | while read -r p; do
			printf '%s %s\n' "$p" "$(stat -c '%F %a %s %h %Y' "$p")"
			[ -L "$p" ] && printf '  -> %s\n' "$(readlink "$p")" && continue
			printf '  version %s\n' "$(getfattr --only-values -n user.casfs.version "$p")"
			getfattr -d -m '^user\.' --absolute-names "$p" 2>/dev/null |
				grep -v '^#' | grep -v '^$' | sed 's/^/  /'
			[ -f "$p" ] && printf '  md5 %s\n' "$(md5sum <"$p" | cut -c1-32)"
		done
	)
}
listing "$ma" >"$CAS_TMP/a.list" || fail "listing A"
grep -q 'user.color="blue"' "$CAS_TMP/a.list" || fail "no xattr in A's listing: $(cat "$CAS_TMP/a.list")"

# Dump A; the file's end is checked by restore.
ctl "$A" dump "$CAS_TMP/a.dump" 2>"$CAS_TMP/dump.err" || fail "dump: $(cat "$CAS_TMP/dump.err")"
grep -q "dumped [0-9]* registers" "$CAS_TMP/dump.err" || fail "dump said: $(cat "$CAS_TMP/dump.err")"
ctl "$A" dump "$CAS_TMP/a.dump" 2>"$CAS_TMP/err" && fail "dump over an existing file"
# Every kind of register is in it: inodes, transaction records, the
# directory-move register, lock and session registers.
for k in i/00000000000000000000000000000000 t/ m/dirmove l/ s/; do
	grep -aq "$k" "$CAS_TMP/a.dump" || fail "no $k register in the dump"
done

# A damaged dump is refused before anything is written.
head -c -3 "$CAS_TMP/a.dump" >"$CAS_TMP/cut.dump"
ctl "$B" restore "$CAS_TMP/cut.dump" 2>"$CAS_TMP/err" && fail "restore of a cut dump"
grep -q "cut short\|bad end\|checksum" "$CAS_TMP/err" || fail "cut dump: $(cat "$CAS_TMP/err")"

# Restore into B, which holds only casctl init's root.
ctl "$B" restore "$CAS_TMP/a.dump" 2>"$CAS_TMP/restore.err" ||
	fail "restore: $(cat "$CAS_TMP/restore.err")"
n_dumped=$(sed -n 's/.*dumped \([0-9]*\) registers.*/\1/p' "$CAS_TMP/dump.err")
grep -q "restored $n_dumped registers" "$CAS_TMP/restore.err" ||
	fail "restore said: $(cat "$CAS_TMP/restore.err") (dumped $n_dumped)"
cas_mount_nodes "$B" "$mb"
listing "$mb" >"$CAS_TMP/b.list" || fail "listing B"
diff "$CAS_TMP/a.list" "$CAS_TMP/b.list" >"$CAS_TMP/diff" || fail "B differs from A: $(cat "$CAS_TMP/diff")"
[ "$(stat -c %i "$mb/d/hello")" = "$(stat -c %i "$mb/d/e/hard")" ] || fail "hard link lost"
for k in i/00000000000000000000000000000000 m/dirmove; do
	[ "$(ctl "$A" version $k)" = "$(ctl "$B" version $k)" ] || fail "$k: another version on B"
done
# B's mount works on the copy.
echo new >>"$mb/d/hello" && [ "$(cat "$mb/d/e/hard")" = "$(printf 'hello\nnew')" ] ||
	fail "writing on B"

# B is not empty any more: refused, nothing written.
v=$(ctl "$B" version i/00000000000000000000000000000000)
ctl "$B" restore "$CAS_TMP/a.dump" 2>"$CAS_TMP/err" && fail "restore into a cluster in use"
grep -q "not empty" "$CAS_TMP/err" || fail "refusal said: $(cat "$CAS_TMP/err")"
[ "$(ctl "$B" version i/00000000000000000000000000000000)" = "$v" ] || fail "refused restore wrote"

# A dump of a changing cluster completes (and is a well-formed dump:
# restore reads it whole before it finds B in use).
(
	i=0
	while [ ! -e "$CAS_TMP/stop" ]; do
		i=$((i + 1))
		echo "$i" >"$ma/busy.$((i % 50))" 2>/dev/null
		mkdir "$ma/dir.$i" 2>/dev/null
	done
) &
writer=$!
CAS_EXTRA_PIDS+=("$writer")
cas_wait_until 100 test -e "$ma/dir.20" || fail "the writer does not write"
ctl "$A" dump "$CAS_TMP/busy.dump" 2>"$CAS_TMP/err" || fail "dump of a changing cluster: $(cat "$CAS_TMP/err")"
: >"$CAS_TMP/stop"
wait "$writer"
ctl "$B" restore "$CAS_TMP/busy.dump" 2>"$CAS_TMP/err"
grep -q "not empty" "$CAS_TMP/err" || fail "busy dump: $(cat "$CAS_TMP/err")"
cas_valgrind_check || fail "valgrind"
echo "backup: ok"
