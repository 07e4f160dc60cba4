/* linearize.h - check that a history of operations on versioned registers is linearizable. */
#ifndef CAS_LINEARIZE_H
#define CAS_LINEARIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * The model: each key is an independent register holding (version, value).
 * A never-written key is (0, empty value). Every write, and every cas whose
 * expected version equals the current one, sets (version + 1, new value).
 * A read returns (version, value) unchanged. A cas with any other expected
 * version changes nothing and reports a mismatch. A delete sets (0, empty
 * value): a deleted key reads as one never written, and the next write or
 * cas (on expected version 0) starts it again at version 1.
 *
 * The history: every operation has an invocation time and a completion time
 * (any unit, only their order matters). Operation a precedes b iff
 * a.complete < b.invoke; equal times count as overlapping, so ties never
 * cause a false alarm. An operation whose outcome is unknown (it timed out,
 * its client died, or it never completed) may have taken effect at any
 * moment after its invocation, even after its completion time, or never.
 *
 * The checker decides whether some total order of the operations respects
 * real time and the model (Wing & Gong search with Lowe's memoization of
 * (linearized set, register state), as Porcupine and Knossos do), one key
 * at a time: registers are independent, so the history is linearizable iff
 * every key's sub-history is.
 */

/* The most memory the search of one key may use for its memo of visited
 * states, in bytes. Past it the checker gives up (CAS_ENOMEM): only
 * pathological histories get there, e.g. thousands of operations on one key
 * with wide overlaps, unrecorded versions and a violation to prove. */
#define CAS_CHECK_MEMO_MAX (512ull << 20)

/* A completion time meaning "never completed": the outcome is unknown. */
#define CAS_TIME_PENDING UINT64_MAX

/* A version the history did not record; the checker then ignores it. */
#define CAS_VERSION_ANY UINT64_MAX

enum cas_hist_kind {
	CAS_HIST_READ,	 /* returns (version, value) */
	CAS_HIST_WRITE,	 /* blind put of value: sets (version + 1, value) */
	CAS_HIST_CAS,	 /* puts value only if the version is still expected */
	CAS_HIST_DELETE, /* sets (0, empty value) */
};

enum cas_hist_status {
	CAS_HIST_OK,	   /* completed: a read returned, a write or cas took effect */
	CAS_HIST_MISMATCH, /* cas only: no effect, the version was not expected */
	CAS_HIST_FAILED,   /* definitely no effect (an error before anything was sent) */
	CAS_HIST_UNKNOWN,  /* may or may not have taken effect, at any time after invoke */
};

/*
 * One operation as a client saw it. Fields by kind and status:
 *
 *   READ  OK        value/len: returned; version: returned (or ANY).
 *   WRITE OK        value/len: written; version: the new version (or ANY).
 *   CAS   OK        expected; value/len: written; version: new (or ANY).
 *   CAS   MISMATCH  expected; value/len: would-be value (ignored);
 *                   version: the current version the cas saw (or ANY).
 *   any   FAILED    dropped: it had no effect and observed nothing.
 *   READ  UNKNOWN   dropped: it had no effect and observed nothing.
 *   WRITE/CAS UNKNOWN  value/len (and expected): as sent; version ignored.
 *   DELETE OK       version: 0 (or ANY); value/len ignored.
 *   DELETE UNKNOWN  may have deleted, at any time after invoke.
 *
 * complete == CAS_TIME_PENDING requires status UNKNOWN. label (may be NULL)
 * names the operation in explanations, e.g. "line 12" or "client 3 op 7";
 * without one the operation is called "#i", i being its index in the
 * history (0 for the first cas_history_add).
 */
struct cas_hist_op {
	enum cas_hist_kind kind;
	enum cas_hist_status status;
	uint64_t invoke;
	uint64_t complete;
	uint64_t expected;
	const void *value;
	size_t len;
	uint64_t version;
	const char *label;
};

/* A growing list of operations on any number of keys. Opaque. */
struct cas_history;

/* Makes an empty history in *out. Returns CAS_OK or CAS_ENOMEM (*out is
 * then unchanged). Free it with cas_history_free. */
int cas_history_new(struct cas_history **out);

/* Frees h and everything it copied. NULL is a no-op. */
void cas_history_free(struct cas_history *h);

/* Appends op on key (a NUL-terminated string). Copies key, op->value and
 * op->label: the caller keeps ownership of its buffers. Returns CAS_OK,
 * CAS_ENOMEM, or CAS_EINVAL for an inconsistent op (complete before
 * invoke, MISMATCH on a non-cas, PENDING with a known outcome, NULL value
 * with len > 0, NULL key); on error h is unchanged. */
int cas_history_add(struct cas_history *h, const char *key, const struct cas_hist_op *op);

/* Number of operations added so far, including those the checker drops. */
size_t cas_history_count(const struct cas_history *h);

/* Decides whether h is linearizable and stores it in *ok. When it is not,
 * and why_len > 0, why receives a NUL-terminated explanation (truncated to
 * why_len): the key, the earliest completion by which no order exists,
 * the operation that could not be placed and the longest order found.
 * h is not modified. Returns CAS_OK, or CAS_ENOMEM when memory ran out or
 * the search outgrew CAS_CHECK_MEMO_MAX (*ok is then unchanged and why says
 * which). */
int cas_history_check(const struct cas_history *h, bool *ok, char *why, size_t why_len);

/* cas_history_check as a predicate: false also when memory ran out (why
 * then says so). */
bool cas_linearizable(const struct cas_history *h, char *why, size_t why_len);

/*
 * Text format, one operation per line (histcheck reads it; the simulation
 * can dump failing histories with cas_history_write):
 *
 *   KEY INVOKE COMPLETE read -> RESULT
 *   KEY INVOKE COMPLETE write VALUE -> RESULT
 *   KEY INVOKE COMPLETE cas EXPECTED VALUE -> RESULT
 *   KEY INVOKE COMPLETE delete -> RESULT
 *
 * KEY is one token without blanks. INVOKE and COMPLETE are unsigned
 * integers; COMPLETE may be "-" for "never completed", and then
 * "-> RESULT" may be left out (it must be "unknown" if given).
 * VALUE is "a C-like string" with escapes \\ \" \n \r \t \0 and \xHH, or a
 * bare token without blanks or leading quote, taken literally. VERSION and
 * EXPECTED are unsigned integers; VERSION may be "?" (not recorded).
 *
 *   read  RESULT:  VERSION VALUE | fail | unknown
 *   write RESULT:  ok [VERSION] | fail | unknown
 *   cas   RESULT:  ok [VERSION] | mismatch [VERSION] | fail | unknown
 *   delete RESULT: ok [VERSION] | fail | unknown   (VERSION: 0 or ?)
 *
 * (for a cas mismatch, VERSION is the current version it saw). Blank lines
 * and lines starting with '#' are ignored. Example:
 *
 *   # key  invoke complete  call            result
 *   a      0      10        write "x"       -> ok 1
 *   a      5      12        read            -> 1 "x"
 *   a      15     20        cas 1 "y"       -> mismatch 2
 *   a      11     -         write "z"
 */

/* Parses one line of the text format and appends it to h, labelled label
 * (may be NULL; copied). Blank and comment lines add nothing. Returns
 * CAS_OK, CAS_ENOMEM, or CAS_EINVAL with a message in err (err_len > 0);
 * on error h is unchanged. */
int cas_history_add_line(struct cas_history *h, const char *line, const char *label, char *err,
			 size_t err_len);

/* Writes h to f in the text format, one line per operation, in the order
 * added (labels are not written). Returns CAS_OK or CAS_EIO. */
int cas_history_write(const struct cas_history *h, FILE *f);

#endif
