# control.sh WHAT [ARGS...] - a negative control of the nemesis: runs it
# with --broken WHAT and passes only when the run failed (exit 1) on the
# checker's verdict, a history that is not linearizable; a run that
# passed, or failed otherwise (setup, a hang), fails the control.
what=$1
shift
bin=$CAS_BIN/tests/nemesis
[ -x "$bin" ] || bin=$CAS_BIN/nemesis
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
out=$dir/out
rc=0
"$bin" --broken "$what" --out "$dir" "$@" >"$out" 2>&1 || rc=$?
cat "$out"
if [ "$rc" -ne 1 ]; then
	echo "control $what: nemesis exited $rc, want 1 (a failed check)"
	exit 1
fi
if ! grep -q "history of [0-9]* ops is not linearizable" "$out"; then
	echo "control $what: the run failed, but not on the checker's verdict"
	exit 1
fi
echo "control $what: caught by the checker"
