#include "page.h"

#include "text.h"
#include "timeutil.h"

#include <string.h>

static const char style[] =
	"body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}"
	"table{border-collapse:collapse;width:100%}"
	"th,td{border:1px solid #ccc;padding:.35em .5em;text-align:left;vertical-align:top}"
	"th{background:#f3f3f3}code{font-size:.95em}"
	".held{color:#8a5a00}.orphaned{color:#b00020;font-weight:bold}"
	".unresolved{color:#6a1b9a}.free{color:#2e7d32}.down{color:#b00020}"
	"small{color:#666}";

static void td_text(FILE *out, const char *s)
{
	fputs("<td>", out);
	text_html(s, out);
	fputs("</td>", out);
}

static void lock_row(const struct status_lock *l, int64_t now, FILE *out)
{
	char held[32], when[40], ago[32];
	const char *state = !l->known ? "unknown" : l->held ? "held" : "free";

	fputs("<tr>", out);
	td_text(out, l->database);
	fputs("<td><code>", out);
	text_html(l->schema, out);
	fputc('.', out);
	text_html(l->table, out);
	fputs("</code></td>", out);
	fprintf(out, "<td class=\"%s\">%s</td>", l->held ? "held" : "free", state);
	if (l->held) {
		fputs("<td><code>", out);
		text_html(l->lockedby != NULL ? l->lockedby : "(null)", out);
		fputs("</code><br><small>", out);
		text_html(l->holder, out);
		fputs("</small></td>", out);
		fprintf(out, "<td class=\"%s\">", l->verdict != NULL ? l->verdict : "held");
		text_html(l->explanation != NULL ? l->explanation : "not judged yet", out);
		if (l->reason != NULL) {
			fputs("<br><small>", out);
			text_html(l->reason, out);
			fputs("</small>", out);
		}
		fputs("</td>", out);
		timeutil_format_duration((int64_t)(l->held_seconds * TIMEUTIL_S), held,
					 sizeof(held));
		fprintf(out, "<td>%s%s</td>", l->held_lower_bound ? "&ge; " : "", held);
	} else {
		fputs("<td></td><td></td><td></td>", out);
	}
	if (l->last_release_us != 0) {
		timeutil_format_rfc3339(l->last_release_us, when, sizeof(when));
		timeutil_format_duration(now - l->last_release_us, ago, sizeof(ago));
		fprintf(out, "<td>%s (%s ago)<br><small>", when, ago);
		text_html(l->last_release_reason, out);
		fputs(": ", out);
		text_html(l->last_release_explanation, out);
		fputs("</small></td>", out);
	} else {
		fputs("<td>never</td>", out);
	}
	fputs("</tr>\n", out);
}

void page_render(const struct status *st, int64_t now_wall_us, FILE *out)
{
	char now[40];

	timeutil_format_rfc3339(now_wall_us, now, sizeof(now));
	fprintf(out,
		"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
		"<meta http-equiv=\"refresh\" content=\"5\">"
		"<title>lock-arbiter</title><style>%s</style></head><body>\n"
		"<h1>lock-arbiter</h1>\n<p>%s &middot; version %s &middot; ",
		style, now, st->version);
	if (!st->kubernetes_configured)
		fputs("<span class=\"down\">no Kubernetes API configured</span>", out);
	else
		fprintf(out, "Kubernetes API <span class=\"%s\">%s</span>",
			st->kubernetes_up ? "free" : "down", st->kubernetes_up ? "up" : "down");
	fputs(" &middot; cluster identity: ", out);
	text_html(st->t.identity_reason != NULL ? st->t.identity_reason : "", out);
	fputs("</p>\n<h2>Databases</h2>\n<table><tr><th>database</th><th>state</th>"
	      "<th>role</th></tr>\n",
	      out);
	for (size_t i = 0; i < st->t.n_dbs; i++) {
		const struct status_db *d = &st->t.dbs[i];
		fputs("<tr>", out);
		td_text(out, d->label);
		fprintf(out, "<td class=\"%s\">%s", d->up ? "free" : "down",
			d->up ? "connected" : "unreachable: ");
		text_html(d->up ? NULL : d->error, out);
		fprintf(out, "</td><td>%s</td></tr>\n",
			d->leader ? "leader (releases)" : "follower (observes)");
	}
	fputs("</table>\n<h2>Lock tables</h2>\n<table><tr><th>database</th><th>table</th>"
	      "<th>state</th><th>locked by / holder</th><th>verdict</th><th>held for</th>"
	      "<th>last release</th></tr>\n",
	      out);
	for (size_t i = 0; i < st->t.n_locks; i++)
		lock_row(&st->t.locks[i], now_wall_us, out);
	if (st->t.n_locks == 0)
		fputs("<tr><td colspan=\"7\">no lock table found</td></tr>\n", out);
	fputs("</table>\n<p><small><a href=\"/locks\">/locks</a> (JSON) &middot; "
	      "<a href=\"/metrics\">/metrics</a> &middot; <a href=\"/healthz\">/healthz</a> "
	      "&middot; <a href=\"/readyz\">/readyz</a></small></p>\n</body></html>\n",
	      out);
}
