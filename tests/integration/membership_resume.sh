# membership_resume.sh - a member change interrupted right after its new
# node joined (step 1 of PROTOCOL.md, "Changing the members": the new
# node holds the joint configuration, no member has taken it) is finished
# by running the same command again on the members' list alone; a node
# that joined a different change is still refused.
. "$CAS_SRC/tests/lib.sh"

T=$CAS_TMP
CTL=("${CAS_VG[@]}" "$CAS_BIN/casctl" "${CAS_VG_CASCTL[@]}")

urls() {
	local i out=
	for i in "$@"; do out+="${out:+,}$(cas_url "$i")"; done
	echo "$out"
}
expect_exit() {
	local want=$1 rc=0
	shift
	"$@" >"$T/out" 2>"$T/err" || rc=$?
	[ "$rc" -eq "$want" ] || fail "'$*' exited $rc, want $want: $(head -c 400 "$T/err")"
}
# join_by_hand I JOINING_JQ: what an interrupted `casctl member` leaves
# after step 1: node I joins with the joint configuration of the members'
# one, at the next epoch, with joining set to JOINING_JQ (a jq expression
# over the members' configuration; $new is node I's entry).
join_by_hand() {
	local i=$1 expr=$2 id
	id=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
	cas_curl -sf "$(cas_url 0)/v1/config" |
		jq -c --arg id "$id" --arg url "$(cas_url "$i")" "
			{new: {id: \$id, url: \$url}} as \$n | \$n.new as \$new |
			del(.node) | .epoch = ((.epoch | tonumber) + 1 | tostring) |
			.joining = ($expr) | {node: \$id, config: .}" >"$T/join.json"
	cas_curl -sf -X POST --data-binary "@$T/join.json" "$(cas_url "$i")/v1/admin/join" >/dev/null ||
		fail "the join by hand of node $i was refused"
}

cas_start_nodes 5
MAIN=$(urls 0 1 2)
expect_exit 0 "${CTL[@]}" --nodes "$MAIN" init
expect_exit 0 "${CTL[@]}" --nodes "$MAIN" put k /dev/stdin <<<before

# Add: node 3 joined the joint configuration (members plus node 3).
join_by_hand 3 '.members + [$new]'
expect_exit 0 "${CTL[@]}" --nodes "$MAIN" member add "$(cas_url 3)"
grep -q "resuming" "$T/err" || fail "member add did not resume: $(cat "$T/err")"
expect_exit 0 "${CTL[@]}" --nodes "$MAIN" member list
[ "$(grep -c " member " "$T/out")" = 4 ] || fail "after the resumed add: $(cat "$T/out")"
# Node 3 serves the cluster's configuration and value as a seed.
expect_exit 0 "${CTL[@]}" --nodes "$(urls 3)" get k
[ "$(cat "$T/out")" = before ] || fail "node 3 read '$(cat "$T/out")'"

# Replace: node 4 joined a change that is not the one asked (it adds node
# 4 without removing anyone): replace refuses it and changes nothing.
join_by_hand 4 '.members + [$new]'
expect_exit 1 "${CTL[@]}" --nodes "$MAIN" member replace "$(cas_url 1)" "$(cas_url 4)"
grep -q "is initialized" "$T/err" || fail "replace over another change: $(cat "$T/err")"
expect_exit 0 "${CTL[@]}" --nodes "$MAIN" member list
[ "$(grep -c " member " "$T/out")" = 4 ] || fail "a refused replace changed members: $(cat "$T/out")"
echo PASS
