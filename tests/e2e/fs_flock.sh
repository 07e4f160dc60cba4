#!/usr/bin/env bash
# fs_flock.sh - flock and fcntl locks across mounts: exclusion, a counter under flock, lockf
# from Python, interrupts, many waiters, a SIGKILLed holder, a partitioned holder.
. "$CAS_SRC/tests/lib.sh"

cas_start_cluster 3
m1=$CAS_TMP/m1 m2=$CAS_TMP/m2
cas_mount "$m1"
cas_mount "$m2"

# ms_since T0: milliseconds since T0 (date +%s%N).
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }
# token FILE: the token of the one exclusive hold user.casfs.lock shows.
token() {
	getfattr --only-values --absolute-names -n user.casfs.lock -- "$1" |
		sed -n 's/.* exclusive token=\([0-9]*\) .*/\1/p'
}

# 1. Exclusion, shared and exclusive, and tokens that grow.
touch "$m1/L"
exec 9>"$m1/L"
flock -n 9 || fail "m1 cannot take a free lock"
t1=$(token "$m2/L")
[ -n "$t1" ] || fail "no token in user.casfs.lock: $(getfattr -n user.casfs.lock "$m2/L" 2>&1)"
flock -n "$m2/L" true && fail "m2 took the lock m1 holds"
flock -n -s "$m2/L" true && fail "m2 took a shared lock while m1 holds it exclusive"
flock -u 9 || fail "m1 cannot unlock"
flock -n "$m2/L" true || fail "m2 cannot take the lock m1 gave back"
flock -n -s 9 || fail "m1 cannot take it shared"
flock -n -s "$m2/L" true || fail "m2 cannot share a shared lock"
flock -n "$m2/L" true && fail "m2 took exclusive a lock held shared"
flock -n 9 || fail "m1 cannot turn its shared lock exclusive"
t2=$(token "$m2/L")
[ "$t2" -gt "$t1" ] || fail "the token did not grow: $t1 then $t2"
setfattr -n user.casfs.lock -v x "$m1/L" 2>/dev/null && fail "user.casfs.lock is writable"
exec 9>&-
# The close gives the lock back (RELEASE comes just after close returns).
cas_wait_until 50 flock -n "$m2/L" true || fail "the lock stayed held after close"

# 1b. Each open file is a flock owner of its own. The kernel names a flock
# owner by the address of its open file, which it reuses as soon as a file
# is closed, and gives the lock back with the asynchronous RELEASE: a
# mount that took the kernel's name as the owner let a new open of the
# file take the lock as the old one's (no conflict with itself), and the
# old RELEASE, arriving late, then unlocked the new holder. The owners
# user.casfs.lock shows must differ from one open to the next.
python3 - "$m1/R" <<'EOF' || fail "a reopened file took its lock as the closed one's owner"
import fcntl, os, sys
seen = set()
for i in range(20):
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    holds = os.getxattr(sys.argv[1], "user.casfs.lock").decode()
    owner = holds.split(" owner=")[1].split()[0]
    if owner in seen:
        sys.exit("open %d: owner %s again: %s" % (i, owner, holds))
    seen.add(owner)
    os.close(fd)
EOF

# 2. A counter kept with plain cat and echo under flock: three workers on
# each mount, 30 increments each.
echo 0 >"$m1/count"
worker() { # MOUNT
	local i
	for ((i = 0; i < 30; i++)); do
		flock "$1/count.lock" sh -c 'v=$(cat "$1/count") && echo $((v + 1)) >"$1/count"' \
			sh "$1" || return 1
	done
}
pids=()
for w in 1 2 3; do
	worker "$m1" 2>>"$CAS_TMP/worker.err" &
	pids+=($!)
	worker "$m2" 2>>"$CAS_TMP/worker.err" &
	pids+=($!)
done
for p in "${pids[@]}"; do
	wait "$p" || fail "a worker failed: $(cat "$CAS_TMP/worker.err")"
done
[ "$(cat "$m2/count")" = 180 ] || fail "count is $(cat "$m2/count"), want 180: flock let two in"

# 3. POSIX locks from Python's lockf: ranges, F_GETLK, waiting.
cat >"$CAS_TMP/lockf.py" <<'EOF'
import errno, fcntl, os, struct, sys, time
role, path, flag = sys.argv[1], sys.argv[2], sys.argv[3]
fd = os.open(path, os.O_RDWR | os.O_CREAT)
def refused(cmd, n, start):
    try:
        fcntl.lockf(fd, cmd | fcntl.LOCK_NB, n, start)
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES):
            return True
        raise
    return False
if role == "hold":  # bytes 0-9, until flag exists
    fcntl.lockf(fd, fcntl.LOCK_EX, 10, 0)
    print("held", flush=True)
    while not os.path.exists(flag):
        time.sleep(0.05)
    os.close(fd)  # gives the lock back
elif role == "probe":
    assert refused(fcntl.LOCK_EX, 10, 0), "took bytes 0-9 held by the other mount"
    assert refused(fcntl.LOCK_SH, 5, 5), "took bytes 5-9 shared"
    assert not refused(fcntl.LOCK_EX, 10, 10), "refused bytes 10-19, which are free"
    fcntl.lockf(fd, fcntl.LOCK_UN, 10, 10)
    got = fcntl.fcntl(fd, fcntl.F_GETLK, struct.pack("hhqqi", fcntl.F_WRLCK, 0, 0, 10, 0))
    assert struct.unpack("hhqqi", got)[0] == fcntl.F_WRLCK, "F_GETLK does not see the lock"
    got = fcntl.fcntl(fd, fcntl.F_GETLK, struct.pack("hhqqi", fcntl.F_WRLCK, 0, 20, 5, 0))
    assert struct.unpack("hhqqi", got)[0] == fcntl.F_UNLCK, "F_GETLK sees a lock on 20-24"
    print("probed")
elif role == "wait":
    fcntl.lockf(fd, fcntl.LOCK_EX, 10, 0)
    print("got it")
EOF
python3 "$CAS_TMP/lockf.py" hold "$m1/P" "$CAS_TMP/release" >"$CAS_TMP/hold.out" &
ph=$!
cas_wait_until 100 grep -q held "$CAS_TMP/hold.out" || fail "the lockf holder did not start"
python3 "$CAS_TMP/lockf.py" probe "$m2/P" - || fail "lockf probe on m2"
python3 "$CAS_TMP/lockf.py" wait "$m2/P" - >"$CAS_TMP/wait.out" &
pw=$!
sleep 0.3
grep -q "got it" "$CAS_TMP/wait.out" && fail "a blocking lockf got a held range"
touch "$CAS_TMP/release"
t0=$(date +%s%N)
wait "$ph" || fail "the lockf holder failed"
cas_wait_gone "$pw" 50 || fail "a blocking lockf did not wake within 5 s of the release"
wait "$pw" || fail "the blocking lockf failed"
echo "lockf woke $(ms_since "$t0") ms after the release"

# 4. Interrupts: a waiting flock returns on SIGALRM (flock -w) and on
# SIGINT (Ctrl-C), and leaves nothing behind.
exec 9>"$m1/L"
flock -n 9 || fail "m1 cannot take L"
t0=$(date +%s%N)
flock -w 1 "$m2/L" true && fail "flock -w took a held lock"
[ "$(ms_since "$t0")" -lt 3000 ] || fail "flock -w 1 took $(ms_since "$t0") ms"
t0=$(date +%s%N)
timeout -s INT 1 flock "$m2/L" true && fail "an interrupted flock succeeded"
[ "$(ms_since "$t0")" -lt 3000 ] || fail "Ctrl-C on a waiting flock took $(ms_since "$t0") ms"

# 5. A hundred waiters on m2 leave the mount working.
pids=()
for i in $(seq 100); do
	flock "$m2/L" true &
	pids+=($!)
done
sleep 0.5
t0=$(date +%s%N)
echo alive >"$m2/other" && [ "$(cat "$m2/other")" = alive ] && ls "$m2" >/dev/null &&
	stat "$m2/count" >/dev/null || fail "m2 does not work with 100 flock waiters"
[ "$(ms_since "$t0")" -lt 2000 ] || fail "m2 took $(ms_since "$t0") ms with 100 waiters"
flock -u 9
t0=$(date +%s%N)
for p in "${pids[@]}"; do
	cas_wait_gone "$p" 600 || fail "waiter $p did not get the lock within 60 s"
	wait "$p" || fail "waiter $p failed"
done
echo "100 waiters served in $(ms_since "$t0") ms"
exec 9>&-
cas_wait_until 50 flock -n "$m1/L" true || fail "L is still held after every waiter went"
holds=$(getfattr --only-values --absolute-names -n user.casfs.lock -- "$m1/L")
echo "$holds" | grep -q token= && fail "holds left behind: $holds"

# 6. A holder's casfs killed with SIGKILL: the lock is free after the
# lease (3 s) plus a margin.
m3=$CAS_TMP/m3
cas_mount "$m3" lease=3
pid3=${CAS_EXTRA_PIDS[-1]}
touch "$m3/K"
(exec 8>"$m3/K" && flock 8 && exec sleep 600) &
hk=$!
cas_wait_until 50 sh -c "! flock -n '$m2/K' true" || fail "m3's lock did not show on m2"
{
	kill -KILL "$pid3"
	wait "$pid3"
} 2>/dev/null
t0=$(date +%s%N)
flock -w 20 "$m2/K" true || fail "m2 did not get the lock of a dead mount within 20 s"
el=$(ms_since "$t0")
echo "the lock of a killed mount (lease 3 s) was taken after $el ms"
[ "$el" -lt 5500 ] || fail "taking a dead mount's lock took $el ms, want under lease + 2.5 s"
{
	kill -KILL "$hk"
	wait "$hk"
} 2>/dev/null
umount -l "$m3" 2>/dev/null || fusermount3 -uz "$m3" 2>/dev/null

# 7. A holder cut off from the cluster gives its lock up before anyone
# else may take it: it sees ENOLCK (CLOCK_MONOTONIC) before the other
# mount's flock returns.
cas_start_holdproxies P
m4=$CAS_TMP/m4
cas_mount_via_proxies P "$m4" lease=3,timeout=0.3
cat >"$CAS_TMP/cut.py" <<'EOF'
import errno, fcntl, os, signal, sys, time
role, path = sys.argv[1], sys.argv[2]
signal.alarm(30)
fd = os.open(path, os.O_RDWR | os.O_CREAT)
if role == "holder":
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, b"mine\n")
    print("held", flush=True)
    while True:
        try:
            os.write(fd, b"x")
        except OSError as e:
            if e.errno == errno.ENOLCK:
                print("lost", time.monotonic(), flush=True)
                fcntl.flock(fd, fcntl.LOCK_UN)  # succeeds quietly
                print("unlocked", flush=True)
                break
            if e.errno != errno.ETIMEDOUT:
                raise
        time.sleep(0.02)
else:
    fcntl.flock(fd, fcntl.LOCK_EX)
    print("got", time.monotonic(), flush=True)
EOF
python3 "$CAS_TMP/cut.py" holder "$m4/C" >"$CAS_TMP/holder.out" 2>&1 &
ph=$!
cas_wait_until 100 grep -q held "$CAS_TMP/holder.out" || fail "the holder on m4 did not start"
flock -n "$m2/C" true && fail "m2 took the lock m4 holds"
cas_cut P on
python3 "$CAS_TMP/cut.py" taker "$m2/C" >"$CAS_TMP/taker.out" 2>&1 || fail "taker: $(cat "$CAS_TMP/taker.out")"
wait "$ph" || fail "holder: $(cat "$CAS_TMP/holder.out")"
grep -q unlocked "$CAS_TMP/holder.out" || fail "unlocking a lost lock failed: $(cat "$CAS_TMP/holder.out")"
lost=$(awk '/^lost/ {print $2}' "$CAS_TMP/holder.out")
got=$(awk '/^got/ {print $2}' "$CAS_TMP/taker.out")
echo "partitioned holder: lost at $lost, the other mount got the lock at $got"
python3 -c "import sys; sys.exit(0 if $lost < $got else 1)" ||
	fail "the partitioned holder still believed in its lock (until $lost) when m2 got it ($got)"
grep -q "lock session .* lost" "$CAS_TMP/casfs.log" || fail "no log line for the lost session"
cas_cut P off

# 8. A POSIX lock that a close could not give back (the mount cut off: an
# orphan, given back later) is given back before the same process's next
# lock of the file: a late give-back must not take the new lock with it,
# and the old range must not stay held under the new lock's owner.
cas_start_holdproxies Q
m5=$CAS_TMP/m5
cas_mount_via_proxies Q "$m5" lease=10,timeout=0.3
touch "$m5/O"
cat >"$CAS_TMP/orphan.py" <<'EOF'
import fcntl, os, signal, sys, time
path, d = sys.argv[1], sys.argv[2]
signal.alarm(60)
def wait_for(name):
    while not os.path.exists(os.path.join(d, name)):
        time.sleep(0.02)
fd = os.open(path, os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX, 10, 0)
print("held", flush=True)
wait_for("cut")
os.close(fd)  # its give-back fails: the mount is cut off
print("closed", flush=True)
wait_for("healed")
fd = os.open(path, os.O_RDWR)
while True:
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 20)
        break
    except OSError:
        time.sleep(0.02)
print("relocked", flush=True)
wait_for("done")
EOF
python3 "$CAS_TMP/orphan.py" "$m5/O" "$CAS_TMP" >"$CAS_TMP/orphan.out" 2>&1 &
po=$!
cas_wait_until 100 grep -q held "$CAS_TMP/orphan.out" || fail "the lockf holder on m5 did not start"
cas_cut Q on
touch "$CAS_TMP/cut"
cas_wait_until 100 grep -q closed "$CAS_TMP/orphan.out" || fail "the close on a cut-off m5 hung"
cas_cut Q off
touch "$CAS_TMP/healed"
cas_wait_until 100 grep -q relocked "$CAS_TMP/orphan.out" ||
	fail "m5 could not lock again after the cut: $(cat "$CAS_TMP/orphan.out")"
cat >"$CAS_TMP/probe2.py" <<'EOF'
import errno, fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
start = int(sys.argv[2])
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, start)
except OSError as e:
    if e.errno in (errno.EAGAIN, errno.EACCES):
        sys.exit(1)
    raise
EOF
cas_wait_until 50 python3 "$CAS_TMP/probe2.py" "$m2/O" 0 ||
	fail "bytes 0-9, given back at a close, stayed held: $(getfattr --absolute-names -n user.casfs.lock "$m2/O" 2>&1)"
# Not a wait for a condition but for its absence: the waiter thread ticks
# every 100 ms, so a late give-back would have run within this.
sleep 0.5
python3 "$CAS_TMP/probe2.py" "$m2/O" 20 &&
	fail "m2 took bytes 20-29, which m5's process holds: $(getfattr --absolute-names -n user.casfs.lock "$m2/O" 2>&1)"
touch "$CAS_TMP/done"
wait "$po" || fail "the lockf process on m5: $(cat "$CAS_TMP/orphan.out")"
echo ok
