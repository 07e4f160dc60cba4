#!/usr/bin/env bash
# fs_coreutils.sh - everyday tools on a mount: cat, cp, mv, rm -r, ls, stat, ln, truncate, tar, >>.
. "$CAS_SRC/tests/lib.sh"

cas_start_cluster 3
m1=$CAS_TMP/m1 m2=$CAS_TMP/m2
# The default deadline: the two appenders below contend for one register
# and must both get through in time (see fs_counter.sh).
cas_mount "$m1"
cas_mount "$m2"
cd "$m1" || fail "cd"

echo hello >greeting || fail "echo >"
[ "$(cat greeting)" = hello ] || fail "cat"
echo world >>greeting || fail "echo >>"
[ "$(cat greeting)" = "$(printf 'hello\nworld')" ] || fail "append"
echo replaced >greeting
[ "$(cat greeting)" = replaced ] || fail "> on an existing file"
/bin/echo external >greeting || fail "/bin/echo >"
[ "$(cat greeting)" = external ] || fail "/bin/echo content"
: >greeting
[ -s greeting ] && fail ": > f left content"

cp /etc/services svc || fail "cp in"
cmp /etc/services svc || fail "cp content"
cp svc svc2 && mv svc2 svc3 || fail "cp, mv"
[ ! -e svc2 ] && cmp svc svc3 || fail "mv content"
mkdir -p a/b/c a/b/d || fail "mkdir -p"
[ -d a/b/c ] && [ -d a/b/d ] || fail "mkdir -p made no dirs"
mkdir a 2>/dev/null && fail "mkdir over a dir"
touch a/b/c/file a/b/top || fail "touch"
ls -l a/b | grep -q '^drwx.* c$' || fail "ls -l: $(ls -l a/b)"
[ "$(stat -c '%F %s' svc)" = "regular file $(stat -c %s /etc/services)" ] ||
	fail "stat: $(stat -c '%F %s' svc)"
[ "$(stat -c %h a/b)" = 4 ] || fail "a/b has $(stat -c %h a/b) links, want 4"
ln -s svc link || fail "ln -s"
[ "$(readlink link)" = svc ] && cmp link svc || fail "symlink"
ln svc hard && [ "$(stat -c %h svc)" = 2 ] && rm hard || fail "hard link"
truncate -s 10 svc && [ "$(stat -c %s svc)" = 10 ] || fail "truncate down"
truncate -s 20 svc && [ "$(stat -c %s svc)" = 20 ] || fail "truncate up"
[ "$(tail -c 10 svc | od -An -c | tr -d ' \n')" = '\0\0\0\0\0\0\0\0\0\0' ] || fail "zero fill"
rm -r a && [ ! -e a ] || fail "rm -r"
rmdir nope 2>/dev/null && fail "rmdir of nothing"

# tar a tree out and back in, compare with diff -r.
src=$CAS_TMP/src
mkdir -p "$src/x/y" "$src/z"
cp /etc/services "$src/x/y/s"
echo small >"$src/z/small"
: >"$src/empty"
ln -s x/y/s "$src/sl"
(cd "$CAS_TMP" && tar cf tree.tar src) || fail "tar c"
mkdir t && tar xf "$CAS_TMP/tree.tar" -C t || fail "tar x"
diff -r "$src" t/src || fail "tar tree differs"
tar cf "$CAS_TMP/back.tar" -C t src || fail "tar c from the mount"
mkdir "$CAS_TMP/back" && tar xf "$CAS_TMP/back.tar" -C "$CAS_TMP/back" || fail "tar x"
diff -r "$src" "$CAS_TMP/back/src" || fail "tar round trip differs"

# Write a temporary file, then rename it over the real one (editors).
echo v1 >conf
for i in 2 3 4; do
	echo "v$i" >conf.tmp && mv conf.tmp conf || fail "temp+rename $i"
	[ "$(cat "$m2/conf")" = "v$i" ] || fail "m2 sees '$(cat "$m2/conf")' after rename $i"
done
[ ! -e conf.tmp ] || fail "conf.tmp left"
mkdir dir1 dir2 && echo moved >dir1/f && mv dir1/f dir2/g || fail "mv across dirs"
[ ! -e dir1/f ] && [ "$(cat dir2/g)" = moved ] || fail "mv across dirs content"
mv dir2 dir1/ && [ "$(cat dir1/dir2/g)" = moved ] || fail "mv a dir into another"
mkdir full && touch full/x && mkdir empty
mv -T empty full 2>/dev/null && fail "mv over a non-empty dir"
mv -T full/x empty 2>/dev/null && fail "mv a file over a dir"
mkdir empty2 && mv -T empty empty2 && [ ! -e empty ] || fail "mv over an empty dir"

[ -e full/x ] || fail "lost full/x"

# >> from two mounts at once: every line of both arrives.
n=60
(for i in $(seq 1 $n); do echo "m1 $i" >>"$m1/shared" || exit 1; done) &
p1=$!
(for i in $(seq 1 $n); do echo "m2 $i" >>"$m2/shared" || exit 1; done) &
p2=$!
wait $p1 || fail "appender 1 failed"
wait $p2 || fail "appender 2 failed"
[ "$(wc -l <shared)" = $((2 * n)) ] || fail "shared has $(wc -l <shared) lines"
[ "$(grep '^m1 ' shared | cut -d' ' -f2 | tr '\n' ' ')" = "$(seq -s' ' 1 $n) " ] ||
	fail "m1's lines out of order or missing"
[ "$(grep '^m2 ' shared | cut -d' ' -f2 | tr '\n' ' ')" = "$(seq -s' ' 1 $n) " ] ||
	fail "m2's lines out of order or missing"
cd /
echo ok
