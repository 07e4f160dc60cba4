# membership.sh - cluster identity and membership with real casd, casctl
# and casfs (PROTOCOL.md, "Cluster identity and membership"; issue #12):
# init refuses initialized and unreachable nodes; a node that comes back
# empty never brings an old value back, and member replace makes it whole;
# a mount on a wrong node list (empty nodes, two clusters) fails and
# writes nothing; member add and remove under concurrent cas loops lose
# and double no increment; a five-node cluster shrinks and grows; a mount
# follows its seed nodes' replacement without a remount.
. "$CAS_SRC/tests/lib.sh"

T=$CAS_TMP
CTL=("${CAS_VG[@]}" "$CAS_BIN/casctl" "${CAS_VG_CASCTL[@]}")

# urls I...: the URLs of nodes I..., comma-separated.
urls() {
	local i out=
	for i in "$@"; do out+="${out:+,}$(cas_url "$i")"; done
	echo "$out"
}
# ctl URLS ARGS...: casctl on the node list URLS.
ctl() {
	local nodes=$1
	shift
	"${CTL[@]}" --nodes "$nodes" "$@"
}
# expect_exit WANT CMD...: CMD's exit status is WANT; output in $T/out, $T/err.
expect_exit() {
	local want=$1 rc=0
	shift
	"$@" >"$T/out" 2>"$T/err" || rc=$?
	[ "$rc" -eq "$want" ] || fail "'$*' exited $rc, want $want: $(head -c 400 "$T/err")"
}
# casfs's -o options of TLS mode, with a trailing comma ("" without it).
TLSO=$(cas_tls_mount_opts)
TLSO=${TLSO:+$TLSO,}
# health_keys I: the key count node I reports.
health_keys() { cas_curl -s "$(cas_url "$1")/v1/health" | sed -n 's/.*"keys":"\([0-9]*\)".*/\1/p'; }
# uninitialized I: node I says so on GET /v1/config.
uninitialized() {
	[ "$(cas_curl -s -o /dev/null -w '%{http_code}' "$(cas_url "$1")/v1/config")" = 503 ]
}

# --- init refuses, changing nothing ---
cas_start_nodes 6
DEAD=$CAS_SCHEME://127.0.0.1:$(
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
)
expect_exit 4 ctl "$(urls 0 1),$DEAD" init
grep -q "does not answer" "$T/err" || fail "init with a dead node: $(cat "$T/err")"
uninitialized 0 && uninitialized 1 || fail "init with a dead node initialized a node"
MAIN=$(urls 0 1 2)
expect_exit 0 ctl "$MAIN" init
CLUSTER=$(cat "$T/out")
[[ $CLUSTER =~ ^[0-9a-f]{32}$ ]] || fail "init printed '$CLUSTER'"
expect_exit 1 ctl "$(urls 0 3)" init
grep -q "is initialized already" "$T/err" || fail "init over a member: $(cat "$T/err")"
uninitialized 3 || fail "a refused init initialized node 3"
expect_exit 0 ctl "$MAIN" member list
[ "$(grep -c " member 1$" "$T/out")" = 3 ] || fail "member list: $(cat "$T/out")"

# --- a wrong node list: two empty nodes and a member; two clusters ---
expect_exit 0 ctl "$(urls 5)" init # another cluster, of node 5 alone
OTHER=$(cat "$T/out")
keys0=$(health_keys 0)
expect_exit 4 ctl "$(urls 3 4 0)" put k /dev/stdin <<<x
grep -q "is not initialized" "$T/err" || fail "put on empty nodes: $(cat "$T/err")"
expect_exit 2 ctl "$(urls 0 5 1)" put k /dev/stdin <<<x
grep -q "belongs to cluster" "$T/err" || fail "put on two clusters: $(cat "$T/err")"
mkdir -p "$T/bad"
"$CAS_BIN/casfs" -f -o "${TLSO}nodes=$(urls 3 4 0),timeout=5" "$T/bad" >"$T/bad.log" 2>&1 &&
	fail "a mount on two empty nodes and a member succeeded"
grep -q "node .* is not initialized" "$T/bad.log" || fail "mount on empty nodes: $(cat "$T/bad.log")"
"$CAS_BIN/casfs" -f -o "${TLSO}nodes=$(urls 0 5 1),timeout=5" "$T/bad" >"$T/bad.log" 2>&1 &&
	fail "a mount on two clusters succeeded"
grep -q "belongs to cluster" "$T/bad.log" || fail "mount on two clusters: $(cat "$T/bad.log")"
uninitialized 3 && uninitialized 4 || fail "a refused mount initialized a node"
[ "$(health_keys 3)" = 0 ] && [ "$(health_keys 4)" = 0 ] || fail "a refused mount wrote to empty nodes"
[ "$(health_keys 0)" = "$keys0" ] || fail "a refused mount wrote to the cluster"
[ "$(health_keys 5)" = 1 ] || fail "a refused mount wrote to the other cluster"
[ "$OTHER" != "$CLUSTER" ] || fail "two inits drew one cluster id"

# --- a node that comes back empty (issue #12, scenario 1) ---
expect_exit 0 ctl "$MAIN" put k /dev/stdin <<<v1
cas_stop_node 2
expect_exit 0 ctl "$MAIN" put k /dev/stdin <<<v2
cas_stop_node 1
rm -rf "${CAS_TMP:?}/n1"
cas_start_node 1 # empty: uninitialized
cas_start_node 2
cas_stop_node 0
rc=0
ctl "$MAIN" --timeout 3 get k >"$T/out" 2>"$T/err" || rc=$?
[ "$(cat "$T/out")" != v1 ] || fail "an acknowledged write was lost: read v1 after v2"
[ "$rc" = 4 ] || [ "$(cat "$T/out")" = v2 ] || fail "read with an empty node: exit $rc: $(cat "$T/err")"
cas_start_node 0
expect_exit 0 ctl "$MAIN" member replace "$(cas_url 1)" "$(cas_url 1)"
expect_exit 0 ctl "$MAIN" member replace "$(cas_url 1)" "$(cas_url 1)" # done: nothing to do
cas_stop_node 0
expect_exit 0 ctl "$MAIN" get k
[ "$(cat "$T/out")" = v2 ] || fail "after member replace: read '$(cat "$T/out")', want v2"
cas_start_node 0

# --- member add and remove under load: exact increments ---
WRITERS=3
EACH=15
expect_exit 0 ctl "$MAIN" put counter /dev/stdin <<<"0 0 0 0"
# writer ID: EACH increments by cas of "TOTAL K0 K1 K2" (Ki: writer i's
# increments), so that an unavailable answer (the cas may or may not have
# been applied) is settled by reading Ki back: exact, whatever happens.
writer() {
	local id=$1 done=0 tries=0 v n rc f
	while [ "$done" -lt "$EACH" ]; do
		tries=$((tries + 1))
		[ "$tries" -le 3000 ] || { echo "writer $id: too many tries" >&2; return 1; }
		v=$(ctl "$MAIN" version counter 2>/dev/null) || continue
		n=$(ctl "$MAIN" get counter 2>/dev/null) || continue
		read -r -a f <<<"$n"
		done=${f[$((id + 1))]}
		[ "$done" -lt "$EACH" ] || break
		f[0]=$((f[0] + 1))
		f[$((id + 1))]=$((done + 1))
		rc=0
		echo "${f[*]}" | ctl "$MAIN" cas counter "$v" >/dev/null 2>&1 || rc=$?
		case $rc in
		0 | 3 | 4) ;; # done, lost the race, or unknown: the next read tells
		*) echo "writer $id: cas exited $rc" >&2; return 1 ;;
		esac
	done
}
pids=()
for ((w = 0; w < WRITERS; w++)); do
	writer "$w" 2>>"$T/writers.err" &
	pids+=($!)
done
sleep 0.5
expect_exit 0 ctl "$MAIN" member add "$(cas_url 3)"
expect_exit 0 ctl "$MAIN" member remove "$(cas_url 2)"
for p in "${pids[@]}"; do wait "$p" || fail "a writer failed: $(cat "$T/writers.err")"; done
got=$(ctl "$MAIN" get counter) || fail "final get failed"
[ "${got%% *}" = $((WRITERS * EACH)) ] || fail "counter is '$got', want $((WRITERS * EACH))"
expect_exit 0 ctl "$MAIN" member list
[ "$(grep -c " member " "$T/out")" = 3 ] && grep -q "^$(cas_url 3) " "$T/out" &&
	! grep -q "^$(cas_url 2) " "$T/out" || fail "member list after add and remove: $(cat "$T/out")"
# The removed node refuses the cluster's requests (its epoch says it left).
cas_stop_node 0
expect_exit 0 ctl "$MAIN" get counter # 1 and 3 are a majority of 0, 1, 3
cas_start_node 0
# Refused without a majority, changing nothing.
cas_stop_node 0
cas_stop_node 1
expect_exit 4 ctl "$(urls 2 3)" member add "$(cas_url 4)"
grep -q "a majority is needed" "$T/err" || fail "member add without a majority: $(cat "$T/err")"
uninitialized 4 || fail "a refused member add initialized node 4"
cas_start_node 0
cas_start_node 1

# --- a mount follows the replacement of its seed nodes ---
mnt=$T/mnt
cas_mount_nodes "$(urls 0 1 3)" "$mnt" timeout=10
echo before >"$mnt/f" || fail "write before the change"
expect_exit 0 ctl "$MAIN" member replace "$(cas_url 0)" "$(cas_url 4)"
for i in 6 7; do cas_start_node "$i"; done
expect_exit 0 ctl "$(urls 1 3 4)" member replace "$(cas_url 1)" "$(cas_url 6)"
cas_stop_node 0
cas_stop_node 1
[ "$(cat "$mnt/f")" = before ] || fail "the mount lost f after its seeds left"
echo after >"$mnt/g" || fail "the mount cannot write after its seeds left"
[ "$(ctl "$(urls 3 4 6)" get counter | cut -d' ' -f1)" = $((WRITERS * EACH)) ] ||
	fail "counter after the replacements"
cas_umount "$mnt"

# --- five nodes: init, remove one, add one ---
for i in 8 9 10 11; do cas_start_node "$i"; done
FIVE=$(urls 7 8 9 10 11)
expect_exit 0 ctl "$FIVE" init
for i in 1 2 3 4 5; do expect_exit 0 ctl "$FIVE" put "f$i" /dev/stdin <<<"five $i"; done
expect_exit 0 ctl "$FIVE" member remove "$(cas_url 9)"
cas_stop_node 9
cas_start_node 12
expect_exit 0 ctl "$FIVE" member add "$(cas_url 12)"
cas_stop_node 7
cas_stop_node 8 # two of five down: 10, 11, 12 are a majority
for i in 1 2 3 4 5; do
	[ "$(ctl "$(urls 10 11 12)" get "f$i")" = "five $i" ] || fail "five nodes: f$i"
done
echo "membership: ok"
