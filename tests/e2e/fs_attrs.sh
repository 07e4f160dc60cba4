#!/usr/bin/env bash
# fs_attrs.sh - a mount that has seen a file answers lookups with the
# attributes it reported last; what users see must still be current after
# another mount changed the file: content, size, mode, truncation.
. "$CAS_SRC/tests/lib.sh"

cas_start_cluster 3
cas_mount "$CAS_TMP/a"
cas_mount "$CAS_TMP/b"
A=$CAS_TMP/a B=$CAS_TMP/b

echo one >"$A/f"
# B sees the file once, so that it remembers its attributes.
cat "$B/f" >/dev/null && stat -c %s "$B/f" >/dev/null && ls -l "$B/f" >/dev/null ||
	fail "B cannot see f"
for i in $(seq 1 50); do echo "line $i" >>"$A/f"; done
chmod 600 "$A/f"
size=$(stat -c %s "$A/f")

[ "$(wc -l <"$B/f")" = 51 ] || fail "cat on B: $(wc -l <"$B/f") lines, not 51"
[ "$(stat -c %s "$B/f")" = "$size" ] || fail "size on B: $(stat -c %s "$B/f"), not $size"
[ "$(stat -c %a "$B/f")" = 600 ] || fail "mode on B: $(stat -c %a "$B/f")"
[ "$(tail -c 8 "$B/f")" = "line 50" ] || fail "tail on B: $(tail -c 8 "$B/f")"
[ "$(ls -l "$B/f" | awk '{print $5}')" = "$size" ] || fail "ls -l on B: $(ls -l "$B/f")"
cp "$B/f" "$CAS_TMP/copy" && cmp -s "$CAS_TMP/copy" "$A/f" || fail "cp from B differs"

echo more >>"$B/f"
[ "$(tail -n 1 "$A/f")" = more ] || fail "append from B not seen on A"
: >"$A/f"
[ "$(stat -c %s "$B/f")" = 0 ] || fail "B sees size $(stat -c %s "$B/f") after truncation"
[ -z "$(cat "$B/f")" ] || fail "B sees content after truncation"
# A name that now names another inode of another type.
rm "$A/f" && mkdir "$A/f"
[ -d "$B/f" ] || fail "B does not see the directory that replaced f"
echo ok
