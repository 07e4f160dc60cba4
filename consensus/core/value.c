/* value.c - the public register value (cas/cas.h). */
#include <stdlib.h>
#include <string.h>

#include <cas/cas.h>

void cas_value_clear(struct cas_value *v)
{
	if (v == NULL)
		return;
	free(v->data);
	memset(v, 0, sizeof(*v));
}
