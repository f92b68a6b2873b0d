/*
 * names.c - the DNS-1123 checks Kubernetes applies to namespaces, pod and
 * container names. A name that passes them cannot carry '/', '%', '.' runs
 * or anything else that would change the meaning of a URL path, which is
 * why every name is checked before a request is built.
 */
#include <string.h>

#include "k8s-internal.h"

static bool is_alnum_lower(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* Checks one label of n bytes at s, without the 63-character limit. */
static bool label_ok(const char *s, size_t n)
{
	if (n == 0 || !is_alnum_lower(s[0]) || !is_alnum_lower(s[n - 1]))
		return false;
	for (size_t i = 1; i + 1 < n; i++)
		if (!is_alnum_lower(s[i]) && s[i] != '-')
			return false;
	return true;
}

bool k8s_is_dns1123_label(const char *s)
{
	if (s == NULL)
		return false;
	size_t n = strnlen(s, 64);
	return n <= 63 && label_ok(s, n);
}

bool k8s_is_dns1123_subdomain(const char *s)
{
	if (s == NULL)
		return false;
	size_t n = strnlen(s, 254);
	if (n == 0 || n > 253)
		return false;
	size_t start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || s[i] == '.') {
			if (!label_ok(s + start, i - start))
				return false;
			start = i + 1;
		}
	}
	return true;
}
