#!/usr/bin/env bash
# cluster.sh - start or stop a local three-node casd cluster and a casfs mount.
#
# usage: cluster.sh start [DIR]   start nodes and mount DIR/mnt
#        cluster.sh stop [DIR]    unmount and stop everything started
#        cluster.sh status [DIR]
#
# DIR (default ./cluster) keeps the nodes' data, logs, pid files and the
# mount point. Binaries come from $CAS_BIN (default ./build); nothing is
# built. Nodes listen on free ports of 127.0.0.1. Extra mount options go
# in $CASFS_OPTS (for example CASFS_OPTS=timeout=2).
set -eu

prog=${0##*/}
die() {
	echo "$prog: $*" >&2
	exit 1
}

nodes=3
op=${1:-}
dir=${2:-./cluster}
bin=${CAS_BIN:-./build}

# wait_for TENTHS CMD...: polls CMD every 0.1 s.
wait_for() {
	local n=$1
	shift
	until "$@" >/dev/null 2>&1; do
		n=$((n - 1))
		[ "$n" -gt 0 ] || return 1
		sleep 0.1
	done
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
	local i port urls=
	for b in casd casctl casfs; do
		[ -x "$bin/$b" ] || die "no $bin/$b: build first, or set CAS_BIN to the folder with casd, casctl and casfs"
	done
	command -v fusermount3 >/dev/null || die "fusermount3 not found (install fuse3)"
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	! alive "$dir/casfs.pid" || die "already running in $dir (stop it first)"
	for ((i = 0; i < nodes; i++)); do
		mkdir -p "$dir/n$i"
		alive "$dir/n$i.pid" && die "node $i already running (pid $(cat "$dir/n$i.pid"))"
		# A node restarts on its old port, so that the mount finds it.
		port=0
		[ -s "$dir/n$i.port" ] && port=$(cat "$dir/n$i.port")
		rm -f "$dir/n$i.port"
		"$bin/casd" --listen "127.0.0.1:$port" --data "$dir/n$i" --port-file "$dir/n$i.port" \
			>>"$dir/n$i.log" 2>&1 &
		echo $! >"$dir/n$i.pid"
		wait_for 100 test -s "$dir/n$i.port" ||
			die "node $i did not start; see $dir/n$i.log"
		urls+="${urls:+,}http://127.0.0.1:$(cat "$dir/n$i.port")"
	done
	echo "$urls" >"$dir/nodes"
	# The first start makes the nodes one cluster (and writes the
	# filesystem's root); later starts find them initialized.
	if [ ! -s "$dir/cluster" ]; then
		if ! "$bin/casctl" --nodes "$urls" init >"$dir/cluster.new" 2>>"$dir/casctl.log"; then
			tail -n 3 "$dir/casctl.log" >&2
			stop
			die "casctl init failed; see $dir/casctl.log"
		fi
		mv "$dir/cluster.new" "$dir/cluster"
	fi
	mkdir -p "$dir/mnt"
	"$bin/casfs" -f -o "nodes=$urls${CASFS_OPTS:+,$CASFS_OPTS}" "$dir/mnt" >>"$dir/casfs.log" 2>&1 &
	echo $! >"$dir/casfs.pid"
	if ! wait_for 100 mountpoint -q "$dir/mnt"; then
		tail -n 3 "$dir/casfs.log" >&2
		stop
		die "casfs did not mount $dir/mnt; see $dir/casfs.log"
	fi
	cat <<-MSG
	casfs is mounted on $dir/mnt, backed by $nodes casd nodes of cluster
	$(cat "$dir/cluster"):
	  $urls

	Try:
	  echo hello > $dir/mnt/greeting; cat $dir/mnt/greeting
	  getfattr -n user.casfs.version $dir/mnt/greeting
	  examples/counter.sh $dir/mnt/counter 10
	  examples/lock.sh acquire $dir/mnt/lock \$USER
	  export CAS_NODES=$urls    # for casctl and more mounts
	  $bin/casctl member list  # the members (README: "Operating a cluster")

	Stop with: $0 stop $dir
	MSG
}

stop() {
	local i p
	[ -d "$dir" ] || die "no cluster in $dir"
	if mountpoint -q "$dir/mnt" 2>/dev/null; then
		fusermount3 -u "$dir/mnt" || die "cannot unmount $dir/mnt (busy? leave it and retry)"
	fi
	for p in "$dir/casfs.pid" "$dir"/n*.pid; do
		[ -f "$p" ] || continue
		if alive "$p"; then
			kill -TERM "$(cat "$p")"
			wait_for 50 sh -c "! kill -0 $(cat "$p")" || kill -KILL "$(cat "$p")" 2>/dev/null || true
		fi
		rm -f "$p"
	done
	echo "stopped; data kept in $dir (rm -r it to start afresh)"
}

status() {
	local p
	for p in "$dir"/n*.pid "$dir/casfs.pid"; do
		[ -f "$p" ] || continue
		if alive "$p"; then echo "$(basename "$p" .pid): running (pid $(cat "$p"))"; else echo "$(basename "$p" .pid): dead"; fi
	done
	mountpoint -q "$dir/mnt" 2>/dev/null && echo "mounted on $dir/mnt" || echo "not mounted"
}

case $op in
start) start ;;
stop) stop ;;
status) status ;;
*) die "usage: $prog start|stop|status [DIR]" ;;
esac
