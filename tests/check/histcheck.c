/* histcheck.c - check a register history written in the text format of linearize.h. */
#include "linearize.h"

#include <cas/cas.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Exit codes: 0 linearizable, 1 not linearizable, 2 usage, input or memory
 * error. */
enum { EXIT_LINEARIZABLE = 0, EXIT_NOT_LINEARIZABLE = 1, EXIT_TROUBLE = 2 };

static void usage(FILE *f)
{
	fprintf(f, "usage: histcheck [FILE]\n"
		   "Reads a history (one operation per line, see tests/check/linearize.h;\n"
		   "standard input when FILE is missing or '-') and prints 'linearizable'\n"
		   "(exit 0) or why it is not (exit 1). Bad input exits 2.\n");
}

/* Reads every line of in into h, labelling each operation "line N". */
static int read_history(FILE *in, const char *name, struct cas_history *h)
{
	char *line = NULL;
	size_t cap = 0;
	unsigned long lineno = 0;
	int rc = CAS_OK;

	while (getline(&line, &cap, in) >= 0) {
		char label[32];
		char err[128];

		lineno++;
		snprintf(label, sizeof(label), "line %lu", lineno);
		rc = cas_history_add_line(h, line, label, err, sizeof(err));
		if (rc) {
			fprintf(stderr, "histcheck: %s:%lu: %s\n", name, lineno, err);
			goto out_free_line;
		}
	}
	if (ferror(in)) {
		fprintf(stderr, "histcheck: %s: read error\n", name);
		rc = CAS_EIO;
	}

out_free_line:
	free(line);
	return rc;
}

int main(int argc, char **argv)
{
	struct cas_history *h;
	const char *name = "-";
	FILE *in = stdin;
	char why[4096];
	bool ok = false;
	int status = EXIT_TROUBLE;

	if (argc > 2 || (argc == 2 && argv[1][0] == '-' && argv[1][1])) {
		usage(argc == 2 && !strcmp(argv[1], "--help") ? stdout : stderr);
		return argc == 2 && !strcmp(argv[1], "--help") ? 0 : EXIT_TROUBLE;
	}
	if (argc == 2 && strcmp(argv[1], "-")) {
		name = argv[1];
		in = fopen(name, "r");
		if (!in) {
			perror(name);
			return EXIT_TROUBLE;
		}
	}
	if (cas_history_new(&h)) {
		fprintf(stderr, "histcheck: out of memory\n");
		goto out_close;
	}
	if (read_history(in, name, h))
		goto out_free_history;
	if (cas_history_check(h, &ok, why, sizeof(why))) {
		fprintf(stderr, "histcheck: %s\n", why);
		goto out_free_history;
	}
	if (ok) {
		printf("linearizable\n");
		status = EXIT_LINEARIZABLE;
	} else {
		printf("%s", why);
		if (why[0] && why[strlen(why) - 1] != '\n')
			printf("\n");
		status = EXIT_NOT_LINEARIZABLE;
	}

out_free_history:
	cas_history_free(h);
out_close:
	if (in != stdin)
		fclose(in);
	return status;
}
