# casd_durable.sh - SIGKILL under load loses nothing: every promise and
# accept a client saw acknowledged is still there after a restart. The
# workers run at once, so the kill lands among batches of group commit.
. "$CAS_SRC/tests/lib.sh"

WORKERS=8
ROUNDS=2
MIN_ACKS=25 # accepts per worker before the kill

# Uninitialized (lib.sh: cas_start_cluster may run casctl init otherwise).
CAS_NO_INIT=1 cas_start_cluster 1
cas_join_nodes # a restart keeps the identity: joined once

# post PATH BODY: prints "STATUS BODY"; fails (non-zero) when the node
# did not answer.
post() {
	local out
	out=$(cas_curl -s --max-time 10 -w '\n%{http_code}' "${CAS_HDRS[@]}" --data-binary "$2" \
		"$(cas_url 0)$1") || return 1
	printf '%s %s\n' "${out##*$'\n'}" "${out%$'\n'*}"
}

ballot() { printf '"ballot":{"counter":"%s","id":"%s"}' "$1" "$2"; }

# The bytes worker w writes with counter c, base64.
data_of() { printf 'w%s-c%s' "$1" "$2" | base64 -w0; }

# worker W BASE: rounds of prepare and accept on key dW with counters
# BASE+1, BASE+2, ... (every third round promises only), logging each
# acknowledged step as "P c" or "A c", until the node stops answering.
worker() {
	local w=$1 base=$2 id=$(($1 + 1)) log="$CAS_TMP/w$1.log" i c r
	for ((i = 1; i <= 100000; i++)); do
		c=$((base + i))
		r=$(post /v1/prepare "{\"key\":\"d$w\",$(ballot "$c" "$id")}") || return 0
		[ "${r%% *}" = 200 ] || { echo "X prepare $c: $r" >>"$log"; return 1; }
		echo "P $c" >>"$log"
		((i % 3 == 0)) && continue
		r=$(post /v1/accept "{\"key\":\"d$w\",$(ballot "$c" "$id"),\"value\":\
{\"version\":\"$c\",\"recent\":[{\"proposer\":\"$w\",\"op\":\"$c\",\"version\":\"$c\"}],\"data\":\"$(data_of "$w" "$c")\"}}") || return 0
		[ "${r%% *}" = 200 ] || { echo "X accept $c: $r" >>"$log"; return 1; }
		echo "A $c" >>"$log"
	done
}

enough_acks() {
	local w
	for ((w = 0; w < WORKERS; w++)); do
		[ "$(grep -c '^A ' "$CAS_TMP/w$w.log" 2>/dev/null)" -ge "$MIN_ACKS" ] || return 1
	done
}

for ((round = 1; round <= ROUNDS; round++)); do
	base=$((round * 1000000))
	pids=()
	for ((w = 0; w < WORKERS; w++)); do
		: >"$CAS_TMP/w$w.log"
		worker "$w" "$base" &
		pids+=($!)
		CAS_EXTRA_PIDS+=($!)
	done
	cas_wait_until 600 enough_acks || fail "round $round: workers too slow"
	cas_stop_node 0 KILL
	for ((w = 0; w < WORKERS; w++)); do
		wait "${pids[$w]}" || fail "worker $w: $(grep '^X' "$CAS_TMP/w$w.log")"
	done
	cas_start_node 0

	for ((w = 0; w < WORKERS; w++)); do
		id=$((w + 1))
		last_p=$(awk '$1 == "P" { c = $2 } END { print c + 0 }' "$CAS_TMP/w$w.log")
		last_a=$(awk '$1 == "A" { c = $2 } END { print c + 0 }' "$CAS_TMP/w$w.log")
		[ "$last_a" -gt "$base" ] || fail "worker $w logged no accept"

		# The acknowledged promise holds: a prepare at it, and an
		# accept below it, are refused, naming a ballot at least as high.
		for r in "$(post /v1/prepare "{\"key\":\"d$w\",$(ballot "$last_p" "$id")}")" \
			"$(post /v1/accept "{\"key\":\"d$w\",$(ballot "$last_p" 0),\"value\":\
{\"version\":\"1\",\"recent\":[],\"data\":\"\"}}")"; do
			[ "${r%% *}" = 409 ] || fail "worker $w: promise $last_p lost: $r"
			blocking=$(sed -n 's/.*"blocking":{"counter":"\([0-9]*\)".*/\1/p' <<<"$r")
			[ "${blocking:-0}" -ge "$last_p" ] ||
				fail "worker $w: blocking $blocking below promise $last_p"
		done

		# The acknowledged accept is there: a much higher prepare
		# returns an accepted ballot at least as high, with its value.
		r=$(post /v1/prepare "{\"key\":\"d$w\",$(ballot $((base + 999999)) 9)}")
		[ "${r%% *}" = 200 ] || fail "worker $w: high prepare: $r"
		acc=$(sed -n 's/.*"accepted":{"counter":"\([0-9]*\)","id":"\([0-9]*\)"}.*/\1 \2/p' \
			<<<"$r")
		[ "${acc#* }" = "$id" ] || fail "worker $w: accepted ballot of another id: $r"
		acc=${acc% *}
		[ "$acc" -ge "$last_a" ] || fail "worker $w: accept $last_a lost (now $acc): $r"
		grep -Fq "\"version\":\"$acc\",\"recent\":[{\"proposer\":\"$w\",\"op\":\"$acc\",\"version\":\"$acc\"}],\"data\":\"$(data_of "$w" "$acc")\"" \
			<<<"$r" || fail "worker $w: value does not match ballot $acc: $r"
		echo "round $round worker $w: promise $last_p, accept $last_a, found $acc"
	done
done

r=$(cas_curl -sf "$(cas_url 0)/v1/health") || fail "health"
grep -q "\"keys\":\"$WORKERS\"" <<<"$r" || fail "health: $r"
echo "casd_durable: ok"
