#!/bin/bash
# compare.sh - casfs against etcd on this machine: a three-node casd cluster
# and a three-node etcd cluster on loopback, the same workloads on both;
# file operations through a casfs mount next to etcd and to memfs (an
# in-memory FUSE filesystem, tests/bench/memfs.c: the floor); create
# latency in folders of 10, 10^4 and 10^5 entries. Prints tables. Not a
# ctest test.
#
# Usage: tests/bench/compare.sh [--tls] [--no-dirs] [--mount-options OPTS] [compare options, e.g. --runs 3 --seconds 3]
# --no-dirs: without the directory rows (filling the casfs folders takes
# minutes; compare's --dir-budget caps it, default 300 s).
# --mount-options OPTS: -o options of the measured casfs mount (e.g.
# cache, which is weaker than the default: README, Mounting).
# --tls: both clusters over TLS with client certificates (README, Security):
# casd with --tls-cert/--tls-key/--tls-ca and a token, the library and the
# mount over https (tests/lib.sh's TLS mode); etcd with --cert-file,
# --key-file, --trusted-ca-file and --client-cert-auth, its peers alike.
# CAS_BIN names a Release (or RelWithDebInfo) build folder without
# sanitizers; by default ./build-release, configured and built when missing.
# Installs etcd-server from Debian when there is no etcd. Node data of both
# clusters lives in one temporary folder under $TMPDIR (default /tmp), so
# both pay the same fsync. Everything started is stopped and removed at exit.
set -u
[ -z "${CAS_BIN:-}" ] || CAS_BIN=$(realpath -- "$CAS_BIN")
CAS_TLS=0
if [ "${1:-}" = --tls ]; then
	CAS_TLS=1
	shift
fi
export CAS_TLS
DIRS=(--dirs)
if [ "${1:-}" = --no-dirs ]; then
	DIRS=()
	shift
fi
MOUNT_OPTS=
if [ "${1:-}" = --mount-options ]; then
	[ $# -ge 2 ] || { echo "compare.sh: --mount-options needs a value" >&2; exit 2; }
	MOUNT_OPTS=$2
	shift 2
fi
cd "$(dirname "$0")/../.." || exit 1

die() {
	echo "compare.sh: $*" >&2
	exit 1
}

# --- the build ---
if [ -z "${CAS_BIN:-}" ]; then
	CAS_BIN=./build-release
	if [ ! -f "$CAS_BIN/CMakeCache.txt" ]; then
		tests/deps.sh || die "cannot install the build dependencies"
		cmake -S . -B "$CAS_BIN" -DCMAKE_BUILD_TYPE=Release -DCAS_SANITIZE=OFF >/dev/null ||
			die "cannot configure $CAS_BIN"
	fi
fi
[ -f "$CAS_BIN/CMakeCache.txt" ] || die "$CAS_BIN is not a build folder"
grep -Eq '^CMAKE_BUILD_TYPE:[A-Z]+=(Release|RelWithDebInfo)$' "$CAS_BIN/CMakeCache.txt" ||
	die "$CAS_BIN is not a Release build (cmake -DCMAKE_BUILD_TYPE=Release)"
grep -q '^CAS_SANITIZE:BOOL=ON$' "$CAS_BIN/CMakeCache.txt" &&
	die "$CAS_BIN is built with sanitizers; benchmark a build without them"
cmake --build "$CAS_BIN" -j"$(nproc)" --target casd casfs compare memfs >/dev/null ||
	die "cannot build casd, casfs, compare and memfs in $CAS_BIN"
export CAS_BIN

# --- etcd ---
if ! command -v etcd >/dev/null; then
	echo "compare.sh: installing etcd-server" >&2
	export DEBIAN_FRONTEND=noninteractive
	{ apt-get update -q && apt-get install -y -q etcd-server; } >&2 ||
		die "cannot install etcd-server"
fi
command -v etcd >/dev/null || die "no etcd after installing etcd-server"

. tests/lib.sh # CAS_TMP under $TMPDIR; its exit trap unmounts, stops casd, removes CAS_TMP

# etcd members get longer than lib.sh gives its processes to stop (the
# leader hands over first): stop them here, before lib.sh's cleanup.
ETCD_PIDS=()
stop_etcd() {
	local p
	for p in "${ETCD_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${ETCD_PIDS[@]}"; do
		cas_wait_gone "$p" 150 || kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
}
trap 'rc=$?; stop_etcd; (exit $rc); cas_cleanup' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# free_port: a TCP port below the ephemeral range that nothing listens on
# and that this script has not handed out yet.
ETCD_TAKEN=" "
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 12000))
		case $ETCD_TAKEN in *" $p "*) continue ;; esac
		[ -z "$(ss -Hltn "sport = :$p" 2>/dev/null)" ] || continue
		ETCD_TAKEN+="$p "
		echo "$p"
		return
	done
}

# The etcd cluster's TLS (--tls): the node certificate of lib.sh's TLS
# mode for members and peers, the client certificate for curl and compare.
ETCD_SCHEME=http
ETCD_TLS=()
ETCD_CURL_TLS=()
if [ "$CAS_TLS" = 1 ]; then
	ETCD_SCHEME=https
	ETCD_TLS=(--cert-file "$CAS_CERTS/node.crt" --key-file "$CAS_CERTS/node.key"
		--trusted-ca-file "$CAS_TLS_CA" --client-cert-auth
		--peer-cert-file "$CAS_CERTS/node.crt" --peer-key-file "$CAS_CERTS/node.key"
		--peer-trusted-ca-file "$CAS_TLS_CA" --peer-client-cert-auth)
	ETCD_CURL_TLS=(--cacert "$CAS_TLS_CA" --cert "$CAS_TLS_CERT" --key "$CAS_TLS_KEY")
fi

etcd_healthy() { curl -sf "${ETCD_CURL_TLS[@]}" "$1/health" | grep -q '"health":"true"'; }

# start_etcd: three members on loopback, data under $CAS_TMP, default
# (fsynced) durability; sets ETCD_URLS.
start_etcd() {
	local i cluster= client peer urls=()
	local -a cports pports
	for i in 0 1 2; do
		cports[i]=$(free_port)
		pports[i]=$(free_port)
		cluster+="${cluster:+,}e$i=$ETCD_SCHEME://127.0.0.1:${pports[i]}"
	done
	for i in 0 1 2; do
		client=$ETCD_SCHEME://127.0.0.1:${cports[i]}
		peer=$ETCD_SCHEME://127.0.0.1:${pports[i]}
		etcd --name "e$i" --data-dir "$CAS_TMP/etcd$i" \
			--listen-client-urls "$client" --advertise-client-urls "$client" \
			--listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
			--initial-cluster "$cluster" --initial-cluster-state new \
			--initial-cluster-token "compare-$$" "${ETCD_TLS[@]}" \
			>"$CAS_TMP/etcd$i.log" 2>&1 &
		ETCD_PIDS+=($!)
		urls+=("$client")
	done
	for i in 0 1 2; do
		cas_wait_until 300 etcd_healthy "${urls[i]}" ||
			fail "etcd member $i is not healthy: $(tail -n 5 "$CAS_TMP/etcd$i.log")"
	done
	ETCD_URLS=$(
		IFS=,
		echo "${urls[*]}"
	)
}

cas_start_cluster 3
start_etcd
cas_mount "$CAS_TMP/mnt" "$MOUNT_OPTS"
# memfs, the floor: unmounted and stopped by lib.sh's cleanup.
mkdir -p "$CAS_TMP/floor"
"$CAS_BIN/tests/memfs" -f "$CAS_TMP/floor" >>"$CAS_TMP/memfs.log" 2>&1 &
CAS_EXTRA_PIDS+=($!)
CAS_MOUNTS+=("$CAS_TMP/floor")
cas_wait_until 100 mountpoint -q "$CAS_TMP/floor" ||
	fail "memfs did not mount: $(tail -n 5 "$CAS_TMP/memfs.log")"

fstype=$(stat -f -c %T "$CAS_TMP")
echo "compare.sh: casfs source $(git describe --always --dirty 2>/dev/null || echo '?')," \
	"$(etcd --version | head -n 1)"
echo "compare.sh: node data of both clusters in $CAS_TMP ($fstype), one filesystem: both fsync" \
	"there (casd always, etcd by default)"
if [ -n "$MOUNT_OPTS" ]; then
	echo "compare.sh: casfs mount with -o $MOUNT_OPTS; memfs with the same kernel traffic," \
		"answered from memory"
else
	echo "compare.sh: casfs mount with default options (linearizable, no kernel caching);" \
		"memfs with the same kernel traffic, answered from memory"
fi
if [ "$CAS_TLS" = 1 ]; then
	echo "compare.sh: TLS on both: casd with client certificates and a token, etcd with" \
		"--client-cert-auth (peers too); ECDSA P-256 keys"
else
	echo "compare.sh: no TLS (plain HTTP on loopback; --tls for TLS on both)"
fi
echo "compare.sh: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) before the run"
"$CAS_BIN/tests/compare" --casd "$(cas_nodes)" --etcd "$ETCD_URLS" --mount "$CAS_TMP/mnt" \
	--floor "$CAS_TMP/floor" "${DIRS[@]}" "$@"
