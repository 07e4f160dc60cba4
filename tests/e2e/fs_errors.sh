#!/usr/bin/env bash
# fs_errors.sh - bad options and unreachable clusters refuse to mount; ENAMETOOLONG, EFBIG.
. "$CAS_SRC/tests/lib.sh"

casfs=$CAS_BIN/casfs
dir=$CAS_TMP/mnt
mkdir -p "$dir"

# refuse MESSAGE_PATTERN ARGS...: casfs ARGS must exit non-zero with a
# one-line message matching the pattern, and mount nothing.
refuse() {
	local pattern=$1 out rc
	shift
	out=$(timeout 20 "$casfs" "$@" 2>&1)
	rc=$?
	[ $rc != 0 ] || fail "casfs $* exited 0"
	[ $rc != 124 ] || fail "casfs $* hung"
	echo "$out" | grep -q "$pattern" || fail "casfs $* said: $out"
	[ "$(echo "$out" | wc -l)" = 1 ] || fail "casfs $* said more than one line: $out"
	! mountpoint -q "$dir" || fail "casfs $* mounted"
}

"$casfs" -h | grep -q "nodes=" || fail "-h does not list nodes="
"$casfs" -V | grep -q "casfs" || fail "-V"
refuse "no mount point" -o nodes=http://127.0.0.1:1
refuse "no cluster given" "$dir"
refuse "bad timeout" -o nodes=http://127.0.0.1:1,timeout=abc "$dir"
refuse "bad timeout" -o nodes=http://127.0.0.1:1,timeout=0 "$dir"
refuse "bad max_size" -o nodes=http://127.0.0.1:1,max_size=huge "$dir"
refuse "unknown option" -o nodes=http://127.0.0.1:1,bogus "$dir"
refuse "bad nodes=" -o nodes=ftp://nowhere "$dir"

# Unreachable: nothing listens on these ports (privileged ports no test
# binds, on loopback); both in the foreground and as a daemon, the error
# comes before mounting, within the timeout.
dead="http://127.0.0.1:1,http://127.0.0.1:2,http://127.0.0.1:3"
refuse "unreachable" -o "nodes=$dead,timeout=1" "$dir"
refuse "unreachable" -f -o "nodes=$dead,timeout=1" "$dir"
CAS_NODES=$dead refuse "unreachable" -o timeout=1 "$dir"

# A majority is enough to mount: one node of three down.
cas_start_cluster 3
cas_stop_node 2 KILL
cas_mount "$dir" max_size=64k
cd "$dir" || fail "cd"

# Names: 255 bytes are fine, 256 are ENAMETOOLONG.
n255=$(printf 'n%.0s' $(seq 255))
touch "$n255" && [ -e "$n255" ] || fail "255-byte name"
out=$(touch "${n255}x" 2>&1) && fail "256-byte name created"
echo "$out" | grep -q "File name too long" || fail "256-byte name said: $out"
out=$(mkdir "${n255}x" 2>&1) && fail "256-byte dir created"
echo "$out" | grep -q "File name too long" || fail "256-byte dir said: $out"
mv "$n255" "${n255}x" 2>/dev/null && fail "renamed to a 256-byte name"

# Sizes: max_size=64k bounds a file's record: EFBIG past it, and the file
# keeps what it had.
echo small >f
out=$(dd if=/dev/zero of=f bs=70000 count=1 2>&1) && fail "70000 bytes fit in 64k"
echo "$out" | grep -q "File too large" || fail "big write said: $out"
dd if=/dev/zero of=g bs=60000 count=1 2>/dev/null || fail "60000 bytes do not fit in 64k"
out=$(truncate -s 1M g 2>&1) && fail "truncate to 1M in 64k"
echo "$out" | grep -q "File too large" || fail "big truncate said: $out"
[ "$(stat -c %s g)" = 60000 ] || fail "g changed size: $(stat -c %s g)"
out=$(head -c 70000 /dev/zero 2>&1 >>g) && fail "append past 64k"
echo "$out" | grep -q "File too large" || fail "big append said: $out"
[ "$(stat -c %s g)" -le 65536 ] || fail "g grew past the limit"
cd /
echo ok
