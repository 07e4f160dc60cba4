/* msgs.h - what the core's unit tests build messages with: ballots,
 * and PREPARE and ACCEPT requests for key "k". */
#ifndef CAS_TEST_MSGS_H
#define CAS_TEST_MSGS_H

#include <stdint.h>
#include <string.h>

#include "msg.h"

static inline struct cas_ballot B(uint64_t counter, uint64_t id) {
	return (struct cas_ballot){counter, id};
}

static inline struct cas_msg
prepare_msg(struct cas_ballot b)
{
	struct cas_msg m = {.type = CAS_MSG_PREPARE, .ballot = b};

	strcpy(m.key, "k");
	return m;
}

static inline struct cas_msg accept_msg(struct cas_ballot b, const char *data, uint64_t version)
{
	struct cas_msg m = {.type = CAS_MSG_ACCEPT, .ballot = b};

	strcpy(m.key, "k");
	m.value.version = version;
	m.value.data = (unsigned char *)data;
	m.value.len = strlen(data);
	return m;
}

#endif
