#!/usr/bin/env bash
# cluster.sh - start or stop a local three-node casd cluster and a casfs mount.
#
# usage: cluster.sh start [--tls] [DIR]   start nodes and mount DIR/mnt
#        cluster.sh stop [DIR]            unmount and stop everything started
#        cluster.sh status [DIR]
#
# DIR (default ./cluster) keeps the nodes' data, logs, pid files and the
# mount point. Binaries come from $CAS_BIN (default ./build); nothing is
# built. Nodes listen on free ports of 127.0.0.1. Extra mount options go
# in $CASFS_OPTS (for example CASFS_OPTS=timeout=2).
#
# --tls (README, Security): the first start makes a certificate authority,
# a certificate for each node and one for the clients, and a shared token,
# with openssl, in DIR/tls; the nodes then serve https only, ask for a
# client certificate from that authority and the token, and casctl and the
# mount use them. A cluster made with --tls stays so (later starts need
# no --tls); one made without cannot take it (its members' URLs are
# http://).
set -eu

prog=${0##*/}
die() {
	echo "$prog: $*" >&2
	exit 1
}

nodes=3
op=${1:-}
tls=0
[ "${2:-}" != --tls ] || { tls=1 && shift; }
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

# make_tls: DIR/tls/ca.{crt,key}, n0..n2.{crt,key} (server certificates
# for 127.0.0.1 and localhost), client.{crt,key} and token; keys and the
# token mode 0600. In a real cluster the CA's key stays on one machine,
# away from the nodes (README, Security).
make_tls() {
	local t=$dir/tls.new name ext
	command -v openssl >/dev/null || die "openssl not found (install openssl)"
	rm -rf "$t"
	mkdir -p "$t"
	(
		umask 077
		set -e
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
			-keyout "$t/ca.key" -out "$t/ca.crt" -subj "/CN=casfs example CA" \
			-addext "basicConstraints=critical,CA:true" \
			-addext "keyUsage=critical,keyCertSign,cRLSign"
		for name in n0 n1 n2 client; do
			if [ "$name" = client ]; then
				ext="extendedKeyUsage=clientAuth"
			else
				ext="extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost"
			fi
			openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
				-keyout "$t/$name.key" -out "$t/$name.csr" -subj "/CN=casfs $name"
			printf '%s\n' "basicConstraints=critical,CA:false" \
				"keyUsage=critical,digitalSignature" "$ext" >"$t/$name.ext"
			openssl x509 -req -in "$t/$name.csr" -CA "$t/ca.crt" -CAkey "$t/ca.key" \
				-CAcreateserial -days 825 -extfile "$t/$name.ext" -out "$t/$name.crt"
			rm -f "$t/$name.csr" "$t/$name.ext"
		done
		openssl rand -hex 32 >"$t/token"
		chmod 644 "$t"/*.crt
	) >"$dir/tls.log" 2>&1 || die "openssl could not make the certificates; see $dir/tls.log"
	mv "$t" "$dir/tls"
}

start() {
	local i port urls=
	for b in casd casctl casfs; do
		[ -x "$bin/$b" ] || die "no $bin/$b: build first, or set CAS_BIN to the folder with casd, casctl and casfs"
	done
	command -v fusermount3 >/dev/null || die "fusermount3 not found (install fuse3)"
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	! alive "$dir/casfs.pid" || die "already running in $dir (stop it first)"
	if [ "$tls" = 1 ] && [ ! -d "$dir/tls" ]; then
		[ ! -s "$dir/cluster" ] ||
			die "the cluster in $dir was made without --tls; start it without, or use a new DIR"
		make_tls
	fi
	local scheme=http casd_tls=() client_tls=() mount_tls=
	if [ -d "$dir/tls" ]; then
		scheme=https
		client_tls=(--tls-ca "$dir/tls/ca.crt" --tls-cert "$dir/tls/client.crt"
			--tls-key "$dir/tls/client.key" --token-file "$dir/tls/token")
		mount_tls=",tls_ca=$dir/tls/ca.crt,tls_cert=$dir/tls/client.crt"
		mount_tls+=",tls_key=$dir/tls/client.key,token_file=$dir/tls/token"
	fi
	for ((i = 0; i < nodes; i++)); do
		mkdir -p "$dir/n$i"
		alive "$dir/n$i.pid" && die "node $i already running (pid $(cat "$dir/n$i.pid"))"
		# A node restarts on its old port, so that the mount finds it.
		port=0
		[ -s "$dir/n$i.port" ] && port=$(cat "$dir/n$i.port")
		rm -f "$dir/n$i.port"
		casd_tls=()
		[ "$scheme" = http ] ||
			casd_tls=(--tls-cert "$dir/tls/n$i.crt" --tls-key "$dir/tls/n$i.key"
				--tls-ca "$dir/tls/ca.crt" --token-file "$dir/tls/token")
		"$bin/casd" --listen "127.0.0.1:$port" --data "$dir/n$i" --port-file "$dir/n$i.port" \
			"${casd_tls[@]}" >>"$dir/n$i.log" 2>&1 &
		echo $! >"$dir/n$i.pid"
		wait_for 100 test -s "$dir/n$i.port" ||
			die "node $i did not start; see $dir/n$i.log"
		urls+="${urls:+,}$scheme://127.0.0.1:$(cat "$dir/n$i.port")"
	done
	echo "$urls" >"$dir/nodes"
	# The first start makes the nodes one cluster (and writes the
	# filesystem's root); later starts find them initialized.
	if [ ! -s "$dir/cluster" ]; then
		if ! "$bin/casctl" --nodes "$urls" "${client_tls[@]}" init >"$dir/cluster.new" \
			2>>"$dir/casctl.log"; then
			tail -n 3 "$dir/casctl.log" >&2
			stop
			die "casctl init failed; see $dir/casctl.log"
		fi
		mv "$dir/cluster.new" "$dir/cluster"
	fi
	mkdir -p "$dir/mnt"
	"$bin/casfs" -f -o "nodes=$urls$mount_tls${CASFS_OPTS:+,$CASFS_OPTS}" "$dir/mnt" \
		>>"$dir/casfs.log" 2>&1 &
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
	MSG
	[ "$scheme" = http ] || cat <<-MSG
	  # TLS: casctl takes the client's files from the environment
	  export CAS_TLS_CA=$dir/tls/ca.crt CAS_TOKEN_FILE=$dir/tls/token
	  export CAS_TLS_CERT=$dir/tls/client.crt CAS_TLS_KEY=$dir/tls/client.key
	MSG
	cat <<-MSG

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
*) die "usage: $prog start [--tls] [DIR] | stop [DIR] | status [DIR]" ;;
esac
