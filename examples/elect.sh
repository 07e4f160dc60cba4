#!/usr/bin/env bash
# elect.sh - leader election on a casfs mount, with fencing tokens.
#
# usage: elect.sh DIR NAME [SECONDS]
#
# Campaigns for leadership of DIR (a folder on a casfs mount; the same
# folder seen from any mount of the cluster): waits for the flock on
# DIR/leader.lock. Once leader, it stays leader for SECONDS (default 10)
# and, every half second, records "NAME TOKEN" in DIR/leader, the
# resource that leadership protects. The record is written by a
# conditional write (user.casfs.cas.VERSION) that the script makes only
# when DIR/leader holds no higher token: a leader whose lock was lost
# (its mount cut off from the cluster for longer than its lease, while
# another leader was elected) is fenced off (exit status 3) instead of
# overwriting its successor. Run it on several machines at once:
#
#   examples/elect.sh /mnt/cas/svc alpha 30 &    # on one machine
#   examples/elect.sh /mnt/cas/svc beta 30 &     # on another: waits
#   cat /mnt/cas/svc/leader                       # alpha 7
set -eu

prog=${0##*/}
die() {
	echo "$prog: $1" >&2
	exit "${2:-1}"
}

[ $# -ge 2 ] || die "usage: $prog DIR NAME [SECONDS]"
dir=$1 name=$2 seconds=${3:-10}
case $seconds in '' | *[!0-9]*) die "SECONDS must be a whole number" ;; esac
[ -d "$dir" ] || die "no folder $dir"
: >>"$dir/leader" || die "cannot create $dir/leader"

exec 9>>"$dir/leader.lock" || die "cannot open $dir/leader.lock"
flock 9
# Ours is the one exclusive hold.
token=$(getfattr --only-values --absolute-names -n user.casfs.lock -- "$dir/leader.lock" |
	sed -n 's/^flock exclusive token=\([0-9]*\) .*/\1/p')
[ -n "$token" ] || die "no token on $dir/leader.lock (is it on a casfs mount?)"
echo "$name: leader, token $token"

# record: writes "NAME TOKEN" into DIR/leader unless it names a higher
# token; 3 when fenced off.
record() {
	local v cur err
	while :; do
		v=$(getfattr --only-values --absolute-names -n user.casfs.version -- "$dir/leader")
		cur=$(cat -- "$dir/leader")
		if [ -n "$cur" ] && [ "${cur##* }" -gt "$token" ]; then
			echo "$name: fenced off: $dir/leader has token ${cur##* }, mine is $token" >&2
			return 3
		fi
		err=$(setfattr -n "user.casfs.cas.$v" -v "$name $token" -- "$dir/leader" 2>&1) &&
			return 0
		case $err in *"Stale file handle"*) continue ;; esac
		echo "$name: cannot record: $err" >&2
		return 1
	done
}

end=$(($(date +%s) + seconds))
while [ "$(date +%s)" -lt "$end" ]; do
	record || exit $?
	sleep 0.5
done
echo "$name: steps down"
