#!/usr/bin/env bash
# lock.sh - a lock file on a casfs mount, taken and given back with conditional writes.
#
# usage: lock.sh acquire FILE OWNER [TIMEOUT_SECONDS]
#        lock.sh release FILE OWNER
#
# The file holds its owner's name, or nothing when the lock is free.
# acquire waits (polling) until the lock is free or already OWNER's and
# writes OWNER into it only if the file's version did not move since it
# was read (setfattr user.casfs.cas.VERSION); it gives up after TIMEOUT
# seconds (default 30) with exit status 2. release empties the file, only
# if OWNER holds the lock (exit status 3 otherwise). OWNER is any
# non-empty string; it is written byte for byte.
set -eu

prog=${0##*/}
# die MESSAGE [STATUS]
die() {
	echo "$prog: $1" >&2
	exit "${2:-1}"
}

usage="usage: $prog acquire FILE OWNER [TIMEOUT_SECONDS] | release FILE OWNER"
[ $# -ge 3 ] || die "$usage"
op=$1 file=$2 owner=$3
timeout=${4:-30}
[ -n "$owner" ] || die "OWNER must not be empty"
case $timeout in '' | *[!0-9]*) die "TIMEOUT_SECONDS must be a whole number, not '$timeout'" ;; esac

version() {
	getfattr --only-values --absolute-names -n user.casfs.version -- "$file" ||
		die "cannot read the version of $file (is it on a casfs mount?)"
}

# holder: the lock's content. A trailing newline would be lost by $(...),
# so add a dot and take it off.
holder() {
	local h
	h=$(cat -- "$file" && echo .) || die "cannot read $file"
	printf '%s' "${h%.}"
}

# cas VERSION CONTENT: 0 on success, 1 when the version moved.
cas() {
	local err value=
	# base64 ("0s...") keeps any bytes; setfattr silently skips an empty
	# "0s", so an empty value goes as "".
	[ -z "$2" ] || value=0s$(printf '%s' "$2" | base64 -w0)
	if err=$(setfattr -n "user.casfs.cas.$1" -v "$value" -- "$file" 2>&1); then
		return 0
	fi
	case $err in
	*"Stale file handle"*) return 1 ;;
	*) die "conditional write failed: $err" ;;
	esac
}

case $op in
acquire)
	[ -e "$file" ] || : >>"$file" || die "cannot create $file"
	deadline=$(($(date +%s%N) + timeout * 1000000000))
	while :; do
		v=$(version)
		h=$(holder)
		if [ -z "$h" ] || [ "$h" = "$owner" ]; then
			cas "$v" "$owner" && exit 0
			continue
		fi
		[ "$(date +%s%N)" -lt "$deadline" ] ||
			die "timed out after ${timeout}s: $file is held by '$h'" 2
		sleep 0.05
	done
	;;
release)
	[ -e "$file" ] || die "no lock file $file" 3
	while :; do
		v=$(version)
		h=$(holder)
		[ "$h" = "$owner" ] || die "not released: $file is held by '${h:-nobody}', not '$owner'" 3
		cas "$v" "" && exit 0
	done
	;;
*)
	die "$usage"
	;;
esac
