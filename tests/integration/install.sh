# install.sh - what `cmake --install` puts on a machine, and using it as
# an operator would (issue #16):
#  1. an install into a temporary DESTDIR: every file lands, and nothing
#     else; the man pages render without warnings and document every
#     option and command the programs' --help lists; the environment
#     file is never overwritten;
#  2. casd's signals: SIGHUP keeps it running and reopens --log-file after
#     a rename (and is only logged without one); SIGTERM exits 0 with a
#     final "stopped" line;
#  3. casfs without -f: a bad option or an unreachable cluster is a message
#     on stderr and a non-zero exit, nothing mounted, no process left;
#  4. a daemonized casfs logs to syslog (where this machine lets the test
#     read syslog: see there);
#  5. as root, a real install (prefix /usr/local, the helper in /sbin):
#     systemd-analyze verify of the unit, man(1) finds the pages, mounts
#     through `mount -t fuse.casfs`, the helper with an empty environment
#     and an fstab line (`mount -T`), a file written and read, umount;
#     then everything the install manifest lists is removed, and the
#     folders the install made. Skipped (with a message) when not root or
#     when one of the files is already there: the test never overwrites or
#     removes a file it did not put there.
. "$CAS_SRC/tests/lib.sh"

T=$CAS_TMP
B=$CAS_BIN # the build tree: cmake --install reads it
M=$T/mnt
mkdir -p "$M"
[ -f "$B/cmake_install.cmake" ] || fail "$B is not a build tree (no cmake_install.cmake)"

# The files an install puts, relative to the root, for prefix /usr/local.
EXPECTED=(
	etc/default/casd
	sbin/mount.fuse.casfs
	usr/local/bin/casctl
	usr/local/bin/casd
	usr/local/bin/casfs
	usr/local/lib/systemd/system/casd.service
	usr/local/share/doc/casfs/casd.default
	usr/local/share/man/man1/casctl.1
	usr/local/share/man/man8/casd.8
	usr/local/share/man/man8/casfs.8
)

REAL_INSTALLED=0 # 1 while the real install is on the machine
DEVLOG_MADE=0    # 1 while /dev/log is this test's socket
CREATED_DIRS=()  # folders the real install made, deepest last

# casfs_pids DIR: the pids of the casfs processes serving DIR.
casfs_pids() {
	local p cmd
	for p in /proc/[0-9]*; do
		case $(readlink "$p/exe" 2>/dev/null) in */casfs) ;; *) continue ;; esac
		cmd=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) || continue
		case " $cmd " in *" $1 "*) echo "${p#/proc/}" ;; esac
	done
}

# uninstall: removes what the real install's manifest lists and the
# folders it made (when empty).
uninstall() {
	local f i
	[ "$REAL_INSTALLED" = 1 ] || return 0
	# cmake ends the manifest's last line without a newline.
	while IFS= read -r f || [ -n "$f" ]; do
		[ -n "$f" ] && rm -f "$f"
	done <"$T/manifest.real"
	for ((i = ${#CREATED_DIRS[@]} - 1; i >= 0; i--)); do
		rmdir "${CREATED_DIRS[$i]}" 2>/dev/null
	done
	REAL_INSTALLED=0
}

install_cleanup() {
	local p
	if mountpoint -q "$M" 2>/dev/null; then
		umount "$M" 2>/dev/null || fusermount3 -u "$M" 2>/dev/null || umount -l "$M"
	fi
	for p in $(casfs_pids "$M"); do
		cas_wait_gone "$p" 50 || kill -KILL "$p" 2>/dev/null
	done
	uninstall
	if [ "$DEVLOG_MADE" = 1 ]; then
		rm -f /dev/log
		DEVLOG_MADE=0
	fi
}
trap 'rc=$?; install_cleanup; (exit $rc); cas_cleanup' EXIT

# expect_fail WHAT CMD...: CMD must exit non-zero with a message on stderr
# (kept in $T/err).
expect_fail() {
	local what=$1 rc=0
	shift
	"$@" >"$T/out" 2>"$T/err" || rc=$?
	[ "$rc" != 0 ] || fail "$what: exited 0"
	[ -s "$T/err" ] || fail "$what: exited $rc with nothing on stderr"
}

# ensure_initialized: runs casctl init on the test cluster unless
# cas_start_cluster did (or nodes need none).
ensure_initialized() {
	if curl -s "$(cas_url 0)/v1/health" | grep -q '"uninitialized"'; then
		casctl init >"$T/init.out" 2>&1 || fail "casctl init: $(cat "$T/init.out")"
	fi
}

# --- 1. into a DESTDIR ---------------------------------------------------
D=$T/dest
DESTDIR=$D cmake --install "$B" --prefix /usr/local >"$T/install.out" 2>&1 ||
	fail "cmake --install into DESTDIR: $(tail -n 5 "$T/install.out")"
(cd "$D" && find . -type f -o -type l | sed 's|^\./||' | sort) >"$T/got"
printf '%s\n' "${EXPECTED[@]}" | sort >"$T/want"
diff "$T/want" "$T/got" >"$T/diff" ||
	fail "installed files differ from the expected (< missing, > unexpected): $(cat "$T/diff")"
for f in usr/local/bin/casd usr/local/bin/casctl usr/local/bin/casfs sbin/mount.fuse.casfs; do
	[ -x "$D/$f" ] || fail "$f is not executable"
done
"$D/usr/local/bin/casd" --version | grep -q '^casd [0-9]' || fail "installed casd does not run"

# The helper names the installed casfs by its absolute path; the unit the
# installed casd and the environment file.
sh -n "$D/sbin/mount.fuse.casfs" || fail "mount.fuse.casfs: sh syntax error"
grep -qx "casfs='/usr/local/bin/casfs'" "$D/sbin/mount.fuse.casfs" ||
	fail "mount.fuse.casfs does not run /usr/local/bin/casfs"
grep -q '^ExecStart=/usr/local/bin/casd --data /var/lib/casd \$CASD_OPTS$' \
	"$D/usr/local/lib/systemd/system/casd.service" || fail "casd.service: bad ExecStart"
grep -qx 'EnvironmentFile=-/etc/default/casd' "$D/usr/local/lib/systemd/system/casd.service" ||
	fail "casd.service: no EnvironmentFile=-/etc/default/casd"
for k in StateDirectory=casd DynamicUser=yes ProtectSystem=strict ProtectHome=yes \
	PrivateTmp=yes NoNewPrivileges=yes; do
	grep -qx "$k" "$D/usr/local/lib/systemd/system/casd.service" || fail "casd.service: no $k"
done
grep -q '^CASD_OPTS="--listen ' "$D/etc/default/casd" || fail "/etc/default/casd: no CASD_OPTS"

# The environment file is the operator's: a second install keeps it.
echo 'CASD_OPTS="--listen 10.9.9.9:7001"' >"$D/etc/default/casd"
DESTDIR=$D cmake --install "$B" --prefix /usr/local >"$T/install.out" 2>&1 ||
	fail "second cmake --install: $(tail -n 5 "$T/install.out")"
grep -q 10.9.9.9 "$D/etc/default/casd" || fail "a second install overwrote /etc/default/casd"

# Man pages: man -l renders them without a warning, and each documents
# every option (and casctl every command) its program's help lists.
for page in usr/local/share/man/man8/casd.8 usr/local/share/man/man8/casfs.8 \
	usr/local/share/man/man1/casctl.1; do
	MANWIDTH=80 man --warnings -l "$D/$page" >"$T/man.out" 2>"$T/man.err" ||
		fail "man -l $page failed: $(head -n 5 "$T/man.err")"
	[ ! -s "$T/man.err" ] || fail "man -l $page: warnings: $(head -n 5 "$T/man.err")"
	grep -q '^NAME' "$T/man.out" || fail "man -l $page: no NAME section"
	for s in SYNOPSIS DESCRIPTION OPTIONS 'EXIT STATUS' EXAMPLES; do
		grep -q "^$s" "$T/man.out" || fail "$page: no $s section"
	done
done
# documented PAGE WORD...: each WORD is in PAGE's source (\- read as -).
documented() {
	local page=$1 w
	shift
	for w in "$@"; do
		sed 's/\\-/-/g' "$D/$page" | grep -qF -- "$w" || fail "$page does not document $w"
	done
}
documented usr/local/share/man/man8/casd.8 \
	$("$B/casd" --help | grep -o -- '--[a-z][a-z-]*' | sort -u) SIGHUP SIGTERM /etc/default/casd
documented usr/local/share/man/man1/casctl.1 \
	$("$B/casctl" --help | grep -o -- '--[a-z][a-z-]*' | sort -u) CAS_NODES
"$B/casctl" --help | sed -n '/^commands:/,/^$/p' | grep -E '^  [a-z]' |
	awk '{ print ($1 == "member") ? $1 " " $2 : $1 }' >"$T/commands"
[ -s "$T/commands" ] || fail "no commands found in casctl --help"
while read -r c; do documented usr/local/share/man/man1/casctl.1 "$c"; done <"$T/commands"
"$B/casfs" -h >"$T/casfs.help" 2>&1
documented usr/local/share/man/man8/casfs.8 \
	$(grep -o -- '-o [a-z_]*' "$T/casfs.help" | sed 's/^-o //' | sort -u) \
	$(grep -oE -- '^ +-[a-zA-Z] ' "$T/casfs.help" | tr -d ' ' | sort -u) \
	mount.fuse.casfs _netdev CAS_NODES syslog

# --- 2. casd: SIGHUP and SIGTERM -----------------------------------------
# start_casd NAME ARGS...: a casd on a free port, data in $T/NAME;
# sets CASD_PID.
start_casd() {
	local name=$1
	shift
	"$B/casd" --listen 127.0.0.1:0 --data "$T/$name" --port-file "$T/$name.port" "$@" \
		>>"$T/$name.stderr" 2>&1 &
	CASD_PID=$!
	CAS_EXTRA_PIDS+=("$CASD_PID")
	cas_wait_until 100 test -s "$T/$name.port" || fail "casd $name did not start: $(cat "$T/$name.stderr")"
}
# answers PORTFILE: casd answers /v1/health (any status).
answers() {
	local code
	code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$(cat "$1")/v1/health")
	[ "$code" = 200 ] || [ "$code" = 503 ]
}

start_casd logged --log-file "$T/casd.log"
cas_wait_until 100 grep -q 'listening on port' "$T/casd.log" ||
	fail "--log-file: no 'listening' line in the log: $(cat "$T/casd.log" "$T/logged.stderr")"
[ ! -s "$T/logged.stderr" ] || fail "--log-file: casd wrote on stderr: $(cat "$T/logged.stderr")"
mv "$T/casd.log" "$T/casd.log.1"
kill -HUP "$CASD_PID"
cas_wait_until 100 grep -q "SIGHUP: reopened $T/casd.log" "$T/casd.log" ||
	fail "SIGHUP did not reopen the log: $(cat "$T/casd.log.1" "$T/casd.log" 2>&1)"
kill -0 "$CASD_PID" 2>/dev/null || fail "casd died on SIGHUP"
answers "$T/logged.port" || fail "casd does not answer after SIGHUP"
grep -q 'SIGHUP' "$T/casd.log.1" && fail "the reopened log's lines went to the old file"
kill -TERM "$CASD_PID"
rc=0
wait "$CASD_PID" || rc=$?
[ "$rc" = 0 ] || fail "casd exited $rc on SIGTERM, want 0"
tail -n 1 "$T/casd.log" | grep -q 'info: stopped$' ||
	fail "no final 'stopped' line: $(tail -n 3 "$T/casd.log")"
grep -q 'SIGTERM: stopping' "$T/casd.log" || fail "no 'SIGTERM: stopping' line"

start_casd plain
kill -HUP "$CASD_PID"
cas_wait_until 100 grep -q 'SIGHUP: no --log-file' "$T/plain.stderr" ||
	fail "SIGHUP without --log-file: no line logged: $(cat "$T/plain.stderr")"
kill -0 "$CASD_PID" 2>/dev/null || fail "casd without --log-file died on SIGHUP"
answers "$T/plain.port" || fail "casd does not answer after SIGHUP"
kill -INT "$CASD_PID"
rc=0
wait "$CASD_PID" || rc=$?
[ "$rc" = 0 ] || fail "casd exited $rc on SIGINT, want 0"
tail -n 1 "$T/plain.stderr" | grep -q 'info: stopped$' || fail "SIGINT: no final 'stopped' line"

expect_fail "casd with an unwritable --log-file" \
	"$B/casd" --listen 127.0.0.1:0 --data "$T/nolog" --log-file "$T/no/such/dir/log"
grep -q 'cannot open' "$T/err" || fail "unwritable --log-file: $(cat "$T/err")"

# --- 3. casfs without -f: failures before daemonizing --------------------
cas_start_cluster 3
ensure_initialized
NODES=$(cas_nodes)

# check_not_mounted WHAT: nothing mounted on $M and no casfs left for it.
check_not_mounted() {
	! mountpoint -q "$M" || fail "$1: $M is mounted"
	[ -z "$(casfs_pids "$M")" ] || fail "$1: a casfs process is left: $(casfs_pids "$M")"
}
expect_fail "casfs with an unknown option" "$B/casfs" -o "nodes=$NODES,no_such_option" "$M"
check_not_mounted "unknown option"
expect_fail "casfs with a bad timeout" "$B/casfs" -o "nodes=$NODES,timeout=soon" "$M"
grep -q 'bad timeout=soon' "$T/err" || fail "bad timeout: $(cat "$T/err")"
check_not_mounted "bad timeout"
expect_fail "casfs without nodes" env -u CAS_NODES "$B/casfs" "$M"
grep -q 'no cluster given' "$T/err" || fail "no nodes: $(cat "$T/err")"
# Port 1 of 127.0.0.1: nobody listens.
expect_fail "casfs with an unreachable cluster" \
	"$B/casfs" -o nodes=http://127.0.0.1:1,timeout=1 "$M"
grep -q 'unreachable' "$T/err" || fail "unreachable cluster: $(cat "$T/err")"
check_not_mounted "unreachable cluster"
# A leading SOURCE, as mount(8) passes it, is taken and ignored.
expect_fail "casfs SOURCE with an unreachable cluster" \
	"$B/casfs" casfs "$M" -o nodes=http://127.0.0.1:1,timeout=1
grep -q 'unreachable' "$T/err" || fail "casfs SOURCE DIR: $(cat "$T/err")"
expect_fail "casfs with three arguments" "$B/casfs" a b "$M" -o "nodes=$NODES"
check_not_mounted "three arguments"

# Parts 4 and 5 change the machine (/dev/log, the install): one run of
# this test at a time, from any build tree. The lock is on a folder that
# is always there, so that nothing is left behind.
if command -v flock >/dev/null; then
	exec 9</usr/local
	flock -w 250 9 || fail "another run of this test holds the lock on /usr/local"
fi

# --- 4. a daemonized casfs logs to syslog --------------------------------
# Where the test can read what syslog receives: with no /dev/log on the
# machine, a socket of its own there (python3); with journald, the
# journal; else this part is skipped, saying so.
SYSLOG=
if [ ! -e /dev/log ] && [ -w /dev ] && command -v python3 >/dev/null; then
	python3 -c '
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
os.chmod("/dev/log", 0o666)
open(sys.argv[1] + ".ready", "w").close()
with open(sys.argv[1], "ab", buffering=0) as f:
    while True:
        f.write(s.recv(65536) + b"\n")
' "$T/syslog.txt" 2>"$T/syslog.err" &
	CAS_EXTRA_PIDS+=($!)
	DEVLOG_MADE=1
	cas_wait_until 100 test -e "$T/syslog.txt.ready" ||
		fail "could not listen on /dev/log: $(cat "$T/syslog.err")"
	SYSLOG=devlog
	echo "syslog: checked with the test's own /dev/log socket" >&2
elif [ -S /run/systemd/journal/socket ] && command -v journalctl >/dev/null; then
	SYSLOG=journal
	echo "syslog: checked in the journal (journalctl -t casfs)" >&2
else
	echo "SKIP syslog check: /dev/log exists but no journal to read it back from" >&2
fi
since=$(date +%s)
syslog_has() {
	case $SYSLOG in
	devlog) grep -qF -- "$1" "$T/syslog.txt" ;;
	journal) journalctl -q -t casfs --since "@$since" -o cat | grep -qF -- "$1" ;;
	esac
}
if [ -n "$SYSLOG" ]; then
	"$B/casfs" -o "nodes=$NODES" "$M" >"$T/out" 2>"$T/err" ||
		fail "daemonized casfs: exit $?: $(cat "$T/err")"
	[ ! -s "$T/err" ] || fail "daemonized casfs wrote on stderr: $(cat "$T/err")"
	mountpoint -q "$M" || fail "daemonized casfs: not mounted"
	pid=$(casfs_pids "$M")
	[ -n "$pid" ] || fail "daemonized casfs: no process"
	CAS_EXTRA_PIDS+=($pid)
	cas_wait_until 100 syslog_has "casfs[$pid]: mounted $M (nodes=$NODES)" ||
		fail "no 'mounted' line from casfs[$pid] in syslog: $(cat "$T/syslog.txt" 2>/dev/null)"
	# An error met serving a request: a file's register overwritten with
	# bytes that are no casfs record; reading it fails with EIO and
	# casfs says why.
	echo hi >"$M/victim" || fail "cannot write through the daemonized mount"
	key=$(getfattr --absolute-names --only-values -n user.casfs.key "$M/victim") || fail "no user.casfs.key"
	printf 'not a record' | casctl put "$key" >/dev/null || fail "casctl put $key"
	cat "$M/victim" >/dev/null 2>&1 && fail "a register that is no record was read"
	cas_wait_until 100 syslog_has "casfs[$pid]: register $key holds no casfs record" ||
		fail "the EIO's reason is not in syslog: $(cat "$T/syslog.txt" 2>/dev/null)"
	fusermount3 -u "$M" || fail "cannot unmount the daemonized casfs"
	cas_wait_gone "$pid" 100 || fail "daemonized casfs did not exit after unmount"
	cas_wait_until 100 syslog_has "casfs[$pid]: $M: stopped" ||
		fail "no 'stopped' line in syslog"
	if [ "$SYSLOG" = devlog ]; then
		rm -f /dev/log
		DEVLOG_MADE=0
	fi
fi

# --- 5. a real install, mount(8) and fstab -------------------------------
if [ "$(id -u)" != 0 ]; then
	echo "SKIP real install: not root" >&2
	exit 0
fi
for t in mount umount findmnt; do
	command -v $t >/dev/null || {
		echo "SKIP real install: no $t" >&2
		exit 0
	}
done
for f in "${EXPECTED[@]}"; do
	[ "$f" = etc/default/casd ] && continue # never overwritten: left alone
	if [ -e "/$f" ]; then
		echo "SKIP real install: /$f exists (the test overwrites nothing)" >&2
		exit 0
	fi
done
# The folders the install will make, shallowest first.
for f in "${EXPECTED[@]}"; do
	d=$(dirname "/$f")
	chain=()
	while [ ! -e "$d" ]; do
		chain=("$d" "${chain[@]}")
		d=$(dirname "$d")
	done
	for d in "${chain[@]}"; do
		case " ${CREATED_DIRS[*]} " in *" $d "*) ;; *) CREATED_DIRS+=("$d") ;; esac
	done
done
REAL_INSTALLED=1
cmake --install "$B" --prefix /usr/local >"$T/install.out" 2>&1 ||
	fail "cmake --install: $(tail -n 5 "$T/install.out")"
cp "$B/install_manifest.txt" "$T/manifest.real"
for f in "${EXPECTED[@]}"; do
	[ "$f" = etc/default/casd ] && continue
	grep -qx "/$f" "$T/manifest.real" || fail "the manifest does not list /$f"
	[ -e "/$f" ] || fail "/$f was not installed"
done

if command -v systemd-analyze >/dev/null; then
	systemd-analyze verify /usr/local/lib/systemd/system/casd.service >"$T/verify" 2>&1 ||
		fail "systemd-analyze verify casd.service: $(cat "$T/verify")"
	[ ! -s "$T/verify" ] || fail "systemd-analyze verify casd.service says: $(cat "$T/verify")"
else
	echo "SKIP systemd-analyze verify: no systemd-analyze on this machine" >&2
fi
# man(1) finds them (Debian's /usr/local/man is a link to share/man).
for p in 8/casd 1/casctl 8/casfs; do
	got=$(man -w "${p%/*}" "${p#*/}" 2>&1)
	[ "$(realpath "$got" 2>/dev/null)" = "/usr/local/share/man/man$p.${p%/*}" ] ||
		fail "man -w ${p#*/}: $got"
done

# mount_ok WHAT: $M is a casfs mount; records its casfs for cleanup.
mount_ok() {
	local pid
	mountpoint -q "$M" || fail "$1: not mounted"
	[ "$(findmnt -n -o FSTYPE "$M")" = fuse.casfs ] ||
		fail "$1: type $(findmnt -n -o FSTYPE "$M"), want fuse.casfs"
	pid=$(casfs_pids "$M")
	[ -n "$pid" ] || fail "$1: no casfs process"
	CAS_EXTRA_PIDS+=($pid)
	MOUNT_PID=$pid
	[ "$(readlink "/proc/$pid/exe")" = /usr/local/bin/casfs ] ||
		fail "$1: runs $(readlink "/proc/$pid/exe"), not the installed casfs"
}
# umount_ok WHAT: umount $M; its casfs exits.
umount_ok() {
	umount "$M" || fail "$1: umount failed"
	! mountpoint -q "$M" || fail "$1: still mounted after umount"
	cas_wait_gone "$MOUNT_PID" 100 || fail "$1: casfs did not exit after umount"
}
MINENV=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin)

# mount -t fuse.casfs, from a minimal environment (as at boot).
"${MINENV[@]}" mount -t fuse.casfs casfs "$M" -o "nodes=$NODES" >"$T/out" 2>"$T/err" ||
	fail "mount -t fuse.casfs: $(cat "$T/err")"
mount_ok "mount -t fuse.casfs"
echo hello >"$M/greeting" || fail "cannot write through mount -t fuse.casfs"
[ "$(cat "$M/greeting")" = hello ] || fail "read back: $(cat "$M/greeting")"
umount_ok "mount -t fuse.casfs"

# The helper alone, with an empty environment, and the options meant for
# mount(8) and systemd that it must drop.
env -i /sbin/mount.fuse.casfs casfs "$M" \
	-o "rw,nodes=$NODES,_netdev,nofail,noauto,x-systemd.automount,defaults" >"$T/out" 2>"$T/err" ||
	fail "mount.fuse.casfs with an empty environment: $(cat "$T/err")"
mount_ok "mount.fuse.casfs"
[ "$(cat "$M/greeting")" = hello ] || fail "mount.fuse.casfs: read back: $(cat "$M/greeting")"
umount_ok "mount.fuse.casfs"
env -i /sbin/mount.fuse.casfs casfs "$M" -f -o "nodes=$NODES" || fail "mount.fuse.casfs -f (fake)"
! mountpoint -q "$M" || fail "mount.fuse.casfs -f (fake) mounted"

# An fstab line, through mount -T (an alternative fstab).
printf 'casfs %s fuse.casfs nodes=%s,_netdev,nofail 0 0\n' "$M" "$NODES" >"$T/fstab"
"${MINENV[@]}" mount -T "$T/fstab" "$M" >"$T/out" 2>"$T/err" ||
	fail "mount -T FSTAB $M: $(cat "$T/err")"
mount_ok "fstab line"
[ "$(cat "$M/greeting")" = hello ] || fail "fstab mount: read back: $(cat "$M/greeting")"
echo again >"$M/second" && [ "$(cat "$M/second")" = again ] || fail "fstab mount: write"
umount_ok "fstab line"

# A mount(8) that fails says why on stderr, non-zero.
expect_fail "mount -t fuse.casfs of an unreachable cluster" \
	"${MINENV[@]}" mount -t fuse.casfs casfs "$M" -o nodes=http://127.0.0.1:1,timeout=1
grep -q unreachable "$T/err" || fail "mount of an unreachable cluster: $(cat "$T/err")"
check_not_mounted "mount of an unreachable cluster"

# Leave the machine as it was.
uninstall
for f in "${EXPECTED[@]}"; do
	# /etc/default/casd is the install's only when it was missing before.
	if [ "$f" = etc/default/casd ] && ! grep -qx /etc/default/casd "$T/manifest.real"; then
		continue
	fi
	[ ! -e "/$f" ] || fail "/$f is left after the uninstall"
done
for d in "${CREATED_DIRS[@]}"; do
	[ ! -e "$d" ] || fail "$d is left after the uninstall"
done
echo "install: ok"
