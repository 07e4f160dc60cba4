#!/usr/bin/env bash
# counter.sh - increment a counter file on a casfs mount with conditional writes.
#
# usage: counter.sh FILE [N]
#
# Each increment reads the file's version (getfattr user.casfs.version),
# then its value, and writes value+1 with setfattr user.casfs.cas.VERSION,
# which succeeds only if nobody changed the file in between; when somebody
# did, setfattr fails with "Stale file handle" (ESTALE) and we start over.
# Any number of counter.sh on any number of mounts lose no increment.
set -eu

prog=${0##*/}
die() {
	echo "$prog: $*" >&2
	exit 1
}

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: $prog FILE [N]"
file=$1
n=${2:-1}
case $n in '' | *[!0-9]*) die "N must be a number, not '$n'" ;; esac

# Create the counter if it does not exist; O_EXCL, so a concurrent creator
# wins and we use its file.
[ -e "$file" ] || (set -C && : >"$file") 2>/dev/null || [ -e "$file" ] ||
	die "cannot create $file"

for ((i = 0; i < n; i++)); do
	while :; do
		version=$(getfattr --only-values --absolute-names -n user.casfs.version -- "$file") ||
			die "cannot read the version of $file (is it on a casfs mount?)"
		value=$(cat -- "$file") || die "cannot read $file"
		case $value in
		'') value=0 ;;
		*[!0-9]*) die "$file does not hold a number: '$value'" ;;
		esac
		if err=$(setfattr -n "user.casfs.cas.$version" -v "$((10#$value + 1))" -- "$file" 2>&1); then
			break
		fi
		case $err in
		*"Stale file handle"*) ;; # lost the race: read again
		*) die "conditional write failed: $err" ;;
		esac
	done
done
