/*
 * text.c - the client's string building: joining, wiping what held the
 * token, and copying server text into results.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "k8s-internal.h"

char *k8s_join(const char *first, ...)
{
	va_list ap;
	size_t n = 0;
	va_start(ap, first);
	for (const char *s = first; s != NULL; s = va_arg(ap, const char *))
		n += strlen(s);
	va_end(ap);
	char *out = malloc(n + 1);
	if (out == NULL)
		return NULL;
	char *p = out;
	va_start(ap, first);
	for (const char *s = first; s != NULL; s = va_arg(ap, const char *)) {
		size_t m = strlen(s);
		memcpy(p, s, m);
		p += m;
	}
	va_end(ap);
	*p = '\0';
	return out;
}

void k8s_wipe_free(char *s, size_t n)
{
	if (s == NULL)
		return;
	explicit_bzero(s, n);
	free(s);
}

void k8s_wipe_slist(struct curl_slist *l)
{
	for (struct curl_slist *e = l; e != NULL; e = e->next)
		if (e->data != NULL)
			explicit_bzero(e->data, strlen(e->data));
	curl_slist_free_all(l);
}

void k8s_copy_text(char *dst, size_t cap, const char *src, size_t n)
{
	if (n >= cap) {
		n = cap - 1;
		size_t back = n;
		while (back > 0 && ((unsigned char)src[back] & 0xc0) == 0x80)
			back--;
		n = back;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)src[i];
		dst[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
	}
	dst[n] = '\0';
}

void k8s_result_set(struct k8s_result *res, enum k8s_outcome o, long code, const char *reason,
                    const char *fmt, ...)
{
	res->outcome = o;
	res->http_code = code;
	k8s_copy_text(res->reason, sizeof(res->reason), reason, strlen(reason));
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(res->message, sizeof(res->message), fmt, ap);
	va_end(ap);
}
