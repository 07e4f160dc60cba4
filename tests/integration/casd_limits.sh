# casd_limits.sh - connection limits and deadlines (PROTOCOL.md, "Limits";
# issue #13): one address (127.0.0.2) holding 1,100 connections to each of
# two nodes of three, half-sent requests (a header line a second, never
# the end) and then idle ones, while casctl on 127.0.0.1 keeps reading and
# writing within its normal deadline; the nodes log the refusals and the
# closed connections with the address. Then the limit in all: two
# addresses over it, and the node still takes a third. Deadlines are
# scaled down with casd's flags to keep the test short.
. "$CAS_SRC/tests/lib.sh"

FLOOD=$CAS_BIN/tests/connflood
[ -x "$FLOOD" ] || FLOOD=$CAS_BIN/connflood
SECONDS_FLOOD=8

CAS_CASD_ARGS="--header-timeout-ms 1500 --idle-timeout-ms 3000" cas_start_cluster 3

# flood I MODE FROM: connflood from FROM holding 1,100 connections to node
# I for SECONDS_FLOOD seconds; its report in $CAS_TMP/flood.I.out.
flood() {
	rm -f "$CAS_TMP/flood.$1.ready"
	"$FLOOD" --port "${CAS_PORTS[$1]}" --bind "$3" --count 1100 --mode "$2" \
		--interval-ms 1000 --seconds "$SECONDS_FLOOD" \
		--ready-file "$CAS_TMP/flood.$1.ready" >"$CAS_TMP/flood.$1.out" 2>&1 &
	CAS_EXTRA_PIDS+=($!)
	FLOOD_PIDS+=($!)
}

# honest_client SECONDS: casctl on 127.0.0.1 writes and reads for SECONDS,
# each operation within casctl's default deadline (5 s); fails otherwise.
honest_client() {
	local end=$((SECONDS + $1)) n=0 v
	while [ "$SECONDS" -lt "$end" ]; do
		n=$((n + 1))
		v=$(echo "v$n" | casctl put "k$n" 2>&1) || fail "casctl put during the flood: $v"
		v=$(casctl get "k$n" 2>&1) || fail "casctl get during the flood: $v"
		[ "$v" = "v$n" ] || fail "casctl get k$n: $v"
		curl -s -o /dev/null --max-time 2 "$(cas_url 0)/v1/health" ||
			fail "node 0's health did not answer within 2 s"
	done
	[ "$n" -ge 3 ] || fail "only $n rounds in $1 s"
	echo "$n rounds"
}

# attack MODE: floods nodes 0 and 1 from 127.0.0.2 while the honest client
# works; each flood must have had connections closed by the node.
attack() {
	local i
	FLOOD_PIDS=()
	flood 0 "$1" 127.0.0.2
	flood 1 "$1" 127.0.0.2
	cas_wait_until 100 test -e "$CAS_TMP/flood.0.ready" || fail "flood 0 did not start"
	cas_wait_until 100 test -e "$CAS_TMP/flood.1.ready" || fail "flood 1 did not start"
	sleep 1
	honest_client $((SECONDS_FLOOD - 3))
	for i in "${FLOOD_PIDS[@]}"; do wait "$i" || fail "connflood failed"; done
	for i in 0 1; do
		grep -Eq '^opened [0-9]+ closed-by-server [1-9][0-9]* ' "$CAS_TMP/flood.$i.out" ||
			fail "node $i closed none of the flood's connections: $(cat "$CAS_TMP/flood.$i.out")"
	done
}

# Half-sent requests: past the address's limit they are refused, and
# those held are closed at the header deadline.
attack headers
for i in 0 1; do
	grep -Eq 'warn: refused a connection from 127\.0\.0\.2: it has [0-9]+ open' \
		"$CAS_TMP/n$i.log" || fail "node $i logged no refusal: $(tail -n 3 "$CAS_TMP/n$i.log")"
	# It held at most the address's limit (128), give or take one per
	# thread accepting at the same moment (16).
	most=$(grep -Eo 'from 127\.0\.0\.2: it has [0-9]+ open' "$CAS_TMP/n$i.log" |
		awk '{ print $5 }' | sort -n | tail -n 1)
	[ "$most" -le 144 ] || fail "node $i held $most connections of 127.0.0.2"
	grep -Eq 'warn: closed connection from 127\.0\.0\.2:[0-9]+: no complete request headers within 1500 ms' \
		"$CAS_TMP/n$i.log" || fail "node $i logged no header deadline"
done
# Idle connections, never a request.
attack idle

# Rate-limited: a few lines a second, not one per connection.
n=$(grep -c '127\.0\.0\.2' "$CAS_TMP/n0.log")
[ "$n" -lt 200 ] || fail "$n lines about 127.0.0.2: not rate-limited"
grep -q 'more since, not logged' "$CAS_TMP/n0.log" || fail "no count of lines not logged"

# The limit in all: 40 connections, 30 per address. Two addresses hold 30
# each (idle, no request): the oldest are closed to make room, and a
# client from a third address is served at once.
CAS_CASD_ARGS="--max-connections 40 --max-per-address 30" cas_start_node 3
FLOOD_PIDS=()
for from in 127.0.0.2 127.0.0.3; do
	"$FLOOD" --port "${CAS_PORTS[3]}" --bind "$from" --count 30 --mode idle --seconds 5 \
		>"$CAS_TMP/flood.$from.out" 2>&1 &
	CAS_EXTRA_PIDS+=($!)
	FLOOD_PIDS+=($!)
done
sleep 2
for k in 1 2 3 4 5; do
	curl -s -o /dev/null --max-time 2 "$(cas_url 3)/v1/health" ||
		fail "node 3's health did not answer within 2 s under its limit in all"
	sleep 0.2
done
for i in "${FLOOD_PIDS[@]}"; do wait "$i" || fail "connflood failed"; done
grep -Eq 'warn: closed connection from 127\.0\.0\.[23]:[0-9]+ \(no complete request for [0-9]+ ms\) to make room' \
	"$CAS_TMP/n3.log" || fail "node 3 made no room: $(tail -n 3 "$CAS_TMP/n3.log")"
echo "casd_limits: ok"
