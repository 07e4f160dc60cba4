#!/usr/bin/env bash
# fs_trunc.sh - open(O_TRUNC) then close() with no write truncates before
# close() returns, and close() reports its failure; nothing waits for RELEASE.
. "$CAS_SRC/tests/lib.sh"

py=/usr/bin/python3
cas_start_cluster 3
cas_start_holdproxies a 300
ma=$CAS_TMP/ma mb=$CAS_TMP/mb
cas_mount_via_proxies a "$ma"
cas_mount "$mb"

# The race of issue #11: A truncates, B appends once A's close() returned.
# A's prepares and accepts are held back 300 ms each, so a truncation left
# for RELEASE (sent after close() returned) lands after B's append and
# erases it.
printf 'old\n' >"$mb/f" || fail "write on B"
held=$(cas_held a)
cas_hold a on
"$py" -c "open('$ma/f', 'w').close()" || fail "open(w).close() on A"
cas_hold a off
printf 'new\n' >>"$mb/f" || fail "append on B"
got=$(cat "$mb/f")
[ "$got" = new ] || fail "B read '$got' after A's open(w).close() and B's append, want 'new'"
[ "$(cas_held a)" -gt "$held" ] || fail "the proxies held nothing: no race was forced"
# Nothing of A's close is still on its way: unmounting A waits for its
# last requests; B's append is still there.
cas_umount "$ma"
got=$(cat "$mb/f")
[ "$got" = new ] || fail "B read '$got' once A was unmounted, want 'new'"
cas_mount_via_proxies a "$ma" timeout=2

# Other ways to truncate without writing: cp /dev/null, ": >".
printf 'data\n' >"$mb/g"
cp /dev/null "$ma/g" || fail "cp /dev/null"
[ "$(stat -c %s "$mb/g")" = 0 ] || fail "cp /dev/null left $(stat -c %s "$mb/g") bytes"
printf 'data\n' >"$mb/g"
: >"$ma/g" || fail ": >"
[ "$(stat -c %s "$mb/g")" = 0 ] || fail ": > left $(stat -c %s "$mb/g") bytes"

# A flush commits the truncation; the handle's writes after it work: a
# close of a duplicate descriptor, then writes, then the last close.
printf 'long old content\n' >"$mb/h"
"$py" - "$ma/h" <<'EOF' || fail "write after a flush"
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)
os.close(os.dup(fd))
os.write(fd, b"one\n")
os.write(fd, b"two\n")
os.close(fd)
EOF
[ "$(cat "$mb/h")" = "$(printf 'one\ntwo')" ] || fail "h is '$(cat "$mb/h")'"
echo x >"$ma/h" || fail "echo x >"
[ "$(cat "$mb/h")" = x ] || fail "echo x > h left '$(cat "$mb/h")'"

# A's links cut between open and close: close() fails (the truncation could
# not be committed) and the file keeps its content.
printf 'keep\n' >"$mb/k"
out=$("$py" - "$ma/k" "$CAS_TMP/a.cut" 2>&1 <<'EOF'
import sys
f = open(sys.argv[1], "w")
open(sys.argv[2], "w").close()  # cas_cut a on
try:
    f.close()
except OSError as e:
    print("close:", e.strerror)
    sys.exit(3)
EOF
)
rc=$?
cas_cut a off
[ $rc = 3 ] || fail "close() with the links cut: exit $rc ($out), want 3 (an error from close)"
echo "$out" | grep -q "close: Connection timed out" || fail "close() said: $out"
[ "$(cat "$mb/k")" = keep ] || fail "k is '$(cat "$mb/k")' after a failed truncation, want 'keep'"
# Nothing was left for RELEASE either, now that A reaches the nodes again.
cas_umount "$ma"
[ "$(cat "$mb/k")" = keep ] || fail "k is '$(cat "$mb/k")' after A's unmount, want 'keep'"
echo ok
