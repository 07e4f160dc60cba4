# casd_identity.sh - real casd processes and raw HTTP (curl only): a node
# on an empty data folder is uninitialized; POST /v1/admin/join with a
# configuration written here makes two nodes one cluster; prepare, accept,
# query, batch and keys need the identity headers and refuse another
# cluster (421) and another epoch (409); POST /v1/admin/config moves the
# epoch; a restart keeps identity and configuration; a wiped data folder
# comes back uninitialized and refuses with 503 (PROTOCOL.md, "Cluster
# identity and membership").
. "$CAS_SRC/tests/lib.sh"
. "$CAS_SRC/tests/wire.sh"

OUT=$CAS_TMP/resp
BT=application/x-casfs

# req NODE METHOD PATH STATUS [BODY] [CURL ARGS...]: sends BODY (none when
# "") with the identity headers in CAS_HDRS and checks the status; the
# answer goes to $OUT.
req() {
	local i=$1 method=$2 path=$3 want=$4 body=${5:-} code
	shift 5 2>/dev/null || shift $#
	local args=(-s -o "$OUT" -w '%{http_code}' -X "$method" --max-time 30 "${CAS_HDRS[@]}" "$@")
	[ -n "$body" ] && args+=(--data-binary "$body")
	code=$(cas_curl "${args[@]}" "$(cas_url "$i")$path") || fail "$method $path: curl failed"
	[ "$code" = "$want" ] ||
		fail "node $i: $method $path ${body:0:80}: status $code, want $want: $(head -c 300 "$OUT")"
}
# uninit_health NODE: /v1/health says "uninitialized": 503, or 200 while
# casd admits requests without identity headers on a node nobody joined
# (the transition of issue #12: http.h, admit_unidentified).
uninit_health() {
	local code
	code=$(cas_curl -s -o "$OUT" -w '%{http_code}' --max-time 30 "$(cas_url "$1")/v1/health")
	[ "$code" = 503 ] || [ "$code" = 200 ] || fail "health of node $1: $code"
	grep -q '^{"status":"uninitialized","version":"[^"]*","keys":"0"}$' "$OUT" ||
		fail "health of node $1: $(cat "$OUT")"
}
# has TEXT: the last answer contains TEXT.
has() { grep -Fq -- "$1" "$OUT" || fail "answer lacks $1: $(head -c 300 "$OUT")"; }

prepare() { printf '{"key":"%s","ballot":{"counter":"%s","id":"1"}}' "$1" "$2"; }
accept() {
	printf '{"key":"%s","ballot":{"counter":"%s","id":"1"},"value":{"version":"1","recent":[],"data":"%s"}}' \
		"$1" "$2" "$(printf '%s' "$3" | base64 -w0)"
}
query() { printf '{"key":"%s"}' "$1"; }

# refused NODE STATUS TEXT: prepare, accept, query, batch and keys all
# answer STATUS with TEXT in a JSON error, and change nothing.
refused() {
	local i=$1 want=$2 text=$3
	req "$i" POST /v1/prepare "$want" "$(prepare r 7)"
	has "$text"
	req "$i" POST /v1/accept "$want" "$(accept r 7 no)"
	has "$text"
	req "$i" POST /v1/query "$want" "$(query r)"
	has "$text"
	bitem bprepare r 7 1 >"$CAS_TMP/batch"
	req "$i" POST /v1/batch "$want" "" -H "Content-Type: $BT" --data-binary @"$CAS_TMP/batch"
	has "$text"
	req "$i" GET /v1/keys "$want"
	has "$text"
}

# Uninitialized (lib.sh: cas_start_cluster may run casctl init otherwise).
CAS_NO_INIT=1 cas_start_cluster 2
N0=$(cas_random_hex 8)
N1=$(cas_random_hex 8)
CLUSTER=$(cas_random_hex 16)
OTHER=$(cas_random_hex 16)
config() { # EPOCH: both nodes, members
	printf '{"cluster":"%s","epoch":"%s","members":[{"id":"%s","url":"%s"},{"id":"%s","url":"%s"}]}' \
		"$CLUSTER" "$1" "$N0" "$(cas_url 0)" "$N1" "$(cas_url 1)"
}

# Uninitialized: health and config say so (503), requests with the
# headers are refused with 503.
for i in 0 1; do
	CAS_HDRS=()
	uninit_health "$i"
	req "$i" GET /v1/config 503
	grep -Fxq '{"error":"node is not initialized","status":"uninitialized"}' "$OUT" ||
		fail "config of an uninitialized node: $(cat "$OUT")"
done
cas_set_identity "$CLUSTER" 1
refused 0 503 '"status":"uninitialized"'

# Bad joins change nothing: a node absent from the configuration, a bad
# id, an unknown field, a bad epoch.
req 0 POST /v1/admin/join 400 "{\"node\":\"$(cas_random_hex 8)\",\"config\":$(config 1)}"
req 0 POST /v1/admin/join 400 "{\"node\":\"${N0:1}\",\"config\":$(config 1)}"
req 0 POST /v1/admin/join 400 "{\"node\":\"$N0\",\"config\":$(config 1),\"x\":1}"
req 0 POST /v1/admin/join 400 "{\"node\":\"$N0\",\"config\":$(config 01)}"
req 0 GET /v1/config 503
[ ! -e "$CAS_TMP/n0/identity.json" ] || fail "a bad join wrote the identity"

# The joins, written here.
req 0 POST /v1/admin/join 200 "{\"node\":\"$N0\",\"config\":$(config 1)}"
has "\"node\":\"$N0\""
req 1 POST /v1/admin/join 200 "{\"node\":\"$N1\",\"config\":$(config 1)}"
req 1 POST /v1/admin/join 200 "{\"node\":\"$N1\",\"config\":$(config 1)}" # a retry
req 1 POST /v1/admin/join 409 "{\"node\":\"$N0\",\"config\":$(config 1)}"
has '"error":"node is already initialized'
for i in 0 1; do
	req "$i" GET /v1/health 200
	has "\"cluster\":\"$CLUSTER\""
	has '"epoch":"1"'
done

# With the right headers: a round on both, a query, the keys.
for i in 0 1; do
	req "$i" POST /v1/prepare 200 "$(prepare k 5)"
	has '"result":"promise"'
	req "$i" POST /v1/accept 200 "$(accept k 5 hello)"
	req "$i" POST /v1/query 200 "$(query k)"
	has "\"data\":\"$(printf hello | base64 -w0)\""
	req "$i" GET '/v1/keys?limit=5' 200
	grep -Fxq '{"keys":["k"],"more":false}' "$OUT" || fail "keys: $(cat "$OUT")"
done

# Without them, or wrong: 400, 421, 409; nothing changes.
CAS_HDRS=()
refused 0 400 '"error":"missing header Cas-Cluster"'
CAS_HDRS=(-H "Cas-Cluster: $CLUSTER")
refused 0 400 '"error":"missing header Cas-Epoch"'
cas_set_identity "${CLUSTER^^}" 1
refused 0 400 'Cas-Cluster: not 32 lowercase hex digits'
cas_set_identity "$CLUSTER" 1
CAS_HDRS+=(-H "Cas-Epoch: 1")
refused 0 400 'sent twice'
cas_set_identity "$CLUSTER" x
refused 0 400 'Cas-Epoch: not'
cas_set_identity "$OTHER" 1
refused 1 421 "\"error\":\"node belongs to cluster $CLUSTER\",\"cluster\":\"$CLUSTER\""
cas_set_identity "$CLUSTER" 2
refused 1 409 '{"error":"node is behind","epoch":"1"}'

# A new epoch on node 0 only: requests at 1 are stale there, at 2 fine;
# node 1 is behind for 2.
CAS_HDRS=()
req 0 POST /v1/admin/config 200 "{\"config\":$(config 2)}"
has '"epoch":"2"'
req 0 POST /v1/admin/config 409 "{\"config\":$(config 1)}"
has '"error":"stale configuration: epoch 1 is below the node'\''s 2"'
req 0 POST /v1/admin/config 400 "{\"config\":$(config 3),\"node\":\"$N0\"}"
cas_set_identity "$CLUSTER" 1
refused 0 409 '{"error":"stale configuration","epoch":"2"}'
req 1 POST /v1/query 200 "$(query k)"
cas_set_identity "$CLUSTER" 2
req 0 POST /v1/prepare 200 "$(prepare k 6)"
req 1 POST /v1/prepare 409 "$(prepare k 6)"
has '{"error":"node is behind","epoch":"1"}'

# The refusals were logged, with the peer's address, not one line each.
grep -q 'warn: POST /v1/prepare from 127.0.0.1:[0-9]* 409 (stale configuration)' \
	"$CAS_TMP/n0.log" || fail "no refusal in the log: $(tail -n 5 "$CAS_TMP/n0.log")"
n=$(grep -c '(bad identity headers)' "$CAS_TMP/n0.log")
[ "$n" -lt 20 ] || fail "$n lines for 20 refusals: not rate-limited"

# A restart keeps identity and configuration, and what was accepted.
cas_stop_node 0 KILL
cas_start_node 0
req 0 GET /v1/config 200
grep -Fq "{\"cluster\":\"$CLUSTER\",\"epoch\":\"2\",\"members\":[{\"id\":\"$N0\"" "$OUT" ||
	fail "config after a restart: $(cat "$OUT")"
has "\"node\":\"$N0\""
req 0 POST /v1/query 200 "$(query k)"
has "\"data\":\"$(printf hello | base64 -w0)\""
cas_set_identity "$CLUSTER" 1
refused 0 409 '"error":"stale configuration"'

# A wiped data folder comes back uninitialized: prepare, accept, query
# (and batch and keys) of the cluster are refused with 503.
cas_stop_node 1 TERM
rm -rf "$CAS_TMP/n1"
cas_start_node 1
cas_set_identity "$CLUSTER" 1
refused 1 503 '{"error":"node is not initialized","status":"uninitialized"}'
req 1 GET /v1/config 503
uninit_health 1
echo "casd_identity: ok"
