# casd_input.sh - a real casd refuses malformed requests, JSON or binary,
# with the right 4xx and a JSON error, stores nothing for them and keeps
# serving; it answers binary requests in binary; bad command-line options
# exit 2 with one line on stderr.
. "$CAS_SRC/tests/lib.sh"

# Uninitialized (lib.sh: cas_start_cluster may run casctl init otherwise).
CAS_NO_INIT=1 cas_start_cluster 1
# A joined node: every request below carries the identity headers
# (casd_identity.sh tests what happens without them).
cas_join_nodes
U=$(cas_url 0)
OUT=$CAS_TMP/resp

# req METHOD PATH STATUS [BODY]: sends BODY (from stdin when BODY is "-")
# and checks the status, and that errors come with {"error": "..."}.
req() {
	local method=$1 path=$2 want=$3 code
	local args=(-s -o "$OUT" -w '%{http_code}' -X "$method" --max-time 30 "${CAS_HDRS[@]}")
	if [ $# -ge 4 ]; then
		if [ "$4" = - ]; then
			args+=(--data-binary @-)
		else
			args+=(--data-binary "$4")
		fi
	fi
	code=$(curl "${args[@]}" "$U$path") || fail "$method $path: curl failed"
	[ "$code" = "$want" ] ||
		fail "$method $path ${4:0:80}: status $code, want $want: $(head -c 300 "$OUT")"
	if [ "${want:0:1}" != 2 ] && [ "$want" != 409 ]; then
		grep -Eq '^\{"error":"([^"\\]|\\.)+"\}$' "$OUT" ||
			fail "$method $path: error body is not {\"error\": ...}: $(head -c 300 "$OUT")"
	fi
}

B1='"ballot":{"counter":"5","id":"1"}'
V1='"value":{"version":"1","recent":[{"proposer":"9","op":"1","version":"1"}],"data":"aGVsbG8="}'

# Malformed JSON, or not one object.
for body in '' '{' 'not json' '[]' 'null' '"k"' "{\"key\":\"k\",$B1} x" \
	"{\"key\":\"k\",$B1}{}" "{\"key\":\"k\",$B1,}" "{'key':'k',$B1}"; do
	req POST /v1/prepare 400 "$body"
done
# Wrong types.
for body in "{\"key\":7,$B1}" "{\"key\":null,$B1}" "{\"key\":[\"k\"],$B1}" \
	'{"key":"k","ballot":"5"}' '{"key":"k","ballot":{"counter":5,"id":"1"}}' \
	'{"key":"k","ballot":{"counter":"5","id":true}}'; do
	req POST /v1/prepare 400 "$body"
done
req POST /v1/accept 400 "{\"key\":\"k\",$B1,\"value\":\"aGVsbG8=\"}"
req POST /v1/accept 400 "{\"key\":\"k\",$B1,\"value\":{\"version\":1,\"recent\":[],\"data\":\"\"}}"
req POST /v1/accept 400 "{\"key\":\"k\",$B1,\"value\":{\"version\":\"1\",\"recent\":[9],\"data\":\"\"}}"
# Missing and unknown fields.
for body in "{$B1}" '{"key":"k"}' "{\"key\":\"k\",$B1,\"x\":1}" \
	"{\"key\":\"k\",$B1,$V1}" "{\"Key\":\"k\",$B1}" "{\"key\":\"k\",\"key\":\"k\",$B1}" \
	'{"key":"k","ballot":{"counter":"5"}}' '{"key":"k","ballot":{"counter":"5","id":"1","x":"2"}}'; do
	req POST /v1/prepare 400 "$body"
done
req POST /v1/accept 400 "{\"key\":\"k\",$B1}"
req POST /v1/accept 400 "{\"key\":\"k\",$B1,\"value\":{\"version\":\"1\",\"data\":\"\"}}"
# Ballots past 2^62 leave no room above them: refused, and nothing stored
# (the key count is checked below).
for n in 18446744073709551615 4611686018427387905; do
	req POST /v1/prepare 400 "{\"key\":\"top\",\"ballot\":{\"counter\":\"$n\",\"id\":\"1\"}}"
	req POST /v1/accept 400 "{\"key\":\"top\",\"ballot\":{\"counter\":\"$n\",\"id\":\"1\"},$V1}"
	req POST /v1/accept 400 "{\"key\":\"top\",$B1,$V1,\"next\":{\"counter\":\"$n\",\"id\":\"1\"}}"
done
# Bad numbers.
for n in '-1' '+5' '05' '' ' 5' '5.0' '1e3' '0x5' '18446744073709551616'; do
	req POST /v1/prepare 400 "{\"key\":\"k\",\"ballot\":{\"counter\":\"$n\",\"id\":\"1\"}}"
done
# Bad keys: empty, too long, forbidden bytes.
long=$(printf 'k%.0s' $(seq 1 251))
for key in '' "$long" 'a b' 'a%b' 'a\"b' 'a\\b' 'a\nb' 'caf\u00e9' 'a\u0000b' $'caf\xc3\xa9'; do
	req POST /v1/prepare 400 "{\"key\":\"$key\",$B1}"
done
# Bad base64, too many recent ids.
for data in 'Zg=' 'Zm9v!' 'Zm9v====' 'Zh==' 'Zm9v Zm9v' '-_-_'; do
	req POST /v1/accept 400 \
		"{\"key\":\"k\",$B1,\"value\":{\"version\":\"1\",\"recent\":[],\"data\":\"$data\"}}"
done
# More recent ids than the protocol allows (PROTOCOL.md: up to 16).
recent=$(seq 1 17 | sed 's/.*/{"proposer":"&","op":"1","version":"1"}/' | paste -sd,)
req POST /v1/accept 400 "{\"key\":\"k\",$B1,\"value\":{\"version\":\"1\",\"recent\":[$recent],\"data\":\"\"}}"

# Too big: a body over the limit (declared and chunked), and a value one
# byte over --max-value-size in a body under the limit.
big=$CAS_TMP/big
head -c 3000000 /dev/zero | tr '\0' 'a' >"$big"
req POST /v1/accept 413 - <"$big"
code=$(curl -s -o "$OUT" -w '%{http_code}' -H 'Transfer-Encoding: chunked' "${CAS_HDRS[@]}" \
	--data-binary @"$big" --max-time 30 "$U/v1/accept")
[ "$code" = 413 ] || fail "chunked huge body: status $code, want 413"
grep -q '"error"' "$OUT" || fail "chunked huge body: no JSON error"
{
	printf '{"key":"k",%s,"value":{"version":"1","recent":[],"data":"' "$B1"
	head -c $((1024 * 1024 + 1)) /dev/zero | base64 -w0
	printf '"}}'
} >"$big"
req POST /v1/accept 413 - <"$big"

# Wrong method, unknown path.
req GET /v1/prepare 405
req PUT /v1/accept 405 "{\"key\":\"k\",$B1}"
req DELETE /v1/accept 405
req POST /v1/health 405 '{}'
for path in / /v1 /v1/ /v1/prepare/ /v2/prepare /v1/PREPARE /v1/health/x /submit; do
	req GET "$path" 404
	req POST "$path" 404 "{\"key\":\"k\",$B1}"
done

# Queries: only a key, by POST; they store nothing either.
for body in '' '{}' '{"key":7}' '{"key":"a b"}' '{"key":"k","x":1}' "{\"key\":\"k\",$B1}"; do
	req POST /v1/query 400 "$body"
done
req GET /v1/query 405
req POST /v1/query 200 '{"key":"never"}'
grep -Fqx '{"result":"current","accepted":{"counter":"0","id":"0"},"value":{"version":"0","recent":[],"data":""}}' \
	"$OUT" || fail "query of a new key: $(cat "$OUT")"

# The binary form (PROTOCOL.md): the same refusals, a JSON error body.
BT=application/x-casfs
# The builders: le, bkey, bballot, bvalue, bprepare, baccept, bquery, bitem.
. "$CAS_SRC/tests/wire.sh"

# breq PATH STATUS: posts $BIN as a binary body and checks the status, and
# the answer's Content-Type: binary for a 200 or 409, else a JSON error.
# (Bodies go through files: a failure inside a pipeline would not end the
# test.)
BIN=$CAS_TMP/bin
WANT=$CAS_TMP/want
breq() {
	local path=$1 want=$2 code
	code=$(curl -s -o "$OUT" -D "$CAS_TMP/hdr" -w '%{http_code}' -H "Content-Type: $BT" "${CAS_HDRS[@]}" \
		--data-binary @"$BIN" --max-time 30 "$U$path") || fail "binary $path: curl failed"
	[ "$code" = "$want" ] ||
		fail "binary $path: status $code, want $want: $(od -An -tx1 "$BIN" | head -3)"
	if [ "$want" = 200 ] || [ "$want" = 409 ]; then
		grep -qi "^content-type: $BT" "$CAS_TMP/hdr" ||
			fail "binary $path: answer not binary: $(cat "$CAS_TMP/hdr")"
	else
		grep -qi '^content-type: application/json' "$CAS_TMP/hdr" &&
			grep -Eq '^\{"error":"([^"\\]|\\.)+"\}$' "$OUT" ||
			fail "binary $path: error is not {\"error\": ...}: $(head -c 300 "$OUT")"
	fi
}
# bwant: the last answer is exactly $WANT.
bwant() { cmp -s "$WANT" "$OUT" || fail "binary answer: $(od -An -tx1 "$OUT" | head -5)"; }

: >"$BIN"
breq /v1/prepare 400
printf '{"key":"k",%s}' "$B1" >"$BIN"
breq /v1/prepare 400
{ printf '\xc2\x01'; bkey k; bballot 5 1; } >"$BIN"
breq /v1/prepare 400
{ printf '\xc1\x07'; bkey k; bballot 5 1; } >"$BIN"
breq /v1/prepare 400
printf '\xc1' >"$BIN"
breq /v1/prepare 400
baccept k 5 1 1 hello >"$BIN"
breq /v1/prepare 400
bquery k >"$BIN"
breq /v1/prepare 400
{ printf '\xc1\x81'; bballot 5 1; bvalue 0 ''; } >"$BIN"
breq /v1/prepare 400
bprepare k 5 1 | head -c -1 >"$BIN"
breq /v1/prepare 400
{ bprepare k 5 1; printf x; } >"$BIN"
breq /v1/prepare 400
# Ballots that leave no room above them (counter past 2^62) are refused,
# so no one can make a key unwritable; -1 is 2^64-1 to le.
bprepare top -1 1 >"$BIN"
breq /v1/prepare 400
baccept top $(((1 << 62) + 1)) 1 1 hello >"$BIN"
breq /v1/accept 400
baccept k 5 1 1 hello | head -c -1 >"$BIN"
breq /v1/accept 400
{ baccept k 5 1 1 hello; printf '\0'; } >"$BIN"
breq /v1/accept 400
bprepare k 5 1 >"$BIN"
breq /v1/accept 400
# Bad keys: empty, forbidden bytes, 251 bytes, a NUL.
for key in '' 'a b' 'a%b' 'a\b' $'caf\xc3\xa9' "k${long:0:250}"; do
	bprepare "$key" 5 1 >"$BIN"
	breq /v1/prepare 400
	bquery "$key" >"$BIN"
	breq /v1/query 400
done
{ printf '\xc1\x01\x02a\0'; bballot 5 1; } >"$BIN"
breq /v1/prepare 400
# Recent entries: 16 would do, 17 do not.
baccept k 5 1 1 hello 17 >"$BIN"
breq /v1/accept 400
# A data length past the body's end; a value one byte over the limit.
{ printf '\xc1\x02'; bkey k; bballot 5 1; bballot 0 0; le 8 1; le 1 0; le 4 6; printf hello; } >"$BIN"
breq /v1/accept 400
{
	printf '\xc1\x02'; bkey k; bballot 5 1; bballot 0 0; le 8 1; le 1 0
	le 4 $((1024 * 1024 + 1)); head -c $((1024 * 1024 + 1)) /dev/zero
} >"$BIN"
breq /v1/accept 413
{ bquery k; printf x; } >"$BIN"
breq /v1/query 400
bprepare k 5 1 >"$BIN"
breq /v1/query 400

# None of it was stored, and the node still serves.
req GET /v1/health 200
grep -q '"keys":"0"' "$OUT" || fail "bad requests created keys: $(cat "$OUT")"
for key in k a k"$long"; do
	req POST /v1/prepare 200 "{\"key\":\"${key:0:250}\",\"ballot\":{\"counter\":\"1000\",\"id\":\"1\"}}"
	grep -q '"accepted":{"counter":"0","id":"0"},"value":{"version":"0","recent":\[\],"data":""}' \
		"$OUT" || fail "key $key: something was stored: $(cat "$OUT")"
done

# A correct round works, and a higher prepare sees it.
req POST /v1/prepare 200 "{\"key\":\"good\",$B1}"
req POST /v1/accept 200 "{\"key\":\"good\",$B1,$V1}"
grep -Fqx '{"result":"accepted","ballot":{"counter":"5","id":"1"}}' "$OUT" ||
	fail "accept reply: $(cat "$OUT")"
req POST /v1/prepare 409 "{\"key\":\"good\",$B1}"
grep -Fqx '{"result":"reject","blocking":{"counter":"5","id":"1"}}' "$OUT" ||
	fail "reject reply: $(cat "$OUT")"
req POST /v1/prepare 200 '{"key":"good","ballot":{"counter":"6","id":"1"}}'
grep -Fqx "{\"result\":\"promise\",\"accepted\":{\"counter\":\"5\",\"id\":\"1\"},$V1}" "$OUT" ||
	fail "promise reply: $(cat "$OUT")"
# A query answers with the accepted ballot and value, and promises nothing:
# an accept at 6 (the promise just made) still goes through.
req POST /v1/query 200 '{"key":"good"}'
grep -Fqx "{\"result\":\"current\",\"accepted\":{\"counter\":\"5\",\"id\":\"1\"},$V1}" "$OUT" ||
	fail "query reply: $(cat "$OUT")"
req POST /v1/accept 200 "{\"key\":\"good\",\"ballot\":{\"counter\":\"6\",\"id\":\"1\"},$V1}"

# The same round in binary, answered in binary; JSON sees what it did.
bprepare bin 5 1 >"$BIN"
breq /v1/prepare 200
{ printf '\xc1\x81'; bballot 0 0; bvalue 0 ''; } >"$WANT"
bwant
baccept bin 5 1 1 hello 16 >"$BIN"
breq /v1/accept 200
{ printf '\xc1\x82'; bballot 5 1; bballot 0 0; } >"$WANT"
bwant
bprepare bin 5 1 >"$BIN"
breq /v1/prepare 409
{ printf '\xc1\x83'; bballot 5 1; } >"$WANT"
bwant
bquery bin >"$BIN"
breq /v1/query 200
{ printf '\xc1\x84'; bballot 5 1; bvalue 1 hello 16; } >"$WANT"
bwant
req POST /v1/query 200 '{"key":"bin"}'
grep -Fq '"accepted":{"counter":"5","id":"1"},"value":{"version":"1","recent":[{"proposer":"9","op":"1","version":"1"},' "$OUT" &&
	grep -Fq '"data":"aGVsbG8="}}' "$OUT" || fail "binary accept seen in JSON: $(cat "$OUT")"

# Batches (PROTOCOL.md, "Batches"): items framed by a 4-byte length, one
# entry per item in the answer: status, 4-byte length, reply or reason.
# bsplit: splits the batch answer $OUT into $CAS_TMP/entry.I (its bytes)
# and $CAS_TMP/statuses (one status a line), failing on a bad framing.
bsplit() {
	local off=0 size st len i=0
	size=$(stat -c %s "$OUT")
	: >"$CAS_TMP/statuses"
	rm -f "$CAS_TMP"/entry.*
	while [ "$off" -lt "$size" ]; do
		[ $((off + 5)) -le "$size" ] || fail "batch answer: entry $i cut short at $off of $size"
		# shellcheck disable=SC2046
		set -- $(od -An -tu1 -j "$off" -N5 "$OUT")
		st=$1 len=$(($2 | $3 << 8 | $4 << 16 | $5 << 24))
		[ $((off + 5 + len)) -le "$size" ] || fail "batch answer: entry $i runs past the end"
		tail -c +$((off + 6)) "$OUT" | head -c "$len" >"$CAS_TMP/entry.$i"
		echo "$st" >>"$CAS_TMP/statuses"
		off=$((off + 5 + len)) i=$((i + 1))
	done
}
# bstatuses WANT: the statuses of the last batch answer, space-separated.
bstatuses() {
	bsplit
	[ "$(paste -sd' ' "$CAS_TMP/statuses")" = "$1" ] ||
		fail "batch statuses: $(paste -sd' ' "$CAS_TMP/statuses"), want $1"
}
# bentry I: entry I of the last batch answer is exactly $WANT.
bentry() { cmp -s "$WANT" "$CAS_TMP/entry.$1" || fail "batch entry $1: $(od -An -tx1 "$CAS_TMP/entry.$1" | head -5)"; }
# breason I: entry I is a one-line reason.
breason() {
	[ -s "$CAS_TMP/entry.$1" ] && [ "$(wc -l <"$CAS_TMP/entry.$1")" = 0 ] &&
		! grep -q $'[\x01-\x1f]' "$CAS_TMP/entry.$1" ||
		fail "batch entry $1 is not a one-line reason: $(od -An -c "$CAS_TMP/entry.$1" | head -3)"
}

# A PREPARE and an ACCEPT on two new keys and a QUERY of "bin": three
# replies, in order; JSON sees the accept. (A query runs with the others,
# so it is of a key the batch does not change.)
{ bitem bprepare bat1 5 1; bitem baccept bat2 5 1 1 hello; bitem bquery bin; } >"$BIN"
breq /v1/batch 200
bstatuses "0 0 0"
{ printf '\xc1\x81'; bballot 0 0; bvalue 0 ''; } >"$WANT"
bentry 0
{ printf '\xc1\x82'; bballot 5 1; bballot 0 0; } >"$WANT"
bentry 1
{ printf '\xc1\x84'; bballot 5 1; bvalue 1 hello 16; } >"$WANT"
bentry 2
req POST /v1/query 200 '{"key":"bat2"}'
grep -Fqx '{"result":"current","accepted":{"counter":"5","id":"1"},"value":{"version":"1","recent":[],"data":"aGVsbG8="}}' \
	"$OUT" || fail "batch accept not seen by a query: $(cat "$OUT")"
# The prepare promised: the same ballot is rejected now, blocking at 5/1.
bprepare bat1 5 1 >"$BIN"
breq /v1/prepare 409
{ printf '\xc1\x83'; bballot 5 1; } >"$WANT"
bwant

# Malformed items fail alone: a bad key, an empty item, a reply, a bad
# first byte; the good accept among them runs.
{
	bitem bprepare 'a b' 5 1
	bitem baccept mixed 7 1 1 world
	le 4 0
	bitem eval "printf '\xc1\x84'; bballot 0 0; bvalue 0 ''"
	bitem eval "printf '\xc2\x03'; bkey k"
} >"$BIN"
breq /v1/batch 200
bstatuses "1 0 1 1 1"
for i in 0 2 3 4; do breason $i; done
{ printf '\xc1\x82'; bballot 7 1; bballot 0 0; } >"$WANT"
bentry 1
req POST /v1/query 200 '{"key":"mixed"}'
grep -Fq '"accepted":{"counter":"7","id":"1"},"value":{"version":"1","recent":[],"data":"d29ybGQ="}' \
	"$OUT" || fail "good item of a mixed batch: $(cat "$OUT")"

# The most items a batch may have, on one key: one promise, then rejects.
for i in $(seq 1 256); do bitem bprepare many 5 1; done >"$BIN"
breq /v1/batch 200
bstatuses "0$(printf ' 0%.0s' $(seq 2 256))"
{ printf '\xc1\x81'; bballot 0 0; bvalue 0 ''; } >"$WANT"
bentry 0
{ printf '\xc1\x83'; bballot 5 1; } >"$WANT"
bentry 1
bentry 255

# Bodies that do not split are refused whole, nothing of them runs: no
# item, a length field cut short, an item running past the end, a
# trailing byte, 257 items.
: >"$BIN"
breq /v1/batch 400
{ bitem bprepare frame 5 1; printf '\x01\x00'; } >"$BIN"
breq /v1/batch 400
{ bitem bprepare frame 5 1; bitem baccept frame 5 1 1 x; } | head -c -1 >"$BIN"
breq /v1/batch 400
{ bitem bprepare frame 5 1; printf x; } >"$BIN"
breq /v1/batch 400
for i in $(seq 1 257); do bitem bprepare frame 5 1; done >"$BIN"
breq /v1/batch 400
# Had any run, frame would have promised 5/1, or accepted.
req POST /v1/prepare 200 '{"key":"frame","ballot":{"counter":"1","id":"1"}}'
grep -Fqx '{"result":"promise","accepted":{"counter":"0","id":"0"},"value":{"version":"0","recent":[],"data":""}}' \
	"$OUT" || fail "a refused batch ran: $(cat "$OUT")"

# Only the binary form, only by POST.
bitem bprepare frame 9 1 >"$BIN"
req POST /v1/batch 415 - <"$BIN"
code=$(curl -s -o "$OUT" -w '%{http_code}' -H 'Content-Type: application/json' "${CAS_HDRS[@]}" \
	--data-binary @"$BIN" --max-time 30 "$U/v1/batch")
[ "$code" = 415 ] && grep -q '"error"' "$OUT" || fail "JSON batch: status $code, want 415"
req GET /v1/batch 405

# The body limit of a batch (CAS_BATCH_MAX_BYTES + 4 * CAS_BATCH_MAX_ITEMS),
# whatever the largest value: one byte over it is a 413, declared or
# chunked; a body of exactly the limit is read, and its one accept, a
# value over --max-value-size, fails alone as too big.
limit=$((1024 * 1024 + 4 * 256))
{
	le 4 $((limit - 4)); printf '\xc1\x02'; bkey k; bballot 5 1; bballot 0 0; le 8 1; le 1 0
	le 4 $((limit - 4 - 48 - 1)); head -c $((limit - 4 - 48 - 1)) /dev/zero
} >"$BIN"
[ "$(stat -c %s "$BIN")" = "$limit" ] || fail "limit body: $(stat -c %s "$BIN") bytes"
breq /v1/batch 200
bstatuses 2
breason 0
printf x >>"$BIN"
breq /v1/batch 413
code=$(curl -s -o "$OUT" -w '%{http_code}' -H 'Transfer-Encoding: chunked' -H "Content-Type: $BT" \
	"${CAS_HDRS[@]}" --data-binary @"$BIN" --max-time 30 "$U/v1/batch")
[ "$code" = 413 ] && grep -q '"error"' "$OUT" || fail "chunked batch over the limit: status $code"

# Kept-alive connections: the second request reuses the first one's.
n=$(curl -s -o /dev/null -o /dev/null -w '%{num_connects}\n' "$U/v1/health" "$U/v1/health" |
	tr -d '\n')
[ "$n" = 10 ] || fail "connection not kept alive (connects per request: $n)"

# Bad command-line options: exit 2, one line on stderr.
bad_opts() {
	local rc=0
	"$CAS_BIN/casd" "$@" >"$CAS_TMP/opt.out" 2>"$CAS_TMP/opt.err" || rc=$?
	[ "$rc" = 2 ] || fail "casd $*: exit $rc, want 2"
	[ "$(wc -l <"$CAS_TMP/opt.err")" = 1 ] && grep -q '^casd: ' "$CAS_TMP/opt.err" ||
		fail "casd $*: stderr is not one 'casd: ...' line: $(cat "$CAS_TMP/opt.err")"
}
D=$CAS_TMP/optdata
bad_opts
bad_opts --data "$D"
bad_opts --listen 127.0.0.1:0
bad_opts --listen 127.0.0.1 --data "$D"
bad_opts --listen :7000 --data "$D"
bad_opts --listen 127.0.0.1:70000 --data "$D"
bad_opts --listen 127.0.0.1:-1 --data "$D"
bad_opts --listen 127.0.0.1:x --data "$D"
bad_opts --listen '[::1' --data "$D"
bad_opts --listen 127.0.0.1:0 --data "$D" --max-value-size 0
bad_opts --listen 127.0.0.1:0 --data "$D" --max-value-size 12k
bad_opts --listen 127.0.0.1:0 --data "$D" --map-size -5
bad_opts --listen 127.0.0.1:0 --data "$D" --threads 0
bad_opts --listen 127.0.0.1:0 --data "$D" --log-level loud
bad_opts --listen 127.0.0.1:0 --data "$D" --bogus
bad_opts --listen 127.0.0.1:0 --data "$D" extra
bad_opts --listen 127.0.0.1:0 --data
bad_opts --listen 127.0.0.1:0 --data ''
[ ! -e "$D" ] || fail "a refused command line created $D"
"$CAS_BIN/casd" --help | grep -q -- '--listen HOST:PORT' || fail "casd --help"
"$CAS_BIN/casd" --version | grep -qx 'casd [0-9.]*' || fail "casd --version"
# A taken port is a runtime failure (exit 1), not a usage error.
rc=0
"$CAS_BIN/casd" --listen "127.0.0.1:${CAS_PORTS[0]}" --data "$D" 2>"$CAS_TMP/opt.err" || rc=$?
[ "$rc" = 1 ] || fail "casd on a taken port: exit $rc, want 1"
grep -q 'cannot listen' "$CAS_TMP/opt.err" || fail "taken port: $(cat "$CAS_TMP/opt.err")"

# A second node on the same data folder is refused.
rc=0
"$CAS_BIN/casd" --listen 127.0.0.1:0 --data "$CAS_TMP/n0" 2>"$CAS_TMP/opt.err" || rc=$?
[ "$rc" = 1 ] || fail "second casd on one data folder: exit $rc, want 1"
grep -q 'in use' "$CAS_TMP/opt.err" || fail "shared data folder: $(cat "$CAS_TMP/opt.err")"

# The node survived all of it.
req GET /v1/health 200
echo "casd_input: ok"
