/* Escaping of strings from outside: hostile LOCKEDBY must not forge output. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "text.h"

#include <stdlib.h>
#include <string.h>

static void quote_escapes(void **state)
{
	static const struct {
		const char *in, *out;
	} rows[] = {
		{"web-0 (10.0.0.1)", "\"web-0 (10.0.0.1)\""},
		{"a\"b\\c", "\"a\\\"b\\\\c\""},
		{"line\nforged level=error", "\"line\\nforged level=error\""},
		{"\x1b[31mred\t\r", "\"\\x1b[31mred\\t\\r\""},
		{"caf\xc3\xa9", "\"caf\xc3\xa9\""},       /* valid UTF-8 stays */
		{"bad\xff\xc3", "\"bad\\xff\\xc3\""},     /* invalid bytes escaped */
		{"\xed\xa0\x80", "\"\\xed\\xa0\\x80\""}, /* a surrogate is not UTF-8 */
		{"", "\"\""},
	};
	char buf[128];

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		text_quote(rows[i].in, buf, sizeof(buf));
		assert_string_equal(buf, rows[i].out);
	}
	text_quote(NULL, buf, sizeof(buf));
	assert_string_equal(buf, "null");
}

static void quote_truncates_inside_quotes(void **state)
{
	char buf[16];

	(void)state;
	text_quote("0123456789abcdefghij", buf, sizeof(buf));
	assert_true(strlen(buf) < sizeof(buf));
	assert_int_equal(buf[0], '"');
	assert_int_equal(buf[strlen(buf) - 1], '"');
	assert_non_null(strstr(buf, "...\""));
}

static void bare_values(void **state)
{
	(void)state;
	assert_true(text_is_bare("public"));
	assert_true(text_is_bare("127.0.0.1:5432/app"));
	assert_false(text_is_bare(""));
	assert_false(text_is_bare(NULL));
	assert_false(text_is_bare("a b"));
	assert_false(text_is_bare("a=b"));
	assert_false(text_is_bare("a\"b"));
	assert_false(text_is_bare("caf\xc3\xa9"));
}

static void utf8_clean_replaces_invalid(void **state)
{
	char *s;

	(void)state;
	s = text_utf8_clean("ok\xff\xc3\xa9");
	assert_string_equal(s, "ok\xef\xbf\xbd\xc3\xa9");
	free(s);
	assert_null(text_utf8_clean(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(quote_escapes),
		cmocka_unit_test(quote_truncates_inside_quotes),
		cmocka_unit_test(bare_values),
		cmocka_unit_test(utf8_clean_replaces_invalid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
