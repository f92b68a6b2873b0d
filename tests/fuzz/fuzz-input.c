/*
 * fuzz-input.c - the input helpers of the fuzz targets (fuzz-input.h).
 * An allocation failure makes a target skip the input, never crash.
 */
#include "fuzz-input.h"

#include <stdlib.h>
#include <string.h>

char *fuzz_string(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s == NULL)
		return NULL;
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

bool fuzz_fields_split(struct fuzz_fields *f, const uint8_t *data, size_t size, char sep)
{
	memset(f, 0, sizeof(*f));
	f->buf = fuzz_string(data, size);
	if (f->buf == NULL)
		return false;
	for (char *p = f->buf, *end = f->buf + size; f->n < FUZZ_MAX_FIELDS;) {
		char *s = memchr(p, sep, (size_t)(end - p));
		f->field[f->n++] = p;
		if (s == NULL)
			break;
		*s = '\0';
		p = s + 1;
	}
	return true;
}

void fuzz_fields_done(struct fuzz_fields *f)
{
	free(f->buf);
	f->buf = NULL;
	f->n = 0;
}

bool fuzz_has_control(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f)
			return true;
	return false;
}
