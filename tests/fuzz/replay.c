/*
 * replay.c - the main() of a fuzz target in a normal build: replays every
 * file named on the command line through LLVMFuzzerTestOneInput, so a
 * corpus runs as a plain test (and under the sanitizers). A file that
 * cannot be read fails the run.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
	int replayed = 0;
	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		if (f == NULL) {
			perror(argv[i]);
			return 1;
		}
		/* An exactly sized copy, so that a read past the end is caught by ASan. */
		size_t cap = 1 << 16, len = 0;
		uint8_t *buf = malloc(cap);
		size_t got;
		while (buf != NULL && (got = fread(buf + len, 1, cap - len, f)) > 0) {
			len += got;
			if (len == cap) {
				uint8_t *nb = realloc(buf, cap *= 2);
				if (nb == NULL)
					free(buf);
				buf = nb;
			}
		}
		fclose(f);
		uint8_t *exact = buf != NULL ? malloc(len > 0 ? len : 1) : NULL;
		if (exact == NULL) {
			free(buf);
			fprintf(stderr, "%s: out of memory\n", argv[i]);
			return 1;
		}
		memcpy(exact, buf, len);
		free(buf);
		LLVMFuzzerTestOneInput(exact, len);
		free(exact);
		replayed++;
	}
	printf("replayed %d inputs\n", replayed);
	return replayed > 0 ? 0 : 1;
}
