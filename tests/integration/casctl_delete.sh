# casctl_delete.sh - casctl delete against a three-node cluster: a delete
# makes the key read as absent, a conditional delete checks the version,
# deleting an absent key succeeds, the next write starts at version 1,
# and bad input exits 2 before touching anything.
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

# is_absent KEY: version 0 and no bytes.
is_absent() {
	[ "$(casctl version "$1")" = 0 ] || fail "$1 has version $(casctl version "$1") after delete"
	casctl get "$1" >"$T/got" || fail "get $1 failed"
	[ ! -s "$T/got" ] || fail "get of deleted $1 printed $(wc -c <"$T/got") bytes"
}

# A delete: the key reads as absent.
echo one | casctl put k >/dev/null || fail "put k"
echo two | casctl put k >/dev/null || fail "put k again"
expect_exit 0 casctl delete k
[ ! -s "$T/out" ] || fail "delete printed $(cat "$T/out")"
is_absent k

# Written again: a new life at version 1, the new bytes only.
echo three | casctl put k >"$T/out" || fail "put after delete"
[ "$(cat "$T/out")" = 1 ] || fail "put after delete made version $(cat "$T/out"), want 1"
[ "$(casctl get k)" = three ] || fail "get after the new write: $(casctl get k)"
echo four | casctl put k >/dev/null || fail "put k"
[ "$(casctl version k)" = 2 ] || fail "second write of the new life: $(casctl version k)"

# A conditional delete on a stale version: exit 3, the current version on
# stderr, nothing deleted.
expect_exit 3 casctl delete k 1
grep -q "version is 2" "$T/err" || fail "stale delete did not say the version: $(cat "$T/err")"
[ "$(casctl get k)" = four ] || fail "stale delete changed the value"
[ "$(casctl version k)" = 2 ] || fail "stale delete changed the version"
# On the right version it deletes.
expect_exit 0 casctl delete k 2
is_absent k
# Conditional on 0: the key is absent, so that holds (and changes nothing).
expect_exit 0 casctl delete k 0
is_absent k
expect_exit 3 casctl delete k 5
grep -q "version is 0" "$T/err" || fail "delete k 5 of an absent key: $(cat "$T/err")"

# Deleting a key never written succeeds and leaves it absent.
expect_exit 0 casctl delete never-written
is_absent never-written
# cas 0 creates a deleted key again.
echo new >"$T/new"
expect_exit 0 casctl cas k 0 "$T/new"
[ "$(cat "$T/out")" = 1 ] || fail "cas 0 after delete made version $(cat "$T/out")"
[ "$(casctl get k)" = new ] || fail "cas 0 after delete did not write"

# Bad usage and bad input: exit 2, nothing deleted.
expect_exit 2 casctl delete
expect_exit 2 casctl delete 'bad key'
grep -q "bad key" "$T/err" || fail "bad key message: $(cat "$T/err")"
expect_exit 2 casctl delete k notanumber
expect_exit 2 casctl delete k -1
expect_exit 2 casctl delete k 1 extra
[ "$(casctl get k)" = new ] || fail "a refused delete changed k"

# A cluster without a majority: exit 4, within the deadline.
cas_stop_node 1
cas_stop_node 2
expect_exit 4 casctl --timeout 0.5 delete k
cas_valgrind_check || fail "valgrind reported errors"
echo "casctl delete: ok"
