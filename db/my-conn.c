/*
 * my-conn.c - MySQL/MariaDB: the URL, the connection (MariaDB Connector/C's
 * non-blocking API, every wait through db_wait on the caller's deadline),
 * one statement at a time, and the backend table.
 *
 * URL: mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?OPTIONS] (or
 * mariadb://), HOST a name, an IPv4 address or [IPv6]; USER, PASSWORD and
 * DATABASE percent-decoded. OPTIONS: ssl-mode=disabled|preferred|required|
 * verify-identity, ssl-ca=FILE, ssl-cert=FILE, ssl-key=FILE. The password
 * never appears in a label or an error.
 */
#include "my-internal.h"

#include <errno.h>
#include <errmsg.h>
#include <mysqld_error.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the URL ------------------------------------------------------------ */

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
				      : -1;
}

/* Percent-decodes s[0..n) into a new string; NULL on a bad escape, a NUL or no memory. */
static char *decode(const char *s, size_t n)
{
	char *out = malloc(n + 1);
	size_t w = 0;

	if (out == NULL)
		return NULL;
	for (size_t r = 0; r < n; r++) {
		if (s[r] == '%') {
			int h = r + 2 < n ? hexval(s[r + 1]) : -1;
			int l = h >= 0 ? hexval(s[r + 2]) : -1;
			if (h < 0 || l < 0 || (h == 0 && l == 0)) {
				explicit_bzero(out, n + 1);
				free(out);
				return NULL;
			}
			out[w++] = (char)(h * 16 + l);
			r += 2;
		} else {
			out[w++] = s[r];
		}
	}
	out[w] = '\0';
	return out;
}

static int bad(char *err, size_t cap, const char *why)
{
	db_seterr(err, cap, "mysql URL: %s", why);
	return -EINVAL;
}

static int parse_option(struct db_my *my, const char *kv, size_t n, char *err, size_t cap)
{
	const char *eq = memchr(kv, '=', n);
	char *val;

	if (eq == NULL)
		return bad(err, cap, "an option without a value (give KEY=VALUE)");
	size_t klen = (size_t)(eq - kv);
	val = decode(eq + 1, n - klen - 1);
	if (val == NULL)
		return bad(err, cap, "an option's value has a bad percent escape");
	if (klen == 8 && memcmp(kv, "ssl-mode", 8) == 0) {
		static const char *const modes[] = {"preferred", "disabled", "required",
						    "verify-identity"};
		int m = -1;
		for (int i = 0; i < 4; i++)
			if (strcasecmp(val, modes[i]) == 0 ||
			    (i == 3 && strcasecmp(val, "verify_identity") == 0))
				m = i;
		free(val);
		if (m < 0)
			return bad(err, cap,
				   "ssl-mode must be disabled, preferred, required or verify-identity");
		my->ssl_mode = m;
		return 0;
	}
	char **slot = klen == 6 && memcmp(kv, "ssl-ca", 6) == 0	    ? &my->ssl_ca
		      : klen == 8 && memcmp(kv, "ssl-cert", 8) == 0 ? &my->ssl_cert
		      : klen == 7 && memcmp(kv, "ssl-key", 7) == 0  ? &my->ssl_key
								    : NULL;
	if (slot == NULL) {
		free(val);
		db_seterr(err, cap, "mysql URL: unknown option \"%.*s\" (ssl-mode, ssl-ca, ssl-cert, ssl-key)",
			  (int)(klen > 32 ? 32 : klen), kv);
		return -EINVAL;
	}
	free(*slot);
	*slot = val;
	return 0;
}

/* Fills my from the URL; err never holds the password. */
static int parse_url(struct db_my *my, const char *url, char *err, size_t cap)
{
	const char *p = strstr(url, "://") + 3;
	const char *at, *slash, *q, *hostend, *colon;

	slash = strchr(p, '/');
	if (slash == NULL)
		return bad(err, cap, "no database (mysql://USER:PASSWORD@HOST:PORT/DATABASE)");
	at = memrchr(p, '@', (size_t)(slash - p));
	if (at == NULL)
		return bad(err, cap, "no user (mysql://USER:PASSWORD@HOST:PORT/DATABASE)");
	colon = memchr(p, ':', (size_t)(at - p));
	my->user = decode(p, (size_t)((colon != NULL ? colon : at) - p));
	if (colon != NULL)
		my->password = decode(colon + 1, (size_t)(at - colon - 1));
	if (my->user == NULL || my->user[0] == '\0' || (colon != NULL && my->password == NULL))
		return bad(err, cap, "the user or password is empty or has a bad percent escape");
	const char *h = at + 1;
	if (*h == '[') {
		hostend = memchr(h, ']', (size_t)(slash - h));
		if (hostend == NULL)
			return bad(err, cap, "an IPv6 host without its closing bracket");
		my->host = decode(h + 1, (size_t)(hostend - h - 1));
		hostend++;
	} else {
		hostend = memchr(h, ':', (size_t)(slash - h));
		if (hostend == NULL)
			hostend = slash;
		my->host = decode(h, (size_t)(hostend - h));
	}
	if (my->host == NULL || my->host[0] == '\0')
		return bad(err, cap, "no host");
	my->port = 3306;
	if (hostend < slash) {
		if (*hostend != ':' || hostend + 1 == slash)
			return bad(err, cap, "a bad port");
		unsigned long v = 0;
		for (const char *c = hostend + 1; c < slash; c++) {
			if (*c < '0' || *c > '9' || (v = v * 10 + (unsigned long)(*c - '0')) > 65535)
				return bad(err, cap, "the port must be a number from 1 to 65535");
		}
		if (v == 0)
			return bad(err, cap, "the port must be a number from 1 to 65535");
		my->port = (unsigned)v;
	}
	q = strchr(slash, '?');
	my->database = decode(slash + 1, (size_t)((q != NULL ? q : slash + strlen(slash)) - slash - 1));
	if (my->database == NULL || my->database[0] == '\0' || strchr(my->database, '/') != NULL)
		return bad(err, cap, "no database, or a bad one (mysql://USER@HOST/DATABASE)");
	while (q != NULL && q[1] != '\0') {
		const char *kv = q + 1, *amp = strchr(kv, '&');
		size_t n = amp != NULL ? (size_t)(amp - kv) : strlen(kv);
		int rc = parse_option(my, kv, n, err, cap);
		if (rc < 0)
			return rc;
		q = amp;
	}
	return 0;
}

static void my_free_fields(struct db_my *my)
{
	if (my->password != NULL)
		explicit_bzero(my->password, strlen(my->password));
	free(my->password);
	free(my->user);
	free(my->host);
	free(my->database);
	free(my->ssl_ca);
	free(my->ssl_cert);
	free(my->ssl_key);
	db_set_free(my->set, my->n_set);
	free(my->sig_sql);
}

static int my_init(struct db *db, char *err, size_t cap)
{
	struct db_my *my = calloc(1, sizeof(*my));
	size_t n;
	int rc;

	if (my == NULL)
		return bad(err, cap, "out of memory");
	db->my = my;
	rc = parse_url(my, db->conninfo, err, cap);
	if (rc < 0)
		return rc;
	n = strlen(my->host) + strlen(my->database) + 16;
	db->label = malloc(n);
	if (db->label == NULL)
		return bad(err, cap, "out of memory");
	snprintf(db->label, n, "%s:%u/%s", my->host, my->port, my->database);
	return 0;
}

static void my_disconnect(struct db *db)
{
	struct db_my *my = db->my;

	if (my == NULL || my->m == NULL)
		return;
	/*
	 * A statement may be in flight on a silent server: make every read and
	 * write fail first, so that mysql_close's goodbye cannot wait on it.
	 * mysql_close also frees the context of a non-blocking call left
	 * suspended.
	 */
	mariadb_cancel(my->m);
	mysql_close(my->m);
	my->m = NULL;
	my->broken = false;
	db->leader = false;
}

static void my_done(struct db *db)
{
	if (db->my == NULL)
		return;
	my_disconnect(db);
	my_free_fields(db->my);
	free(db->my);
	db->my = NULL;
}

static bool my_connected(const struct db *db)
{
	return db->my != NULL && db->my->m != NULL;
}

static bool my_broken(const struct db *db)
{
	return db->my->broken;
}

/* ---- waiting ------------------------------------------------------------ */

/* Waits for what Connector/C asked (status) and says what happened, or fails. */
static int my_wait(struct db *db, int status, int64_t deadline)
{
	short ev = (short)(((status & MYSQL_WAIT_READ) ? POLLIN : 0) |
			   ((status & MYSQL_WAIT_WRITE) ? POLLOUT : 0) |
			   ((status & MYSQL_WAIT_EXCEPT) ? POLLPRI : 0));
	int rc = db_wait(db, (int)mysql_get_socket(db->my->m), ev, deadline);

	if (rc < 0)
		return rc;
	/* Connector/C reads or writes again and asks anew if it was not ready. */
	return status & (MYSQL_WAIT_READ | MYSQL_WAIT_WRITE | MYSQL_WAIT_EXCEPT);
}

static int failed_wait(struct db *db, int rc, const char *what, char *err, size_t cap)
{
	db_seterr(err, cap, "%s: %s", what,
		  rc == -ETIMEDOUT ? "timed out" : rc == -EINTR ? "interrupted" : strerror(-rc));
	my_disconnect(db);
	return rc;
}

/* Maps a server or client error to an errno, dropping a lost connection. */
static int my_error(struct db *db, const char *what, char *err, size_t cap)
{
	unsigned e = mysql_errno(db->my->m);

	db_seterr(err, cap, "%s: %s", what, mysql_error(db->my->m));
	switch (e) {
	case CR_SERVER_GONE_ERROR:
	case CR_SERVER_LOST:
	case CR_CONNECTION_ERROR:
	case CR_CONN_HOST_ERROR:
	case CR_COMMANDS_OUT_OF_SYNC:
		my_disconnect(db);
		return -ENOTCONN;
	case ER_NO_SUCH_TABLE:
	case ER_BAD_FIELD_ERROR:
	case ER_BAD_DB_ERROR:
		return -ENOENT;
	case ER_TABLEACCESS_DENIED_ERROR:
	case ER_COLUMNACCESS_DENIED_ERROR:
	case ER_SPECIFIC_ACCESS_DENIED_ERROR:
	case ER_DBACCESS_DENIED_ERROR:
	case ER_KILL_DENIED_ERROR:
		return -EPERM;
	default:
		/* A client-side error code means the connection is unusable. */
		if (e >= 2000 && e < 3000) {
			my_disconnect(db);
			return -ENOTCONN;
		}
		return -EIO;
	}
}

int my_query(struct db *db, const char *sql, int64_t deadline, MYSQL_RES **res,
	     const char *what, char *err, size_t cap)
{
	struct db_my *my = db->my;
	int qrc = 0, status;

	*res = NULL;
	if (my->m == NULL) {
		db_seterr(err, cap, "%s: not connected", what);
		return -ENOTCONN;
	}
	status = mysql_real_query_start(&qrc, my->m, sql, (unsigned long)strlen(sql));
	while (status != 0) {
		int ready = my_wait(db, status, deadline);
		if (ready < 0)
			return failed_wait(db, ready, what, err, cap);
		status = mysql_real_query_cont(&qrc, my->m, ready);
	}
	if (qrc != 0)
		return my_error(db, what, err, cap);
	if (mysql_field_count(my->m) == 0)
		return 0;
	MYSQL_RES *r = NULL;
	status = mysql_store_result_start(&r, my->m);
	while (status != 0) {
		int ready = my_wait(db, status, deadline);
		if (ready < 0)
			return failed_wait(db, ready, what, err, cap);
		status = mysql_store_result_cont(&r, my->m, ready);
	}
	if (r == NULL)
		return my_error(db, what, err, cap);
	*res = r;
	return 0;
}

/* ---- connecting --------------------------------------------------------- */

static int my_connect(struct db *db, char *err, size_t cap)
{
	struct db_my *my = db->my;
	int64_t deadline = db_mono_us() + (int64_t)db->opts.connect_timeout_s * 1000000;
	MYSQL *ret = NULL;
	unsigned timeout = (unsigned)db->opts.connect_timeout_s, zero = 0;
	my_bool yes = 1;
	int status, rc;

	my_disconnect(db);
	my->m = mysql_init(NULL);
	if (my->m == NULL) {
		db_seterr(err, cap, "connect: out of memory");
		return -ENOMEM;
	}
	if (mysql_options(my->m, MYSQL_OPT_NONBLOCK, 0) != 0 ||
	    mysql_options(my->m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout) != 0 ||
	    mysql_options(my->m, MYSQL_SET_CHARSET_NAME, "utf8mb4") != 0 ||
	    mysql_options(my->m, MYSQL_OPT_LOCAL_INFILE, &zero) != 0 ||
	    mysql_optionsv(my->m, MYSQL_OPT_CONNECT_ATTR_ADD, "program_name", "lock-arbiter") != 0 ||
	    (my->ssl_mode >= MY_SSL_REQUIRED && mysql_options(my->m, MYSQL_OPT_SSL_ENFORCE, &yes) != 0) ||
	    (my->ssl_mode == MY_SSL_VERIFY_IDENTITY &&
	     mysql_options(my->m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &yes) != 0) ||
	    (my->ssl_ca != NULL && mysql_options(my->m, MYSQL_OPT_SSL_CA, my->ssl_ca) != 0) ||
	    (my->ssl_cert != NULL && mysql_options(my->m, MYSQL_OPT_SSL_CERT, my->ssl_cert) != 0) ||
	    (my->ssl_key != NULL && mysql_options(my->m, MYSQL_OPT_SSL_KEY, my->ssl_key) != 0)) {
		db_seterr(err, cap, "connect: the client library refused an option");
		my_disconnect(db);
		return -EINVAL;
	}
	if (my->ssl_mode == MY_SSL_DISABLED) {
		my_bool no = 0;
		mysql_options(my->m, MYSQL_OPT_SSL_ENFORCE, &no);
	}
	/*
	 * No default database: every statement names its tables, and the
	 * first migration's table cannot be granted before it exists (a
	 * table-level grant needs the table), so connecting must not need a
	 * privilege on the database.
	 */
	status = mysql_real_connect_start(&ret, my->m, my->host, my->user, my->password, NULL,
					  my->port, NULL, 0);
	while (status != 0) {
		int ready = my_wait(db, status, deadline);
		if (ready < 0)
			return failed_wait(db, ready, "connect", err, cap);
		status = mysql_real_connect_cont(&ret, my->m, ready);
	}
	if (ret == NULL) {
		db_seterr(err, cap, "connect: %s", mysql_error(my->m));
		my_disconnect(db);
		return -ECONNREFUSED;
	}
	/*
	 * READ COMMITTED: each poll reads the rows as they are now, even if a
	 * poll ever ran inside a transaction (REPEATABLE READ would show the
	 * snapshot). UTC for UNIX_TIMESTAMP and NOW; the signature's
	 * GROUP_CONCAT must not be cut at its default 1024 bytes; an UPDATE
	 * waits at most a second for the row's lock, and for a table's
	 * metadata lock (a backup's FLUSH TABLES WITH READ LOCK): longer, and
	 * the query's deadline would drop the connection while the server
	 * still runs the UPDATE and keeps this session's GET_LOCK.
	 */
	static const char *const settings[] = {
	    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
	    "SET SESSION autocommit = 1, time_zone = '+00:00', group_concat_max_len = 16777216,"
	    " innodb_lock_wait_timeout = 1, lock_wait_timeout = 1",
	};
	rc = 0;
	for (size_t i = 0; rc == 0 && i < sizeof(settings) / sizeof(settings[0]); i++) {
		MYSQL_RES *r = NULL;
		rc = my_query(db, settings[i], deadline, &r, "connect: session settings", err, cap);
		mysql_free_result(r);
	}
	if (rc < 0) {
		my_disconnect(db);
		return rc == -ENOENT || rc == -EPERM ? -EIO : rc;
	}
	db->leader = false;
	/* A restarted server hands out ids from 1 again: samples start over with the connection. */
	my->n_samples = 0;
	my->head = 0;
	return 0;
}

/* ---- small shared pieces ------------------------------------------------ */

char *my_literal(struct db *db, const char *s)
{
	size_t n = strlen(s);
	char *out = malloc(2 * n + 3);

	if (out == NULL)
		return NULL;
	out[0] = '\'';
	unsigned long w = mysql_real_escape_string(db->my->m, out + 1, s, (unsigned long)n);
	out[w + 1] = '\'';
	out[w + 2] = '\0';
	return out;
}

char *my_ident(const char *s)
{
	size_t n = strlen(s), w = 0;
	char *out = malloc(2 * n + 3);

	if (out == NULL)
		return NULL;
	out[w++] = '`';
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '`')
			out[w++] = '`';
		out[w++] = s[i];
	}
	out[w++] = '`';
	out[w] = '\0';
	return out;
}

int my_parse_epoch(const char *s, int64_t *us)
{
	int64_t secs = 0, frac = 0;
	int digits = 0;
	const char *p = s;

	if (s == NULL || *p < '0' || *p > '9')
		return -EIO;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (secs > INT64_MAX / 10 / 1000000)
			return -EIO;
		secs = secs * 10 + (*p - '0');
	}
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++)
			if (digits++ < 6)
				frac = frac * 10 + (*p - '0');
		for (; digits < 6; digits++)
			frac *= 10;
	}
	if (*p != '\0')
		return -EIO;
	*us = secs * 1000000 + frac;
	return 0;
}

void my_sample_add(struct db_my *my, int64_t at_us, uint64_t max_id)
{
	/*
	 * The highest id of the sessions open now goes down when the newest
	 * one closes, but every id up to the highest seen so far was handed
	 * out by now: keep the running maximum. A database clock that went
	 * back makes the old samples meaningless.
	 */
	if (my->n_samples > 0) {
		const struct my_sample *last =
		    &my->samples[(my->head + my->n_samples - 1) % MY_SAMPLES];
		if (at_us < last->at_us)
			my->n_samples = 0;
		else if (max_id < last->max_id)
			max_id = last->max_id;
	}
	if (my->n_samples == MY_SAMPLES) {
		my->head = (my->head + 1) % MY_SAMPLES;
		my->n_samples--;
	}
	my->samples[(my->head + my->n_samples) % MY_SAMPLES] = (struct my_sample){at_us, max_id};
	my->n_samples++;
}

const struct db_backend db_my_backend = {
	.name = "mysql",
	.init = my_init,
	.done = my_done,
	.connect = my_connect,
	.disconnect = my_disconnect,
	.connected = my_connected,
	.broken = my_broken,
	.discover = my_discover,
	.poll = my_poll,
	.release = my_release,
	.sessions = my_sessions,
	.terminate = my_terminate,
	.timezone_valid = my_timezone_valid,
};
