/* err.c - the one table of error strings, the one mapping to errno, and
 * key validation. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include <cas/cas.h>

#include "errmsg.h"

static const char *const messages[CAS_ERR_COUNT] = {
	[CAS_OK] = "success",
	[CAS_ENOMEM] = "out of memory",
	[CAS_EINVAL] = "invalid argument or malformed input",
	[CAS_EKEY] = "invalid key (1 to 250 characters from A-Za-z0-9._:/@-)",
	[CAS_ETOOBIG] = "value too large",
	[CAS_EVERSION] = "version moved (conditional write lost its precondition)",
	[CAS_EUNAVAILABLE] = "no majority of nodes answered before the deadline",
	[CAS_ECONFLICT] = "ballot rejected by a higher one",
	[CAS_EPROTO] = "protocol error: a node sent a malformed answer",
	[CAS_EIO] = "input/output error",
	[CAS_ENOCHANGE] = "no change",
	[CAS_EBALLOT] = "ballot space exhausted: a node holds a ballot above 2^62 for this key",
};

const char *cas_strerror(int code)
{
	if (code < 0 || code >= CAS_ERR_COUNT)
		return "unknown error";
	return messages[code];
}

int cas_errno(int code)
{
	switch (code) {
	case CAS_OK:
	case CAS_ENOCHANGE:
		return 0;
	case CAS_ENOMEM:
		return ENOMEM;
	case CAS_EINVAL:
	case CAS_EKEY:
		return EINVAL;
	case CAS_ETOOBIG:
		return EFBIG;
	case CAS_EVERSION:
		return ESTALE;
	case CAS_EUNAVAILABLE:
		return ETIMEDOUT;
	default:
		return EIO;
	}
}

static bool key_char_ok(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == ':' || c == '/' || c == '@' || c == '-';
}

bool cas_key_valid(const char *key, size_t len)
{
	if (key == NULL || len == 0 || len > CAS_KEY_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!key_char_ok((unsigned char)key[i]))
			return false;
	return true;
}

void cas_errmsg_set(char *errmsg, size_t errmsg_len, const char *fmt, ...)
{
	va_list ap;

	if (errmsg == NULL || errmsg_len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(errmsg, errmsg_len, fmt, ap);
	va_end(ap);
	for (char *q = errmsg; *q; q++)
		if ((unsigned char)*q < 0x20 || *q == 0x7f)
			*q = '?';
}
