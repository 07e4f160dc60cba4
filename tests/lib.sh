# lib.sh - shell helpers for casfs integration and end-to-end tests.
# Source it; it sets up a temporary folder and a trap that stops every
# process and unmounts every mount the test started, whatever happens.
#
# Environment: CAS_BIN, the folder with casd, casctl and casfs (ctest sets
# it). Tests call cas_start_cluster N (which starts the nodes and makes
# them one cluster with casctl init), then use cas_nodes, casctl, ...
# CAS_VALGRIND=1 (a build without sanitizers) runs casd and the casctl
# function under valgrind: an error or a definite leak in any of them, or
# a casd that does not exit 0 on SIGTERM, fails the test.
# CAS_TLS=1 (or cas_tls_on before the first node starts) runs the test
# over TLS with client certificates and a token: see cas_tls_on.

set -u
CAS_BIN=${CAS_BIN:?CAS_BIN must name the folder with casd, casctl and casfs}
CAS_TMP=$(mktemp -d "${TMPDIR:-/tmp}/casfs-test.XXXXXX")
CAS_PIDS=()   # pid of node i at index i (empty when stopped)
CAS_PORTS=()  # port of node i
CAS_MOUNTS=() # mount points to unmount at exit
CAS_EXTRA_PIDS=()

# CAS_SLOW stretches the waits below: valgrind runs programs ~20x slower.
CAS_VALGRIND=${CAS_VALGRIND:-0}
CAS_VG=()
CAS_VG_CASCTL=()
CAS_SLOW=1
if [ "$CAS_VALGRIND" = 1 ]; then
	# Its reports go to one file per process, not into the stderr that
	# tests read; an empty file means a clean run.
	CAS_VG=(valgrind --error-exitcode=99 --leak-check=full
		--errors-for-leak-kinds=definite --track-fds=no -q
		--log-file="$CAS_TMP/valgrind.%p.log")
	CAS_SLOW=20
	# casctl's default deadline (5 s) is for native speed; a test's own
	# --timeout comes later on the command line and wins.
	CAS_VG_CASCTL=(--timeout $((5 * CAS_SLOW)))
fi

# cas_valgrind_check: fails (non-zero, reports on stderr) when valgrind
# reported anything so far. Without CAS_VALGRIND=1, always succeeds.
cas_valgrind_check() {
	local f bad=0
	[ "$CAS_VALGRIND" = 1 ] || return 0
	for f in "$CAS_TMP"/valgrind.*.log; do
		[ -s "$f" ] || continue
		echo "FAIL: valgrind: $(basename "$f"):" >&2
		cat "$f" >&2
		bad=1
	done
	return $bad
}

cas_cleanup() {
	local rc=$? m p st vg_bad=0
	for m in "${CAS_MOUNTS[@]}"; do
		if mountpoint -q "$m" 2>/dev/null; then
			fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
		fi
	done
	for p in "${CAS_EXTRA_PIDS[@]}" "${CAS_PIDS[@]}"; do
		[ -n "$p" ] || continue
		kill -CONT "$p" 2>/dev/null
		kill -TERM "$p" 2>/dev/null
	done
	for p in "${CAS_EXTRA_PIDS[@]}" "${CAS_PIDS[@]}"; do
		[ -n "$p" ] || continue
		cas_wait_gone "$p" $((50 * CAS_SLOW)) || kill -KILL "$p" 2>/dev/null
	done
	if [ "$CAS_VALGRIND" = 1 ]; then
		# casd exits 0 on SIGTERM; valgrind makes it 99 on an error.
		for p in "${CAS_PIDS[@]}"; do
			[ -n "$p" ] || continue
			st=0
			wait "$p" 2>/dev/null || st=$?
			[ "$st" = 0 ] || [ "$st" = 127 ] || {
				echo "FAIL: casd (pid $p) exited $st on SIGTERM under valgrind" >&2
				vg_bad=1
			}
		done
		cas_valgrind_check || vg_bad=1
	fi
	rm -rf "$CAS_TMP"
	[ "$vg_bad" = 0 ] || [ "$rc" != 0 ] || exit 1
}
trap cas_cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# cas_wait_until TENTHS CMD...: runs CMD every 0.1 s until it succeeds;
# fails after TENTHS tries.
cas_wait_until() {
	local n=$1
	shift
	while ! "$@" >/dev/null 2>&1; do
		n=$((n - 1))
		[ "$n" -gt 0 ] || return 1
		sleep 0.1
	done
}

# cas_wait_gone PID TENTHS: waits for a process to exit.
cas_wait_gone() {
	local n=$2
	while kill -0 "$1" 2>/dev/null; do
		n=$((n - 1))
		[ "$n" -gt 0 ] || return 1
		sleep 0.1
	done
}

cas_url() { echo "$CAS_SCHEME://127.0.0.1:${CAS_PORTS[$1]}"; }

# TLS mode (README, Security). cas_tls_on makes a certificate authority,
# a node certificate for 127.0.0.1 and a client certificate with
# tests/certs.sh, and a random token, all in $CAS_CERTS (ca.crt, node.crt,
# node.key, client.crt, client.key, token: what nemesis --tls takes).
# From then on cas_start_node starts casd with them (TLS, client
# certificates checked, the token required), cas_url is https://, casctl
# (every one the test runs: CAS_TLS_CA, CAS_TLS_CERT, CAS_TLS_KEY and
# CAS_TOKEN_FILE are exported) and cas_mount use the client certificate
# and the token, and so do cas_curl and curl with "${CAS_CURL_TLS[@]}"
# (the token from a header file, never in argv). The holdproxies speak
# TLS on both sides (the node certificate, client certificates required).
CAS_TLS=${CAS_TLS:-0}
CAS_SCHEME=http
CAS_CASD_TLS=()
CAS_CURL_TLS=()
cas_tls_on() {
	local c
	# shellcheck source=tests/certs.sh
	. "$(dirname "${BASH_SOURCE[0]}")/certs.sh"
	c=$CAS_CERTS
	cas_ca ca && cas_cert ca node node && cas_cert ca client client ||
		fail "cas_tls_on: cannot make certificates"
	(umask 077 && cas_random_hex 32 >"$c/token" &&
		printf 'Authorization: Bearer %s\n' "$(cat "$c/token")" >"$c/token.hdr") ||
		fail "cas_tls_on: cannot write the token"
	export CAS_TLS_CA=$c/ca.crt CAS_TLS_CERT=$c/client.crt CAS_TLS_KEY=$c/client.key
	export CAS_TOKEN_FILE=$c/token
	CAS_TLS=1
	CAS_SCHEME=https
	CAS_CASD_TLS=(--tls-cert "$c/node.crt" --tls-key "$c/node.key" --tls-ca "$c/ca.crt"
		--token-file "$CAS_TOKEN_FILE")
	CAS_CURL_TLS=(--cacert "$c/ca.crt" --cert "$c/client.crt" --key "$c/client.key"
		-H "@$c/token.hdr")
}

# cas_curl ARGS...: curl for raw HTTP requests to the nodes: in TLS mode
# with the authority, the client certificate and key and the token; plain
# curl without it. Name URLs with cas_url, which gives the scheme.
cas_curl() { curl "${CAS_CURL_TLS[@]}" "$@"; }

# cas_tls_mount_opts: the casfs -o options of TLS mode ("" without it).
cas_tls_mount_opts() {
	[ "$CAS_TLS" = 1 ] || return 0
	echo "tls_ca=$CAS_TLS_CA,tls_cert=$CAS_TLS_CERT,tls_key=$CAS_TLS_KEY,token_file=$CAS_TOKEN_FILE"
}

# cas_node_up I: whether node I answers /v1/health: 200, or 503 because it
# is not initialized yet (nobody ran casctl init or member on it).
cas_node_up() {
	local out code
	out=$(cas_curl -s -w '\n%{http_code}' "$(cas_url "$1")/v1/health") ||
		return 1
	code=${out##*$'\n'}
	[ "$code" = 200 ] || { [ "$code" = 503 ] && [[ $out == *'"uninitialized"'* ]]; }
}

# cas_start_node I: starts node I (data in $CAS_TMP/nI) on its old port, or
# on a free port the first time, and waits until it answers /v1/health
# (initialized or not).
cas_start_node() {
	local i=$1 port=${CAS_PORTS[$1]:-0}
	mkdir -p "$CAS_TMP/n$i"
	rm -f "$CAS_TMP/n$i.port"
	"${CAS_VG[@]}" "$CAS_BIN/casd" --listen "127.0.0.1:$port" --data "$CAS_TMP/n$i" \
		--port-file "$CAS_TMP/n$i.port" "${CAS_CASD_TLS[@]}" ${CAS_CASD_ARGS:-} \
		>>"$CAS_TMP/n$i.log" 2>&1 &
	CAS_PIDS[$i]=$!
	cas_wait_until $((100 * CAS_SLOW)) test -s "$CAS_TMP/n$i.port" ||
		fail "node $i did not start: $(tail -n 5 "$CAS_TMP/n$i.log")"
	CAS_PORTS[$i]=$(cat "$CAS_TMP/n$i.port")
	cas_wait_until $((100 * CAS_SLOW)) cas_node_up "$i" ||
		fail "node $i does not answer /v1/health"
}

# cas_start_cluster N: starts nodes 0..N-1 and makes them one new cluster
# with casctl init (node identities, epoch 1, the filesystem's root): see
# cas_init_cluster. With CAS_NO_INIT=1 the nodes are left uninitialized.
cas_start_cluster() {
	cas_start_nodes "$1"
	[ "${CAS_NO_INIT:-0}" = 1 ] || cas_init_cluster
}

# cas_start_nodes N: starts nodes 0..N-1 and leaves them as they are
# (uninitialized when their data folders are new).
cas_start_nodes() {
	local i
	for ((i = 0; i < $1; i++)); do cas_start_node "$i"; done
}

# cas_init_cluster [URLS]: casctl init on URLS (default: every started
# node), which must answer and be uninitialized. Sets CAS_CLUSTER (the id
# casctl printed) and CAS_HDRS as cas_join_nodes does (epoch 1).
cas_init_cluster() {
	local urls=${1:-$(cas_nodes)}
	"${CAS_VG[@]}" "$CAS_BIN/casctl" --nodes "$urls" "${CAS_VG_CASCTL[@]}" init \
		>"$CAS_TMP/cluster" 2>"$CAS_TMP/init.err" ||
		fail "casctl init $urls: $(cat "$CAS_TMP/init.err")"
	CAS_CLUSTER=$(cat "$CAS_TMP/cluster")
	CAS_EPOCH=1
	cas_set_identity "$CAS_CLUSTER" "$CAS_EPOCH"
}

# cas_stop_node I [SIGNAL]: stops node I (default SIGKILL) and waits for it.
cas_stop_node() {
	local i=$1 sig=${2:-KILL} p=${CAS_PIDS[$1]} st=0
	kill -"$sig" "$p"
	cas_wait_gone "$p" $((100 * CAS_SLOW)) || fail "node $i did not exit on SIG$sig"
	wait "$p" 2>/dev/null || st=$?
	CAS_PIDS[$i]=
	if [ "$CAS_VALGRIND" = 1 ] && [ "$sig" != KILL ] && [ "$st" != 0 ]; then
		fail "node $i exited $st on SIG$sig under valgrind"
	fi
}

# Identity (PROTOCOL.md, "Cluster identity and membership"), by hand with
# curl: for tests that talk raw HTTP to casd. (cas_start_cluster may come
# to run `casctl init` instead; these stay for the raw tests.)
#
# cas_join_nodes [I...]: joins nodes I... (default: every started node;
# uninitialized ones: start them with CAS_NO_INIT=1 where cas_start_cluster
# runs casctl init) into one new cluster at epoch 1, all members, each with
# POST /v1/admin/join, and fails unless each answers 200. Sets and exports
# CAS_CLUSTER (32 hex), CAS_EPOCH (1), CAS_CONFIG (the configuration's
# JSON) and CAS_NODE_IDS[I] (node I's 16-hex id); sets CAS_HDRS, the curl
# arguments of the identity headers: curl "${CAS_HDRS[@]}" ...
cas_join_nodes() {
	local nodes=("$@") i members= out
	[ ${#nodes[@]} -gt 0 ] || nodes=("${!CAS_PORTS[@]}")
	CAS_CLUSTER=$(cas_random_hex 16)
	CAS_EPOCH=1
	for i in "${nodes[@]}"; do
		CAS_NODE_IDS[$i]=$(cas_random_hex 8)
		members+="${members:+,}{\"id\":\"${CAS_NODE_IDS[$i]}\",\"url\":\"$(cas_url "$i")\"}"
	done
	CAS_CONFIG="{\"cluster\":\"$CAS_CLUSTER\",\"epoch\":\"$CAS_EPOCH\",\"members\":[$members]}"
	for i in "${nodes[@]}"; do
		out=$(cas_curl -s -w '\n%{http_code}' --max-time $((10 * CAS_SLOW)) \
			--data-binary "{\"node\":\"${CAS_NODE_IDS[$i]}\",\"config\":$CAS_CONFIG}" \
			"$(cas_url "$i")/v1/admin/join") || fail "join node $i: curl failed"
		[ "${out##*$'\n'}" = 200 ] || fail "join node $i: ${out//$'\n'/ }"
	done
	export CAS_CLUSTER CAS_EPOCH CAS_CONFIG
	cas_set_identity "$CAS_CLUSTER" "$CAS_EPOCH"
}
CAS_NODE_IDS=()
CAS_HDRS=()


# cas_set_identity CLUSTER EPOCH: the identity headers CAS_HDRS send.
cas_set_identity() { CAS_HDRS=(-H "Cas-Cluster: $1" -H "Cas-Epoch: $2"); }

# cas_random_hex BYTES: BYTES random bytes in lowercase hex.
cas_random_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

# cas_nodes: the cluster as a comma-separated URL list.
cas_nodes() {
	local i out=
	for i in "${!CAS_PORTS[@]}"; do out+="${out:+,}$(cas_url "$i")"; done
	echo "$out"
}

# casctl ARGS...: the client against this test's cluster.
casctl() { "${CAS_VG[@]}" "$CAS_BIN/casctl" --nodes "$(cas_nodes)" "${CAS_VG_CASCTL[@]}" "$@"; }

# cas_mount DIR [OPTIONS]: mounts the cluster on DIR (created) in the
# background and waits for the mount to appear.
cas_mount() { cas_mount_nodes "$(cas_nodes)" "$@"; }

# cas_mount_nodes URLS DIR [OPTIONS]: cas_mount through the nodes URLS
# (comma-separated).
cas_mount_nodes() {
	local nodes=$1 dir=$2 opts=${3:-} tls
	tls=$(cas_tls_mount_opts)
	opts=$tls${tls:+${opts:+,}}$opts
	mkdir -p "$dir"
	"$CAS_BIN/casfs" -f -o "nodes=$nodes${opts:+,$opts}" "$dir" \
		>>"$CAS_TMP/casfs.log" 2>&1 &
	CAS_EXTRA_PIDS+=($!)
	CAS_MOUNTS+=("$dir")
	cas_wait_until 100 mountpoint -q "$dir" ||
		fail "casfs did not mount $dir: $(tail -n 5 "$CAS_TMP/casfs.log")"
}

# cas_umount DIR: unmounts DIR and waits for its casfs to exit.
cas_umount() {
	fusermount3 -u "$1" || fail "could not unmount $1"
	cas_wait_until 100 sh -c "! mountpoint -q '$1'" || fail "$1 still mounted"
}

# Proxies that hold back or cut the requests of one mount (e2e/holdproxy.c,
# whose head documents them). A set NAME is one proxy in front of each
# node, all switched together by files:
#   cas_hold NAME on|off   state-changing requests (prepare, accept, and
#                          batches holding one) wait HOLD_MS, then go
#   cas_cut NAME on|off    every connection is closed: the cluster is
#                          unreachable through NAME
# What the proxies held is logged in $CAS_TMP/NAME.log ("held ...").
# In TLS mode the proxies speak TLS to the mounts and to the nodes.

# cas_start_holdproxies NAME [HOLD_MS]: starts the set NAME (default hold
# 1000 ms) in front of nodes 0..N-1 as they are now; stopped at exit.
cas_start_holdproxies() {
	local name=$1 ms=${2:-1000} i pf urls= bin=$CAS_BIN/tests/holdproxy tls=()
	[ -x "$bin" ] || bin=$CAS_BIN/holdproxy
	if [ "$CAS_TLS" = 1 ]; then
		tls=(--tls-cert "$CAS_CERTS/node.crt" --tls-key "$CAS_CERTS/node.key"
			--tls-ca "$CAS_CERTS/ca.crt")
	fi
	for i in "${!CAS_PORTS[@]}"; do
		pf=$CAS_TMP/$name.$i.port
		rm -f "$pf"
		"$bin" --upstream "${CAS_PORTS[$i]}" --port-file "$pf" \
			--hold-file "$CAS_TMP/$name.hold" --hold-ms "$ms" \
			--cut-file "$CAS_TMP/$name.cut" "${tls[@]}" 2>>"$CAS_TMP/$name.log" &
		CAS_EXTRA_PIDS+=($!)
		cas_wait_until 100 test -s "$pf" ||
			fail "holdproxy $name.$i did not start: $(tail -n 3 "$CAS_TMP/$name.log")"
		urls+="${urls:+,}$CAS_SCHEME://127.0.0.1:$(cat "$pf")"
	done
	echo "$urls" >"$CAS_TMP/$name.nodes"
}

# cas_proxy_nodes NAME: the URL list of the set NAME.
cas_proxy_nodes() { cat "$CAS_TMP/$1.nodes"; }

# cas_mount_via_proxies NAME DIR [OPTIONS]: cas_mount through the set NAME.
cas_mount_via_proxies() {
	local name=$1
	shift
	cas_mount_nodes "$(cas_proxy_nodes "$name")" "$@"
}

# cas_hold NAME on|off, cas_cut NAME on|off: switch the set NAME; each
# proxy looks at the switch for every request it completes.
cas_hold() { cas_switch "$CAS_TMP/$1.hold" "$2"; }
cas_cut() { cas_switch "$CAS_TMP/$1.cut" "$2"; }
cas_switch() {
	case $2 in
	on) : >"$1" ;;
	off) rm -f "$1" ;;
	*) fail "cas_switch $1: on or off, not $2" ;;
	esac
}

# cas_held NAME: how many requests the set NAME has held so far.
cas_held() { grep -c '^held ' "$CAS_TMP/$1.log" 2>/dev/null || true; }

# CAS_TLS=1 from the environment (ctest's TLS runs): TLS mode from the
# start.
if [ "$CAS_TLS" = 1 ]; then cas_tls_on; fi
