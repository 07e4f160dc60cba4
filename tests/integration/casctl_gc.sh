# casctl_gc.sh - casctl gc against a three-node cluster: a dry run
# changes nothing, a run purges every deleted key from every node (their
# /v1/keys and /v1/health counts drop by as many) and leaves live keys
# alone, a key written during the grace is left alive, and with a node
# down gc leaves every candidate, exits 4, and finishes once it is back.
. "$CAS_SRC/tests/lib.sh"
cas_start_cluster 3

T=$CAS_TMP
NODES=$(cas_nodes)

# node_keys I: how many keys node I lists (GET /v1/keys).
node_keys() {
	cas_curl -sf "${CAS_HDRS[@]}" "$(cas_url "$1")/v1/keys?limit=10000" |
		python3 -c 'import json,sys; d=json.load(sys.stdin); assert not d["more"]; print(len(d["keys"]))' ||
		fail "GET /v1/keys of node $1"
}

# health_keys I: the keys count of node I's /v1/health.
health_keys() {
	cas_curl -sf "$(cas_url "$1")/v1/health" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["keys"])' ||
		fail "GET /v1/health of node $1"
}

# counts_are WANT...: node I lists WANT[I] keys and its health says so.
counts_are() {
	local i=0 want got
	for want in "$@"; do
		got=$(node_keys $i)
		[ "$got" = "$want" ] || fail "node $i lists $got keys, want $want"
		got=$(health_keys $i)
		[ "$got" = "$want" ] || fail "node $i's health counts $got keys, want $want"
		i=$((i + 1))
	done
}

# each KEYFILE ARGS...: runs casctl ARGS for every key of KEYFILE, with {}
# in ARGS standing for the key, four at a time; fails if one fails.
each() {
	local file=$1
	shift
	xargs -P 4 -I{} "$CAS_BIN/casctl" --nodes "$NODES" "$@" <"$file" >/dev/null ||
		fail "casctl $* over $file failed"
}

# expect_exit CODE CMD...: runs CMD (stdout to $T/out, stderr to $T/err)
# and fails unless it exits with CODE.
expect_exit() {
	local want=$1 rc=0
	shift
	"$@" >"$T/out" 2>"$T/err" || rc=$?
	[ "$rc" -eq "$want" ] ||
		fail "'$*' exited $rc, want $want: $(head -c 300 "$T/err") $(tail -n 3 "$T/out")"
}

# 200 keys, 150 of them deleted; three more written again after a delete.
seq -f 'key%03g' 0 199 >"$T/all"
head -n 150 "$T/all" >"$T/deleted"
echo v >"$T/v"
each "$T/all" put {} "$T/v"
each "$T/deleted" delete {}
for k in again1 again2 again3; do
	echo old | casctl put $k >/dev/null || fail "put $k"
	casctl delete $k || fail "delete $k"
	echo new | casctl put $k >/dev/null || fail "put $k again"
done
# The root directory casctl init wrote, 200 keys, 3 written again.
counts_are 204 204 204

# A dry run lists the 150 and changes nothing.
expect_exit 0 casctl gc --grace 0 --dry-run
[ "$(grep -c '^candidate ' "$T/out")" = 150 ] ||
	fail "dry run: $(grep -c '^candidate ' "$T/out") candidates, want 150"
grep '^candidate ' "$T/out" | cut -d' ' -f2 | sort | diff - <(sort "$T/deleted") >/dev/null ||
	fail "dry run: the candidates are not the deleted keys"
grep -q '^gc: .*150 candidates (dry run), 0 purged' "$T/out" || fail "dry run: $(tail -n 1 "$T/out")"
counts_are 204 204 204

# A run purges them from every node; live keys stay as they were.
expect_exit 0 casctl gc --grace 1
[ "$(grep -c '^purged ' "$T/out")" = 150 ] ||
	fail "gc purged $(grep -c '^purged ' "$T/out") keys, want 150: $(tail -n 5 "$T/out")"
! grep -q '^left ' "$T/out" || fail "gc left keys: $(grep '^left ' "$T/out" | head -n 3)"
grep -q '^gc: 204 keys listed, 54 live, 150 candidates, 150 purged, 0 written since, 0 left' \
	"$T/out" || fail "gc's summary: $(tail -n 1 "$T/out")"
[ "$(grep -c '^node .*: keys 204 -> 54, bytes' "$T/out")" = 3 ] ||
	fail "gc's node lines: $(grep '^node ' "$T/out")"
counts_are 54 54 54
for k in again1 again2 again3; do
	[ "$(casctl get $k)" = new ] || fail "gc changed $k: $(casctl get $k)"
	[ "$(casctl version $k)" = 1 ] || fail "gc moved $k's version"
done
[ "$(casctl get key199)" = v ] || fail "gc changed a live key"
# A purged key is absent, and written again it starts at version 1.
[ "$(casctl version key000)" = 0 ] || fail "a purged key has a version"
[ "$(echo back | casctl put key000)" = 1 ] || fail "a purged key written again is not at 1"
# Nothing left to do: a second run purges nothing and succeeds.
expect_exit 0 casctl gc --grace 0
grep -q '0 candidates, 0 purged, 0 written since, 0 left' "$T/out" ||
	fail "second run: $(tail -n 1 "$T/out")"
counts_are 55 55 55

# A key written during the grace is left alive.
echo x | casctl put mid >/dev/null && casctl delete mid || fail "put, delete mid"
casctl gc --grace 3 >"$T/mid.out" 2>"$T/mid.err" &
gc_pid=$!
cas_wait_until 100 grep -q "waiting" "$T/mid.err" || fail "gc did not start its grace: $(cat "$T/mid.err")"
echo alive | casctl put mid >/dev/null || fail "put mid during the grace"
rc=0
wait $gc_pid || rc=$?
[ "$rc" = 0 ] || fail "gc with a write during its grace exited $rc: $(cat "$T/mid.out" "$T/mid.err")"
grep -q '^live mid: written since it was noted' "$T/mid.out" || fail "mid: $(cat "$T/mid.out")"
[ "$(casctl get mid)" = alive ] || fail "gc lost the write during the grace"
counts_are 56 56 56

# A node down: nothing is purged, every candidate is reported left, exit 4.
sed -n '151,170p' "$T/all" >"$T/more"
each "$T/more" delete {}
cas_stop_node 2
expect_exit 4 casctl --timeout 2 gc --grace 0
[ "$(grep -c '^left key1[56][0-9]: .*does not answer' "$T/out")" = 20 ] ||
	fail "with a node down: $(grep -c '^left ' "$T/out") left: $(head -n 3 "$T/out")"
! grep -q '^purged ' "$T/out" || fail "gc purged with a node down"
grep -q ' 20 left' "$T/out" || fail "summary with a node down: $(tail -n 1 "$T/out")"
[ "$(node_keys 0)" = 56 ] && [ "$(node_keys 1)" = 56 ] || fail "a node dropped keys with a node down"
# Back: the next run finishes them everywhere.
cas_start_node 2
expect_exit 0 casctl gc --grace 0
[ "$(grep -c '^purged ' "$T/out")" = 20 ] || fail "after the node came back: $(tail -n 5 "$T/out")"
counts_are 36 36 36

# Bad arguments change nothing and exit 2.
expect_exit 2 casctl gc --grace
expect_exit 2 casctl gc --grace -1
expect_exit 2 casctl gc --grace soon
expect_exit 2 casctl gc --frobnicate
counts_are 36 36 36
echo "casctl gc: ok"
