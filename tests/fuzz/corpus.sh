#!/usr/bin/env bash
# corpus.sh - writes the seed corpus of each fuzz target into
# corpus/<target>/: small valid inputs and a few invalid ones. The files
# are committed; rerun this after changing it.
set -eu
cd "$(dirname "$0")"
rm -rf corpus
mkdir -p corpus/codec corpus/codec_bin corpus/acceptor corpus/record corpus/xattr corpus/batch \
	corpus/wal

. ../wire.sh # le, and the builders of binary bodies

# --- codec: request and reply bodies, and base64 ---
B='"ballot":{"counter":"5","id":"1"}'
V='"value":{"version":"1","recent":[{"proposer":"9","op":"1","version":"1"}],"data":"aGVsbG8="}'
V16='"value":{"version":"18446744073709551615","recent":[{"proposer":"1","op":"1","version":"19"},{"proposer":"2","op":"2","version":"18"},{"proposer":"3","op":"3","version":"17"},{"proposer":"4","op":"4","version":"16"},{"proposer":"5","op":"5","version":"15"},{"proposer":"6","op":"6","version":"14"},{"proposer":"7","op":"7","version":"13"},{"proposer":"8","op":"8","version":"12"},{"proposer":"9","op":"9","version":"11"},{"proposer":"10","op":"10","version":"10"},{"proposer":"11","op":"11","version":"9"},{"proposer":"12","op":"12","version":"8"},{"proposer":"13","op":"13","version":"7"},{"proposer":"14","op":"14","version":"6"},{"proposer":"15","op":"15","version":"5"},{"proposer":"16","op":"16","version":"4"}],"data":"AA=="}'
c=corpus/codec
printf '{"key":"k",%s}' "$B" >$c/prepare
printf '{ "key" : "a/b:c@d-e_f.g" ,\n %s }\n' "$B" >$c/prepare-spaces
printf '{"key":"k",%s,%s}' "$B" "$V" >$c/accept
printf '{"key":"k",%s,%s}' "$B" "$V16" >$c/accept-full
printf '{"key":"k",%s,"value":{"version":"0","recent":[],"data":""}}' "$B" >$c/accept-empty
printf '{"result":"promise","accepted":{"counter":"0","id":"0"},"value":{"version":"0","recent":[],"data":""}}' >$c/promise
printf '{"result":"promise","accepted":{"counter":"5","id":"1"},%s}' "$V" >$c/promise-value
printf '{"result":"accepted",%s}' "$B" >$c/accepted
printf '{"result":"current","accepted":{"counter":"5","id":"1"},%s}' "$V" >$c/current
printf '{"result":"reject","blocking":{"counter":"7","id":"3"}}' >$c/reject
printf 'Zm9vYmFy' >$c/base64
# Invalid: each a different refusal.
printf '{"key":"k",%s,"x":1}' "$B" >$c/bad-unknown-field
printf '{"key":"k","ballot":{"counter":"05","id":"1"}}' >$c/bad-number
printf '{"key":"a b",%s}' "$B" >$c/bad-key
printf '{"key":"k",%s,"value":{"version":"1","recent":[],"data":"Zh=="}}' "$B" >$c/bad-base64
printf '{"key":"k\\u0000",%s}' "$B" >$c/bad-nul-escape
printf '{"key":"k",%s} x' "$B" >$c/bad-trailing

# --- codec_bin: binary bodies (PROTOCOL.md, "Binary form") ---
c=corpus/codec_bin
# Recent entries of distinct proposers and ops (bvalue's).
brecent() { le 8 $(($1 + 1)); le 8 $(($1 + 7)); le 8 "$2"; }
{ printf '\xc1\x01'; bkey k; bballot 5 1; } >$c/prepare
{ printf '\xc1\x02'; bkey a/b:c@d-e_f.g; bballot 5 1; bballot 0 0; bvalue 1 hello 1; } >$c/accept
{ printf '\xc1\x02'; bkey k; bballot 5 1; bballot 6 1; bvalue 3 "" 16; } >$c/accept-full
{ printf '\xc1\x03'; bkey i/00ff; } >$c/query
{ printf '\xc1\x81'; bballot 0 0; bvalue 0 "" 0; } >$c/promise
{ printf '\xc1\x82'; bballot 5 1; bballot 6 1; } >$c/accepted
{ printf '\xc1\x83'; bballot 7 3; } >$c/reject
{ printf '\xc1\x84'; bballot 5 1; bvalue 1 hello 2; } >$c/current
# Invalid: each a different refusal.
{ printf '\xc1\x01'; bkey k; bballot 5 1; printf x; } >$c/bad-trailing
{ printf '\xc1\x01'; bkey 'a b'; bballot 5 1; } >$c/bad-key
{ printf '\xc1\x02'; bkey k; bballot 5 1; bballot 0 0; bvalue 1 "" 17; } >$c/bad-recent
{ printf '\xc1\x02'; bkey k; bballot 5 1; bballot 0 0; le 8 1; le 1 0; le 4 9; printf hi; } >$c/bad-truncated
{ printf '\xc2\x01'; bkey k; bballot 5 1; } >$c/bad-version

# --- acceptor: 40 bytes of state, then NUL-separated requests, each a
# selector byte (P: prepare, A: accept) and a body ---
a=corpus/acceptor
ballot() { printf '"ballot":{"counter":"%s","id":"%s"}' "$1" "$2"; }
prep() { printf 'P{"key":"k",%s}' "$(ballot "$1" "$2")"; }
acc() {
	printf 'A{"key":"k",%s,"value":{"version":"%s","recent":[{"proposer":"%s","op":"%s","version":"%s"}],"data":"%s"}}' \
		"$(ballot "$1" "$2")" "$3" "$2" "$4" "$3" "$5"
}
zero_state() { le 8 0; le 8 0; le 8 0; le 8 0; le 8 0; }
{ zero_state; prep 1 1; printf '\0'; acc 1 1 1 7 aGk=; printf '\0'; prep 2 1; } >$a/round
{ zero_state; prep 5 1; printf '\0'; prep 5 1; printf '\0'; prep 4 9; printf '\0'; acc 3 1 1 1 ""; } >$a/rejects
{
	le 8 7; le 8 2; le 8 3; le 8 1; le 8 4
	acc 7 2 5 11 AAEC; printf '\0'; prep 7 3; printf '\0'; acc 7 2 6 12 ""
} >$a/promised
{ zero_state; printf 'R{"key":"k",%s}' "$(ballot 1 1)"; } >$a/not-a-request
{ zero_state; printf 'P{"key":"k"}'; printf '\0'; printf 'A[]'; } >$a/bad-bodies

# --- record: fs/FORMAT.md ---
r=corpus/record
# header TYPE FLAGS MODE NXATTR: the fixed part of a record.
header() {
	printf 'cF\x01'
	le 1 "$1"; le 2 "$2"; le 2 0; le 4 "$3"; le 4 1000; le 4 1000
	for t in 1 2 3; do le 8 1700000000; le 4 5; done
	le 2 "$4"
}
xattr() { le 1 ${#1}; printf '%s' "$1"; le 4 ${#2}; printf '%s' "$2"; }
dirent() { le 1 "$1"; le 1 ${#2}; printf '%s' "$2"; printf '%016d' "$3"; }
{ header 1 0 420 0; } >$r/reg-empty
{ header 1 0 420 2; xattr user.a 1; xattr user.b ""; printf 'hello\n'; } >$r/reg-xattrs
{ header 2 0 493 0; le 4 3; dirent 1 a 1; dirent 2 b 2; dirent 3 ba 3; } >$r/dir
{ header 2 1 493 0; le 4 0; } >$r/dir-dead
{ header 3 0 511 0; printf '../target'; } >$r/symlink
{ header 2 0 493 0; le 4 2; dirent 1 b 1; dirent 1 a 2; } >$r/bad-unsorted
{ header 3 0 511 0; } >$r/bad-empty-symlink
{ header 1 0 420 1; xattr user.a 1; } | head -c 60 >$r/bad-truncated
printf 'cF\x02' >$r/bad-format

# --- xattr: names ---
x=corpus/xattr
n=0
for name in user.casfs.cas.0 user.casfs.cas.42 user.casfs.cas.18446744073709551615 \
	user.casfs.version user.casfs.key user.casfs.other user.note security.selinux \
	user.casfs.cas.18446744073709551616 user.casfs.cas.007 user.casfs.cas. \
	user.casfs.cas.-1 user.casfs.cas.1x; do
	printf '%s' "$name" >$x/$n
	n=$((n + 1))
done

# --- batch: batch bodies (a length, then the item, per item) ---
b=corpus/batch
{ le 4 3; printf 'abc'; } >$b/one
{ le 4 2; printf 'ab'; le 4 0; le 4 5; printf 'hello'; } >$b/three
{ le 4 9; printf 'abc'; } >$b/bad-past-end
{ le 4 1; printf 'ab'; } >$b/bad-trailing
printf '\x01\x00' >$b/bad-short-length

# --- wal: log entries, as fuzz_wal.c reads them (flags, position, xor,
# then key length, key, record length, record) ---
w=corpus/wal
# rec PROMISE ACCEPTED VERSION DATA: a record of format 2, no recent changes.
rec() {
	printf '\x02\x00'; le 6 0
	le 8 "$1"; le 8 1; le 8 "$2"; le 8 1; le 8 "$3"
	le 8 "${#4}"; printf '%s' "$4"
}
# entry KEY RECORD...: one entry of the input.
entry() {
	local key=$1 r
	shift
	r=$(rec "$@" | od -An -v -tx1 | tr -d ' \n')
	le 1 "${#key}"; printf '%s' "$key"; le 2 $((${#r} / 2)); printf "$(sed 's/../\\x&/g' <<<"$r")"
}
{ printf '\x00'; le 3 0; entry a/b 3 3 1 hello; entry a/c 5 0 0 ''; entry a/b 4 4 2 world; } >$w/three
{ printf '\x01'; le 2 40; printf '\x55'; entry k 1 1 1 v; entry k 2 2 2 w; } >$w/damaged
{ printf '\x02'; le 3 0; entry k 1 1 1 v; entry j 2 2 2 w; entry k 3 3 3 x; } >$w/stale-epoch
{ printf '\x04'; le 3 0; entry k 1 1 1 v; entry j 2 2 2 w; entry k 3 3 3 x; } >$w/repeated-seq
{ printf '\x00'; le 3 0; entry 'bad key' 1 1 1 v; } >$w/bad-key
