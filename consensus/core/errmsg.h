/* errmsg.h - filling the errmsg buffers that carry an error's context. */
#ifndef CAS_ERRMSG_H
#define CAS_ERRMSG_H

#include <stddef.h>

/* Formats a one-line reason into errmsg (errmsg_len bytes, NUL-terminated,
 * cut to fit); control characters become '?', so a reason that quotes what
 * a peer sent stays one line of text. errmsg may be NULL or errmsg_len 0:
 * then nothing is written. */
void cas_errmsg_set(char *errmsg, size_t errmsg_len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
