/* procs.h - child processes, bounded waits, mounts and temporary folders for the nemesis. */
#ifndef NEM_PROCS_H
#define NEM_PROCS_H

#include <stdbool.h>
#include <sys/types.h>

/* Milliseconds on CLOCK_MONOTONIC. */
unsigned long long nem_now_ms(void);

/* Sleeps ms milliseconds, or less when *stop becomes true (checked every
 * 20 ms; stop may be NULL). */
void nem_nap(unsigned ms, const volatile bool *stop);

/* Starts argv[0] (a path, or a name looked up in PATH when it has no
 * '/') with argv, stdin from /dev/null and stdout and stderr appended to
 * log (NULL: /dev/null). No descriptor of ours leaks into it. deathsig
 * (0: none) is sent to the child when the calling thread ends, so call it
 * from a thread that lives as long as the child should. Returns the pid,
 * or -1 with errno set. */
pid_t nem_spawn(char *const argv[], const char *log, int deathsig);

/* Reaps pid, waiting at most timeout_ms for it to end. True when it ended
 * (*status, when not NULL, gets its wait status); false when it is still
 * running (nothing reaped). */
bool nem_reap(pid_t pid, unsigned timeout_ms, int *status);

/* True when pid (our child) has not ended; reaps it if it has, storing the
 * wait status in *status (may be NULL). */
bool nem_alive(pid_t pid, int *status);

/* Sends sig to pid, then reaps it within timeout_ms; SIGKILL and another
 * timeout_ms when it is still there. True when it was reaped. */
bool nem_stop(pid_t pid, int sig, unsigned timeout_ms);

/* Runs argv to its end within timeout_ms (killed past it). Returns its
 * exit code, or -1 when it could not start, was killed or timed out. */
int nem_run(char *const argv[], const char *log, unsigned timeout_ms);

/* True when path (absolute, no trailing slash) is a mount point in this
 * process's mount namespace. Reads /proc/self/mountinfo; never touches
 * the mount itself (a dead FUSE mount would answer ENOTCONN). */
bool nem_mounted(const char *path);

/* Reads the first line of path as a port (1..65535) into *port; false
 * while the file is missing, empty or incomplete. */
bool nem_read_port(const char *path, unsigned *port);

/* Removes path and everything below it, without crossing into other
 * file systems (a mount point that is still mounted is left alone).
 * 0, or -1 when something could not be removed. */
int nem_rmtree(const char *path);

#endif
