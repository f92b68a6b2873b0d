/*
 * chooser.h - which pod holds the lock (DESIGN.md section 5).
 *
 * Part of the safety core, and pure: no network, no clock. Two steps:
 *
 * chooser_plan lists the lookups a holder needs: NS:POD is looked up as
 * named; a HOST candidate with an implied namespace (the StatefulSet FQDN)
 * only there; any other candidate in every holder namespace. Namespaces
 * outside --holder-namespace are never asked.
 *
 * chooser_choose decides from every lookup's answer: the holder is the
 * single pod that ADDR confirms; failing that, the single pod found while
 * every other lookup answered GONE. An UNKNOWN anywhere decides nothing
 * (CHOOSER_UNKNOWN), and neither do two or more pods with none (or more
 * than one) confirmed by ADDR (CHOOSER_AMBIGUOUS).
 */
#ifndef LOCK_ARBITER_CHOOSER_H
#define LOCK_ARBITER_CHOOSER_H

#include "cfg.h"
#include "holder.h"

#include <k8s.h>
#include <stdbool.h>
#include <stddef.h>

/* One lookup to make; ns and name point into the holder or the namespaces. */
struct chooser_lookup {
	const char *ns, *name;
};

/*
 * Fills out[0..cap) with the lookups for h and returns how many there are
 * (possibly more than cap: only cap are written). 0 for an unresolvable
 * holder or when no candidate lies in a holder namespace.
 */
size_t chooser_plan(const struct holder *h, const struct cfg_list *namespaces,
		    struct chooser_lookup *out, size_t cap);

/* What one lookup answered. */
struct chooser_answer {
	enum k8s_outcome outcome;
	bool addr_confirms; /* POD: one of its IPs equals the holder's ADDR */
};

enum chooser_kind {
	CHOOSER_NONE,      /* no lookup was made */
	CHOOSER_POD,       /* index: the holder pod */
	CHOOSER_GONE,      /* every lookup answered GONE; index: the first */
	CHOOSER_UNKNOWN,   /* index: the first lookup without an answer */
	CHOOSER_AMBIGUOUS, /* several pods, ADDR singles out none */
};

struct chooser_choice {
	enum chooser_kind kind;
	size_t index;
};

struct chooser_choice chooser_choose(const struct chooser_answer *a, size_t n);

#endif
