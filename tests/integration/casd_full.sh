# casd_full.sh - a real casd whose LMDB map is too small (--map-size 1):
# once full, writes fail with an error naming --map-size and what is in
# use, and GET /v1/health answers 503 with the reason; a restart with the
# same map size (after SIGKILL) starts and serves what was acknowledged;
# one with a larger map is healthy and takes writes again.
. "$CAS_SRC/tests/lib.sh"

ARGS=(--map-size 1 --wal-size 1)
OUT=$CAS_TMP/resp

# start_node ARGS...: starts node 0 with ARGS and waits until it answers
# /v1/health, with any status (cas_start_node wants a 200).
start_node() {
	local port=${CAS_PORTS[0]:-0}
	mkdir -p "$CAS_TMP/n0"
	rm -f "$CAS_TMP/n0.port"
	"${CAS_VG[@]}" "$CAS_BIN/casd" --listen "127.0.0.1:$port" --data "$CAS_TMP/n0" \
		--port-file "$CAS_TMP/n0.port" "$@" >>"$CAS_TMP/n0.log" 2>&1 &
	CAS_PIDS[0]=$!
	cas_wait_until $((100 * CAS_SLOW)) test -s "$CAS_TMP/n0.port" ||
		fail "node did not start: $(tail -n 5 "$CAS_TMP/n0.log")"
	CAS_PORTS[0]=$(cat "$CAS_TMP/n0.port")
	cas_wait_until $((100 * CAS_SLOW)) curl -s -o /dev/null "$(cas_url 0)/v1/health" ||
		fail "node does not answer /v1/health"
}

# req METHOD PATH [BODY]: prints the status; the body goes to $OUT.
req() {
	local args=(-s -o "$OUT" -w '%{http_code}' -X "$1" --max-time 30 "${CAS_HDRS[@]}")
	[ $# -ge 3 ] && args+=(--data-binary "$3")
	curl "${args[@]}" "$(cas_url 0)$2" || fail "$1 $2: curl failed"
}

# The bytes of key fI, base64: 8 KiB of one letter.
data_of() {
	local letters=abcdefghijklmnopqrstuvwxyz
	head -c 8192 /dev/zero | tr '\0' "${letters:$(($1 % 26)):1}" | base64 -w0
}

accept() {
	req POST /v1/accept "{\"key\":\"f$1\",\"ballot\":{\"counter\":\"$(($1 + 1))\",\"id\":\"1\"},\
\"value\":{\"version\":\"1\",\"recent\":[],\"data\":\"$(data_of "$1")\"}}"
}

# check_acked N: queries of f0..f(N-1) answer their acknowledged values.
check_acked() {
	local i
	for ((i = 0; i < $1; i++)); do
		[ "$(req POST /v1/query "{\"key\":\"f$i\"}")" = 200 ] ||
			fail "query f$i: $(head -c 300 "$OUT")"
		grep -Fq "\"data\":\"$(data_of "$i")\"" "$OUT" || fail "f$i: not its value"
	done
}

start_node "${ARGS[@]}"
cas_join_nodes # once: restarts keep the identity
[ "$(req GET /v1/health)" = 200 ] || fail "health of a fresh node: $(cat "$OUT")"

# Write until the node refuses: a 1 MiB log filled twice over a 1 MiB map.
n=0
while :; do
	code=$(accept "$n")
	[ "$code" = 200 ] || break
	n=$((n + 1))
	[ "$n" -lt 1000 ] || fail "1000 writes of 8 KiB into a map of 1 MiB"
done
[ "$code" = 500 ] || fail "write $n: status $code: $(head -c 300 "$OUT")"
grep -q -- '--map-size' "$OUT" && grep -q 'in use' "$OUT" ||
	fail "write $n: the error does not name --map-size and the use: $(cat "$OUT")"
echo "$n writes acknowledged, then: $(cat "$OUT")"
[ "$(accept "$n")" = 500 ] || fail "a write after the store filled up"
[ "$(req GET /v1/health)" = 503 ] || fail "health of a full node: $(cat "$OUT")"
grep -q '"status":"degraded","reason":"[^"]*--map-size' "$OUT" || fail "health: $(cat "$OUT")"
check_acked "$n"

# Killed, and restarted with the same map size: it starts, says why it
# takes no writes, and serves what it acknowledged.
cas_stop_node 0 KILL
start_node "${ARGS[@]}"
[ "$(req GET /v1/health)" = 503 ] || fail "health after restart: $(cat "$OUT")"
grep -q -- '--map-size' "$OUT" || fail "health after restart: $(cat "$OUT")"
check_acked "$n"
cas_stop_node 0 TERM

# With room, the node is healthy again and takes writes.
start_node --map-size 16 --wal-size 1
[ "$(req GET /v1/health)" = 200 ] || fail "health with a larger map: $(cat "$OUT")"
check_acked "$n"
[ "$(accept "$n")" = 200 ] || fail "a write with a larger map: $(cat "$OUT")"
check_acked $((n + 1))
echo "casd_full: ok"
