/*
 * fuzz_cfg.c - fuzz target for the configuration: the command line and
 * the LOCK_ARBITER_* (and DATABASE_URL, PG*, POD_*) variables, read by
 * cfg_load. Both come from a manifest, so from people and templates.
 *
 * The input is a list of NUL-separated strings, as in /proc/PID/cmdline
 * and environ: NAME=value with NAME an environment variable name is set
 * in the environment (and unset afterwards), anything else is the next
 * argument. What must hold: cfg_load returns, never exits; it writes
 * exactly one line per problem it counts (cfg.h); a valid configuration
 * has what the daemon relies on; cfg_done frees everything (LeakSanitizer).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <k8s.h>

#include "cfg.h"
#include "fuzz-input.h"
#include "timeutil.h"

/* NAME=value with NAME in [A-Za-z_][A-Za-z0-9_]*: the length of NAME, else 0. */
static size_t env_name_len(const char *s)
{
	size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_0123456789");

	return n > 0 && s[n] == '=' && !(s[0] >= '0' && s[0] <= '9') ? n : 0;
}

static void check_valid(const struct cfg *c)
{
	if (c->databases.n == 0 || c->holder_namespaces.n == 0 || c->table == NULL ||
	    strlen(c->table) > 63 || c->listen == NULL || c->container_name == NULL ||
	    c->poll_interval_us < 10 * TIMEUTIL_MS || c->clock_skew_us < 0 ||
	    c->min_lock_age_us < 0 || c->release_unresolved_after_us < 0)
		abort();
	for (size_t i = 0; i < c->holder_namespaces.n; i++)
		if (!k8s_is_dns1123_label(c->holder_namespaces.items[i]))
			abort();
	if (c->holder_container != NULL && !k8s_is_dns1123_label(c->holder_container))
		abort();
	if (c->json && c->mode != CFG_MODE_CHECK)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_fields f;
	char *argv[FUZZ_MAX_FIELDS + 2];
	char *set[FUZZ_MAX_FIELDS];
	int argc = 0;
	size_t n_set = 0;

	if (!fuzz_fields_split(&f, data, size, '\0'))
		return 0;
	argv[argc++] = (char *)"lock-arbiter";
	for (size_t i = 0; i < f.n; i++) {
		size_t n = env_name_len(f.field[i]);
		if (n == 0) {
			argv[argc++] = f.field[i];
			continue;
		}
		f.field[i][n] = '\0';
		if (setenv(f.field[i], f.field[i] + n + 1, 1) == 0)
			set[n_set++] = f.field[i];
	}
	argv[argc] = NULL;

	char *text = NULL;
	size_t len = 0;
	FILE *err = open_memstream(&text, &len);
	if (err != NULL) {
		struct cfg c;
		int problems = cfg_load(&c, argc, argv, err);
		fclose(err);
		/* One line per problem, each ended by a newline; none when valid. */
		size_t lines = 0;
		for (size_t i = 0; i < len; i++)
			lines += text[i] == '\n';
		if (problems < 0 || lines != (size_t)problems || (len > 0 && text[len - 1] != '\n'))
			abort();
		if (problems == 0 && !c.help && !c.version)
			check_valid(&c);
		cfg_done(&c);
		free(text);
	}
	for (size_t i = 0; i < n_set; i++)
		unsetenv(set[i]);
	fuzz_fields_done(&f);
	return 0;
}
