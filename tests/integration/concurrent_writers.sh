# concurrent_writers.sh - four casctl loops race read-version/cas increments
# on one key: every increment lands exactly once (no lost update, no
# double apply), and the version counts the writes.
. "$CAS_SRC/tests/lib.sh"
cas_start_cluster 3

WRITERS=4
EACH=25

echo 0 | casctl put counter >/dev/null || fail "initial put failed"

# writer ID: EACH increments, each a read of the version and value and a cas
# on that version, retried when another writer won the race (exit 3).
writer() {
	local id=$1 done=0 tries=0 v n rc
	while [ "$done" -lt "$EACH" ]; do
		tries=$((tries + 1))
		[ "$tries" -le 2000 ] || { echo "writer $id: too many tries" >&2; return 1; }
		v=$(casctl version counter) || { echo "writer $id: version failed" >&2; return 1; }
		n=$(casctl get counter) || { echo "writer $id: get failed" >&2; return 1; }
		rc=0
		echo $((n + 1)) | casctl cas counter "$v" >/dev/null 2>&1 || rc=$?
		case $rc in
		0) done=$((done + 1)) ;;
		3) ;; # lost the race: read again
		*) echo "writer $id: cas exited $rc" >&2; return 1 ;;
		esac
	done
	echo "$tries" >"$CAS_TMP/tries.$id"
}

pids=()
for ((w = 0; w < WRITERS; w++)); do
	writer "$w" &
	pids+=($!)
done
for p in "${pids[@]}"; do
	wait "$p" || fail "a writer failed"
done

total=$((WRITERS * EACH))
got=$(casctl get counter) || fail "final get failed"
[ "$got" = "$total" ] || fail "counter is $got, want $total"
# One initial put plus one version per successful cas.
ver=$(casctl version counter) || fail "final version failed"
[ "$ver" = $((total + 1)) ] || fail "version is $ver, want $((total + 1))"

tries=0
for ((w = 0; w < WRITERS; w++)); do tries=$((tries + $(cat "$CAS_TMP/tries.$w"))); done
echo "concurrent writers: ok ($total increments in $tries tries)"
