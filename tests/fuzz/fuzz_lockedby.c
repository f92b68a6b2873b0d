/*
 * fuzz_lockedby.c - fuzz target for the LOCKEDBY parser and for everything
 * that shows LOCKEDBY to people and parsers (text_quote, text_html,
 * text_utf8_clean, the metrics label escaper). LOCKEDBY is written by
 * whoever took the lock: the most hostile input the arbiter reads.
 *
 * The input is parsed whole, and line by line, so that the fixture files
 * (one LOCKEDBY a line) are a corpus. Every promise of holder.h is checked:
 * names are DNS-1123, candidates bounded, an unresolvable holder has a
 * reason; every renderer's output is bounded and escapes what it must.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <k8s.h>

#include "holder.h"
#include "metrics.h"
#include "text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_holder(const char *s)
{
	struct holder h;
	char buf[600];

	switch (holder_parse(s, &h)) {
	case HOLDER_POD:
		if (!k8s_is_dns1123_label(h.ns) || !k8s_is_dns1123_subdomain(h.pod))
			abort();
		break;
	case HOLDER_HOST:
		if (!k8s_is_dns1123_subdomain(h.host) || h.n_candidates == 0 ||
		    h.n_candidates > HOLDER_MAX_CANDIDATES || h.addr[0] == '\0')
			abort();
		for (size_t i = 0; i < h.n_candidates; i++)
			if (!k8s_is_dns1123_subdomain(h.candidates[i].name) ||
			    (h.candidates[i].ns[0] != '\0' &&
			     !k8s_is_dns1123_label(h.candidates[i].ns)))
				abort();
		break;
	default:
		if (h.why == NULL)
			abort();
	}
	holder_describe(&h, buf, sizeof(buf));
	if (memchr(buf, '\0', sizeof(buf)) == NULL)
		abort();
}

static void check_renderers(const char *s)
{
	char q[64];
	char *mem = NULL, *clean;
	size_t len = 0;
	FILE *out;

	text_quote(s, q, sizeof(q));
	if (strlen(q) >= sizeof(q) || strchr(q, '\n') != NULL)
		abort();
	clean = text_utf8_clean(s);
	if (clean == NULL)
		abort();
	for (const unsigned char *p = (const unsigned char *)clean; *p;) {
		size_t n = text_utf8_seq(p);
		if (n == 0)
			abort();
		p += n;
	}
	free(clean);
	out = open_memstream(&mem, &len);
	if (out == NULL)
		abort();
	text_html(s, out);
	fputc('|', out);
	metrics_escape_label(s, out);
	fclose(out);
	/* Neither HTML nor a label value may carry a raw newline or angle bracket... */
	char *bar = strchr(mem, '|');
	if (bar == NULL || memchr(mem, '<', (size_t)(bar - mem)) != NULL ||
	    memchr(mem, '\n', len) != NULL)
		abort();
	free(mem);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	char *line, *next;

	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	/* An embedded NUL ends the C string, as it would in a database value. */
	check_holder(s);
	check_renderers(s);
	for (line = s; line != NULL; line = next) {
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		check_holder(line);
		check_renderers(line);
	}
	free(s);
	return 0;
}
