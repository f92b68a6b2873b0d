/*
 * The chooser (DESIGN.md section 5), table-driven: which lookups a holder
 * needs, and which pod, if any, the answers single out. Each row names
 * the rule it checks.
 */
#include "chooser.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

enum { P = K8S_POD, G = K8S_GONE, U = K8S_UNKNOWN };

struct choose_row {
	const char *rule;
	size_t n;
	struct chooser_answer a[4];
	enum chooser_kind want;
	size_t want_index; /* POD, GONE, UNKNOWN */
};

#define POD(c) {K8S_POD, c}
#define GONE {K8S_GONE, false}
#define UNKNOWN {K8S_UNKNOWN, false}

static const struct choose_row choose_rows[] = {
	{"the single pod ADDR confirms is the holder", 3,
	 {POD(false), POD(true), GONE}, CHOOSER_POD, 1},
	{"the single pod ADDR confirms wins over GONE answers", 2, {GONE, POD(true)}, CHOOSER_POD, 1},
	{"a unique pod, every other candidate GONE, ADDR confirming none", 3,
	 {GONE, POD(false), GONE}, CHOOSER_POD, 1},
	{"one lookup, one pod", 1, {POD(false)}, CHOOSER_POD, 0},
	{"an UNKNOWN anywhere decides nothing, even beside a confirmed pod", 2,
	 {POD(true), UNKNOWN}, CHOOSER_UNKNOWN, 1},
	{"an UNKNOWN beside a unique pod decides nothing (a 403 in one namespace)", 2,
	 {UNKNOWN, POD(false)}, CHOOSER_UNKNOWN, 0},
	{"an UNKNOWN beside GONE answers decides nothing", 3, {GONE, UNKNOWN, GONE},
	 CHOOSER_UNKNOWN, 1},
	{"two pods, ADDR confirming neither: ambiguous", 2, {POD(false), POD(false)},
	 CHOOSER_AMBIGUOUS, 0},
	{"two pods both confirmed by ADDR: ambiguous", 2, {POD(true), POD(true)},
	 CHOOSER_AMBIGUOUS, 0},
	{"every candidate GONE", 3, {GONE, GONE, GONE}, CHOOSER_GONE, 0},
	{"no lookup at all", 0, {GONE}, CHOOSER_NONE, 0},
};

static void choose_row_test(void **state)
{
	const struct choose_row *r = *state;
	struct chooser_choice c = chooser_choose(r->a, r->n);

	if (c.kind != r->want)
		fail_msg("%s: kind %d, want %d", r->rule, c.kind, r->want);
	if ((c.kind == CHOOSER_POD || c.kind == CHOOSER_UNKNOWN) && c.index != r->want_index)
		fail_msg("%s: index %zu, want %zu", r->rule, c.index, r->want_index);
}

struct plan_row {
	const char *rule;
	const char *lockedby;
	const char *namespaces[3];
	const char *want[8]; /* "ns/name", NULL-terminated */
};

static const struct plan_row plan_rows[] = {
	{"NAMESPACE:POD is looked up as named", "shop:web-0", {"shop"}, {"shop/web-0"}},
	{"NAMESPACE:POD outside the holder namespaces makes no lookup", "db:web-0", {"shop", "ops"},
	 {NULL}},
	{"HOST: the host name and its first label in every holder namespace",
	 "web-0 (10.244.1.17)", {"a", "b"}, {"a/web-0", "b/web-0"}},
	{"HOST with dots: the whole name, then the first label, in every namespace",
	 "web-0.node.example (10.0.0.1)", {"a", "b"},
	 {"a/web-0.node.example", "b/web-0.node.example", "a/web-0", "b/web-0"}},
	{"the FQDN form is looked up in its own namespace only",
	 "web-0.web.shop.svc.cluster.local (10.244.2.9)", {"ops", "shop"}, {"shop/web-0"}},
	{"the FQDN form outside the holder namespaces makes no lookup",
	 "web-0.web.shop.svc.cluster.local (10.244.2.9)", {"ops", "db"}, {NULL}},
	{"an unresolvable LOCKEDBY makes no lookup", "default:../../secrets/x", {"default"},
	 {NULL}},
};

static void plan_row_test(void **state)
{
	const struct plan_row *r = *state;
	char *items[3];
	struct cfg_list ns = {.items = items};
	struct chooser_lookup out[8];
	struct holder h;
	size_t n, want = 0;

	for (; ns.n < 3 && r->namespaces[ns.n] != NULL; ns.n++)
		items[ns.n] = (char *)r->namespaces[ns.n];
	while (want < 8 && r->want[want] != NULL)
		want++;
	holder_parse(r->lockedby, &h);
	n = chooser_plan(&h, &ns, out, 8);
	if (n != want)
		fail_msg("%s: %zu lookups, want %zu", r->rule, n, want);
	for (size_t i = 0; i < n; i++) {
		char got[320];
		snprintf(got, sizeof(got), "%s/%s", out[i].ns, out[i].name);
		if (strcmp(got, r->want[i]) != 0)
			fail_msg("%s: lookup %zu is %s, want %s", r->rule, i, got, r->want[i]);
	}
	/* A short buffer gets the first lookups and the full count. */
	if (n > 1 && chooser_plan(&h, &ns, out, 1) != n)
		fail_msg("%s: the count depends on the buffer", r->rule);
}

int main(void)
{
	struct CMUnitTest tests[sizeof(choose_rows) / sizeof(choose_rows[0]) +
			       sizeof(plan_rows) / sizeof(plan_rows[0])];
	size_t n = 0;

	for (size_t i = 0; i < sizeof(choose_rows) / sizeof(choose_rows[0]); i++)
		tests[n++] = (struct CMUnitTest){choose_rows[i].rule, choose_row_test, NULL, NULL,
						 (void *)&choose_rows[i]};
	for (size_t i = 0; i < sizeof(plan_rows) / sizeof(plan_rows[0]); i++)
		tests[n++] = (struct CMUnitTest){plan_rows[i].rule, plan_row_test, NULL, NULL,
						 (void *)&plan_rows[i]};
	return _cmocka_run_group_tests("chooser", tests, n, NULL, NULL);
}
