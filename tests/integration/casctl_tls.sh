# casctl_tls.sh - the client side of a cluster with TLS, client
# certificates and a token (README, Security): casctl and casfs with the
# right files work; without a certificate, with one of another authority
# or expired, trusting another authority, without TLS, without the token
# or with a wrong one, over http://, every command fails with one line
# that says why and a non-zero exit, and nothing changed: no write, no
# init of an empty node, no change of members, no mount. Files that are
# missing or bad fail at start, naming the file; the token is never in an
# error, a log, ps or /proc/mounts.
. "$CAS_SRC/tests/lib.sh"
cas_tls_on
cas_start_cluster 3
cas_start_node 3 # empty: what an attacker would like to init
T=$CAS_TMP
C=$CAS_CERTS
NODES=$(cas_url 0),$(cas_url 1),$(cas_url 2)
TOKEN=$(cat "$CAS_TOKEN_FILE")

cas_ca evil && cas_cert evil evil_client client && cas_cert_expired ca old_client ||
	fail "cannot make the other certificates"
(umask 077 && echo "wrong-$(cas_random_hex 16)" >"$T/wrong.token")
WRONG=$(cat "$T/wrong.token")

# ctl ARGS...: casctl on the three members with whatever CAS_TLS_* and
# CAS_TOKEN_FILE the caller's environment has; stdout to $T/out, stderr
# to $T/err; its exit status in $RC.
ctl() {
	RC=0
	"$CAS_BIN/casctl" --nodes "$NODES" --timeout 3 "$@" >"$T/out" 2>"$T/err" || RC=$?
}

# refused WHAT WORD: the last ctl failed with one line on stderr that
# holds WORD (case-insensitive) and neither token.
refused() {
	[ "$RC" != 0 ] || fail "$1: exited 0: $(cat "$T/out")"
	[ "$(wc -l <"$T/err")" -eq 1 ] || fail "$1: not one line: $(cat "$T/err")"
	grep -qi -- "$2" "$T/err" || fail "$1: no \"$2\" in: $(cat "$T/err")"
	! grep -qF -e "$TOKEN" -e "$WRONG" "$T/err" || fail "$1: a token in: $(cat "$T/err")"
}

# The right files: it works.
echo one >"$T/one"
ctl put k "$T/one"
[ "$RC" = 0 ] && [ "$(cat "$T/out")" = 1 ] || fail "put with TLS: $RC $(cat "$T/err")"
ctl get k
[ "$(cat "$T/out")" = one ] || fail "get with TLS: $(cat "$T/out") $(cat "$T/err")"

# unchanged: k still holds "one" at version 1; the members are nodes 0-2
# at epoch 1; node 3 is still empty.
unchanged() {
	ctl get k
	[ "$RC" = 0 ] && [ "$(cat "$T/out")" = one ] || fail "$1 changed k: $(cat "$T/out")"
	ctl version k
	[ "$(cat "$T/out")" = 1 ] || fail "$1 changed k's version: $(cat "$T/out")"
	ctl member list
	[ "$(grep -c ' member 1$' "$T/out")" = 3 ] && [ "$(wc -l <"$T/out")" = 3 ] ||
		fail "$1 changed the members: $(cat "$T/out")"
	curl -s "${CAS_CURL_TLS[@]}" -o "$T/out3" -w '%{http_code}' "$(cas_url 3)/v1/config" \
		>"$T/code3"
	[ "$(cat "$T/code3")" = 503 ] && grep -q uninitialized "$T/out3" ||
		fail "$1 changed node 3: $(cat "$T/code3") $(cat "$T/out3")"
}

# attack WHAT WORD [VAR=VALUE...]: with the environment changed so,
# every way to read, write or take the cluster over fails with WORD, and
# nothing changed.
attack() {
	local what=$1 word=$2
	shift 2
	(
		for a in "$@"; do
			case $a in
			*=) unset "${a%=}" ;;
			*) export "${a?}" ;;
			esac
		done
		ctl get k && refused "$what: get" "$word"
		ctl put k "$T/one" && refused "$what: put" "$word"
		ctl cas k 1 "$T/one" && refused "$what: cas" "$word"
		ctl member remove "$(cas_url 2)" && refused "$what: member remove" "$word"
		ctl member add "$(cas_url 3)" && refused "$what: member add" "$word"
		RC=0
		"$CAS_BIN/casctl" --nodes "$(cas_url 3)" --timeout 3 init >"$T/out" 2>"$T/err" ||
			RC=$?
		refused "$what: init of an empty node" "$word"
	) || exit 1
	unchanged "$what"
}

attack "no client certificate" "no client certificate was given" CAS_TLS_CERT= CAS_TLS_KEY=
attack "a client certificate of another authority" "refuse the client certificate" \
	"CAS_TLS_CERT=$C/evil_client.crt" "CAS_TLS_KEY=$C/evil_client.key"
attack "an expired client certificate" "refuse the client certificate" \
	"CAS_TLS_CERT=$C/old_client.crt" "CAS_TLS_KEY=$C/old_client.key"
attack "trusting another authority" "certificate" "CAS_TLS_CA=$C/evil.crt"
attack "no TLS files" "certificate" CAS_TLS_CA= CAS_TLS_CERT= CAS_TLS_KEY=
attack "no token" "missing token" CAS_TOKEN_FILE=
attack "a wrong token" "wrong token" "CAS_TOKEN_FILE=$T/wrong.token"

# http:// URLs with TLS files: refused by the client, before the token
# could go out in clear.
NODES=${NODES//https:/http:} ctl get k
refused "http:// with TLS files" 'protocol "http"'
NODES=$(cas_url 0),$(cas_url 1),$(cas_url 2)

# Bad files fail at start with exit 2, naming the file.
ctl --tls-ca "$T/nonexistent" get k
refused "a missing CA file" "$T/nonexistent"
[ "$RC" = 2 ] || fail "a missing CA file: exit $RC, want 2"
ctl --tls-cert "$T" get k
refused "a folder as certificate" "not a regular file"
ctl --tls-key "$C/client.crt" get k
refused "a certificate as key" "no PEM PRIVATE KEY"
ctl --tls-cert "" get k
refused "a key without its certificate" "needs its certificate"
(umask 022 && printf 'spaced %s\n' "$TOKEN" >"$T/spaced.token")
chmod 600 "$T/spaced.token"
ctl --token-file "$T/spaced.token" get k
refused "a token with a space" "$T/spaced.token"
cp "$CAS_TOKEN_FILE" "$T/open.token"
chmod 644 "$T/open.token"
ctl --token-file "$T/open.token" get k
refused "a token file others can read" "chmod o-rw"
[ "$RC" = 2 ] || fail "a token file others can read: exit $RC, want 2"
unchanged "bad files"

# casfs: refused without the token, or with a missing file, before it
# mounts; mounts with the right files.
mnt=$T/mnt
mkdir -p "$mnt"
ca_opts="tls_ca=$CAS_TLS_CA,tls_cert=$CAS_TLS_CERT,tls_key=$CAS_TLS_KEY"
RC=0
timeout 30 "$CAS_BIN/casfs" -f -o "nodes=$NODES,$ca_opts,timeout=3" "$mnt" 2>"$T/err" || RC=$?
refused "casfs without the token" "missing token"
! mountpoint -q "$mnt" || fail "casfs mounted without the token"
RC=0
timeout 30 "$CAS_BIN/casfs" -f -o "nodes=$NODES,$ca_opts,token_file=$T/none" "$mnt" \
	2>"$T/err" || RC=$?
refused "casfs with a missing token file" "$T/none"
! mountpoint -q "$mnt" || fail "casfs mounted with a missing token file"
cas_mount "$mnt"
echo hello >"$mnt/f" || fail "write through the TLS mount"
[ "$(cat "$mnt/f")" = hello ] || fail "read through the TLS mount"

# The token is in no argv, no mount table and no log.
for p in $(pgrep -x casfs) $(pgrep -x casd); do
	! tr '\0' ' ' <"/proc/$p/cmdline" | grep -qF "$TOKEN" || fail "the token in pid $p's argv"
done
! grep -qF "$TOKEN" /proc/mounts || fail "the token in /proc/mounts"
! grep -qF -e "$TOKEN" -e "$WRONG" "$T"/*.log || fail "a token in a log"

echo "casctl tls: ok"
