#!/usr/bin/env bash
# fs_posix.sh - POSIX details: a write by another user clears set-user-ID
# and set-group-ID; private mappings work in the default mode, fresh at
# each mmap; shared ones are refused with ENODEV.
. "$CAS_SRC/tests/lib.sh"

py=/usr/bin/python3
cas_start_cluster 3
m1=$CAS_TMP/m1 m2=$CAS_TMP/m2
# allow_other (with default_permissions): other users reach the mount.
cas_mount "$m1" allow_other
cas_mount "$m2"
chmod 711 "$CAS_TMP"

# as1000 CMD...: CMD as uid 1000, gid 1000, no supplementary groups.
as1000() { setpriv --reuid=1000 --regid=1000 --clear-groups "$@"; }
mode() { stat -c %a "$1"; }

# A write by another user clears both bits, in the write's own round: the
# version moves by one (chmod's round, then the write's).
echo a >"$m1/s"
chown 2000:2000 "$m1/s"
chmod 666 "$m1/s"
chmod u+s,g+s "$m1/s"
[ "$(mode "$m2/s")" = 6666 ] || fail "chmod u+s,g+s gave $(mode "$m2/s")"
v=$(getfattr --absolute-names --only-values -n user.casfs.version "$m2/s")
as1000 sh -c "echo x >>'$m1/s'" || fail "append by uid 1000"
[ "$(mode "$m2/s")" = 666 ] || fail "mode $(mode "$m2/s") after a write by uid 1000, want 666"
[ "$(getfattr --absolute-names --only-values -n user.casfs.version "$m2/s")" = $((v + 1)) ] ||
	fail "the write and the mode change were not one round"
[ "$(cat "$m2/s")" = "$(printf 'a\nx')" ] || fail "s is '$(cat "$m2/s")'"

# A write by root keeps them (root has CAP_FSETID).
chmod 6666 "$m1/s"
echo y >>"$m1/s"
[ "$(mode "$m2/s")" = 6666 ] || fail "mode $(mode "$m2/s") after a write by root, want 6666"

# set-group-ID without group execution stays for a writer in the group,
# like Linux; set-user-ID goes.
chown 2000:1000 "$m1/s"
chmod 6666 "$m1/s"
as1000 sh -c "echo z >>'$m1/s'" || fail "append by uid 1000 in the group"
[ "$(mode "$m2/s")" = 2666 ] || fail "mode $(mode "$m2/s") after a write by a group member, want 2666"
chmod 6676 "$m1/s"
as1000 sh -c "echo z >>'$m1/s'" || fail "append by uid 1000 in the group"
[ "$(mode "$m2/s")" = 676 ] || fail "mode $(mode "$m2/s") after a write with g+x, want 676"

# A truncate by another user, a chown by root, and an open(O_TRUNC) with
# no write by another user clear them too. (The first two are cleared by
# the kernel, which clears set-group-ID there only with group execution.)
chown 2000:2000 "$m1/s"
chmod 6676 "$m1/s"
as1000 truncate -s 1 "$m1/s" || fail "truncate by uid 1000"
[ "$(mode "$m2/s")" = 676 ] || fail "mode $(mode "$m2/s") after a truncate by uid 1000, want 676"
chmod 6676 "$m1/s"
chown 2001 "$m1/s"
[ "$(mode "$m2/s")" = 676 ] || fail "mode $(mode "$m2/s") after chown, want 676"
chmod 6666 "$m1/s"
as1000 "$py" -c "open('$m1/s', 'w').close()" || fail "open(w).close() by uid 1000"
[ "$(mode "$m2/s")" = 666 ] || fail "mode $(mode "$m2/s") after O_TRUNC by uid 1000, want 666"
[ "$(stat -c %s "$m2/s")" = 0 ] || fail "open(w).close() by uid 1000 left $(stat -c %s "$m2/s") bytes"

# mmap, read-only and private, gives the content; after another mount's
# write, a new open and mmap give the new content.
printf 'first content\n' >"$m1/m"
mapped() { # FILE: the file's content through a read-only private mapping
	"$py" - "$1" <<'EOF'
import mmap, sys
with open(sys.argv[1], "rb") as f:
    with mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ) as m:
        sys.stdout.write(m[:].decode())
EOF
}
got=$(mapped "$m1/m") || fail "mmap read-only"
[ "$got" = "first content" ] || fail "mmap gave '$got'"
printf 'second, longer content\n' >"$m2/m"
got=$(mapped "$m1/m") || fail "mmap read-only after B's write"
[ "$got" = "second, longer content" ] || fail "mmap after B's write gave '$got'"

# cat on A right after B's write, and a read() on a descriptor opened
# before it, see the new content.
printf 'third\n' >"$m2/m"
[ "$(cat "$m1/m")" = third ] || fail "cat on A after B's write: '$(cat "$m1/m")'"
"$py" - "$m1/m" "$m2/m" <<'EOF' || fail "a read-only descriptor missed B's write"
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
assert os.pread(fd, 100, 0) == b"third\n"
with open(sys.argv[2], "w") as f:
    f.write("fourth\n")
got = os.pread(fd, 100, 0)
assert got == b"fourth\n", got
with open(sys.argv[2], "w") as f:
    f.write("fifth!\n")  # the same size: the mtime tells
got = os.pread(fd, 100, 0)
assert got == b"fifth!\n", got
EOF

# A private mapping works on any descriptor, copy-on-write too (its
# changes stay in the process); a shared one is refused with ENODEV
# (README, Guarantees).
"$py" - "$m1/m" <<'EOF' || fail "mmap of a writable descriptor"
import errno, mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
m = mmap.mmap(fd, 0, access=mmap.ACCESS_COPY)
assert m[:] == b"fifth!\n", m[:]
m[0:1] = b"F"
m.close()
assert os.pread(fd, 100, 0) == b"fifth!\n"
for flags in (os.O_RDONLY, os.O_RDWR):
    fd = os.open(sys.argv[1], flags)
    try:
        mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        sys.exit("MAP_SHARED was allowed")
    except OSError as e:
        assert e.errno == errno.ENODEV, e
EOF
echo ok
