/*
 * holder.h - parse Liquibase's LOCKEDBY into who may hold the lock.
 *
 * DESIGN.md section 5. Parsing is strict: anything unexpected yields
 * HOLDER_UNRESOLVABLE with a reason, never a guess. Names are validated
 * here (DNS-1123) so that nothing derived from LOCKEDBY can reach a URL
 * unless it is a plain Kubernetes name.
 *
 * Two forms are recognised:
 *   NS:POD             written by the Kubernetes-Liquibase-Lock-Release
 *                      extension; NS a DNS-1123 label, POD a DNS-1123
 *                      subdomain.
 *   HOST[#DESC] (ADDR) written by Liquibase itself; ADDR is split off at
 *                      the last " (", DESC (after the first '#') is dropped.
 *                      ADDR must be an IPv4 or IPv6 address, the latter
 *                      possibly with a %zone.
 *
 * The caller owns struct holder (plain value, no heap memory inside).
 */
#ifndef LOCK_ARBITER_HOLDER_H
#define LOCK_ARBITER_HOLDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest LOCKEDBY we accept: the column is varchar(255). */
#define HOLDER_LOCKEDBY_MAX 255
#define HOLDER_NAME_MAX 253   /* DNS-1123 subdomain */
#define HOLDER_LABEL_MAX 63   /* DNS-1123 label */
#define HOLDER_MAX_CANDIDATES 3

enum holder_kind {
	HOLDER_UNRESOLVABLE = 0,
	HOLDER_POD,  /* NS:POD: namespace and pod name are known exactly */
	HOLDER_HOST, /* HOST (ADDR): pod name candidates, namespace open */
};

/*
 * A pod name that HOST may stand for. ns is empty when the namespace is
 * not implied by HOST: the caller then tries each holder namespace.
 */
struct holder_candidate {
	char ns[HOLDER_LABEL_MAX + 1];
	char name[HOLDER_NAME_MAX + 1];
};

struct holder {
	enum holder_kind kind;

	/* HOLDER_POD */
	char ns[HOLDER_LABEL_MAX + 1];
	char pod[HOLDER_NAME_MAX + 1];

	/* HOLDER_HOST */
	char host[HOLDER_NAME_MAX + 1];
	char addr[64];           /* as written, zone included; a longer ADDR is unresolvable */
	bool addr_is_v6;
	unsigned char addr_bin[16]; /* network order; IPv4 in the first 4 bytes */
	size_t n_candidates;
	struct holder_candidate candidates[HOLDER_MAX_CANDIDATES];

	/* HOLDER_UNRESOLVABLE: why, a static string ("empty", ...); NULL otherwise. */
	const char *why;
};

/*
 * Parses lockedby (NUL-terminated, may be NULL) into *out. Always fills
 * *out; returns its kind. Candidates for the HOST form, without
 * duplicates: for POD.SUBDOMAIN.NS.svc[.…] only the pod POD in NS;
 * otherwise HOST itself as a pod name, then the first label of HOST.
 * A HOST that is an IP address, "localhost" or "unknown" has no candidates
 * and is unresolvable.
 */
enum holder_kind holder_parse(const char *lockedby, struct holder *out);

/* Names are checked with k8s_is_dns1123_label and _subdomain (k8s.h). */

/*
 * True when the textual address a (IPv4 or IPv6, as the Kubernetes API
 * writes pod IPs) is the same address as the holder's ADDR. Zones are
 * ignored and an IPv4-mapped IPv6 address equals its IPv4 address. False
 * when h is not HOLDER_HOST or either argument is NULL or malformed.
 */
bool holder_addr_equals(const struct holder *h, const char *a);

/*
 * Writes a one-line description of h into buf ("pod shop/web-0",
 * "host web-0 (10.244.1.17), candidates shop/web-0, web-0",
 * "unresolvable: not a pod name"). Truncates to cap.
 */
void holder_describe(const struct holder *h, char *buf, size_t cap);

#endif
