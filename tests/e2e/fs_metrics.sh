#!/usr/bin/env bash
# fs_metrics.sh - casfs -o metrics=ADDRESS:PORT (README "Monitor"): the
# exposition parses, the FUSE request histograms and the round counters
# move with an `echo x > f; cat f`, the server answers on the address
# given and nowhere else, and a bad or busy address fails the mount with
# one line, before daemonizing.
. "$CAS_SRC/tests/lib.sh"

casfs=$CAS_BIN/casfs
T=$CAS_TMP

# free_port ADDRESS: a TCP port free on ADDRESS now.
free_port() {
	python3 -c 'import socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam); s.bind((sys.argv[1], 0)); print(s.getsockname()[1])' "$1"
}

# scrape URL FILE: GET URL into FILE; the content type is Prometheus's.
scrape() {
	curl -sf -o "$2" -D "$2.hdr" "$1" || fail "GET $1 failed"
	grep -qi '^content-type: text/plain; version=0.0.4' "$2.hdr" ||
		fail "GET $1: $(cat "$2.hdr")"
}

# check FILE: the exposition parses (tests/prom.py: a # TYPE for every
# sample, numbers, cumulative histograms) with every metric of casfs and
# a histogram for every FUSE operation; prints name{labels}=value lines.
check() {
	python3 "$CAS_SRC/tests/prom.py" "$1" casfs_ casfs_build_info casfs_rounds_total \
		casfs_conflicts_total casfs_retries_total casfs_timeouts_total \
		casfs_fuse_requests_in_flight casfs_fuse_request_seconds >"$1.s" ||
		fail "GET /metrics does not parse: $(head -c 2000 "$1")"
	local op
	for op in lookup getattr setattr open read write create unlink rename flush release \
		fsync mkdir rmdir readdir opendir releasedir setxattr getxattr listxattr \
		removexattr statfs symlink readlink link mknod forget flock setlk getlk; do
		grep -qF "casfs_fuse_request_seconds_count{op=\"$op\"}=" "$1.s" ||
			fail "no histogram for op $op"
	done
	cat "$1.s"
}

# value FILE SAMPLE: the value of SAMPLE (name{labels}) in check's output.
value() { grep -F "$2=" "$1" | head -n 1 | sed 's/.*=//'; }

# refuse TEXT ARGS...: casfs ARGS exits non-zero within 20 s with one
# line holding TEXT and mounts nothing.
dir=$T/m
mkdir -p "$dir"
refuse() {
	local pattern=$1 out rc
	shift
	out=$(timeout 20 "$casfs" "$@" 2>&1)
	rc=$?
	[ $rc != 0 ] || fail "casfs $* exited 0"
	[ $rc != 124 ] || fail "casfs $* hung"
	echo "$out" | grep -qF "$pattern" || fail "casfs $* said: $out"
	[ "$(echo "$out" | wc -l)" = 1 ] || fail "casfs $* said more than one line: $out"
	! mountpoint -q "$dir" || fail "casfs $* mounted"
}

cas_start_cluster 3
nodes=$(cas_nodes)
tls=$(cas_tls_mount_opts)

# A malformed address, in the foreground and not (test_fs_options has
# the other forms).
bad=localhost:9101
refuse "bad metrics=$bad: want ADDRESS:PORT" -f -o "nodes=$nodes,metrics=$bad${tls:+,$tls}" "$dir"
bad='[::1]'
refuse "bad metrics=$bad: want ADDRESS:PORT" -o "nodes=$nodes,metrics=$bad${tls:+,$tls}" "$dir"
# A port in use (node 0's), and an address not of this machine: refused
# at mount time, with or without -f (before daemonizing, on stderr).
busy=127.0.0.1:${CAS_PORTS[0]}
refuse "cannot serve metrics on $busy: Address already in use" -f \
	-o "nodes=$nodes,metrics=$busy${tls:+,$tls}" "$dir"
refuse "cannot serve metrics on $busy: Address already in use" \
	-o "nodes=$nodes,metrics=$busy${tls:+,$tls}" "$dir"
refuse "cannot serve metrics on 192.0.2.1:9101: Cannot assign requested address" -f \
	-o "nodes=$nodes,metrics=192.0.2.1:9101${tls:+,$tls}" "$dir"
# casd on the busy port still serves: the refused mount took nothing.
cas_node_up 0 || fail "node 0 stopped answering"

port=$(free_port 127.0.0.1)
url=http://127.0.0.1:$port/metrics
cas_mount "$dir" "metrics=127.0.0.1:$port"
scrape "$url" "$T/m1"
check "$T/m1" >"$T/s1"
grep -q '^casfs_build_info{version="[0-9][^"]*"}=1$' "$T/s1" || fail "build_info: $(cat "$T/s1")"

# Bound to 127.0.0.1 only: not 127.0.0.2 (also this machine's), not IPv6.
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.2:$port/metrics")
[ "$code" = 000 ] || fail "metrics answered on 127.0.0.2: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://[::1]:$port/metrics")
[ "$code" = 000 ] || fail "metrics answered on [::1]: $code"
listeners=$(ss -Htln "sport = :$port" | awk '{print $4}')
[ "$listeners" = "127.0.0.1:$port" ] || fail "listening on: $listeners"
# Only GET /metrics.
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/")
[ "$code" = 404 ] || fail "GET /: $code"
code=$(curl -s -X POST -o /dev/null -w '%{http_code}' "$url")
[ "$code" = 405 ] || fail "POST /metrics: $code"

echo x >"$dir/f"
[ "$(cat "$dir/f")" = x ] || fail "cat f: $(cat "$dir/f")"

# moved FILE0 FILE1 SAMPLE...: every SAMPLE grew from FILE0 to FILE1.
moved() {
	local a b s f0=$1 f1=$2
	shift 2
	for s in "$@"; do
		a=$(value "$f0" "$s")
		b=$(value "$f1" "$s")
		[ -n "$a" ] && [ -n "$b" ] || return 1
		awk -v a="$a" -v b="$b" 'BEGIN { exit !(b + 0 > a + 0) }' || return 1
	done
}
H=casfs_fuse_request_seconds
want=("${H}_count{op=\"lookup\"}" "${H}_count{op=\"create\"}" "${H}_count{op=\"write\"}"
	"${H}_count{op=\"flush\"}" "${H}_count{op=\"release\"}" "${H}_count{op=\"open\"}"
	"${H}_count{op=\"read\"}" "${H}_sum{op=\"write\"}" "${H}_sum{op=\"read\"}"
	'casfs_rounds_total{kind="change",result="ok"}'
	'casfs_rounds_total{kind="read",result="ok"}')
# The kernel sends the last release after close returns: scrape until
# it is in.
grown() {
	scrape "$url" "$T/m2" && check "$T/m2" >"$T/s2" && moved "$T/s1" "$T/s2" "${want[@]}"
}
if ! cas_wait_until 50 grown; then
	for s in "${want[@]}"; do echo "$s: $(value "$T/s1" "$s") -> $(value "$T/s2" "$s")"; done >&2
	fail "metrics did not move after echo x > f; cat f"
fi
# What did not happen did not move.
for s in "${H}_count{op=\"rmdir\"}" 'casfs_timeouts_total' \
	'casfs_rounds_total{kind="delete",result="ok"}'; do
	[ "$(value "$T/s1" "$s")" = "$(value "$T/s2" "$s")" ] ||
		fail "$s moved: $(value "$T/s1" "$s") -> $(value "$T/s2" "$s")"
done
[ "$(value "$T/s2" casfs_fuse_requests_in_flight)" = 0 ] || fail "requests in flight at rest"

# A cas write at a version the file is not at is a version conflict,
# not an error; the file keeps x. A change the filesystem refuses
# otherwise (rmdir of a directory that is not empty) is refused.
setfattr -n user.casfs.cas.999 -v y "$dir/f" 2>/dev/null && fail "cas at version 999 succeeded"
[ "$(cat "$dir/f")" = x ] || fail "f changed: $(cat "$dir/f")"
scrape "$url" "$T/m4"
check "$T/m4" >"$T/s4"
R='casfs_rounds_total{kind="change",result='
moved "$T/s2" "$T/s4" "${R}\"version\"}" 'casfs_conflicts_total{reason="version"}' \
	"${H}_count{op=\"setxattr\"}" ||
	fail "version conflict not counted: $(grep -F -e "$R" -e conflicts "$T/s4")"
[ "$(value "$T/s2" "${R}\"error\"}")" = "$(value "$T/s4" "${R}\"error\"}")" ] ||
	fail "version conflict counted as an error: $(grep -F "$R" "$T/s4")"
mkdir "$dir/d" && touch "$dir/d/x" || fail "mkdir d, touch d/x"
rmdir "$dir/d" 2>/dev/null && fail "rmdir of a directory with a file succeeded"
scrape "$url" "$T/m5"
check "$T/m5" >"$T/s5"
moved "$T/s4" "$T/s5" "${R}\"refused\"}" ||
	fail "refused change not counted: $(grep -F "$R" "$T/s5")"

# Unmounted, casfs stops serving and gives the port back.
cas_umount "$dir"
cas_wait_until 100 sh -c "! curl -s -o /dev/null '$url'" || fail "metrics served after unmount"

# Daemonized (no -f: the server's thread starts after the fork), on an
# IPv6 address, bound alone (not IPv4's 127.0.0.1).
port6=$(free_port ::1)
CAS_MOUNTS+=("$dir")
"$casfs" -o "nodes=$nodes,metrics=[::1]:$port6${tls:+,$tls}" "$dir" 2>"$T/daemon.err" ||
	fail "casfs without -f: $(cat "$T/daemon.err")"
mountpoint -q "$dir" || fail "casfs without -f did not mount"
scrape "http://[::1]:$port6/metrics" "$T/m3"
check "$T/m3" >"$T/s3"
[ "$(cat "$dir/f")" = x ] || fail "cat f on the daemonized mount"
cas_wait_until 50 sh -c "curl -s 'http://[::1]:$port6/metrics' |
	grep -q '^casfs_fuse_request_seconds_count{op=\"read\"} [1-9]'" ||
	fail "the daemonized mount's read count did not move"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port6/metrics")
[ "$code" = 000 ] || fail "metrics=[::1] answered on 127.0.0.1: $code"
cas_umount "$dir"
cas_wait_until 100 sh -c "! curl -s -o /dev/null 'http://[::1]:$port6/metrics'" ||
	fail "the daemonized mount served metrics after unmount"
echo "fs_metrics: ok"
