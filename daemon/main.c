/*
 * main.c - wires configuration, logging and the arbiter together.
 */
#include "arbiter.h"
#include "cfg.h"
#include "log.h"
#include "http.h"
#include "report.h"
#include "status.h"

#include <config.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* No SA_RESTART: a blocking wait returns EINTR, so the loop sees the flag soon. */
static void install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* check: 3 when an orphaned lock is found, else 1 when a database could not be read. */
static int run_check(struct arbiter *a, const struct cfg *c)
{
	int failed = arbiter_settle(a);
	struct status st;

	if (status_init(&st, c->poll_interval_us) < 0 || status_publish(&st, a) < 0) {
		fprintf(stderr, "lock-arbiter: out of memory\n");
		return 1;
	}
	if (c->json)
		report_json(&st, stdout);
	else
		report_text(&st, stdout);
	status_done(&st);
	if (arbiter_count_orphaned(a) > 0)
		return 3;
	return failed > 0 ? 1 : 0;
}

/* run: the HTTP server on its own thread, the loop on this one. */
static int run_daemon(struct arbiter *a, const struct cfg *c)
{
	struct status st;
	struct http_server *h;
	char err[256], port[16];
	int rc;

	if (status_init(&st, c->poll_interval_us) < 0) {
		log_error("cannot initialise the status", NULL);
		return 1;
	}
	h = http_start(c->listen, &st, err, sizeof(err));
	if (h == NULL) {
		log_error("http server not started", "error", err, NULL);
		status_done(&st);
		return 1;
	}
	snprintf(port, sizeof(port), "%u", http_port(h));
	log_info("http listening", "listen", c->listen, "port", port, NULL);
	a->status = &st;
	rc = arbiter_run(a);
	http_stop(h);
	a->status = NULL;
	status_done(&st);
	return rc;
}

int main(int argc, char **argv)
{
	struct cfg c;
	struct arbiter *a;
	int problems, status;

	problems = cfg_load(&c, argc, argv, stderr);
	if (c.help) {
		cfg_usage(stdout);
		cfg_done(&c);
		return 0;
	}
	if (c.version) {
		printf("lock-arbiter %s\n", LOCK_ARBITER_VERSION);
		cfg_done(&c);
		return 0;
	}
	if (problems > 0) {
		fprintf(stderr, "lock-arbiter: %d configuration problem%s; see --help\n", problems,
		        problems == 1 ? "" : "s");
		cfg_done(&c);
		return 2;
	}
	log_setup(c.log_format,
	          c.mode == CFG_MODE_CHECK && c.log_level < LOG_LEVEL_WARN ? LOG_LEVEL_WARN
	                                                                   : c.log_level,
	          stderr);
	install_signals();
	a = arbiter_new(&c, &stop_requested, stderr);
	if (a == NULL) {
		cfg_done(&c);
		return 2;
	}
	switch (c.mode) {
	case CFG_MODE_CHECK:
		status = run_check(a, &c);
		break;
	case CFG_MODE_ONCE:
		status = arbiter_settle(a) > 0 ? 1 : 0;
		break;
	default:
		status = run_daemon(a, &c);
		break;
	}
	arbiter_free(a);
	cfg_done(&c);
	return status;
}
