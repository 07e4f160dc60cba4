# casd_purge.sh - POST /v1/purge against a real casd (consensus/PROTOCOL.md,
# "POST /v1/purge" and "Deletion"): a purge at another ballot changes
# nothing; at the tombstone's ballot it drops the key (gone from /v1/keys
# and the key count) and raises the floor, which refuses low ballots on
# the key until a write above it; all of it survives a SIGKILL and a
# restart; the binary form works; a batch item of type PURGE is BAD.
. "$CAS_SRC/tests/lib.sh"
. "$CAS_SRC/tests/wire.sh"

BT=application/x-casfs
MAX=18446744073709551615

cas_start_cluster 1

# post PATH BODY [CURL ARGS...]: prints "STATUS BODY" of a JSON request.
post() {
	local out path=$1 body=$2
	shift 2
	out=$(cas_curl -s --max-time 10 -w '\n%{http_code}' "${CAS_HDRS[@]}" "$@" \
		--data-binary "$body" "$(cas_url 0)$path") || fail "POST $path: curl failed"
	printf '%s %s\n' "${out##*$'\n'}" "${out%$'\n'*}"
}

# expect WHAT WANT GOT: fails unless GOT is WANT.
expect() { [ "$3" = "$2" ] || fail "$1: got $3, want $2"; }

ballot() { printf '{"counter":"%s","id":"%s"}' "$1" "$2"; }
prepare() { post /v1/prepare "{\"key\":\"$1\",\"ballot\":$(ballot "$2" "$3")}"; }
purge() { post /v1/purge "{\"key\":\"$1\",\"ballot\":$(ballot "$2" "$3")}"; }
# accept KEY COUNTER ID VERSION DATA(base64): one recent change, the writer's.
accept() {
	post /v1/accept "{\"key\":\"$1\",\"ballot\":$(ballot "$2" "$3"),\"value\":{\"version\":\"$4\",\
\"recent\":[{\"proposer\":\"9\",\"op\":\"$2\",\"version\":\"$4\"}],\"data\":\"$5\"}}"
}

# health FIELD: the string FIELD of /v1/health.
health() {
	cas_curl -s --max-time 10 "$(cas_url 0)/v1/health" |
		sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"
}
# listed KEY: whether GET /v1/keys lists KEY.
listed() {
	cas_curl -s --max-time 10 "${CAS_HDRS[@]}" "$(cas_url 0)/v1/keys?limit=10000" |
		grep -Fq "\"$1\""
}
metric() { cas_curl -s --max-time 10 "$(cas_url 0)/metrics" | sed -n "s/^$1 //p"; }

base=$(health keys)
expect "floor at first" 0 "$(health floor)"
expect "casd_floor at first" 0 "$(metric casd_floor)"

# A tombstone of "gone" at 5/1 (prepare and accept of a version-0 value
# without bytes), a later promise of 7/2, and a live key.
expect "prepare gone" '200 {"result":"promise","accepted":{"counter":"0","id":"0"},"value":{"version":"0","recent":[],"data":""}}' \
	"$(prepare gone 5 1)"
expect "accept tombstone" '200 {"result":"accepted","ballot":{"counter":"5","id":"1"}}' \
	"$(accept gone 5 1 0 "")"
expect "promise 7/2" 200 "$(prepare gone 7 2 | cut -d' ' -f1)"
expect "accept live" 200 "$(accept live 3 1 1 "$(printf x | base64)" | cut -d' ' -f1)"
expect "keys" $((base + 2)) "$(health keys)"

# Another ballot: nothing changes, the answer names the key's ballot.
expect "purge at 4/1" '200 {"result":"purged","accepted":{"counter":"5","id":"1"}}' \
	"$(purge gone 4 1)"
expect "purge at 7/2" '200 {"result":"purged","accepted":{"counter":"5","id":"1"}}' \
	"$(purge gone 7 2)"
expect "purge a live key" '200 {"result":"purged","accepted":{"counter":"3","id":"1"}}' \
	"$(purge live 3 1)"
expect "floor after no drop" 0 "$(health floor)"
expect "keys after no drop" $((base + 2)) "$(health keys)"
listed gone || fail "gone not listed before its purge"
# Bad requests change nothing: a ballot past 2^62, a bad key, JSON of a prepare's kind.
expect "purge past 2^62" 400 "$(purge gone 4611686018427387905 1 | cut -d' ' -f1)"
expect "purge of a bad key" 400 "$(purge 'a b' 5 1 | cut -d' ' -f1)"
expect "purge without a ballot" 400 "$(post /v1/purge '{"key":"gone"}' | cut -d' ' -f1)"
expect "GET /v1/purge" 405 "$(cas_curl -s -o /dev/null -w '%{http_code}' "${CAS_HDRS[@]}" \
	"$(cas_url 0)/v1/purge")"
# Admitted as a prepare: no identity headers, no purge.
out=$(cas_curl -s -w '\n%{http_code}' --data-binary '{"key":"gone","ballot":{"counter":"5","id":"1"}}' \
	"$(cas_url 0)/v1/purge")
expect "purge without identity" 400 "${out##*$'\n'}"
out=$(cas_curl -s -w '\n%{http_code}' -H "Cas-Cluster: $CAS_CLUSTER" -H "Cas-Epoch: 2" \
	--data-binary '{"key":"gone","ballot":{"counter":"5","id":"1"}}' "$(cas_url 0)/v1/purge")
expect "purge at another epoch" 409 "${out##*$'\n'}"
listed gone || fail "gone dropped by a refused purge"

# The tombstone's ballot: dropped, the floor at the promise's counter.
expect "purge at 5/1" '200 {"result":"purged","accepted":{"counter":"0","id":"0"}}' \
	"$(purge gone 5 1)"
expect "purge again" '200 {"result":"purged","accepted":{"counter":"0","id":"0"}}' \
	"$(purge gone 5 1)"
expect "floor" 7 "$(health floor)"
expect "casd_floor" 7 "$(metric casd_floor)"
expect "keys after the drop" $((base + 1)) "$(health keys)"
expect "casd_keys after the drop" $((base + 1)) "$(metric casd_keys)"
listed gone && fail "gone still listed"
listed live || fail "live not listed"
expect "purges counted" 5 "$(metric 'casd_requests_total{kind="purge",result="ok"}')"

# check_dropped C: the floor refuses counters <= 7 on "gone" and on a key
# never seen, and the query reads it absent; "live" takes a prepare at C.
check_dropped() {
	expect "prepare at the floor" "409 {\"result\":\"reject\",\"blocking\":$(ballot 7 $MAX)}" \
		"$(prepare gone 7 $MAX)"
	expect "accept below the floor" "409 {\"result\":\"reject\",\"blocking\":$(ballot 7 $MAX)}" \
		"$(accept gone 6 1 1 "")"
	expect "prepare of a new key" "409 {\"result\":\"reject\",\"blocking\":$(ballot 7 $MAX)}" \
		"$(prepare new 2 1)"
	expect "query" '200 {"result":"current","accepted":{"counter":"0","id":"0"},"value":{"version":"0","recent":[],"data":""}}' \
		"$(post /v1/query '{"key":"gone"}')"
	# A key with a row follows the ordinary rules alone.
	expect "prepare of live at $1" 200 "$(prepare live "$1" 1 | cut -d' ' -f1)"
}
check_dropped 4

# A crash and a restart: the floor and the drop came back from the log.
cas_stop_node 0 KILL
cas_start_node 0
expect "floor after a restart" 7 "$(health floor)"
expect "keys after a restart" $((base + 1)) "$(health keys)"
listed gone && fail "gone listed after a restart"
check_dropped 5 4
# And once more, from LMDB (the restart's checkpoint took the log).
cas_stop_node 0 TERM
cas_start_node 0
expect "floor after a second restart" 7 "$(health floor)"
listed gone && fail "gone listed after a second restart"

# Above the floor the key lives again.
expect "prepare above the floor" '200 {"result":"promise","accepted":{"counter":"0","id":"0"},"value":{"version":"0","recent":[],"data":""}}' \
	"$(prepare gone 8 1)"
data=$(printf 'again' | base64)
expect "accept above the floor" 200 "$(accept gone 8 1 1 "$data" | cut -d' ' -f1)"
expect "read back" "200 {\"result\":\"current\",\"accepted\":$(ballot 8 1),\"value\":{\"version\":\"1\",\"recent\":[{\"proposer\":\"9\",\"op\":\"8\",\"version\":\"1\"}],\"data\":\"$data\"}}" \
	"$(post /v1/query '{"key":"gone"}')"
listed gone || fail "gone not listed once written again"
expect "keys once written again" $((base + 2)) "$(health keys)"

# The binary form: PURGE c1 04, key, ballot; PURGED c1 85, accepted.
bpurge() { printf '\xc1\x04'; bkey "$1"; bballot "$2" "$3"; }
# bpost PATH FILE: the binary answer into $CAS_TMP/out, prints the status.
bpost() {
	cas_curl -s --max-time 10 -o "$CAS_TMP/out" -w '%{http_code}' -H "Content-Type: $BT" \
		"${CAS_HDRS[@]}" --data-binary "@$2" "$(cas_url 0)$1"
}
hex() { od -An -tx1 -v "$1" | tr -d ' \n'; }
Z16=00000000000000000000000000000000
expect "tombstone bin prepare" 200 "$(prepare bin 9 1 | cut -d' ' -f1)"
expect "tombstone bin accept" 200 "$(accept bin 9 1 0 "" | cut -d' ' -f1)"
bpurge bin 9 2 >"$CAS_TMP/p"
expect "binary purge at 9/2" 200 "$(bpost /v1/purge "$CAS_TMP/p")"
expect "binary PURGED 9/1" c18509000000000000000100000000000000 "$(hex "$CAS_TMP/out")"
listed bin || fail "bin dropped at another ballot"
bpurge bin 9 1 >"$CAS_TMP/p"
expect "binary purge at 9/1" 200 "$(bpost /v1/purge "$CAS_TMP/p")"
expect "binary PURGED 0/0" c185$Z16 "$(hex "$CAS_TMP/out")"
listed bin && fail "bin listed after its binary purge"
expect "floor after the binary purge" 9 "$(health floor)"
printf '\xc1\x04\x03bi' >"$CAS_TMP/p" # cut short
expect "binary purge cut short" 400 "$(bpost /v1/purge "$CAS_TMP/p")"

# A batch with a PURGE item: that item is BAD (status 1) and runs not;
# the others run.
expect "tombstone b2 prepare" 200 "$(prepare b2 10 1 | cut -d' ' -f1)"
expect "tombstone b2 accept" 200 "$(accept b2 10 1 0 "" | cut -d' ' -f1)"
{ bitem bpurge b2 10 1; bitem bquery b2; } >"$CAS_TMP/batch"
expect "batch" 200 "$(bpost /v1/batch "$CAS_TMP/batch")"
out=$(hex "$CAS_TMP/out")
expect "batch item 1 status" 01 "${out:0:2}"
expect "batch item 2 status" 00 "${out:$((10 + 2 * $(od -An -tu4 -j1 -N4 "$CAS_TMP/out" | tr -d ' '))):2}"
listed b2 || fail "b2 dropped by a batch"
expect "floor after the batch" 9 "$(health floor)"

echo "casd_purge: ok"
