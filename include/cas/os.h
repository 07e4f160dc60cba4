/* os.h - the one door to the operating system for time and randomness,
 * used by the client library, its transports and the filesystem. The pure
 * core never calls these: its drivers pass the clock and random numbers in
 * (consensus/core/proposer.h). Tests and simulations replace the core's
 * drivers, not these functions. */
#ifndef CAS_OS_H
#define CAS_OS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cas/cas.h>

/* The monotonic clock (CLOCK_MONOTONIC): never goes back, not wall time. */
CAS_API void cas_os_monotonic(struct timespec *ts);

/* The monotonic clock in milliseconds. */
CAS_API uint64_t cas_os_monotonic_ms(void);

/* *ts advanced by ms milliseconds, normalized. */
CAS_API void cas_os_timespec_add_ms(struct timespec *ts, uint64_t ms);

/* Milliseconds from the monotonic now until *deadline, rounded up; 0 once
 * it has passed. */
CAS_API unsigned cas_os_ms_until(const struct timespec *deadline);

/* Sleeps ms milliseconds on the monotonic clock (signals do not cut it
 * short). */
CAS_API void cas_os_sleep_ms(unsigned ms);

/* Wall-clock time (CLOCK_REALTIME), for timestamps people read. */
CAS_API void cas_os_realtime(struct timespec *ts);

/* Fills buf with len bytes from the kernel's random source (getrandom).
 * CAS_OK, or CAS_EIO when the kernel gave none: there is no weaker
 * fallback, callers fail instead. */
CAS_API int cas_os_random(void *buf, size_t len);

#endif
