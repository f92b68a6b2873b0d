#include "chooser.h"

#include <string.h>

static bool allowed(const struct cfg_list *namespaces, const char *ns)
{
	for (size_t i = 0; i < namespaces->n; i++)
		if (strcmp(namespaces->items[i], ns) == 0)
			return true;
	return false;
}

static void add(struct chooser_lookup *out, size_t cap, size_t *n, const char *ns,
		const char *name)
{
	for (size_t i = 0; i < *n && i < cap; i++)
		if (strcmp(out[i].ns, ns) == 0 && strcmp(out[i].name, name) == 0)
			return;
	if (*n < cap) {
		out[*n].ns = ns;
		out[*n].name = name;
	}
	(*n)++;
}

size_t chooser_plan(const struct holder *h, const struct cfg_list *namespaces,
		    struct chooser_lookup *out, size_t cap)
{
	size_t n = 0;

	if (h->kind == HOLDER_POD) {
		if (allowed(namespaces, h->ns))
			add(out, cap, &n, h->ns, h->pod);
		return n;
	}
	if (h->kind != HOLDER_HOST)
		return 0;
	for (size_t c = 0; c < h->n_candidates; c++) {
		const struct holder_candidate *cand = &h->candidates[c];

		if (cand->ns[0] != '\0') {
			if (allowed(namespaces, cand->ns))
				add(out, cap, &n, cand->ns, cand->name);
			continue;
		}
		for (size_t i = 0; i < namespaces->n; i++)
			add(out, cap, &n, namespaces->items[i], cand->name);
	}
	return n;
}

struct chooser_choice chooser_choose(const struct chooser_answer *a, size_t n)
{
	struct chooser_choice c = {.kind = CHOOSER_NONE};
	size_t pods = 0, confirmed = 0, pod_at = 0, confirmed_at = 0;

	for (size_t i = 0; i < n; i++) {
		if (a[i].outcome == K8S_UNKNOWN) {
			c.kind = CHOOSER_UNKNOWN;
			c.index = i;
			return c;
		}
		if (a[i].outcome != K8S_POD)
			continue;
		if (pods++ == 0)
			pod_at = i;
		if (a[i].addr_confirms && confirmed++ == 0)
			confirmed_at = i;
	}
	if (n == 0)
		return c;
	if (confirmed == 1) {
		c.kind = CHOOSER_POD;
		c.index = confirmed_at;
	} else if (confirmed == 0 && pods == 1) {
		c.kind = CHOOSER_POD;
		c.index = pod_at;
	} else if (pods == 0) {
		c.kind = CHOOSER_GONE;
		c.index = 0;
	} else {
		c.kind = CHOOSER_AMBIGUOUS;
	}
	return c;
}
