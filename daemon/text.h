/*
 * text.h - showing strings that came from outside (LOCKEDBY above all).
 *
 * LOCKEDBY is written by whoever took the lock and may hold quotes,
 * backslashes, control characters or bytes that are not UTF-8. Everything
 * that shows such a string to a person or a parser goes through here, so
 * that one hostile value cannot forge a log line, a table row or a JSON
 * document.
 */
#ifndef LOCK_ARBITER_TEXT_H
#define LOCK_ARBITER_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/*
 * Writes s into buf as a double-quoted string: \" \\ \n \r \t, other control
 * characters and bytes that are not valid UTF-8 as \xNN. Always
 * NUL-terminates; a value that does not fit ends in "..." inside the quotes.
 * NULL is written as the bare word null.
 */
void text_quote(const char *s, char *buf, size_t cap);

/* True when s can stand in logfmt without quotes (non-empty, no space, =, ", control). */
bool text_is_bare(const char *s);

/*
 * A malloc'd copy of s with every byte sequence that is not valid UTF-8
 * replaced by U+FFFD, for JSON encoders that copy bytes through. NULL on
 * allocation failure or when s is NULL.
 */
char *text_utf8_clean(const char *s);

/*
 * Writes s as HTML text: & < > " ' as entities, control characters and
 * bytes that are not UTF-8 as a visible \xNN. NULL writes nothing.
 */
void text_html(const char *s, FILE *out);

/* Length of the valid UTF-8 sequence at s (1 to 4), or 0 when invalid. */
size_t text_utf8_seq(const unsigned char *s);

#endif
