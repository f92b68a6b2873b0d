/*
 * roundtrip.c - one statement at a time: send it asynchronously, wait on
 * PQsocket with poll() against a CLOCK_MONOTONIC deadline, collect the
 * result. The blocking calls (PQexec, PQconnectdb) can wait on a dead peer
 * for as long as TCP retransmits; the daemon must keep its health endpoint
 * and its shutdown promise (exit within 2 s) whatever the network does.
 */
#include "db-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- waiting ---------------------------------------------------------- */

/*
 * Waits for events on fd until deadline: 1 ready, -ETIMEDOUT, -EINTR when
 * the caller's interrupt flag is set, or another negative errno from
 * poll(). The flag is looked at before every slice of at most
 * DB_WAIT_SLICE_US, not only on EINTR: a signal that lands just before
 * poll() is entered interrupts nothing, and shutdown must not wait for a
 * silent server's deadline (DESIGN.md section 9: exit within 2 s).
 */
#define DB_WAIT_SLICE_US INT64_C(100000)

int db_wait(struct db *db, int fd, short events, int64_t deadline)
{
	if (db->opts.wait != NULL && db_mono_us() >= deadline)
		return -ETIMEDOUT;
	if (db->opts.wait != NULL) {
		/* The caller's loop has its own deadlines and its own stop flag. */
		int r = db->opts.wait(db->opts.wait_ctx, fd, events, deadline);
		if (r != -EAGAIN)
			return r > 0 ? 1 : r == 0 ? -ETIMEDOUT : r;
	}
	for (;;) {
		int64_t left = deadline - db_mono_us();
		struct pollfd p = {.fd = fd, .events = events};
		int ms, r;

		if (db->opts.interrupt != NULL && *db->opts.interrupt != 0)
			return -EINTR;
		if (left <= 0)
			return -ETIMEDOUT;
		if (left > DB_WAIT_SLICE_US)
			left = DB_WAIT_SLICE_US;
		/* Round up so poll() does not return a millisecond early and spin. */
		ms = (int)(left / 1000 + 1);
		r = poll(&p, 1, ms);
		if (r > 0)
			return 1;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

/* Drops the connection after a failed wait and says why. */
int db_wait_failed(struct db *db, int rc, const char *what, char *err, size_t cap)
{
	if (rc == -ETIMEDOUT)
		db_seterr(err, cap, "%s: timed out", what);
	else if (rc == -EINTR)
		db_seterr(err, cap, "%s: interrupted", what);
	else
		db_seterr(err, cap, "%s: poll: %s", what, strerror(-rc));
	/*
	 * A statement is in flight: the connection cannot be reused until its
	 * result is drained, and we no longer want to wait for that.
	 */
	db_disconnect(db);
	return rc;
}

static int db_lost(struct db *db, const char *what, char *err, size_t cap)
{
	db_seterr_conn(err, cap, what, db->conn);
	db_disconnect(db);
	return -ENOTCONN;
}

/*
 * Completes a round trip started by a PQsend* call: flushes the request
 * (the poll statement for many tables is larger than a socket buffer, and
 * the connection is non-blocking) and collects the results until libpq
 * reports the end. On 0 *out is the result (an error result too: callers
 * look at its SQLSTATE); transport failures drop the connection and return
 * -ENOTCONN, -ETIMEDOUT or -EINTR.
 */
static int db_collect(struct db *db, int64_t deadline, const char *what, PGresult **out, char *err,
                      size_t cap)
{
	PGconn *c = db->conn;
	PGresult *keep = NULL;
	int fd = PQsocket(c);
	int rc;

	if (fd < 0)
		return db_lost(db, what, err, cap);
	for (;;) {
		int f = PQflush(c);

		if (f == 0)
			break;
		if (f < 0)
			return db_lost(db, what, err, cap);
		rc = db_wait(db, fd, POLLIN | POLLOUT, deadline);
		if (rc < 0)
			return db_wait_failed(db, rc, what, err, cap);
		/* The server may talk while we write (a notice, an error): read it. */
		if (!PQconsumeInput(c))
			return db_lost(db, what, err, cap);
	}

	for (;;) {
		while (!PQisBusy(c)) {
			PGresult *r = PQgetResult(c);

			if (r == NULL)
				goto done;
			/* The first error wins; otherwise the last result. */
			if (keep != NULL && PQresultStatus(keep) == PGRES_FATAL_ERROR) {
				PQclear(r);
			} else {
				PQclear(keep);
				keep = r;
			}
		}
		rc = db_wait(db, fd, POLLIN, deadline);
		if (rc < 0) {
			PQclear(keep);
			return db_wait_failed(db, rc, what, err, cap);
		}
		if (!PQconsumeInput(c)) {
			PQclear(keep);
			return db_lost(db, what, err, cap);
		}
	}

done:
	/*
	 * A terminated backend (pg_terminate_backend, a server shutdown) sends
	 * a FATAL error and closes. libpq usually reports that through
	 * PQconsumeInput above; should the error come out as a result instead,
	 * the connection is just as gone.
	 */
	if (PQstatus(c) == CONNECTION_BAD) {
		PQclear(keep);
		return db_lost(db, what, err, cap);
	}
	if (keep == NULL) {
		db_seterr(err, cap, "%s: no result", what);
		return -EIO;
	}
	*out = keep;
	return 0;
}


/*
 * One round trip bounded by opts.query_timeout_us. kind selects the libpq
 * call: sql with params, the prepared statement name with params, or
 * preparing name from sql with the given parameter types.
 */
int db_roundtrip_until(struct db *db, int64_t deadline, enum db_send kind, const char *name,
                              const char *sql, int nparams, const Oid *types,
                              const char *const *vals, const char *what, PGresult **out, char *err,
                              size_t cap)
{
	int sent;

	if (db->conn == NULL) {
		db_seterr(err, cap, "%s: not connected", what);
		return -ENOTCONN;
	}
	if (PQstatus(db->conn) == CONNECTION_BAD)
		return db_lost(db, what, err, cap);

	switch (kind) {
	case DB_SEND_PREPARED:
		sent = PQsendQueryPrepared(db->conn, name, nparams, vals, NULL, NULL, 0);
		break;
	case DB_SEND_PREPARE:
		sent = PQsendPrepare(db->conn, name, sql, nparams, types);
		break;
	default:
		sent = PQsendQueryParams(db->conn, sql, nparams, types, vals, NULL, NULL, 0);
		break;
	}
	if (!sent) {
		if (PQstatus(db->conn) == CONNECTION_BAD)
			return db_lost(db, what, err, cap);
		/* libpq refused before anything went out (out of memory, mostly). */
		db_seterr_conn(err, cap, what, db->conn);
		return -EIO;
	}
	return db_collect(db, deadline, what, out, err, cap);
}

int db_roundtrip(struct db *db, enum db_send kind, const char *name, const char *sql,
                        int nparams, const Oid *types, const char *const *vals, const char *what,
                        PGresult **out, char *err, size_t cap)
{
	return db_roundtrip_until(db, db_mono_us() + db->opts.query_timeout_us, kind, name, sql,
	                          nparams, types, vals, what, out, err, cap);
}

bool db_sqlstate_is(const PGresult *r, const char *state)
{
	const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);

	return s != NULL && strcmp(s, state) == 0;
}

/*
 * Maps a result that is not `want` to an errno with a one-line detail.
 * A vanished table or schema (42P01, 3F000) and a vanished column (42703:
 * no longer a lock table by db_discover's rule) mean "rediscover".
 */
int db_check(const PGresult *r, ExecStatusType want, const char *what, char *err, size_t cap)
{
	ExecStatusType st = PQresultStatus(r);
	const char *state, *msg;

	if (st == want)
		return 0;
	if (st != PGRES_FATAL_ERROR && st != PGRES_NONFATAL_ERROR) {
		db_seterr(err, cap, "%s: unexpected result %s", what, PQresStatus(st));
		return -EIO;
	}
	state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
	db_seterr(err, cap, "%s: %s (SQLSTATE %s)", what, msg != NULL ? msg : "server error",
	          state != NULL ? state : "?");
	if (state != NULL && (strcmp(state, "42P01") == 0 || strcmp(state, "3F000") == 0 ||
	                      strcmp(state, "42703") == 0))
		return -ENOENT;
	return -EIO;
}
