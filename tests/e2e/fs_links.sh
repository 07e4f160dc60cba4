#!/usr/bin/env bash
# fs_links.sh - hard links (link counts on two mounts, unlink of one name, rename over a link, fstat after the last unlink) and special files (FIFO, devices, a Unix socket).
. "$CAS_SRC/tests/lib.sh"

cas_start_cluster 3
m1=$CAS_TMP/m1 m2=$CAS_TMP/m2
cas_mount "$m1"
cas_mount "$m2"
cd "$m1" || fail "cd"
nl() { stat -c %h "$1"; }

# Two names, one inode, seen from both mounts.
printf 'hello\n' >f || fail "write f"
ln f g || fail "ln f g"
[ "$(nl f)" = 2 ] && [ "$(nl g)" = 2 ] || fail "after ln: f has $(nl f) links, g $(nl g)"
[ "$(stat -c %i f)" = "$(stat -c %i g)" ] || fail "f and g are different inodes"
[ "$(nl "$m2/g")" = 2 ] || fail "m2 sees $(nl "$m2/g") links"
printf 'more\n' >>"$m2/g" || fail "append through g on m2"
[ "$(cat f)" = "$(printf 'hello\nmore')" ] || fail "f reads '$(cat f)'"
mkdir d && ln f d/h || fail "ln into a directory"
[ "$(nl f)" = 3 ] || fail "f has $(nl f) links, want 3"
ln f g 2>/dev/null && fail "ln over an existing name"
ln d d2 2>/dev/null && fail "ln of a directory"

# Unlink of one name leaves the others with the content.
rm f || fail "rm f"
[ ! -e f ] && [ ! -e "$m2/f" ] || fail "f still there"
[ "$(nl g)" = 2 ] || fail "g has $(nl g) links after rm f"
[ "$(cat "$m2/d/h")" = "$(printf 'hello\nmore')" ] || fail "d/h lost the content"

# Rename over a hard link: the replaced inode loses one link.
echo other >o && ln o o2 || fail "o, o2"
mv g o || fail "mv g o"
[ "$(nl o2)" = 1 ] || fail "o2 has $(nl o2) links after mv g o"
[ "$(nl o)" = 2 ] && [ "$(cat o)" = "$(printf 'hello\nmore')" ] || fail "o after mv g o"
# Renaming a name onto another name of the same inode does nothing (mv
# refuses to try; rename(2) returns 0).
python3 -c 'import os; os.rename("o", "d/h")' || fail "rename o d/h"
[ -e o ] && [ -e d/h ] && [ "$(nl o)" = 2 ] || fail "mv between two links of one inode"
# Across directories, the link count stays.
mv d/h h2 && [ "$(nl h2)" = 2 ] && [ ! -e d/h ] || fail "mv d/h h2"

# An open file whose last name is removed: fstat says 0 links, the
# content stays readable until close.
out=$(python3 -c '
import os
fd = os.open("o2", os.O_RDONLY)
os.unlink("o2")
print(os.fstat(fd).st_nlink, os.read(fd, 100).decode().strip())
') || fail "python fstat"
[ "$out" = "0 other" ] || fail "open unlinked file: '$out'"

# Special files: a name with a type (and a device number), no data.
mkfifo p || fail "mkfifo"
mknod c c 1 3 || fail "mknod c"
mknod b b 7 2 || fail "mknod b"
python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind("s")' || fail "bind"
for m in "$m1" "$m2"; do
	[ "$(stat -c %F "$m/p")" = fifo ] || fail "p is $(stat -c %F "$m/p")"
	[ "$(stat -c '%F %t %T' "$m/c")" = "character special file 1 3" ] ||
		fail "c is $(stat -c '%F %t %T' "$m/c")"
	[ "$(stat -c '%F %t %T' "$m/b")" = "block special file 7 2" ] ||
		fail "b is $(stat -c '%F %t %T' "$m/b")"
	[ "$(stat -c %F "$m/s")" = socket ] || fail "s is $(stat -c %F "$m/s")"
done
[ "$(ls -l | grep -c '^[pcbs]')" = 4 ] || fail "ls -l: $(ls -l)"
# A FIFO works as one: the kernel makes the pipe.
(echo through >p &) && [ "$(timeout 10 cat p)" = through ] || fail "fifo"
ln p p2 && [ "$(nl p)" = 2 ] || fail "ln of a fifo"
rm p p2 c b s || fail "rm special files"
cd /
echo ok
