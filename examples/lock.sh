#!/usr/bin/env bash
# lock.sh - run a command under a cluster-wide lock: flock(1) on a casfs file.
#
# usage: lock.sh [-s] [-w SECONDS] FILE COMMAND [ARG...]
#
# Takes an exclusive lock (-s: shared) on FILE, on any mount of the same
# cluster, runs COMMAND with CASFS_LOCK_TOKEN set to the lock's fencing
# token, and gives the lock back when COMMAND ends. Waits for the lock
# (Ctrl-C stops the wait), at most SECONDS with -w (then exit status 2).
# Exit status: COMMAND's, 2 when the lock was not had in time, 1 on other
# errors.
#
# The token grows with every acquisition of FILE's lock, cluster-wide: pass
# it to what the lock protects, so that it can refuse a holder whose lock
# was lost (its mount cut off for longer than its lease, README "Locks")
# once a newer holder came. See examples/elect.sh.
set -eu

prog=${0##*/}
die() {
	echo "$prog: $1" >&2
	exit "${2:-1}"
}

mode=-x wait=()
while [ $# -gt 0 ]; do
	case $1 in
	-s) mode=-s ;;
	-w)
		[ $# -ge 2 ] || die "-w needs SECONDS"
		wait=(-w "$2")
		shift
		;;
	--) shift && break ;;
	-*) die "unknown option $1" ;;
	*) break ;;
	esac
	shift
done
[ $# -ge 2 ] || die "usage: $prog [-s] [-w SECONDS] FILE COMMAND [ARG...]"
file=$1
shift

exec 9>>"$file" || die "cannot open $file"
flock "$mode" "${wait[@]}" 9 || die "timed out waiting for the lock on $file" 2
# With an exclusive lock, the one exclusive hold is ours; a shared lock's
# token is the last one given, at least as new as ours.
CASFS_LOCK_TOKEN=$(getfattr --only-values --absolute-names -n user.casfs.lock -- "$file" |
	sed -n 's/^flock [a-z]* token=\([0-9]*\) .*/\1/p' | sort -n | tail -n 1)
[ -n "$CASFS_LOCK_TOKEN" ] || die "$file is not on a casfs mount (no user.casfs.lock)"
export CASFS_LOCK_TOKEN
"$@" 9>&-
