#include "cfg.h"

#include <k8s.h>
#include "timeutil.h"

#include <config.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum opt_kind { OPT_STRING, OPT_LIST, OPT_DURATION, OPT_BOOL };

enum opt_id {
	O_DATABASE,
	O_TABLE,
	O_SCHEMA,
	O_HOLDER_NAMESPACE,
	O_HOLDER_CONTAINER,
	O_POLL_INTERVAL,
	O_CLOCK_SKEW,
	O_MIN_LOCK_AGE,
	O_LOCKGRANTED_TIMEZONE,
	O_RELEASE_UNRESOLVED_AFTER,
	O_LEADER_ELECTION,
	O_DRY_RUN,
	O_SESSION_GUARD,
	O_TERMINATE_ORPHANED_SESSIONS,
	O_LISTEN,
	O_KUBE_API,
	O_KUBE_TOKEN_FILE,
	O_KUBE_CA_FILE,
	O_EVENTS,
	O_LOG_FORMAT,
	O_LOG_LEVEL,
	O_JSON,
	O_COUNT
};

/*
 * The one table of options: getopt, the environment, --help and the
 * README test all come from it, so they cannot drift apart.
 */
static const struct opt {
	const char *name;
	enum opt_kind kind;
	const char *metavar;
	const char *def; /* default, as a value would be written */
	const char *help;
} opts[O_COUNT] = {
    [O_DATABASE] =
        {"database", OPT_LIST, "CONNINFO_OR_URL", NULL,
         "database to watch (repeatable); default DATABASE_URL, then libpq's PG* variables"},
    [O_TABLE] = {"table", OPT_STRING, "NAME", "databasechangeloglock",
                 "lock table name, matched case-insensitively"},
    [O_SCHEMA] = {"schema", OPT_LIST, "NAME", NULL,
                  "schema to watch (repeatable); default every schema with the table, seen by "
                  "the poll after it appears; on MySQL/MariaDB another database to watch "
                  "besides the URL's"},
    [O_HOLDER_NAMESPACE] =
        {"holder-namespace", OPT_LIST, "NS", NULL,
         "namespace where holder pods live (repeatable); default the arbiter's own"},
    [O_HOLDER_CONTAINER] = {"holder-container", OPT_STRING, "NAME", NULL,
                            "container that runs Liquibase, unless the pod annotation "
                            "lock-arbiter.io/holder-container names it"},
    [O_POLL_INTERVAL] = {"poll-interval", OPT_DURATION, "DURATION", "2s",
                         "time between polls of each database"},
    [O_CLOCK_SKEW] = {"clock-skew", OPT_DURATION, "DURATION", "5s",
                      "allowed clock difference between database, API server and nodes"},
    [O_MIN_LOCK_AGE] =
        {"min-lock-age", OPT_DURATION, "DURATION", "10s",
         "container rules (O3, O4) use only pod snapshots this long after the lock was first seen"},
    [O_LOCKGRANTED_TIMEZONE] = {"lockgranted-timezone", OPT_STRING, "ZONE", NULL,
                                "time zone the holders' JVMs write LOCKGRANTED in (e.g. UTC); "
                                "unset: LOCKGRANTED is not trusted"},
    [O_RELEASE_UNRESOLVED_AFTER] =
        {"release-unresolved-after", OPT_DURATION, "DURATION", NULL,
         "opt-in (rule O5): release a lock whose holder cannot be resolved once it is this old"},
    [O_LEADER_ELECTION] = {"leader-election", OPT_STRING, "advisory|none", "advisory",
                           "one actor per database through pg_try_advisory_lock; none behind "
                           "PgBouncer transaction pooling"},
    [O_DRY_RUN] = {"dry-run", OPT_BOOL, NULL, "false",
                   "decide and log 'would release', never UPDATE"},
    [O_SESSION_GUARD] =
        {"session-guard", OPT_STRING, "on|require|off", "on",
         "before a release, keep the lock while a database session of the dead holder is "
         "open; require: keep every lock when other roles' sessions cannot be seen"},
    [O_TERMINATE_ORPHANED_SESSIONS] =
        {"terminate-orphaned-sessions", OPT_BOOL, NULL, "false",
         "opt-in: end the sessions the guard holds for once the API proves the holder gone"},
    [O_LISTEN] = {"listen", OPT_STRING, "HOST:PORT", "0.0.0.0:9479",
                  "address of the HTTP server (health, readiness, metrics, status page)"},
    [O_KUBE_API] =
        {"kube-api", OPT_STRING, "URL", NULL,
         "Kubernetes API URL out of cluster (https://..., or kubectl proxy's http://...)"},
    [O_KUBE_TOKEN_FILE] = {"kube-token-file", OPT_STRING, "PATH", NULL,
                           "bearer token file for --kube-api (re-read every 60s)"},
    [O_KUBE_CA_FILE] = {"kube-ca-file", OPT_STRING, "PATH", NULL,
                        "CA bundle that verifies --kube-api"},
    [O_EVENTS] = {"events", OPT_BOOL, NULL, "true",
                  "post a Kubernetes Event for every release (--no-events turns it off)"},
    [O_LOG_FORMAT] = {"log-format", OPT_STRING, "logfmt|json", "logfmt", "log line format"},
    [O_LOG_LEVEL] = {"log-level", OPT_STRING, "debug|info|warn|error", "info",
                     "lowest level logged"},
    [O_JSON] = {"json", OPT_BOOL, NULL, "false", "check: print JSON instead of text"},
};

#define LONGOPT_HELP 1000
#define LONGOPT_VERSION 1001
#define LONGOPT_NO_EVENTS 1002

struct raw {
	struct cfg_list v[O_COUNT];
	int errors;
	FILE *err;
};

static int list_add(struct cfg_list *l, const char *s, size_t len)
{
	char **items = realloc(l->items, (l->n + 1) * sizeof(*items));
	char *copy;

	if (items == NULL)
		return -ENOMEM;
	l->items = items;
	copy = strndup(s, len);
	if (copy == NULL)
		return -ENOMEM;
	l->items[l->n++] = copy;
	return 0;
}

static void list_free(struct cfg_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->items[i]);
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

static void problem(struct raw *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * One problem, on one line: the values quoted in it come from the command
 * line and the environment, and a newline or an escape sequence among them
 * must not forge another line (control characters are written as \xNN).
 */
static void problem(struct raw *r, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(r->err, "lock-arbiter: ");
	for (const unsigned char *p = (const unsigned char *)line; *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f)
			fprintf(r->err, "\\x%02x", *p);
		else
			fputc(*p, r->err);
	}
	fputs(n >= 0 && (size_t)n >= sizeof(line) ? "...\n" : "\n", r->err);
	r->errors++;
}

static void env_name(const struct opt *o, char *buf, size_t cap)
{
	size_t n = (size_t)snprintf(buf, cap, "LOCK_ARBITER_%s", o->name);

	for (size_t i = 13; i < n && i < cap; i++)
		buf[i] = buf[i] == '-' ? '_' : (char)toupper((unsigned char)buf[i]);
}

/* Splits an environment value; empty items are dropped. */
static int split_into(struct cfg_list *l, const char *s, char sep)
{
	while (*s != '\0') {
		const char *end = strchr(s, sep);
		size_t len = end != NULL ? (size_t)(end - s) : strlen(s);

		while (len > 0 && isspace((unsigned char)*s)) {
			s++;
			len--;
		}
		while (len > 0 && isspace((unsigned char)s[len - 1]))
			len--;
		if (len > 0 && list_add(l, s, len) < 0)
			return -ENOMEM;
		if (end == NULL)
			break;
		s = end + 1;
	}
	return 0;
}

static void read_env(struct raw *r)
{
	for (int i = 0; i < O_COUNT; i++) {
		char name[64];
		const char *val;

		if (r->v[i].n > 0)
			continue; /* the command line wins */
		env_name(&opts[i], name, sizeof(name));
		val = getenv(name);
		if (val == NULL)
			continue;
		if (opts[i].kind == OPT_LIST)
			split_into(&r->v[i], val, i == O_DATABASE ? '\n' : ',');
		else
			list_add(&r->v[i], val, strlen(val));
	}
}

/* The value an option ends up with: the last one given, or the default. */
static const char *last(const struct raw *r, enum opt_id id)
{
	const struct cfg_list *l = &r->v[id];

	return l->n > 0 ? l->items[l->n - 1] : opts[id].def;
}

static char *dup_or_null(const char *s)
{
	return s != NULL && *s != '\0' ? strdup(s) : NULL;
}

static bool parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"1", "true", "yes", "on"};
	static const char *const no[] = {"0", "false", "no", "off"};

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return true;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return true;
		}
	}
	return false;
}

static void get_bool(struct raw *r, enum opt_id id, bool *out)
{
	const char *s = last(r, id);

	if (!parse_bool(s, out))
		problem(r, "--%s: '%s' is not a boolean (true or false)", opts[id].name, s);
}

static void get_duration(struct raw *r, enum opt_id id, int64_t min, int64_t *out)
{
	const char *s = last(r, id);
	char minbuf[32];

	*out = 0;
	if (s == NULL)
		return;
	if (timeutil_parse_duration(s, out) < 0) {
		problem(r, "--%s: '%s' is not a duration (such as 250ms, 2s, 5m)", opts[id].name,
		        s);
		return;
	}
	if (*out < min) {
		timeutil_format_duration(min, minbuf, sizeof(minbuf));
		problem(r, "--%s: must be at least %s", opts[id].name, minbuf);
	}
}

/* Port 0 is allowed so that tests can take an ephemeral one. */
static bool listen_valid(const char *s)
{
	const char *colon = strrchr(s, ':');
	char *end;
	long port;

	if (colon == NULL || colon == s)
		return false;
	if (s[0] == '[' && colon[-1] != ']')
		return false;
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	return errno == 0 && *end == '\0' && end != colon + 1 && port >= 0 && port <= 65535;
}

static bool readable(const char *path)
{
	return access(path, R_OK) == 0;
}

/* A time zone name as the IANA database spells them; the database checks it exists. */
static bool timezone_plausible(const char *s)
{
	if (*s == '\0' || strlen(s) > 64 || strstr(s, "..") != NULL || s[0] == '/')
		return false;
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && strchr("/_+-", *p) == NULL)
			return false;
	return true;
}

static char *read_small_file(const char *path)
{
	char buf[256];
	FILE *f = fopen(path, "re");
	size_t n;

	if (f == NULL)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	while (n > 0 && isspace((unsigned char)buf[n - 1]))
		n--;
	buf[n] = '\0';
	return n > 0 ? strdup(buf) : NULL;
}

static void resolve_databases(struct raw *r, struct cfg *c)
{
	const char *url = getenv("DATABASE_URL");

	c->databases = r->v[O_DATABASE];
	r->v[O_DATABASE] = (struct cfg_list){0};
	if (c->databases.n > 0)
		return;
	if (url != NULL && *url != '\0') {
		list_add(&c->databases, url, strlen(url));
		return;
	}
	/* libpq reads PG* itself from an empty conninfo. */
	if (getenv("PGHOST") != NULL || getenv("PGDATABASE") != NULL ||
	    getenv("PGSERVICE") != NULL) {
		list_add(&c->databases, "", 0);
		return;
	}
	problem(r, "no database: give --database, LOCK_ARBITER_DATABASE, DATABASE_URL or PGHOST");
}

static void resolve_namespaces(struct raw *r, struct cfg *c)
{
	c->holder_namespaces = r->v[O_HOLDER_NAMESPACE];
	r->v[O_HOLDER_NAMESPACE] = (struct cfg_list){0};
	if (c->holder_namespaces.n == 0) {
		char *ns = c->pod_namespace != NULL ? strdup(c->pod_namespace)
		                                    : read_small_file(CFG_SA_DIR "/namespace");
		if (ns == NULL)
			ns = strdup("default");
		if (ns != NULL)
			list_add(&c->holder_namespaces, ns, strlen(ns));
		free(ns);
	}
	for (size_t i = 0; i < c->holder_namespaces.n; i++)
		if (!k8s_is_dns1123_label(c->holder_namespaces.items[i]))
			problem(r,
			        "--holder-namespace: '%s' is not a namespace name (DNS-1123 label)",
			        c->holder_namespaces.items[i]);
}

static void validate(struct raw *r, struct cfg *c)
{
	const char *s;

	resolve_databases(r, c);
	c->table = dup_or_null(last(r, O_TABLE));
	if (c->table == NULL || strlen(c->table) > 63)
		problem(r, "--table: a table name of 1 to 63 characters is needed");
	c->schemas = r->v[O_SCHEMA];
	r->v[O_SCHEMA] = (struct cfg_list){0};
	for (size_t i = 0; i < c->schemas.n; i++)
		if (strlen(c->schemas.items[i]) > 63)
			problem(r, "--schema: '%s' is longer than 63 characters",
			        c->schemas.items[i]);
	resolve_namespaces(r, c);

	c->holder_container = dup_or_null(last(r, O_HOLDER_CONTAINER));
	if (c->holder_container != NULL && !k8s_is_dns1123_label(c->holder_container))
		problem(r, "--holder-container: '%s' is not a container name (DNS-1123 label)",
		        c->holder_container);

	get_duration(r, O_POLL_INTERVAL, 10 * TIMEUTIL_MS, &c->poll_interval_us);
	get_duration(r, O_CLOCK_SKEW, 0, &c->clock_skew_us);
	get_duration(r, O_MIN_LOCK_AGE, 0, &c->min_lock_age_us);
	get_duration(r, O_RELEASE_UNRESOLVED_AFTER, 0, &c->release_unresolved_after_us);
	if (last(r, O_RELEASE_UNRESOLVED_AFTER) != NULL && c->release_unresolved_after_us == 0)
		problem(r, "--release-unresolved-after: must be more than 0 (leave it unset to "
		           "keep unresolved locks)");

	c->lockgranted_timezone = dup_or_null(last(r, O_LOCKGRANTED_TIMEZONE));
	if (c->lockgranted_timezone != NULL && !timezone_plausible(c->lockgranted_timezone))
		problem(r,
		        "--lockgranted-timezone: '%s' is not a time zone name (such as UTC or "
		        "Europe/Berlin)",
		        c->lockgranted_timezone);

	s = last(r, O_LEADER_ELECTION);
	if (strcmp(s, "advisory") == 0)
		c->leader_election = CFG_LEADER_ADVISORY;
	else if (strcmp(s, "none") == 0)
		c->leader_election = CFG_LEADER_NONE;
	else
		problem(r, "--leader-election: '%s' is not advisory or none", s);

	s = last(r, O_SESSION_GUARD);
	if (strcmp(s, "on") == 0)
		c->session_guard = CFG_GUARD_ON;
	else if (strcmp(s, "require") == 0)
		c->session_guard = CFG_GUARD_REQUIRE;
	else if (strcmp(s, "off") == 0)
		c->session_guard = CFG_GUARD_OFF;
	else
		problem(r, "--session-guard: '%s' is not on, require or off", s);
	get_bool(r, O_TERMINATE_ORPHANED_SESSIONS, &c->terminate_orphaned_sessions);
	if (c->terminate_orphaned_sessions && c->session_guard == CFG_GUARD_OFF)
		problem(r, "--terminate-orphaned-sessions needs the session guard (not "
		           "--session-guard off)");

	get_bool(r, O_DRY_RUN, &c->dry_run);
	get_bool(r, O_EVENTS, &c->events);
	get_bool(r, O_JSON, &c->json);

	c->listen = dup_or_null(last(r, O_LISTEN));
	if (c->listen == NULL || !listen_valid(c->listen))
		problem(r, "--listen: '%s' is not HOST:PORT (IPv6 as [::]:9479)",
		        c->listen != NULL ? c->listen : "");

	c->kube_api = dup_or_null(last(r, O_KUBE_API));
	if (c->kube_api != NULL && strncmp(c->kube_api, "https://", 8) != 0 &&
	    strncmp(c->kube_api, "http://", 7) != 0)
		problem(r, "--kube-api: '%s' is not an http:// or https:// URL", c->kube_api);
	c->kube_token_file = dup_or_null(last(r, O_KUBE_TOKEN_FILE));
	if (c->kube_token_file != NULL && !readable(c->kube_token_file))
		problem(r, "--kube-token-file: cannot read '%s'", c->kube_token_file);
	c->kube_ca_file = dup_or_null(last(r, O_KUBE_CA_FILE));
	if (c->kube_ca_file != NULL && !readable(c->kube_ca_file))
		problem(r, "--kube-ca-file: cannot read '%s'", c->kube_ca_file);
	if (c->kube_api == NULL && (c->kube_token_file != NULL || c->kube_ca_file != NULL))
		problem(r, "--kube-token-file and --kube-ca-file need --kube-api");

	s = last(r, O_LOG_FORMAT);
	if (log_format_parse(s, &c->log_format) < 0)
		problem(r, "--log-format: '%s' is not logfmt or json", s);
	s = last(r, O_LOG_LEVEL);
	if (log_level_parse(s, &c->log_level) < 0)
		problem(r, "--log-level: '%s' is not debug, info, warn or error", s);

	if (c->json && c->mode != CFG_MODE_CHECK)
		problem(r, "--json applies to check only");
}

static void build_longopts(struct option *lo)
{
	size_t n = 0;

	for (int i = 0; i < O_COUNT; i++) {
		lo[n++] = (struct option){
		    opts[i].name, opts[i].kind == OPT_BOOL ? no_argument : required_argument, NULL,
		    i};
	}
	lo[n++] = (struct option){"no-events", no_argument, NULL, LONGOPT_NO_EVENTS};
	lo[n++] = (struct option){"help", no_argument, NULL, LONGOPT_HELP};
	lo[n++] = (struct option){"version", no_argument, NULL, LONGOPT_VERSION};
	lo[n] = (struct option){NULL, 0, NULL, 0};
}

static void parse_mode(struct raw *r, struct cfg *c, int argc, char **argv)
{
	c->mode = CFG_MODE_RUN;
	if (optind < argc) {
		const char *m = argv[optind++];
		if (strcmp(m, "run") == 0)
			c->mode = CFG_MODE_RUN;
		else if (strcmp(m, "once") == 0)
			c->mode = CFG_MODE_ONCE;
		else if (strcmp(m, "check") == 0)
			c->mode = CFG_MODE_CHECK;
		else
			problem(r, "unknown command '%s' (run, once or check)", m);
	}
	if (optind < argc)
		problem(r, "unexpected argument '%s'", argv[optind]);
}

/*
 * LOCK_ARBITER_TEST_INTERVALS: compressed intervals for the soak and the
 * simulation, so that hours of token re-reads and identity re-checks fit
 * in minutes. Honoured only in builds with -Dtest_hooks=true.
 */
static void read_test_intervals(struct raw *r, struct cfg *c)
{
	const char *v = getenv("LOCK_ARBITER_TEST_INTERVALS");

	if (v == NULL)
		return;
#ifndef LOCK_ARBITER_TEST_HOOKS
	c->test_hooks_ignored = true;
#else
	struct cfg_list items = {0};

	if (split_into(&items, v, ',') < 0) {
		problem(r, "LOCK_ARBITER_TEST_INTERVALS: out of memory");
		return;
	}
	for (size_t i = 0; i < items.n; i++) {
		const char *it = items.items[i];
		const char *eq = strchr(it, '=');
		int64_t *dst = NULL;
		int64_t d;

		if (eq != NULL && (size_t)(eq - it) == 8 && strncmp(it, "identity", 8) == 0)
			dst = &c->test_identity_every_us;
		else if (eq != NULL && (size_t)(eq - it) == 5 && strncmp(it, "token", 5) == 0)
			dst = &c->test_token_reread_us;
		if (dst == NULL || timeutil_parse_duration(eq + 1, &d) < 0 || d <= 0)
			problem(r, "LOCK_ARBITER_TEST_INTERVALS: bad item '%s' (identity=DUR,token=DUR)",
				it);
		else
			*dst = d;
	}
	list_free(&items);
#endif
}

int cfg_load(struct cfg *c, int argc, char **argv, FILE *err)
{
	struct option lo[O_COUNT + 4];
	struct raw r = {.err = err};
	int ch;

	memset(c, 0, sizeof(*c));
	build_longopts(lo);
	/*
	 * 0, not 1: glibc then forgets the previous scan too, whose position
	 * inside an argument ("-hV") would otherwise point into an argv that
	 * may be gone by now (found by tests/fuzz/fuzz_cfg).
	 */
	optind = 0;
	opterr = 0;
	/* GNU getopt permutes, so options may follow the command ("check --json"). */
	while ((ch = getopt_long(argc, argv, ":hV", lo, NULL)) != -1) {
		if (ch >= 0 && ch < O_COUNT) {
			const char *v = opts[ch].kind == OPT_BOOL ? "true" : optarg;
			if (opts[ch].kind != OPT_LIST)
				list_free(&r.v[ch]);
			list_add(&r.v[ch], v, strlen(v));
		} else if (ch == LONGOPT_NO_EVENTS) {
			list_free(&r.v[O_EVENTS]);
			list_add(&r.v[O_EVENTS], "false", 5);
		} else if (ch == LONGOPT_HELP || ch == 'h') {
			c->help = true;
		} else if (ch == LONGOPT_VERSION || ch == 'V') {
			c->version = true;
		} else if (ch == ':') {
			problem(&r, "option '%s' needs a value", argv[optind - 1]);
		} else {
			problem(&r, "unknown option '%s'", argv[optind - 1]);
		}
	}
	parse_mode(&r, c, argc, argv);
	/* Help and version skip validation; what was already reported still counts. */
	if (c->help || c->version) {
		for (int i = 0; i < O_COUNT; i++)
			list_free(&r.v[i]);
		return r.errors;
	}
	read_env(&r);
	c->pod_name = dup_or_null(getenv("POD_NAME"));
	c->pod_namespace = dup_or_null(getenv("POD_NAMESPACE"));
	c->pod_uid = dup_or_null(getenv("POD_UID"));
	c->container_name = dup_or_null(getenv("CONTAINER_NAME"));
	if (c->container_name == NULL)
		c->container_name = strdup("lock-arbiter");
	read_test_intervals(&r, c);
	validate(&r, c);
	for (int i = 0; i < O_COUNT; i++)
		list_free(&r.v[i]);
	return r.errors;
}

void cfg_done(struct cfg *c)
{
	if (c == NULL)
		return;
	list_free(&c->databases);
	list_free(&c->schemas);
	list_free(&c->holder_namespaces);
	free(c->table);
	free(c->holder_container);
	free(c->lockgranted_timezone);
	free(c->listen);
	free(c->kube_api);
	free(c->kube_token_file);
	free(c->kube_ca_file);
	free(c->pod_name);
	free(c->pod_namespace);
	free(c->pod_uid);
	free(c->container_name);
	memset(c, 0, sizeof(*c));
}

void cfg_usage(FILE *out)
{
	fprintf(out, "Usage: lock-arbiter [run|once|check] [OPTION]...\n"
	             "\n"
	             "Releases Liquibase locks whose holder pod or container is provably gone.\n"
	             "\n"
	             "Commands:\n"
	             "  run     watch the databases and release orphaned locks (default)\n"
	             "  once    one pass: release what is orphaned, then exit\n"
	             "  check   print every lock, its holder and the verdict; release nothing\n"
	             "          (exit 3 when an orphaned lock is found)\n"
	             "\n"
	             "Options (each also as the environment variable shown):\n");
	for (int i = 0; i < O_COUNT; i++) {
		char env[64], flag[64];

		env_name(&opts[i], env, sizeof(env));
		if (opts[i].metavar != NULL)
			snprintf(flag, sizeof(flag), "--%s %s", opts[i].name, opts[i].metavar);
		else if (i == O_EVENTS)
			snprintf(flag, sizeof(flag), "--events, --no-events");
		else
			snprintf(flag, sizeof(flag), "--%s", opts[i].name);
		fprintf(out, "  %s\n      %s\n      env %s", flag, opts[i].help, env);
		if (opts[i].def != NULL)
			fprintf(out, "; default %s", opts[i].def);
		fprintf(out, "\n");
	}
	fprintf(out, "  --help, --version\n"
	             "\n"
	             "Also read: DATABASE_URL and libpq's PG* variables; POD_NAME, POD_NAMESPACE,\n"
	             "POD_UID, CONTAINER_NAME (Downward API); KUBERNETES_SERVICE_HOST and _PORT.\n"
	             "\n"
	             "Exit status: 0 success; 1 runtime failure; 2 usage or configuration error;\n"
	             "3 (check) an orphaned lock was found.\n");
}
