# casctl_basics.sh - casctl against a three-node cluster: binary-safe round
# trips, versions, conditional writes, usage errors, limits and status.
. "$CAS_SRC/tests/lib.sh"
cas_start_cluster 3

T=$CAS_TMP

# expect_exit CODE CMD...: runs CMD (stdout to $T/out, stderr to $T/err)
# and fails unless it exits with CODE.
expect_exit() {
	local want=$1 rc=0
	shift
	"$@" >"$T/out" 2>"$T/err" || rc=$?
	[ "$rc" -eq "$want" ] ||
		fail "'$*' exited $rc, want $want: $(head -c 300 "$T/err")"
}

# --help, --version
expect_exit 0 casctl --help
grep -q "usage: casctl" "$T/out" || fail "--help prints no usage"
expect_exit 0 "$CAS_BIN/casctl" --version
grep -q "^casctl [0-9]" "$T/out" || fail "--version: $(cat "$T/out")"

# A never-written key: version 0, get prints nothing.
expect_exit 0 casctl version fresh
[ "$(cat "$T/out")" = 0 ] || fail "new key has version $(cat "$T/out")"
expect_exit 0 casctl get fresh
[ ! -s "$T/out" ] || fail "get of a new key printed $(wc -c <"$T/out") bytes"

# Binary-safe round trip: NULs, high bytes, no trailing newline, from stdin.
printf 'a\000b\377\000\n\000z' >"$T/bin"
expect_exit 0 casctl put bin <"$T/bin"
[ "$(cat "$T/out")" = 1 ] || fail "first put printed version $(cat "$T/out"), want 1"
casctl get bin >"$T/got" || fail "get bin failed"
cmp -s "$T/bin" "$T/got" || fail "round trip changed the bytes: $(od -c "$T/got")"

# From a file, with every byte value, and an empty value.
awk 'BEGIN { for (i = 0; i < 256; i++) printf "%c", i }' >"$T/all" 2>/dev/null ||
	fail "awk could not write bytes"
[ "$(wc -c <"$T/all")" -eq 256 ] || head -c 256 /dev/urandom >"$T/all"
expect_exit 0 casctl put bin "$T/all"
[ "$(cat "$T/out")" = 2 ] || fail "second put printed version $(cat "$T/out"), want 2"
casctl get bin >"$T/got" || fail "get bin failed"
cmp -s "$T/all" "$T/got" || fail "file round trip changed the bytes"
: >"$T/empty"
expect_exit 0 casctl put bin "$T/empty"
casctl get bin >"$T/got" || fail "get bin failed"
[ ! -s "$T/got" ] || fail "empty value came back as $(wc -c <"$T/got") bytes"

# Versions start at 1 and grow by one per write; reads do not move them.
for i in 1 2 3 4 5; do
	echo "v$i" | casctl put counter >/dev/null || fail "put $i failed"
	[ "$(casctl version counter)" = "$i" ] || fail "after put $i version is $(casctl version counter)"
	[ "$(casctl version counter)" = "$i" ] || fail "a read moved the version"
	[ "$(casctl get counter)" = "v$i" ] || fail "get after put $i: $(casctl get counter)"
done

# cas with the right version writes and prints the next one.
echo six >"$T/six"
expect_exit 0 casctl cas counter 5 "$T/six"
[ "$(cat "$T/out")" = 6 ] || fail "cas printed $(cat "$T/out"), want 6"
[ "$(casctl get counter)" = six ] || fail "cas did not write"

# A stale cas exits 3, says the current version, and changes nothing.
echo stale >"$T/stale"
expect_exit 3 casctl cas counter 5 "$T/stale"
grep -q "6" "$T/err" || fail "stale cas did not print the current version: $(cat "$T/err")"
[ ! -s "$T/out" ] || fail "stale cas printed on stdout"
[ "$(casctl get counter)" = six ] || fail "stale cas changed the value"
[ "$(casctl version counter)" = 6 ] || fail "stale cas changed the version"

# cas 0 creates a key only when it was never written.
expect_exit 0 casctl cas created 0 "$T/six"
[ "$(cat "$T/out")" = 1 ] || fail "cas 0 on a new key printed $(cat "$T/out")"
expect_exit 3 casctl cas created 0 "$T/stale"
[ "$(casctl get created)" = six ] || fail "second cas 0 overwrote the key"

# Bad usage and bad input exit 2, before touching anything.
expect_exit 2 casctl
expect_exit 2 casctl frobnicate k
expect_exit 2 casctl get
expect_exit 2 casctl get a b
expect_exit 2 casctl put
expect_exit 2 casctl cas counter
expect_exit 2 casctl cas counter notanumber "$T/six"
expect_exit 2 casctl cas counter -1 "$T/six"
expect_exit 2 casctl cas counter 99999999999999999999999 "$T/six"
expect_exit 2 casctl get 'bad key'
expect_exit 2 casctl get ''
expect_exit 2 casctl put "$(printf 'k%.0s' $(seq 251))" "$T/six"
expect_exit 2 casctl put counter "$T/no-such-file"
grep -q "no-such-file" "$T/err" || fail "unreadable file: $(cat "$T/err")"
expect_exit 2 casctl --timeout 0 get counter
expect_exit 2 casctl --timeout soon get counter
expect_exit 2 casctl --bogus get counter
expect_exit 2 "$CAS_BIN/casctl" --nodes '' get counter
expect_exit 2 "$CAS_BIN/casctl" --nodes 'ftp://x' get counter
expect_exit 0 casctl --timeout 2.5 get counter
[ "$(casctl version counter)" = 6 ] || fail "bad usage changed the version"
[ "$(wc -l <"$T/err")" -le 1 ] || fail "more than one error line"

# CAS_NODES is the default for --nodes.
CAS_NODES=$(cas_nodes) "$CAS_BIN/casctl" get counter >"$T/out" ||
	fail "CAS_NODES not used"
[ "$(cat "$T/out")" = six ] || fail "CAS_NODES get: $(cat "$T/out")"

# A value one byte over the limit exits 2 and writes nothing; at the limit
# it is stored whole.
head -c $((1024 * 1024 + 1)) /dev/urandom >"$T/big"
expect_exit 2 casctl put counter "$T/big"
[ "$(casctl version counter)" = 6 ] || fail "too large value changed the version"
head -c $((1024 * 1024)) "$T/big" >"$T/max"
expect_exit 0 casctl put large "$T/max"
casctl get large >"$T/got" || fail "get large failed"
cmp -s "$T/max" "$T/got" || fail "1 MiB value came back different"

# status: one line per node with its cluster, node id and epoch; exit 0
# with a majority.
expect_exit 0 casctl status
[ "$(grep -c ' reachable cluster ' "$T/out")" -eq 3 ] || fail "status: $(cat "$T/out")"
for i in 0 1 2; do
	grep -q "^$(cas_url $i) reachable cluster $CAS_CLUSTER node [0-9a-f]\{16\} epoch 1 ok " \
		"$T/out" || fail "status lacks node $i: $(cat "$T/out")"
done

# member list: the three members, at epoch 1.
expect_exit 0 casctl member list
[ "$(grep -c ' member 1$' "$T/out")" -eq 3 ] || fail "member list: $(cat "$T/out")"

# init on an initialized cluster: refused, nothing changed.
expect_exit 1 casctl init
grep -q "is initialized already" "$T/err" ||
	fail "init twice: $(cat "$T/err")"

echo "casctl basics: ok"
