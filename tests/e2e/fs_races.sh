#!/usr/bin/env bash
# fs_races.sh - renames that race on two mounts behave as some order of
# the two operations would (issue #11, cases 1 to 3). Mount A reaches the
# cluster through holdproxies that hold its state-changing requests back,
# so that its rename has read the tree and is still changing it when
# mount B's operation runs; B goes straight to the nodes.
. "$CAS_SRC/tests/lib.sh"
export LC_ALL=C # sort order of the trees compared below

cas_start_cluster 3
cas_start_holdproxies A 700
a=$CAS_TMP/a b=$CAS_TMP/b
# A's operations wait for its held requests: give them time.
cas_mount_via_proxies A "$a" timeout=60
cas_mount "$b"

# race NAME CMD_A CMD_B: runs CMD_A on mount A with its changes held, and
# once A's first change is held, CMD_B on mount B. Sets rc_a and rc_b.
race() {
	local name=$1 cmd_a=$2 cmd_b=$3 held pid
	held=$(cas_held A)
	cas_hold A on
	(cd "$a" && eval "$cmd_a") >"$CAS_TMP/$name.a" 2>&1 &
	pid=$!
	cas_wait_until 200 sh -c "[ \$(grep -c '^held ' '$CAS_TMP/A.log') -gt $held ]" ||
		fail "$name: mount A's change was never held"
	rc_b=0
	(cd "$b" && eval "$cmd_b") >"$CAS_TMP/$name.b" 2>&1 || rc_b=$?
	rc_a=0
	wait "$pid" || rc_a=$?
	cas_hold A off
	echo "$name: A '$cmd_a' exit $rc_a ($(head -c 200 "$CAS_TMP/$name.a")), B '$cmd_b' exit $rc_b ($(head -c 200 "$CAS_TMP/$name.b"))"
}

# same_tree DIR: both mounts list DIR (recursively, names and contents) alike.
same_tree() {
	local x y
	x=$(cd "$a/$1" && find . | sort) || fail "find on A in $1"
	y=$(cd "$b/$1" && find . | sort) || fail "find on B in $1"
	[ "$x" = "$y" ] || fail "mounts disagree on $1: A [$x] B [$y]"
	echo "$x"
}

# Case 1: two moves of directories into each other. Only one can win:
# the other finds its source gone or its destination inside it. Nothing
# may form a cycle that nothing reaches.
mkdir -p "$b/c1/a" "$b/c1/b" || fail "mkdir c1"
echo fa >"$b/c1/a/fa" && echo fb >"$b/c1/b/fb" || fail "files in c1"
race cycle 'mv c1/a c1/b/' 'mv c1/b c1/a/'
[ $rc_a -eq 0 ] && [ $rc_b -eq 0 ] && fail "cycle: both moves succeeded"
[ $rc_a -ne 0 ] && [ $rc_b -ne 0 ] && fail "cycle: both moves failed"
tree=$(same_tree c1)
if [ $rc_a -eq 0 ]; then
	want=$'.\n./b\n./b/a\n./b/a/fa\n./b/fb'
else
	want=$'.\n./a\n./a/b\n./a/b/fb\n./a/fa'
fi
[ "$tree" = "$want" ] || fail "cycle: c1 holds [$tree], want [$want]"

# Case 2: a move racing a removal of the same file. A file that was
# removed never comes back under its new name.
mkdir -p "$b/d1" "$b/d2" && echo x >"$b/d1/x" || fail "setup d"
race resurrect 'mv d1/x d2/x' 'rm d1/x'
[ $rc_a -eq 0 ] && [ $rc_b -eq 0 ] && fail "resurrect: both succeeded"
tree=$(same_tree .)
case "$rc_a,$rc_b" in
0,*) echo "$tree" | grep -qx './d2/x' || fail "resurrect: the move won but d2/x is missing" ;;
*,0) echo "$tree" | grep -q '^./d[12]/x$' && fail "resurrect: x removed, yet [$tree]" ;;
*) fail "resurrect: both failed" ;;
esac
[ ! -e "$b/d1/x" ] || fail "resurrect: d1/x still there"

# Case 3: two moves of one file to two names. It ends with one name.
mkdir -p "$b/e1" "$b/e2" && echo one >"$b/e1/x" || fail "setup e"
race twonames 'mv e1/x e2/x' 'mv e1/x e1/y'
[ $rc_a -eq 0 ] && [ $rc_b -eq 0 ] && fail "twonames: both moves succeeded"
[ $rc_a -ne 0 ] && [ $rc_b -ne 0 ] && fail "twonames: both moves failed"
names=$(cd "$b" && find e1 e2 -type f | sort)
[ "$(echo "$names" | wc -l)" -eq 1 ] || fail "twonames: names for x: [$names]"
f=$( [ $rc_a -eq 0 ] && echo e2/x || echo e1/y)
[ "$(cat "$a/$f")" = one ] && [ "$(stat -c %h "$b/$f")" = 1 ] ||
	fail "twonames: $f reads '$(cat "$b/$f")' with $(stat -c %h "$b/$f") links"

echo "fs_races: ok"
