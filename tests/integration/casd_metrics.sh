#!/usr/bin/env bash
# casd_metrics.sh - GET /metrics (README "Monitor"): the Prometheus text
# exposition parses (every sample's name has a # TYPE, every value is a
# number), the counters move with what happens (an accept after a write,
# a refused token), and /metrics asks for the token as every route but
# /v1/health does.
. "$CAS_SRC/tests/lib.sh"

cas_tls_on
cas_start_cluster 3
T=$CAS_TMP
C=$CAS_CERTS
NOTOKEN=(--cacert "$C/ca.crt" --cert "$C/client.crt" --key "$C/client.key")

# scrape FILE: GET /metrics of node 0 into FILE, with the token.
scrape() {
	curl -sf "${CAS_CURL_TLS[@]}" -o "$1" -D "$1.hdr" "$(cas_url 0)/metrics" ||
		fail "GET /metrics failed"
	grep -qi '^content-type: text/plain; version=0.0.4' "$1.hdr" ||
		fail "GET /metrics: $(cat "$1.hdr")"
}

# check FILE: the exposition parses (tests/prom.py) with every metric of
# casd; prints name{labels}=value lines.
check() {
	python3 "$CAS_SRC/tests/prom.py" "$1" casd_ casd_requests_total casd_refused_total \
		casd_log_syncs_total casd_log_sync_seconds casd_checkpoint_seconds \
		casd_store_batch_size casd_keys casd_bytes casd_connections_open \
		casd_connections_refused_total casd_build_info ||
		fail "GET /metrics does not parse: $(head -c 2000 "$1")"
}

# value FILE SAMPLE: the value of SAMPLE (name{labels}) in check's output.
value() { grep -F "$2=" "$1" | head -n 1 | cut -d= -f2- | sed 's/.*=//'; }

scrape "$T/m1"
check "$T/m1" >"$T/s1"
grep -q '^casd_build_info{version="[0-9][^"]*"}=1$' "$T/s1" || fail "build_info: $(cat "$T/s1")"
A='casd_requests_total{kind="accept",result="ok"}'
a1=$(value "$T/s1" "$A")
s1=$(value "$T/s1" casd_log_syncs_total)
[ -n "$a1" ] && [ -n "$s1" ] || fail "no $A or log syncs: $(cat "$T/s1")"

echo hello | casctl put metrics-key || fail "casctl put"
# Every node of a majority accepted; node 0 may be the one left behind:
# write until it has seen one.
for _ in 1 2 3 4 5; do
	scrape "$T/m2"
	check "$T/m2" >"$T/s2"
	a2=$(value "$T/s2" "$A")
	[ "${a2%.*}" -gt "${a1%.*}" ] && break
	echo again | casctl put metrics-key || fail "casctl put"
done
[ "${a2%.*}" -gt "${a1%.*}" ] || fail "$A did not grow: $a1 -> $a2"
s2=$(value "$T/s2" casd_log_syncs_total)
[ "${s2%.*}" -gt "${s1%.*}" ] || fail "casd_log_syncs_total did not grow: $s1 -> $s2"
[ "$(value "$T/s2" casd_keys)" -ge 1 ] || fail "casd_keys: $(cat "$T/s2")"
[ "$(value "$T/s2" casd_connections_open)" -ge 1 ] || fail "no connection open"

# The token: /metrics refuses a scrape without it, and counts the refusal;
# /v1/health needs none.
t1=$(value "$T/s2" 'casd_refused_total{reason="token"}')
code=$(curl -s "${NOTOKEN[@]}" -o /dev/null -w '%{http_code}' "$(cas_url 0)/metrics")
[ "$code" = 401 ] || fail "GET /metrics without the token: $code"
code=$(curl -s "${NOTOKEN[@]}" -o /dev/null -w '%{http_code}' "$(cas_url 0)/v1/health")
[ "$code" = 200 ] || fail "GET /v1/health without the token: $code"
scrape "$T/m3"
check "$T/m3" >"$T/s3"
t2=$(value "$T/s3" 'casd_refused_total{reason="token"}')
[ "$t2" -gt "$t1" ] || fail "refused token did not grow: $t1 -> $t2"
code=$(curl -s "${CAS_CURL_TLS[@]}" -X POST -o /dev/null -w '%{http_code}' "$(cas_url 0)/metrics")
[ "$code" = 405 ] || fail "POST /metrics: $code"
echo "casd_metrics: ok"
