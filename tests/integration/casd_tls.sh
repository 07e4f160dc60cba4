# casd_tls.sh - who may ask a casd (PROTOCOL.md, "Authentication"; issue
# #13), with real certificates made here (tests/certs.sh) and curl: with
# --tls-ca, a client without a certificate, with one of another authority
# or an expired one fails the TLS handshake; with --token-file, a request
# without the token or with a wrong one is a 401; each is logged with the
# peer and changes nothing (the keys, asked with the right credentials,
# stay as they were). GET /v1/health needs no token. The token appears in
# no log, ps or message. Files that cannot be read stop casd at start with
# one line, and an address beyond loopback with neither client
# certificates nor a token is refused before anything listens.
. "$CAS_SRC/tests/lib.sh"
. "$CAS_SRC/tests/certs.sh"

OUT=$CAS_TMP/resp
cas_ca ca
cas_ca other
cas_cert ca node
cas_cert ca alice client
cas_cert other mallory client
cas_cert_expired ca old
TOKEN=$(cas_random_hex 32)
(umask 077 && echo "$TOKEN" >"$CAS_TMP/token")
CA=(--cacert "$(cas_pem ca crt)")
ALICE=(--cert "$(cas_pem alice crt)" --key "$(cas_pem alice key)")
AUTH=(-H "Authorization: Bearer $TOKEN")

# start NAME ARGS...: casd on 127.0.0.1, a free port, data in
# $CAS_TMP/NAME, log in $CAS_TMP/NAME.log; sets PORT. Stopped at exit.
start() {
	local name=$1
	shift
	rm -f "$CAS_TMP/$name.port"
	"$CAS_BIN/casd" --listen 127.0.0.1:0 --data "$CAS_TMP/$name" \
		--port-file "$CAS_TMP/$name.port" "$@" >>"$CAS_TMP/$name.log" 2>&1 &
	CAS_EXTRA_PIDS+=($!)
	cas_wait_until 100 test -s "$CAS_TMP/$name.port" ||
		fail "casd $name did not start: $(tail -n 5 "$CAS_TMP/$name.log")"
	PORT=$(cat "$CAS_TMP/$name.port")
}

# code URL CURL-ARGS...: the status of a request (000: no HTTP answer, the
# connection or handshake failed); the body in $OUT.
code() {
	local url=$1
	shift
	rm -f "$OUT"
	curl -s -o "$OUT" -w '%{http_code}' --max-time 10 "$@" "$url" || true
}
# want STATUS URL CURL-ARGS...
want() {
	local st=$1 got
	shift
	got=$(code "$@")
	[ "$got" = "$st" ] || fail "$*: status $got, want $st: $(head -c 300 "$OUT" 2>/dev/null)"
}
# logged NAME TEXT: the log of NAME has a line with TEXT (a grep -E pattern).
logged() {
	cas_wait_until 30 grep -Eq -- "$2" "$CAS_TMP/$1.log" ||
		fail "$1's log lacks /$2/: $(tail -n 5 "$CAS_TMP/$1.log")"
}

prepare() { printf '{"key":"%s","ballot":{"counter":"%s","id":"1"}}' "$1" "$2"; }
accept() {
	printf '{"key":"%s","ballot":{"counter":"%s","id":"1"},"value":{"version":"1","recent":[],"data":"%s"}}' \
		"$1" "$2" "$(printf '%s' "$3" | base64 -w0)"
}

# join URL CURL-ARGS...: makes the node at URL a cluster of its own (epoch
# 1), sets HDRS (its identity headers).
join() {
	local url=$1 cluster node
	shift
	cluster=$(cas_random_hex 16)
	node=$(cas_random_hex 8)
	want 200 "$url/v1/admin/join" "$@" --data-binary \
		"{\"node\":\"$node\",\"config\":{\"cluster\":\"$cluster\",\"epoch\":\"1\",\"members\":[{\"id\":\"$node\",\"url\":\"$url\"}]}}"
	HDRS=(-H "Cas-Cluster: $cluster" -H "Cas-Epoch: 1")
}

# attempts URL CURL-ARGS...: a prepare and an accept of the key pwned with
# a high ballot, as issue #13's attacker sent them; prints their statuses.
attempts() {
	local url=$1
	shift
	printf '%s %s' "$(code "$url/v1/prepare" "${HDRS[@]}" "$@" --data-binary "$(prepare pwned 4000000000)")" \
		"$(code "$url/v1/accept" "${HDRS[@]}" "$@" --data-binary "$(accept pwned 4000000000 PWNED)")"
}

# keys_are URL WANT CURL-ARGS...: GET /v1/keys (with the arguments of a
# client that may) lists exactly WANT (a JSON array).
keys_are() {
	local url=$1 keys=$2
	shift 2
	want 200 "$url/v1/keys" "${HDRS[@]}" "$@"
	grep -Fxq "{\"keys\":$keys,\"more\":false}" "$OUT" || fail "keys of $url: $(cat "$OUT")"
}

# --- 1. TLS with client certificates and a token ---------------------------
start a --tls-cert "$(cas_pem node crt)" --tls-key "$(cas_pem node key)" \
	--tls-ca "$(cas_pem ca crt)" --token-file "$CAS_TMP/token" --log-level debug
A=https://127.0.0.1:$PORT
logged a 'listening on port [0-9]+ \(HTTPS, client certificates, token\)'
want 503 "$A/v1/health" "${CA[@]}" "${ALICE[@]}" # no token needed; not joined yet
join "$A" "${CA[@]}" "${ALICE[@]}" "${AUTH[@]}"
want 200 "$A/v1/prepare" "${HDRS[@]}" "${CA[@]}" "${ALICE[@]}" "${AUTH[@]}" \
	--data-binary "$(prepare x 5)"
want 200 "$A/v1/accept" "${HDRS[@]}" "${CA[@]}" "${ALICE[@]}" "${AUTH[@]}" \
	--data-binary "$(accept x 5 hello)"
keys_are "$A" '["x"]' "${CA[@]}" "${ALICE[@]}" "${AUTH[@]}"

# Each refused: the handshake fails (no HTTP answer at all), or 401.
[ "$(attempts "$A" "${CA[@]}" "${AUTH[@]}")" = "000 000" ] || fail "no certificate: served"
logged a 'warn: TLS handshake from 127\.0\.0\.1:[0-9]+ refused: no client certificate'
sleep 1.1 # refusals of one kind: one line a second
[ "$(attempts "$A" "${CA[@]}" "${AUTH[@]}" --cert "$(cas_pem mallory crt)" \
	--key "$(cas_pem mallory key)")" = "000 000" ] || fail "another authority's certificate: served"
logged a 'TLS handshake from 127\.0\.0\.1:[0-9]+ refused: client certificate: .*(issuer|signer)'
sleep 1.1
[ "$(attempts "$A" "${CA[@]}" "${AUTH[@]}" --cert "$(cas_pem old crt)" \
	--key "$(cas_pem old key)")" = "000 000" ] || fail "an expired certificate: served"
logged a 'TLS handshake from 127\.0\.0\.1:[0-9]+ refused: client certificate: .*expired'
want 000 "http://127.0.0.1:$PORT/v1/health" # plain HTTP on the TLS port
[ "$(attempts "$A" "${CA[@]}" "${ALICE[@]}")" = "401 401" ] || fail "no token: not 401"
grep -Fxq '{"error":"missing token (Authorization: Bearer TOKEN)"}' "$OUT" ||
	fail "no token: $(cat "$OUT")"
curl -s -D - -o /dev/null "${CA[@]}" "${ALICE[@]}" "$A/v1/config" |
	grep -qi '^WWW-Authenticate: Bearer' || fail "a 401 without WWW-Authenticate"
logged a 'warn: POST /v1/(prepare|accept) from 127\.0\.0\.1:[0-9]+ 401: missing token'
sleep 1.1
[ "$(attempts "$A" "${CA[@]}" "${ALICE[@]}" -H "Authorization: Bearer ${TOKEN%?}x")" = "401 401" ] ||
	fail "a wrong token: not 401"
grep -Fxq '{"error":"wrong token"}' "$OUT" || fail "wrong token: $(cat "$OUT")"
logged a 'warn: POST /v1/(prepare|accept) from 127\.0\.0\.1:[0-9]+ 401: wrong token'
[ "$(attempts "$A" "${CA[@]}" "${ALICE[@]}" "${AUTH[@]}" "${AUTH[@]}")" = "401 401" ] ||
	fail "the token twice: not 401"
[ "$(attempts "$A" "${CA[@]}" "${ALICE[@]}" -H "Authorization: Basic $TOKEN")" = "401 401" ] ||
	fail "another scheme: not 401"
# The admin routes and unknown paths too: 401 before anything else.
want 401 "$A/v1/admin/config" "${CA[@]}" "${ALICE[@]}" --data-binary '{}'
want 401 "$A/v1/nowhere" "${CA[@]}" "${ALICE[@]}"
want 401 "$A/v1/config" "${CA[@]}" "${ALICE[@]}"
# Nothing changed: x alone, and its value.
keys_are "$A" '["x"]' "${CA[@]}" "${ALICE[@]}" "${AUTH[@]}"
want 200 "$A/v1/query" "${HDRS[@]}" "${CA[@]}" "${ALICE[@]}" "${AUTH[@]}" \
	--data-binary '{"key":"x"}'
grep -Fq "\"data\":\"$(printf hello | base64 -w0)\"" "$OUT" || fail "x changed: $(cat "$OUT")"
# The node's own certificate, with its key, is a client certificate too.
want 200 "$A/v1/config" "${CA[@]}" "${AUTH[@]}" --cert "$(cas_pem node crt)" \
	--key "$(cas_pem node key)"

# The token is nowhere to be seen: log (debug level), ps.
grep -Fq "$TOKEN" "$CAS_TMP/a.log" && fail "the token is in the log"
ps -eo args >"$CAS_TMP/ps"
grep -F casd "$CAS_TMP/ps" | grep -Fq "$TOKEN" && fail "the token is in ps"

# --- 2. A token on plain HTTP ------------------------------------------------
start b --token-file "$CAS_TMP/token"
B=http://127.0.0.1:$PORT
want 503 "$B/v1/health" # no token needed (503: not joined yet)
join "$B" "${AUTH[@]}"
want 200 "$B/v1/health"
[ "$(attempts "$B")" = "401 401" ] || fail "plain HTTP, no token: not 401"
[ "$(attempts "$B" -H "Authorization: Bearer nope")" = "401 401" ] ||
	fail "plain HTTP, wrong token: not 401"
[ "$(attempts "$B" -H "Authorization: Bearer $TOKEN ")" = "401 401" ] ||
	fail "plain HTTP, the token and more: not 401"
keys_are "$B" '[]' "${AUTH[@]}"
[ "$(attempts "$B" "${AUTH[@]}")" = "200 200" ] || fail "plain HTTP, the token: not served"
keys_are "$B" '["pwned"]' "${AUTH[@]}"
grep -Fq "$TOKEN" "$CAS_TMP/b.log" && fail "the token is in b's log"

# --- 3. TLS without client certificates, and a token --------------------------
start c --tls-cert "$(cas_pem node crt)" --tls-key "$(cas_pem node key)" \
	--token-file "$CAS_TMP/token"
C=https://127.0.0.1:$PORT
join "$C" "${CA[@]}" "${AUTH[@]}"
[ "$(attempts "$C" "${CA[@]}")" = "401 401" ] || fail "TLS, no token: not 401"
keys_are "$C" '[]' "${CA[@]}" "${AUTH[@]}"

# --- 4. Loopback only, unless protected -----------------------------------------
# refused ARGS...: casd exits 1 with one line on stderr, before listening.
refused() {
	local st=0
	"$CAS_BIN/casd" --data "$CAS_TMP/r" --port-file "$CAS_TMP/r.port" "$@" \
		>"$CAS_TMP/r.out" 2>"$CAS_TMP/r.err" || st=$?
	[ "$st" != 0 ] || fail "casd $*: started"
	[ ! -e "$CAS_TMP/r.port" ] || fail "casd $*: listened"
	[ "$(grep -c . "$CAS_TMP/r.err")" -le 2 ] || fail "casd $*: $(cat "$CAS_TMP/r.err")"
	grep -Fq "$TOKEN" "$CAS_TMP/r.err" "$CAS_TMP/r.out" && fail "casd $*: the token in a message"
	return 0
}
refused --listen 0.0.0.0:0
grep -q '^casd: refusing to listen on 0\.0\.0\.0: it is not loopback' "$CAS_TMP/r.err" ||
	fail "0.0.0.0: $(cat "$CAS_TMP/r.err")"
refused --listen '[::]:0'
grep -q 'refusing to listen on ::' "$CAS_TMP/r.err" || fail "[::]: $(cat "$CAS_TMP/r.err")"
# TLS alone (no client certificates) protects nothing: refused too.
refused --listen 0.0.0.0:0 --tls-cert "$(cas_pem node crt)" --tls-key "$(cas_pem node key)"
grep -q 'refusing to listen' "$CAS_TMP/r.err" || fail "TLS alone: $(cat "$CAS_TMP/r.err")"
# --insecure on loopback: said at start.
start d --insecure
logged d 'warn: --insecure given, and not needed'

# --- 5. Files that cannot be read: one line, exit 1 ---------------------------
refused --listen 127.0.0.1:0 --tls-cert "$CAS_TMP/none.crt" --tls-key "$(cas_pem node key)"
grep -Fxq "casd: cannot read --tls-cert $CAS_TMP/none.crt: No such file or directory" \
	"$CAS_TMP/r.err" || fail "missing cert: $(cat "$CAS_TMP/r.err")"
refused --listen 127.0.0.1:0 --tls-cert "$(cas_pem node crt)" --tls-key "$CAS_TMP"
grep -q 'cannot read --tls-key .*: not a regular file' "$CAS_TMP/r.err" ||
	fail "a folder as key: $(cat "$CAS_TMP/r.err")"
refused --listen 127.0.0.1:0 --tls-cert "$(cas_pem node crt)" --tls-key "$(cas_pem alice key)"
grep -q 'tls-cert and --tls-key: .*not match' "$CAS_TMP/r.err" ||
	fail "a key of another certificate: $(cat "$CAS_TMP/r.err")"
refused --listen 127.0.0.1:0 --tls-cert "$(cas_pem node crt)" --tls-key "$(cas_pem node key)" \
	--tls-ca "$CAS_TMP/token"
grep -q 'tls-ca .*not PEM' "$CAS_TMP/r.err" || fail "a CA file that is no PEM: $(cat "$CAS_TMP/r.err")"
refused --listen 127.0.0.1:0 --token-file "$CAS_TMP/none"
grep -q 'cannot read --token-file' "$CAS_TMP/r.err" || fail "missing token: $(cat "$CAS_TMP/r.err")"
cp "$CAS_TMP/token" "$CAS_TMP/open-token"
chmod 644 "$CAS_TMP/open-token"
refused --listen 127.0.0.1:0 --token-file "$CAS_TMP/open-token"
grep -q 'others may read' "$CAS_TMP/r.err" || fail "a token others read: $(cat "$CAS_TMP/r.err")"
(umask 077 && printf '\n' >"$CAS_TMP/empty-token")
refused --listen 127.0.0.1:0 --token-file "$CAS_TMP/empty-token"
grep -q 'empty token' "$CAS_TMP/r.err" || fail "an empty token: $(cat "$CAS_TMP/r.err")"
(umask 077 && printf 'two words\n' >"$CAS_TMP/bad-token")
refused --listen 127.0.0.1:0 --token-file "$CAS_TMP/bad-token"
grep -q 'printable ASCII without spaces' "$CAS_TMP/r.err" || fail "a spaced token: $(cat "$CAS_TMP/r.err")"
grep -q 'two' "$CAS_TMP/r.err" && fail "the token in a message"
echo "casd_tls: ok"
