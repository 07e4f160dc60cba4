#!/usr/bin/env bash
# status.sh - casctl status (text and --json; exit 0 while a majority of
# the members is healthy, 4 without), GET /v1/health's usage fields, and
# df on a mount, which reports the cluster's use and moves with it.
. "$CAS_SRC/tests/lib.sh"

cas_start_cluster 3
T=$CAS_TMP

# Every node, with its identity, health, use and round-trip time.
casctl status >"$T/out" 2>"$T/err" || fail "status exited $?: $(cat "$T/err")"
[ "$(wc -l <"$T/out")" = 3 ] || fail "status: $(cat "$T/out")"
for i in 0 1 2; do
	grep -q "^$(cas_url $i) reachable cluster $CAS_CLUSTER node [0-9a-f]\{16\} epoch 1 ok version [0-9.]* keys [0-9]* bytes [0-9]* capacity [0-9]* log [0-9]*/[0-9]* rtt [0-9.]*ms$" \
		"$T/out" || fail "status of node $i: $(cat "$T/out")"
done
# One seed is enough: the members it names are asked too.
"$CAS_BIN/casctl" --nodes "$(cas_url 1)" status >"$T/out" || fail "status from one seed"
[ "$(grep -c ' ok ' "$T/out")" = 3 ] || fail "status from one seed: $(cat "$T/out")"

# --json: one object; health's fields as numbers.
casctl status --json >"$T/json" || fail "status --json exited $?"
python3 - "$T/json" "$CAS_CLUSTER" <<'PY' || fail "status --json: $(cat "$T/json")"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["majority_healthy"] is True and s["healthy"] == 3, s
assert s["cluster"] == sys.argv[2] and s["epoch"] == 1 and s["members"] == 3, s
assert len(s["nodes"]) == 3
for n in s["nodes"]:
    assert n["reachable"] and n["healthy"] and n["member"] and n["status"] == "ok", n
    assert n["keys"] >= 1 and 0 < n["bytes"] <= n["capacity"], n
    assert 0 <= n["log_used"] <= n["log_size"] and n["rtt_ms"] > 0, n
PY
casctl status --bad 2>/dev/null
[ $? = 2 ] || fail "status --bad: not a usage error"

# /v1/health carries the use (PROTOCOL.md).
cas_curl -s "$(cas_url 0)/v1/health" >"$T/h"
grep -q '"bytes":"[0-9]*","capacity":"[0-9]*","log_used":"[0-9]*","log_size":"[0-9]*"' "$T/h" ||
	fail "health: $(cat "$T/h")"

# df: the cluster's use, and it moves when a large file is written.
m=$T/m
cas_mount "$m"
used() { df -B1 --output=used "$m" | tail -n 1 | tr -d ' '; }
inodes() { df --output=iused "$m" | tail -n 1 | tr -d ' '; }
size=$(df -B1 --output=size "$m" | tail -n 1 | tr -d ' ')
before=$(used)
[ "$size" -gt 0 ] && [ "$before" -gt 0 ] && [ "$before" -lt "$size" ] ||
	fail "df: used $before of $size"
keys=$(inodes)
head -c 900000 /dev/urandom >"$m/large" || fail "writing a large file"
cas_wait_until 50 sh -c "[ \$(df -B1 --output=used '$m' | tail -n 1) -ge $((before + 800000)) ]" ||
	fail "df used $(used) after 900 kB, was $before"
[ "$(inodes)" -gt "$keys" ] || fail "df -i: $(inodes) registers, was $keys"

# One node down: a majority is healthy still, exit 0.
cas_stop_node 2
casctl --timeout 1 status >"$T/out" 2>"$T/err" || fail "status with one node down exited $?"
grep -q "^$(cas_url 2) unreachable" "$T/out" || fail "status: $(cat "$T/out")"
df "$m" >/dev/null || fail "df with one node down"

# Two down: no majority healthy, exit 4, in text and in JSON.
cas_stop_node 1
casctl --timeout 1 status >"$T/out" 2>"$T/err"
[ $? = 4 ] || fail "status with two nodes down: not 4"
grep -q "no majority healthy (1 of 3 members" "$T/err" || fail "status said: $(cat "$T/err")"
casctl --timeout 1 status --json >"$T/json" 2>/dev/null
[ $? = 4 ] || fail "status --json with two nodes down: not 4"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["majority_healthy"] is False and s["healthy"] == 1, s' \
	"$T/json" || fail "status --json: $(cat "$T/json")"
cas_valgrind_check || fail "valgrind"
echo "status: ok"
