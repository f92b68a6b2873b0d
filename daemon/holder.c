/*
 * holder.c - parse Liquibase's LOCKEDBY into who may hold the lock.
 *
 * DESIGN.md section 5; the contract is in holder.h. Everything here works
 * on explicit lengths over the caller's string: LOCKEDBY comes straight
 * from a database column that anyone with write access to the table can
 * fill, so no step may assume it is well formed, and any step that finds
 * something unexpected stops with a static reason instead of guessing.
 */
#include "holder.h"

#include <k8s.h>

#include <arpa/inet.h>
#include <string.h>

/* Longest IPv6 zone we accept; interface names are at most 15 bytes. */
#define ADDR_ZONE_MAX 32

/* An address as inet_pton reads it; the zone is checked and then ignored. */
struct parsed_addr {
	bool v6;
	unsigned char bin[16];
};

static bool has_upper(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] >= 'A' && s[i] <= 'Z')
			return true;
	return false;
}

/*
 * The Kubernetes client's name rules, applied to a slice of LOCKEDBY: one
 * definition of a valid name for the parser and for the URLs built later.
 */
static bool slice_is(bool (*check)(const char *), const char *s, size_t n)
{
	char buf[HOLDER_NAME_MAX + 1];

	if (n == 0 || n > HOLDER_NAME_MAX)
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return check(buf);
}

static bool label_ok(const char *s, size_t n)
{
	return slice_is(k8s_is_dns1123_label, s, n);
}

static bool subdomain_ok(const char *s, size_t n)
{
	return slice_is(k8s_is_dns1123_subdomain, s, n);
}

/*
 * A host name is a subdomain whose labels are at most 63 bytes: longer
 * pod names reach the pod's host name cut to 63 by the kubelet.
 */
static bool hostname_ok(const char *s, size_t n)
{
	size_t label = 0;

	for (size_t i = 0; i < n; i++) {
		label = s[i] == '.' ? 0 : label + 1;
		if (label > HOLDER_LABEL_MAX)
			return false;
	}
	return subdomain_ok(s, n);
}

static bool zone_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == '-';
}

/*
 * Reads [s, s+n) as an IPv4 address or an IPv6 address with an optional
 * %zone, into *pa. Returns NULL on success, else a static reason. The
 * limit is the size of holder.addr (63 bytes), so that an accepted address
 * can always be kept as written; real addresses with an interface name as
 * the zone are well below it.
 */
static const char *parse_addr(const char *s, size_t n, struct parsed_addr *pa)
{
	char text[sizeof(((struct holder *)0)->addr)];
	const char *pct;
	size_t ipn;

	if (n == 0)
		return "empty address";
	if (n >= sizeof(text))
		return "address too long";

	pct = memchr(s, '%', n);
	ipn = pct != NULL ? (size_t)(pct - s) : n;
	if (pct != NULL) {
		size_t zn = n - ipn - 1;

		if (zn == 0 || zn > ADDR_ZONE_MAX)
			return "malformed address zone";
		for (size_t i = 0; i < zn; i++)
			if (!zone_char_ok(pct[1 + i]))
				return "malformed address zone";
	}

	/* inet_pton wants a NUL-terminated string, and only the address part. */
	memcpy(text, s, ipn);
	text[ipn] = '\0';
	memset(pa, 0, sizeof(*pa));
	if (pct == NULL && inet_pton(AF_INET, text, pa->bin) == 1) {
		pa->v6 = false;
		return NULL;
	}
	if (inet_pton(AF_INET6, text, pa->bin) == 1) {
		pa->v6 = true;
		return NULL;
	}
	if (pct != NULL && inet_pton(AF_INET, text, pa->bin) == 1)
		return "address zone on an IPv4 address";
	return "address is not an IP address";
}

/*
 * Adds ns/name (name of length n) to h's candidates unless the same pair
 * is already there. The callers only pass validated names, which fit.
 */
static void add_candidate(struct holder *h, const char *ns, size_t nsn, const char *name, size_t n)
{
	struct holder_candidate c;

	if (h->n_candidates >= HOLDER_MAX_CANDIDATES || nsn > HOLDER_LABEL_MAX ||
	    n > HOLDER_NAME_MAX)
		return;
	memset(&c, 0, sizeof(c));
	memcpy(c.ns, ns, nsn);
	memcpy(c.name, name, n);
	for (size_t i = 0; i < h->n_candidates; i++)
		if (strcmp(h->candidates[i].ns, c.ns) == 0 &&
		    strcmp(h->candidates[i].name, c.name) == 0)
			return;
	h->candidates[h->n_candidates++] = c;
}

/*
 * Fills the candidates for a validated HOST, in the order holder.h gives.
 * A StatefulSet pod with a subdomain resolves its own name to
 * POD.SUBDOMAIN.NS.svc.CLUSTER-DOMAIN, which names its namespace too; any
 * other host name (a node's, a VM's) may still start with the pod name.
 */
static void fill_candidates(struct holder *h, const char *host, size_t n)
{
	size_t start[4] = {0}, len[4] = {0};
	size_t nlabels = 0, from = 0;

	for (size_t i = 0; i <= n && nlabels < 4; i++) {
		if (i == n || host[i] == '.') {
			start[nlabels] = from;
			len[nlabels] = i - from;
			nlabels++;
			from = i + 1;
		}
	}

	/*
	 * POD.SUBDOMAIN.NS.svc… names its namespace: that pod is the only
	 * candidate, never a pod of the same name in another namespace
	 * (DESIGN.md section 5).
	 */
	if (nlabels == 4 && len[3] == 3 && memcmp(host + start[3], "svc", 3) == 0) {
		add_candidate(h, host + start[2], len[2], host + start[0], len[0]);
		return;
	}
	add_candidate(h, "", 0, host, n);
	add_candidate(h, "", 0, host + start[0], len[0]);
}

/*
 * The HOST[#DESC] (ADDR) form; s is n bytes, ends with ')' and contains
 * " (" at open. The address is checked before the host so that
 * "unknown (unknown)" reports what is really wrong with it.
 */
static const char *parse_host_form(const char *s, size_t n, size_t open, struct holder *h)
{
	const char *addr = s + open + 2;
	size_t addrn = n - 1 - (open + 2);
	const char *hash;
	size_t hostn;
	struct parsed_addr pa, host_as_addr;
	const char *why;

	if (addrn > 0 && addr[0] == '(')
		return "nested parentheses";
	if (memchr(addr, '(', addrn) != NULL || memchr(addr, ')', addrn) != NULL)
		return "unbalanced parentheses";
	why = parse_addr(addr, addrn, &pa);
	if (why != NULL)
		return why;

	/* DESC is free text from liquibase.hostDescription: it starts at the
	 * first '#' and is never used, so '#', spaces and parentheses in it
	 * are fine (control and non-ASCII bytes were refused already). */
	hash = memchr(s, '#', open);
	hostn = hash != NULL ? (size_t)(hash - s) : open;
	if (hostn == 0)
		return "empty host";

	/* An address is also a syntactically valid subdomain ("172.17.0.1"),
	 * so it has to be ruled out before the name check. */
	if (parse_addr(s, hostn, &host_as_addr) == NULL)
		return "host is an IP address, not a name";
	if ((hostn == 9 && memcmp(s, "localhost", 9) == 0) ||
	    (hostn > 10 && memcmp(s, "localhost.", 10) == 0))
		return "host is localhost";
	if (hostn == 7 && memcmp(s, "unknown", 7) == 0)
		return "host is unknown (Liquibase could not resolve its name)";
	if (has_upper(s, hostn))
		return "upper-case host (pod names are lower case)";
	if (!hostname_ok(s, hostn))
		return "host is not a DNS-1123 name";

	h->kind = HOLDER_HOST;
	memcpy(h->host, s, hostn);
	memcpy(h->addr, addr, addrn);
	h->addr_is_v6 = pa.v6;
	memcpy(h->addr_bin, pa.bin, sizeof(h->addr_bin));
	fill_candidates(h, s, hostn);
	return NULL;
}

/* The NS:POD form of the Kubernetes-Liquibase-Lock-Release extension. */
static const char *parse_ns_pod(const char *s, size_t n, struct holder *h)
{
	const char *colon = memchr(s, ':', n);
	size_t nsn = (size_t)(colon - s);
	const char *pod = colon + 1;
	size_t podn = n - nsn - 1;

	if (memchr(pod, ':', podn) != NULL)
		return "more than one ':'";
	if (nsn == 0)
		return "empty namespace";
	if (podn == 0)
		return "empty pod name";
	if (has_upper(s, nsn))
		return "upper-case namespace (namespaces are lower case)";
	if (!label_ok(s, nsn))
		return "namespace is not a DNS-1123 label";
	if (has_upper(pod, podn))
		return "upper-case pod name (pod names are lower case)";
	if (!subdomain_ok(pod, podn))
		return "pod name is not a DNS-1123 name";

	h->kind = HOLDER_POD;
	memcpy(h->ns, s, nsn);
	memcpy(h->pod, pod, podn);
	return NULL;
}

/* Returns the index of the last " (" in [s, s+n), or n when there is none. */
static size_t last_open(const char *s, size_t n)
{
	for (size_t i = n; i >= 2; i--)
		if (s[i - 2] == ' ' && s[i - 1] == '(')
			return i - 2;
	return n;
}

/* Parses s into *h (zeroed by the caller); returns NULL or a reason. */
static const char *parse(const char *s, struct holder *h)
{
	size_t n, open;

	if (s == NULL)
		return "no LOCKEDBY (NULL)";
	n = strnlen(s, HOLDER_LOCKEDBY_MAX + 1);
	if (n == 0)
		return "empty LOCKEDBY";
	if (n > HOLDER_LOCKEDBY_MAX)
		return "LOCKEDBY longer than 255 bytes";

	/* Refusing these once here means no later step, log line or page can
	 * be handed a byte that needs escaping to stay on one line. */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			return "control character";
		if (c > 0x7f)
			return "non-ASCII byte";
	}

	open = last_open(s, n);
	if (s[n - 1] == ')' && open < n)
		return parse_host_form(s, n, open, h);
	if (s[n - 1] == ')' && memchr(s, '(', n) != NULL)
		return "no space before '(' of the address";
	if (memchr(s, '(', n) != NULL && memchr(s, ')', n) != NULL)
		return "text after the address";
	if (memchr(s, '(', n) != NULL || memchr(s, ')', n) != NULL)
		return "unbalanced parentheses";
	if (memchr(s, ':', n) != NULL)
		return parse_ns_pod(s, n, h);
	if (n == 7 && memcmp(s, "unknown", 7) == 0)
		return "LOCKEDBY is unknown (Liquibase could not name its host)";
	return "neither NS:POD nor HOST (ADDR)";
}

enum holder_kind holder_parse(const char *lockedby, struct holder *out)
{
	struct holder h;
	const char *why;

	if (out == NULL)
		return HOLDER_UNRESOLVABLE;
	/* Build into a local so that *out never holds half of a failed parse. */
	memset(&h, 0, sizeof(h));
	why = parse(lockedby, &h);
	if (why != NULL) {
		memset(&h, 0, sizeof(h));
		h.kind = HOLDER_UNRESOLVABLE;
		h.why = why;
	}
	*out = h;
	return out->kind;
}

/*
 * Kubernetes reports a dual-stack pod's IPv4 address in dotted form, while
 * a JVM may show the same address as ::ffff:a.b.c.d; both mean one host.
 */
static void unmap_v4(struct parsed_addr *pa)
{
	static const unsigned char prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	if (pa->v6 && memcmp(pa->bin, prefix, sizeof(prefix)) == 0) {
		memmove(pa->bin, pa->bin + 12, 4);
		memset(pa->bin + 4, 0, 12);
		pa->v6 = false;
	}
}

/*
 * Zones are ignored on both sides: the API never writes one, and a zone
 * names the interface the writer used, not a different address.
 */
bool holder_addr_equals(const struct holder *h, const char *a)
{
	struct parsed_addr mine, theirs;

	if (h == NULL || a == NULL || h->kind != HOLDER_HOST)
		return false;
	if (parse_addr(a, strnlen(a, sizeof(h->addr)), &theirs) != NULL)
		return false;
	mine.v6 = h->addr_is_v6;
	memcpy(mine.bin, h->addr_bin, sizeof(mine.bin));
	unmap_v4(&mine);
	unmap_v4(&theirs);
	if (mine.v6 != theirs.v6)
		return false;
	return memcmp(mine.bin, theirs.bin, mine.v6 ? 16 : 4) == 0;
}

/*
 * Appends at most n bytes of s to buf (capacity cap, current length *len),
 * truncating and keeping buf NUL-terminated.
 */
static void append(char *buf, size_t cap, size_t *len, const char *s, size_t n)
{
	size_t room = cap - 1 - *len;

	n = strnlen(s, n);
	if (n > room)
		n = room;
	memcpy(buf + *len, s, n);
	*len += n;
	buf[*len] = '\0';
}

#define APPEND_LIT(lit) append(buf, cap, &len, (lit), sizeof(lit) - 1)
#define APPEND_FIELD(f) append(buf, cap, &len, (f), sizeof(f))

/*
 * Every string printed here was validated by holder_parse (DNS-1123 names,
 * an address with a [A-Za-z0-9_.-] zone), or is a static reason, so
 * nothing needs escaping; the raw LOCKEDBY is never printed, which is why
 * an unresolvable holder shows only its reason. Fields are read with
 * their array size as the bound, so a holder not made by holder_parse
 * cannot make this read past them.
 */
void holder_describe(const struct holder *h, char *buf, size_t cap)
{
	size_t len = 0;

	if (buf == NULL || cap == 0)
		return;
	buf[0] = '\0';

	if (h == NULL) {
		APPEND_LIT("unresolvable: no holder");
		return;
	}
	switch (h->kind) {
	case HOLDER_POD:
		APPEND_LIT("pod ");
		APPEND_FIELD(h->ns);
		APPEND_LIT("/");
		APPEND_FIELD(h->pod);
		return;
	case HOLDER_HOST:
		APPEND_LIT("host ");
		APPEND_FIELD(h->host);
		APPEND_LIT(" (");
		APPEND_FIELD(h->addr);
		APPEND_LIT(")");
		for (size_t i = 0; i < h->n_candidates && i < HOLDER_MAX_CANDIDATES; i++) {
			const struct holder_candidate *c = &h->candidates[i];

			if (i == 0)
				APPEND_LIT(", candidates ");
			else
				APPEND_LIT(", ");
			if (c->ns[0] != '\0') {
				APPEND_FIELD(c->ns);
				APPEND_LIT("/");
			}
			APPEND_FIELD(c->name);
		}
		return;
	case HOLDER_UNRESOLVABLE:
		APPEND_LIT("unresolvable: ");
		if (h->why != NULL)
			append(buf, cap, &len, h->why, HOLDER_LOCKEDBY_MAX);
		else
			APPEND_LIT("no reason given");
		return;
	}
	APPEND_LIT("unresolvable: invalid holder kind");
}
