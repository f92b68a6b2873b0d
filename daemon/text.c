#include "text.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t text_utf8_seq(const unsigned char *s)
{
	uint32_t cp;
	size_t n;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		n = 3;
		cp = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		n = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* Reject overlong forms, surrogates and values past U+10FFFF. */
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return n;
}

void text_quote(const char *s, char *buf, size_t cap)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0;

	if (cap < 8) {
		if (cap > 0)
			buf[0] = '\0';
		return;
	}
	if (s == NULL) {
		snprintf(buf, cap, "null");
		return;
	}
	buf[o++] = '"';
	while (*p != '\0') {
		char esc[8];
		size_t len, seq = text_utf8_seq(p);

		if (*p == '"' || *p == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*p;
			len = 2;
		} else if (*p == '\n' || *p == '\r' || *p == '\t') {
			esc[0] = '\\';
			esc[1] = *p == '\n' ? 'n' : *p == '\r' ? 'r' : 't';
			len = 2;
		} else if (*p < 0x20 || *p == 0x7f || seq == 0) {
			snprintf(esc, sizeof(esc), "\\x%02x", *p);
			len = 4;
		} else {
			memcpy(esc, p, seq);
			len = seq;
		}
		/* Keep room for "..." and the closing quote and NUL. */
		if (o + len + 5 > cap) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		memcpy(buf + o, esc, len);
		o += len;
		p += (*p < 0x80 || seq == 0) ? 1 : seq;
	}
	buf[o++] = '"';
	buf[o] = '\0';
}

bool text_is_bare(const char *s)
{
	if (s == NULL || *s == '\0')
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= ' ' || *p == '=' || *p == '"' || *p == '\\' || *p >= 0x7f)
			return false;
	return true;
}

char *text_utf8_clean(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len, o = 0;
	char *out;

	if (s == NULL)
		return NULL;
	len = strlen(s);
	/* Each invalid byte may become three (U+FFFD). */
	if (len > (SIZE_MAX - 1) / 3)
		return NULL;
	out = malloc(len * 3 + 1);
	if (out == NULL)
		return NULL;
	while (*p != '\0') {
		size_t seq = text_utf8_seq(p);
		if (seq == 0) {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			p++;
		} else {
			memcpy(out + o, p, seq);
			o += seq;
			p += seq;
		}
	}
	out[o] = '\0';
	return out;
}

void text_html(const char *s, FILE *out)
{
	const unsigned char *p = (const unsigned char *)s;

	if (s == NULL)
		return;
	while (*p != '\0') {
		size_t seq = text_utf8_seq(p);

		switch (*p) {
		case '&':
			fputs("&amp;", out);
			break;
		case '<':
			fputs("&lt;", out);
			break;
		case '>':
			fputs("&gt;", out);
			break;
		case '"':
			fputs("&quot;", out);
			break;
		case '\'':
			fputs("&#39;", out);
			break;
		default:
			if (*p < 0x20 || *p == 0x7f || seq == 0) {
				fprintf(out, "\\x%02x", *p);
			} else {
				fwrite(p, 1, seq, out);
				p += seq;
				continue;
			}
		}
		p++;
	}
}
