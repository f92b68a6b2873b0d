/*
 * test_holder.c - the LOCKEDBY parser (daemon/holder.c) against DESIGN.md
 * section 5.
 *
 * One table, one row per case, each row naming the rule it exercises; each
 * row runs as its own cmocka test named "rule | case", so a regression is
 * reported by name. Every line of the Liquibase fixtures has an explicit
 * row here, and the fixture files themselves are read at test time (from
 * argv[1], else LOCK_ARBITER_FIXTURES) so that the files and the table
 * cannot drift apart: a fixture line without a row fails, and so does a
 * fixture row whose line is no longer in its file.
 */
#include "holder.h"
#include <k8s.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Rules of DESIGN.md section 5 (and the facts of section 3 they rest on). */
#define R_LEN "5 strict: 1..255 bytes (varchar(255))"
#define R_BYTES "5 strict: printable ASCII only"
#define R_FORM "5 strict: only NS:POD or HOST[#DESC] (ADDR)"
#define R_NSPOD "5 NS:POD: NS a DNS-1123 label, POD a DNS-1123 subdomain"
#define R_URL "5 names validated before any URL is built"
#define R_SPLIT "5 HOST (ADDR): ADDR split off at the last ' ('"
#define R_DESC "5 HOST (ADDR): #DESC dropped"
#define R_ADDR "5 HOST (ADDR): ADDR an IPv4 or IPv6 address, IPv6 maybe with %zone"
#define R_HOST "5 HOST (ADDR): HOST a pod name, not an address, localhost or unknown"
#define R_C_HOST "5 candidates: HOST as a pod name"
#define R_C_SVC "5 candidates: POD.SUBDOMAIN.NS.svc... is pod POD in NS, looked up there only"
#define R_C_LABEL "5 candidates: first label of HOST, no duplicates"

#define FO "observed.txt"
#define FC "constructed.txt"

/*
 * Inputs too long to write out by hand, built by build_inputs() before
 * any test runs; test_generated_lengths measures them.
 */
static char g_label63[128];     /* 63 x 'a' */
static char g_host244[512];     /* 63a.63b.63c.52d */
static char g_in255[512];       /* g_host244 " (10.0.0.1)": 255 bytes */
static char g_in256[512];       /* one 'd' more: 256 bytes */
static char g_pod253[512];      /* 63a.63b.63c.61d */
static char g_sub254[512];      /* 63a.63b.63c.62d */
static char g_label64[128];     /* 64 x 'a' */
static char g_in_nspod255[512]; /* "a:" g_pod253: 255 bytes */
static char g_in_ns64[512];     /* 64 x 'a' ":web-0" */
static char g_in_label63[512];  /* g_label63 " (10.0.0.1)" */
static char g_in_label64[512];  /* g_label64 " (10.0.0.1)" */
static char g_zone32[128];      /* "fe80::1%" 32 x 'z' */
static char g_in_zone32[512];   /* "web-0 (" g_zone32 ")" */
static char g_in_zone33[512];   /* one 'z' more */
static char g_addr63[128];      /* longest IPv6 text form, '%', 17 x 'z': 63 bytes */
static char g_in_addr63[512];   /* "web-0 (" g_addr63 ")" */
static char g_in_addr64[512];   /* one 'z' more: the address no longer fits holder.addr */

struct cand {
	const char *ns;
	const char *name;
};

struct row {
	const char *rule;
	const char *name;
	const char *fixture; /* file the input is a line of, or NULL */
	const char *in;      /* NULL is passed as NULL */
	enum holder_kind kind;
	const char *why; /* UNRESOLVABLE: a word the reason must contain */
	const char *ns;  /* POD */
	const char *pod;
	const char *host; /* HOST */
	const char *addr;
	bool v6;
	size_t n;
	struct cand c[HOLDER_MAX_CANDIDATES];
};

#define UNRES(rule_, fix_, name_, in_, why_)                                                       \
	{                                                                                          \
		.rule = (rule_), .fixture = (fix_), .name = (name_), .in = (in_),                  \
		.kind = HOLDER_UNRESOLVABLE, .why = (why_)                                         \
	}
#define POD(rule_, fix_, name_, in_, ns_, pod_)                                                    \
	{                                                                                          \
		.rule = (rule_), .fixture = (fix_), .name = (name_), .in = (in_),                  \
		.kind = HOLDER_POD, .ns = (ns_), .pod = (pod_)                                     \
	}
#define HOST(rule_, fix_, name_, in_, host_, addr_, v6_, n_, ...)                                  \
	{                                                                                          \
		.rule = (rule_), .fixture = (fix_), .name = (name_), .in = (in_),                  \
		.kind = HOLDER_HOST, .host = (host_), .addr = (addr_), .v6 = (v6_), .n = (n_),     \
		.c = { __VA_ARGS__ }                                                               \
	}
/* A candidate with no implied namespace, and one with a namespace. */
/* clang-format off */
#define ANY(name_) {"", (name_)}
#define IN(ns_, name_) {(ns_), (name_)}
/* clang-format on */

#define FQDN "web-0.web.shop.svc.cluster.local"
#define NODE "ip-10-52-55-196.eu-west-1.compute.internal"
#define ORDERS "orders-api-7d9f8c6b5-x2x7q"
#define VM6 "fd00:0:0:0:0:0:0:2%eth0"

static const struct row rows[] = {
    /* constructed.txt, every line */
    HOST(R_C_LABEL, FC, "fixture: pod name, first label deduplicated", ORDERS " (10.244.1.17)",
         ORDERS, "10.244.1.17", false, 1, ANY(ORDERS)),
    HOST(R_DESC, FC, "fixture: pod name with #DESC", ORDERS "#blue (10.244.1.17)", ORDERS,
         "10.244.1.17", false, 1, ANY(ORDERS)),
    HOST(R_C_SVC, FC, "fixture: StatefulSet FQDN", FQDN " (10.244.2.9)", FQDN, "10.244.2.9", false,
         1, IN("shop", "web-0")),
    HOST(R_C_LABEL, FC, "fixture: node host name", NODE " (10.52.55.196)", NODE, "10.52.55.196",
         false, 2, ANY(NODE), ANY("ip-10-52-55-196")),
    POD(R_NSPOD, FC, "fixture: extension's NS:POD", "payments:payments-api-5f7c9d-abcde",
        "payments", "payments-api-5f7c9d-abcde"),
    UNRES(R_FORM, FC, "fixture: bare unknown", "unknown", "unknown"),

    /* observed.txt, every line */
    HOST(R_ADDR, FO, "fixture: IPv6 with zone", "vm (" VM6 ")", "vm", VM6, true, 1, ANY("vm")),
    HOST(R_DESC, FO, "fixture: IPv6 with zone and #DESC", "vm#desc1 (" VM6 ")", "vm", VM6, true, 1,
         ANY("vm")),
    HOST(R_C_HOST, FO, "fixture: short host name", "t14 (172.17.0.1)", "t14", "172.17.0.1", false,
         1, ANY("t14")),
    UNRES(R_HOST, FO, "fixture: host is an IPv4 address", "172.17.0.1 (172.17.0.1)", "IP address"),
    UNRES(R_HOST, FO, "fixture: localhost", "localhost (127.0.0.1)", "localhost"),
    UNRES(R_ADDR, FO, "fixture: unknown (unknown)", "unknown (unknown)", "not an IP address"),

    /* length */
    UNRES(R_LEN, NULL, "NULL", NULL, "NULL"),
    UNRES(R_LEN, NULL, "empty", "", "empty"),
    HOST(R_LEN, NULL, "exactly 255 bytes, valid", g_in255, g_host244, "10.0.0.1", false, 2,
         ANY(g_host244), ANY(g_label63)),
    UNRES(R_LEN, NULL, "256 bytes, otherwise valid", g_in256, "255"),
    POD(R_LEN, NULL, "NS:POD of exactly 255 bytes, 253-byte pod name", g_in_nspod255, "a",
        g_pod253),

    /* bytes */
    UNRES(R_BYTES, NULL, "trailing newline", "web-0 (10.0.0.1)\n", "control"),
    UNRES(R_BYTES, NULL, "newline inside host", "web-0\nx (10.0.0.1)", "control"),
    UNRES(R_BYTES, NULL, "carriage return", "web-0 (10.0.0.1)\r", "control"),
    UNRES(R_BYTES, NULL, "tab for the space", "web-0\t(10.0.0.1)", "control"),
    UNRES(R_BYTES, NULL, "tab inside DESC", "web-0#a\tb (10.0.0.1)", "control"),
    UNRES(R_BYTES, NULL, "ANSI escape before host", "\x1b[31mweb-0 (10.0.0.1)", "control"),
    UNRES(R_BYTES, NULL, "ANSI escape in NS:POD", "shop:web-0\x1b[0m", "control"),
    UNRES(R_BYTES, NULL, "DEL", "web-0\x7f (10.0.0.1)", "control"),
    UNRES(R_BYTES, NULL, "UTF-8 in host",
          "w\xc3\xa9"
          "b-0 (10.0.0.1)",
          "non-ASCII"),
    UNRES(R_BYTES, NULL, "UTF-8 in DESC", "web-0#caf\xc3\xa9 (10.0.0.1)", "non-ASCII"),
    UNRES(R_BYTES, NULL, "UTF-8 in NS:POD", "shop:web-\xd9\xa0", "non-ASCII"),
    UNRES(R_BYTES, NULL, "byte 0xff alone", "\xff", "non-ASCII"),

    /* forms */
    UNRES(R_FORM, NULL, "bare pod name", "web-0", "neither"),
    UNRES(R_FORM, NULL, "bare FQDN", FQDN, "neither"),

    /* HOST (ADDR): the split */
    UNRES(R_SPLIT, NULL, "no closing parenthesis", "web-0 (10.0.0.1", "unbalanced"),
    UNRES(R_SPLIT, NULL, "no opening parenthesis", "web-0 10.0.0.1)", "unbalanced"),
    UNRES(R_SPLIT, NULL, "doubled parentheses", "web-0 ((10.0.0.1))", "nested"),
    UNRES(R_SPLIT, NULL, "extra closing parenthesis", "web-0 (10.0.0.1))", "unbalanced"),
    UNRES(R_SPLIT, NULL, "no space before '('", "web-0(10.0.0.1)", "space"),
    UNRES(R_SPLIT, NULL, "text after the address", "web-0 (10.0.0.1) ", "after"),
    UNRES(R_SPLIT, NULL, "empty address", "web-0 ()", "empty address"),
    UNRES(R_SPLIT, NULL, "empty host", " (10.0.0.1)", "empty host"),
    HOST(R_SPLIT, NULL, "the last ' (' wins", "web-0#x (10.0.0.2) (10.0.0.1)", "web-0", "10.0.0.1",
         false, 1, ANY("web-0")),
    UNRES(R_SPLIT, NULL, "HOST form wins over NS:POD", "shop:web-0 (10.0.0.1)", "DNS-1123"),

    /* HOST (ADDR): #DESC */
    UNRES(R_DESC, NULL, "'#' first: empty host", "#desc (10.0.0.1)", "empty host"),
    HOST(R_DESC, NULL, "empty DESC", "web-0# (10.0.0.1)", "web-0", "10.0.0.1", false, 1,
         ANY("web-0")),
    HOST(R_DESC, NULL, "'#' inside DESC", "web-0#a#b (10.0.0.1)", "web-0", "10.0.0.1", false, 1,
         ANY("web-0")),
    HOST(R_DESC, NULL, "parentheses inside DESC", "web-0#x (y) (10.0.0.1)", "web-0", "10.0.0.1",
         false, 1, ANY("web-0")),
    HOST(R_DESC, NULL, "spaces inside DESC", "web-0#blue green rollout (10.0.0.1)", "web-0",
         "10.0.0.1", false, 1, ANY("web-0")),
    UNRES(R_DESC, NULL, "space before '#'", "web-0 #x (10.0.0.1)", "DNS-1123"),
    UNRES(R_DESC, NULL, "parentheses in host without '#'", "web-0 (x) (10.0.0.1)", "DNS-1123"),

    /* HOST (ADDR): the address */
    HOST(R_ADDR, NULL, "compressed IPv6", "web-0 (fd00::2)", "web-0", "fd00::2", true, 1,
         ANY("web-0")),
    HOST(R_ADDR, NULL, "IPv6 with numeric zone", "web-0 (fe80::1%2)", "web-0", "fe80::1%2", true, 1,
         ANY("web-0")),
    HOST(R_ADDR, NULL, "IPv6 zone of 32 bytes", g_in_zone32, "web-0", g_zone32, true, 1,
         ANY("web-0")),
    UNRES(R_ADDR, NULL, "IPv6 zone of 33 bytes", g_in_zone33, "zone"),
    UNRES(R_ADDR, NULL, "empty zone", "web-0 (fe80::1%)", "zone"),
    UNRES(R_ADDR, NULL, "zone with '/'", "web-0 (fe80::1%eth/0)", "zone"),
    UNRES(R_ADDR, NULL, "zone with a space", "web-0 (fe80::1%eth 0)", "zone"),
    UNRES(R_ADDR, NULL, "two '%'", "web-0 (fe80::1%%eth0)", "zone"),
    UNRES(R_ADDR, NULL, "zone on IPv4", "web-0 (10.0.0.1%eth0)", "IPv4"),
    HOST(R_ADDR, NULL, "IPv4-mapped IPv6", "web-0 (::ffff:10.0.0.1)", "web-0", "::ffff:10.0.0.1",
         true, 1, ANY("web-0")),
    HOST(R_ADDR, NULL, "upper-case hex IPv6", "web-0 (FD00::2)", "web-0", "FD00::2", true, 1,
         ANY("web-0")),
    HOST(R_ADDR, NULL, "address of 63 bytes", g_in_addr63, "web-0", g_addr63, true, 1,
         ANY("web-0")),
    UNRES(R_ADDR, NULL, "address of 64 bytes", g_in_addr64, "too long"),
    UNRES(R_ADDR, NULL, "IPv4 octet above 255", "web-0 (10.0.0.256)", "not an IP"),
    UNRES(R_ADDR, NULL, "IPv4 of three parts", "web-0 (10.0.1)", "not an IP"),
    UNRES(R_ADDR, NULL, "IPv4 with leading zero", "web-0 (010.0.0.1)", "not an IP"),
    UNRES(R_ADDR, NULL, "space inside parentheses", "web-0 ( 10.0.0.1)", "not an IP"),
    UNRES(R_ADDR, NULL, "name as address", "web-0 (web-0)", "not an IP"),
    UNRES(R_ADDR, NULL, "bracketed IPv6", "web-0 ([fd00::2])", "not an IP"),

    /* HOST (ADDR): the host */
    UNRES(R_HOST, NULL, "IPv6 literal host", "fd00::2 (fd00::2)", "IP address"),
    UNRES(R_HOST, NULL, "IPv6 literal host with zone", "fe80::1%eth0 (fe80::1%eth0)", "IP address"),
    UNRES(R_HOST, NULL, "localhost.localdomain", "localhost.localdomain (127.0.0.1)", "localhost"),
    HOST(R_HOST, NULL, "localhost as a later label is a name", "web-0.localhost (10.0.0.1)",
         "web-0.localhost", "10.0.0.1", false, 2, ANY("web-0.localhost"), ANY("web-0")),
    UNRES(R_HOST, NULL, "unknown host, real address", "unknown (10.0.0.1)", "unknown"),
    UNRES(R_HOST, NULL, "upper-case host", "WEB-0 (10.0.0.1)", "upper-case"),
    UNRES(R_HOST, NULL, "upper-case namespace in FQDN",
          "web-0.web.SHOP.svc.cluster.local (10.244.2.9)", "upper-case"),
    UNRES(R_HOST, NULL, "trailing dot", "web-0. (10.0.0.1)", "DNS-1123"),
    UNRES(R_HOST, NULL, "FQDN with trailing dot", FQDN ". (10.244.2.9)", "DNS-1123"),
    UNRES(R_HOST, NULL, "leading dot", ".web-0 (10.0.0.1)", "DNS-1123"),
    UNRES(R_HOST, NULL, "empty label", "web-0..web (10.0.0.1)", "DNS-1123"),
    UNRES(R_HOST, NULL, "leading hyphen", "-web-0 (10.0.0.1)", "DNS-1123"),
    UNRES(R_HOST, NULL, "label ending in hyphen", "web-.shop (10.0.0.1)", "DNS-1123"),
    UNRES(R_HOST, NULL, "underscore", "web_0 (10.0.0.1)", "DNS-1123"),
    UNRES(R_HOST, NULL, "leading space", " web-0 (10.0.0.1)", "DNS-1123"),
    UNRES(R_HOST, NULL, "label of 64 bytes", g_in_label64, "DNS-1123"),
    HOST(R_HOST, NULL, "label of 63 bytes", g_in_label63, g_label63, "10.0.0.1", false, 1,
         ANY(g_label63)),
    UNRES(R_URL, NULL, "path as host", "../../secrets/x (10.0.0.1)", "DNS-1123"),

    /* candidates */
    HOST(R_C_SVC, NULL, "exactly POD.SUBDOMAIN.NS.svc", "web-0.web.shop.svc (10.244.2.9)",
         "web-0.web.shop.svc", "10.244.2.9", false, 1, IN("shop", "web-0")),
    HOST(R_C_SVC, NULL, "svc as fifth label", "a.web-0.web.shop.svc (10.0.0.1)",
         "a.web-0.web.shop.svc", "10.0.0.1", false, 2, ANY("a.web-0.web.shop.svc"), ANY("a")),
    HOST(R_C_SVC, NULL, "service name, svc third", "web.shop.svc.cluster.local (10.0.0.1)",
         "web.shop.svc.cluster.local", "10.0.0.1", false, 2, ANY("web.shop.svc.cluster.local"),
         ANY("web")),
    HOST(R_C_SVC, NULL, "fourth label svcx", "web-0.web.shop.svcx.cluster.local (10.0.0.1)",
         "web-0.web.shop.svcx.cluster.local", "10.0.0.1", false, 2,
         ANY("web-0.web.shop.svcx.cluster.local"), ANY("web-0")),
    HOST(R_C_SVC, NULL, "namespace named like the pod", "web-0.web.web-0.svc (10.0.0.1)",
         "web-0.web.web-0.svc", "10.0.0.1", false, 1, IN("web-0", "web-0")),
    HOST(R_C_LABEL, NULL, "two labels", "web-0.shop (10.0.0.1)", "web-0.shop", "10.0.0.1", false, 2,
         ANY("web-0.shop"), ANY("web-0")),

    /* NS:POD */
    UNRES(R_NSPOD, NULL, "three parts", "a:b:c", "':'"),
    UNRES(R_NSPOD, NULL, "empty namespace", ":pod", "empty namespace"),
    UNRES(R_NSPOD, NULL, "empty pod name", "ns:", "empty pod"),
    UNRES(R_NSPOD, NULL, "only ':'", ":", "empty namespace"),
    UNRES(R_NSPOD, NULL, "upper-case namespace", "Shop:web-0", "upper-case namespace"),
    UNRES(R_NSPOD, NULL, "upper-case pod name", "shop:Web-0", "upper-case pod"),
    UNRES(R_NSPOD, NULL, "namespace with a dot", "shop.x:web-0", "label"),
    UNRES(R_NSPOD, NULL, "namespace of 64 bytes", g_in_ns64, "label"),
    UNRES(R_NSPOD, NULL, "space after ':'", "shop: web-0", "pod name"),
    UNRES(R_NSPOD, NULL, "bare IPv6 address", "fd00::2", "':'"),
    POD(R_NSPOD, NULL, "dotted pod name", "shop:web-0.web", "shop", "web-0.web"),
    UNRES(R_URL, NULL, "path traversal as pod", "default:../../secrets/x", "pod name"),
    UNRES(R_URL, NULL, "query string in pod", "shop:web-0?watch=1", "pod name"),
    UNRES(R_URL, NULL, "percent-encoded slash in pod", "shop:web-0%2f..", "pod name"),
};

#define N_ROWS (sizeof(rows) / sizeof(rows[0]))

static char g_names[N_ROWS][320];
static const char *g_fixture_dir;
static char g_fixture_buf[4096];

/* Appends c n times, then s, to b; stops the run if b would overflow. */
static void build(char *b, size_t cap, char c, size_t n, const char *s)
{
	size_t len = strlen(b), sn = strlen(s);

	if (len + n + sn >= cap) {
		fprintf(stderr, "test_holder: generated input overflows its buffer\n");
		exit(1);
	}
	memset(b + len, c, n);
	memcpy(b + len + n, s, sn + 1);
}

static void build_inputs(void)
{
	char prefix[256] = "";

	build(prefix, sizeof(prefix), 'a', 63, ".");
	build(prefix, sizeof(prefix), 'b', 63, ".");
	build(prefix, sizeof(prefix), 'c', 63, ".");

	build(g_label63, sizeof(g_label63), 'a', 63, "");
	build(g_label64, sizeof(g_label64), 'a', 64, "");
	build(g_host244, sizeof(g_host244), 0, 0, prefix);
	build(g_host244, sizeof(g_host244), 'd', 52, "");
	build(g_in255, sizeof(g_in255), 0, 0, g_host244);
	build(g_in255, sizeof(g_in255), 0, 0, " (10.0.0.1)");
	build(g_in256, sizeof(g_in256), 0, 0, prefix);
	build(g_in256, sizeof(g_in256), 'd', 53, " (10.0.0.1)");
	build(g_pod253, sizeof(g_pod253), 0, 0, prefix);
	build(g_pod253, sizeof(g_pod253), 'd', 61, "");
	build(g_sub254, sizeof(g_sub254), 0, 0, prefix);
	build(g_sub254, sizeof(g_sub254), 'd', 62, "");
	build(g_in_nspod255, sizeof(g_in_nspod255), 0, 0, "a:");
	build(g_in_nspod255, sizeof(g_in_nspod255), 0, 0, g_pod253);
	build(g_in_ns64, sizeof(g_in_ns64), 'a', 64, ":web-0");
	build(g_in_label63, sizeof(g_in_label63), 'a', 63, " (10.0.0.1)");
	build(g_in_label64, sizeof(g_in_label64), 'a', 64, " (10.0.0.1)");
	build(g_zone32, sizeof(g_zone32), 0, 0, "fe80::1%");
	build(g_zone32, sizeof(g_zone32), 'z', 32, "");
	build(g_in_zone32, sizeof(g_in_zone32), 0, 0, "web-0 (");
	build(g_in_zone32, sizeof(g_in_zone32), 0, 0, g_zone32);
	build(g_in_zone32, sizeof(g_in_zone32), 0, 0, ")");
	build(g_in_zone33, sizeof(g_in_zone33), 0, 0, "web-0 (fe80::1%");
	build(g_in_zone33, sizeof(g_in_zone33), 'z', 33, ")");
	build(g_addr63, sizeof(g_addr63), 0, 0, "0000:0000:0000:0000:0000:ffff:255.255.255.255%");
	build(g_addr63, sizeof(g_addr63), 'z', 17, "");
	build(g_in_addr63, sizeof(g_in_addr63), 0, 0, "web-0 (");
	build(g_in_addr63, sizeof(g_in_addr63), 0, 0, g_addr63);
	build(g_in_addr63, sizeof(g_in_addr63), 0, 0, ")");
	build(g_in_addr64, sizeof(g_in_addr64), 0, 0, "web-0 (");
	build(g_in_addr64, sizeof(g_in_addr64), 0, 0, g_addr63);
	build(g_in_addr64, sizeof(g_in_addr64), 0, 0, "z)");
}

/* The boundaries the rows claim to sit on, measured. */
static void test_generated_lengths(void **state)
{
	(void)state;
	assert_int_equal(strlen(g_label63), 63);
	assert_int_equal(strlen(g_label64), 64);
	assert_int_equal(strlen(g_host244), 244);
	assert_int_equal(strlen(g_in255), HOLDER_LOCKEDBY_MAX);
	assert_int_equal(strlen(g_in256), HOLDER_LOCKEDBY_MAX + 1);
	assert_int_equal(strlen(g_pod253), HOLDER_NAME_MAX);
	assert_int_equal(strlen(g_sub254), HOLDER_NAME_MAX + 1);
	assert_int_equal(strlen(g_in_nspod255), HOLDER_LOCKEDBY_MAX);
	assert_int_equal(strlen(g_zone32), strlen("fe80::1%") + 32);
	assert_int_equal(strlen(g_addr63), 63);
	assert_int_equal(strlen(g_in_addr64), strlen("web-0 ()") + 64);
	/* Without its last byte g_in256 is a valid HOST form, so only the
	 * length can make it unresolvable. */
	assert_memory_equal(g_in255, g_in256, 244);
}

/* Parses in and checks every field of the result against row r. */
static void check_row(const struct row *r, const char *in)
{
	struct holder h;
	enum holder_kind k;

	/* Garbage first, so a field holder_parse forgets to write shows. */
	memset(&h, 0xa5, sizeof(h));
	k = holder_parse(in, &h);
	assert_int_equal(k, r->kind);
	assert_int_equal(h.kind, r->kind);

	if (r->kind == HOLDER_UNRESOLVABLE) {
		assert_non_null(h.why);
		assert_true(h.why[0] != '\0');
		if (strstr(h.why, r->why) == NULL)
			fail_msg("reason \"%s\" does not say \"%s\"", h.why, r->why);
	} else {
		assert_null(h.why);
	}

	if (r->kind == HOLDER_POD) {
		assert_string_equal(h.ns, r->ns);
		assert_string_equal(h.pod, r->pod);
	} else {
		assert_string_equal(h.ns, "");
		assert_string_equal(h.pod, "");
	}

	if (r->kind == HOLDER_HOST) {
		assert_string_equal(h.host, r->host);
		assert_string_equal(h.addr, r->addr);
		assert_int_equal(h.addr_is_v6, r->v6);
		assert_true(holder_addr_equals(&h, r->addr));
		assert_int_equal(h.n_candidates, r->n);
		for (size_t i = 0; i < r->n; i++) {
			assert_string_equal(h.candidates[i].ns, r->c[i].ns);
			assert_string_equal(h.candidates[i].name, r->c[i].name);
		}
		for (size_t i = r->n; i < HOLDER_MAX_CANDIDATES; i++) {
			assert_string_equal(h.candidates[i].ns, "");
			assert_string_equal(h.candidates[i].name, "");
		}
	} else {
		assert_string_equal(h.host, "");
		assert_string_equal(h.addr, "");
		assert_int_equal(h.n_candidates, 0);
	}
}

static void test_row(void **state)
{
	const struct row *r = *state;

	check_row(r, r->in);
}

/* The table itself: names and inputs unique, rows complete. */
static void test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_ROWS; i++) {
		const struct row *r = &rows[i];

		assert_non_null(r->rule);
		assert_non_null(r->name);
		if (r->kind == HOLDER_UNRESOLVABLE)
			assert_non_null(r->why);
		if (r->kind == HOLDER_HOST)
			assert_in_range(r->n, 1, HOLDER_MAX_CANDIDATES);
		for (size_t j = i + 1; j < N_ROWS; j++) {
			if (strcmp(r->name, rows[j].name) == 0)
				fail_msg("two rows named \"%s\"", r->name);
			if (r->in != NULL && rows[j].in != NULL && strcmp(r->in, rows[j].in) == 0)
				fail_msg("rows \"%s\" and \"%s\" have the same input", r->name,
				         rows[j].name);
		}
	}
}

/*
 * Every line of the fixture file must have a row (matched by file and
 * input) and parse as that row says; every row of the file must have
 * been met.
 */
static void check_fixture_file(const char *file)
{
	bool seen[N_ROWS] = {false};
	char path[sizeof(g_fixture_buf) + 64];
	char line[HOLDER_LOCKEDBY_MAX + 64];
	FILE *fp;
	int lineno = 0;

	if (g_fixture_dir == NULL)
		fail_msg("no fixture directory: pass it as argv[1] or set LOCK_ARBITER_FIXTURES");
	assert_true((size_t)snprintf(path, sizeof(path), "%s/%s", g_fixture_dir, file) <
	            sizeof(path));
	fp = fopen(path, "r");
	if (fp == NULL)
		fail_msg("cannot open %s", path);

	while (fgets(line, sizeof(line), fp) != NULL) {
		size_t n = strlen(line);
		const struct row *match = NULL;

		lineno++;
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		else if (!feof(fp))
			fail_msg("%s:%d: line too long for a LOCKEDBY", file, lineno);
		for (size_t i = 0; i < N_ROWS; i++) {
			if (rows[i].fixture != NULL && strcmp(rows[i].fixture, file) == 0 &&
			    rows[i].in != NULL && strcmp(rows[i].in, line) == 0) {
				match = &rows[i];
				seen[i] = true;
			}
		}
		if (match == NULL)
			fail_msg("%s:%d: \"%s\" has no row in the table", file, lineno, line);
		check_row(match, line);
	}
	assert_int_equal(ferror(fp), 0);
	fclose(fp);
	assert_true(lineno > 0);

	for (size_t i = 0; i < N_ROWS; i++)
		if (rows[i].fixture != NULL && strcmp(rows[i].fixture, file) == 0 && !seen[i])
			fail_msg("row \"%s\" is not a line of %s", rows[i].name, file);
}

static void test_fixture_observed(void **state)
{
	(void)state;
	check_fixture_file(FO);
}

static void test_fixture_constructed(void **state)
{
	(void)state;
	check_fixture_file(FC);
}

static void test_dns_names(void **state)
{
	static const struct {
		const char *s;
		bool label, subdomain;
	} t[] = {
	    {"a", true, true},     {"0", true, true},          {"web-0", true, true},
	    {"a--b", true, true},  {"web-0.web", false, true}, {"-a", false, false},
	    {"a-", false, false},  {"A", false, false},        {"web-0.Web", false, false},
	    {"a_b", false, false}, {"", false, false},         {".", false, false},
	    {"a.", false, false},  {".a", false, false},       {"a..b", false, false},
	    {"a/b", false, false}, {"a b", false, false},      {"caf\xc3\xa9", false, false},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		if (k8s_is_dns1123_label(t[i].s) != t[i].label)
			fail_msg("k8s_is_dns1123_label(\"%s\") != %d", t[i].s, t[i].label);
		if (k8s_is_dns1123_subdomain(t[i].s) != t[i].subdomain)
			fail_msg("k8s_is_dns1123_subdomain(\"%s\") != %d", t[i].s, t[i].subdomain);
	}
	assert_false(k8s_is_dns1123_label(NULL));
	assert_false(k8s_is_dns1123_subdomain(NULL));
	assert_true(k8s_is_dns1123_label(g_label63));
	assert_false(k8s_is_dns1123_label(g_label64));
	assert_true(k8s_is_dns1123_subdomain(g_label63));
	assert_true(k8s_is_dns1123_subdomain(g_label64)); /* Kubernetes does not cap subdomain labels */
	assert_true(k8s_is_dns1123_subdomain(g_pod253));
	assert_false(k8s_is_dns1123_subdomain(g_sub254));
}

static void test_addr_equals(void **state)
{
	static const struct {
		const char *lockedby;
		const char *a;
		bool want;
	} t[] = {
	    {"vm (" VM6 ")", "fd00::2", true},
	    {"vm (" VM6 ")", "fd00:0:0:0:0:0:0:2", true},
	    {"vm (" VM6 ")", "fd00::2%eth1", true}, /* zones are ignored */
	    {"vm (" VM6 ")", "fd00::3", false},
	    {"vm (" VM6 ")", "10.244.1.17", false},
	    {"web-0 (10.244.1.17)", "10.244.1.17", true},
	    {"web-0 (10.244.1.17)", "10.244.1.18", false},
	    {"web-0 (10.244.1.17)", "::ffff:10.244.1.17", true},
	    {"web-0 (10.244.1.17)", "::ffff:10.244.1.18", false},
	    {"web-0 (10.244.1.17)", "::10.244.1.17", false}, /* compatible, not mapped */
	    {"web-0 (10.244.1.17)", "10.244.1.17 ", false},
	    {"web-0 (10.244.1.17)", "", false},
	    {"web-0 (10.244.1.17)", "web-0", false},
	    {"web-0 (10.244.1.17)", NULL, false},
	    {"web-0 (::ffff:10.244.1.17)", "10.244.1.17", true},
	    {"web-0 (::ffff:10.244.1.17)", "::ffff:10.244.1.17", true},
	    {"web-0 (::ffff:10.244.1.17)", "10.244.1.18", false},
	    {"web-0 (FD00::2)", "fd00::2", true},
	    {"web-0 (0.0.0.0)", "::", false}, /* the families differ */
	    {"payments:payments-api-5f7c9d-abcde", "10.244.1.17", false},
	    {"unknown (unknown)", "unknown", false},
	    {"localhost (127.0.0.1)", "127.0.0.1", false}, /* no holder, no match */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct holder h;

		holder_parse(t[i].lockedby, &h);
		if (holder_addr_equals(&h, t[i].a) != t[i].want)
			fail_msg("holder_addr_equals(\"%s\", \"%s\") != %d", t[i].lockedby,
			         t[i].a != NULL ? t[i].a : "(null)", t[i].want);
	}
	assert_false(holder_addr_equals(NULL, "10.0.0.1"));
}

/* A description is one line of printable ASCII. */
static void assert_one_line(const char *s)
{
	for (const char *p = s; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			fail_msg("byte 0x%02x in description \"%s\"", (unsigned char)*p, s);
}

static void test_describe(void **state)
{
	static const struct {
		const char *lockedby;
		const char *want;
	} t[] = {
	    {"payments:payments-api-5f7c9d-abcde", "pod payments/payments-api-5f7c9d-abcde"},
	    {FQDN " (10.244.2.9)",
	     "host " FQDN " (10.244.2.9), candidates shop/web-0"},
	    {"vm#desc1 (" VM6 ")", "host vm (" VM6 "), candidates vm"},
	    {"t14 (172.17.0.1)", "host t14 (172.17.0.1), candidates t14"},
	};
	char buf[512];

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct holder h;

		holder_parse(t[i].lockedby, &h);
		holder_describe(&h, buf, sizeof(buf));
		assert_string_equal(buf, t[i].want);
	}
}

/* An unresolvable holder is described by its reason, never its input. */
static void test_describe_hostile(void **state)
{
	static const char *const hostile[] = {
	    "\x1b[31mevil (10.0.0.1)",
	    "evil\nhost (10.0.0.1)",
	    "EVIL-HOST (10.0.0.1)",
	    "default:../../secrets/evil",
	    "evil (10.0.0.1) ; rm -rf /",
	    "evil-\xc3\xa9 (10.0.0.1)",
	    "evil",
	    "localhost (127.0.0.1)",
	};
	char buf[512], want[512];

	(void)state;
	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		struct holder h;

		assert_int_equal(holder_parse(hostile[i], &h), HOLDER_UNRESOLVABLE);
		holder_describe(&h, buf, sizeof(buf));
		snprintf(want, sizeof(want), "unresolvable: %s", h.why);
		assert_string_equal(buf, want);
		assert_one_line(buf);
		assert_null(strstr(buf, "evil"));
		assert_null(strstr(buf, "EVIL"));
		assert_null(strstr(buf, "../"));
	}
	holder_parse(g_in256, NULL); /* must not crash */
	holder_describe(NULL, buf, sizeof(buf));
	assert_string_equal(buf, "unresolvable: no holder");
}

static void test_describe_truncates(void **state)
{
	struct holder h;
	char buf[64];

	(void)state;
	holder_parse(FQDN " (10.244.2.9)", &h);

	memset(buf, 'X', sizeof(buf));
	holder_describe(&h, buf, 10);
	assert_string_equal(buf, "host web-");
	assert_int_equal(buf[10], 'X');

	memset(buf, 'X', sizeof(buf));
	holder_describe(&h, buf, 1);
	assert_string_equal(buf, "");
	assert_int_equal(buf[1], 'X');

	/* cap 0 means no room even for the NUL: nothing is written. */
	memset(buf, 'X', sizeof(buf));
	holder_describe(&h, buf, 0);
	assert_int_equal(buf[0], 'X');
	holder_describe(&h, NULL, 10);

	/* A description longer than any buffer a caller is likely to use. */
	holder_parse(g_in255, &h);
	holder_describe(&h, buf, sizeof(buf));
	assert_int_equal(strlen(buf), sizeof(buf) - 1);
	assert_one_line(buf);
}

/* holder.h: "Always fills *out", so no field of an earlier parse survives. */
static void test_parse_overwrites(void **state)
{
	struct holder h;

	(void)state;
	assert_int_equal(holder_parse(FQDN " (10.244.2.9)", &h), HOLDER_HOST);
	assert_int_equal(holder_parse("payments:payments-api-5f7c9d-abcde", &h), HOLDER_POD);
	assert_string_equal(h.host, "");
	assert_int_equal(h.n_candidates, 0);
	assert_int_equal(holder_parse("web-0 ((10.0.0.1))", &h), HOLDER_UNRESOLVABLE);
	assert_string_equal(h.ns, "");
	assert_string_equal(h.pod, "");
	assert_int_equal(holder_parse("t14 (172.17.0.1)", NULL), HOLDER_UNRESOLVABLE);
}

/*
 * argv[1] names the liquibase fixture directory (meson passes it). The
 * variable LOCK_ARBITER_FIXTURES may name that directory or the fixtures
 * root above it, since other test programs share the variable.
 */
static void find_fixture_dir(int argc, char **argv)
{
	const char *env = getenv("LOCK_ARBITER_FIXTURES");
	int n;

	if (argc > 1) {
		g_fixture_dir = argv[1];
		return;
	}
	if (env == NULL || env[0] == '\0')
		return;
	n = snprintf(g_fixture_buf, sizeof(g_fixture_buf), "%s/liquibase/%s", env, FO);
	if (n > 0 && (size_t)n < sizeof(g_fixture_buf) && access(g_fixture_buf, R_OK) == 0) {
		snprintf(g_fixture_buf, sizeof(g_fixture_buf), "%s/liquibase", env);
		g_fixture_dir = g_fixture_buf;
	} else {
		g_fixture_dir = env;
	}
}

int main(int argc, char **argv)
{
	static struct CMUnitTest row_tests[N_ROWS];
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_generated_lengths),  cmocka_unit_test(test_table),
	    cmocka_unit_test(test_fixture_observed),   cmocka_unit_test(test_fixture_constructed),
	    cmocka_unit_test(test_dns_names),          cmocka_unit_test(test_addr_equals),
	    cmocka_unit_test(test_describe),           cmocka_unit_test(test_describe_hostile),
	    cmocka_unit_test(test_describe_truncates), cmocka_unit_test(test_parse_overwrites),
	};
	int failed;

	build_inputs();
	find_fixture_dir(argc, argv);
	for (size_t i = 0; i < N_ROWS; i++) {
		snprintf(g_names[i], sizeof(g_names[i]), "%s | %s", rows[i].rule, rows[i].name);
		row_tests[i] = (struct CMUnitTest){
		    .name = g_names[i],
		    .test_func = test_row,
		    .initial_state = (void *)&rows[i],
		};
	}
	failed = cmocka_run_group_tests_name("holder_parse rows", row_tests, NULL, NULL);
	failed += cmocka_run_group_tests_name("holder", tests, NULL, NULL);
	return failed != 0;
}
