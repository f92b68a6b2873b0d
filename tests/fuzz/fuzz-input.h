/*
 * fuzz-input.h - what the fuzz targets share: the input as C strings.
 *
 * libFuzzer hands a target bytes that are not NUL-terminated; the parsers
 * under test mostly take C strings, several of them at once (argv and the
 * environment, the fields of a status). fuzz_fields gives a target its
 * input split at one separator byte, every field a C string.
 */
#ifndef LOCK_ARBITER_FUZZ_INPUT_H
#define LOCK_ARBITER_FUZZ_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FUZZ_MAX_FIELDS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_fields {
	char *buf;                      /* the input and a NUL, separators made NULs */
	char *field[FUZZ_MAX_FIELDS];   /* into buf */
	size_t n;                       /* fields past the cap are dropped */
};

/* Splits data at sep; false (and nothing to free) when out of memory. */
bool fuzz_fields_split(struct fuzz_fields *f, const uint8_t *data, size_t size, char sep);
void fuzz_fields_done(struct fuzz_fields *f);

/* A NUL-terminated malloc'd copy of data; an embedded NUL ends the string. */
char *fuzz_string(const uint8_t *data, size_t size);

/* True when s holds a byte below 0x20 or 0x7f. */
bool fuzz_has_control(const char *s);

#endif
