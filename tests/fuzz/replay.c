/*
 * replay.c - the main() of a fuzz target in a normal build: replays every
 * file named on the command line through LLVMFuzzerTestOneInput, and every
 * file of a directory named there (a corpus, as libFuzzer takes it), so a
 * corpus runs as a plain test (and under the sanitizers). A file that
 * cannot be read fails the run.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz-input.h"

/* Replays one file: 0, or -1 when it cannot be read. */
static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		perror(path);
		return -1;
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
		fprintf(stderr, "%s: out of memory\n", path);
		return -1;
	}
	memcpy(exact, buf, len);
	free(buf);
	LLVMFuzzerTestOneInput(exact, len);
	free(exact);
	return 0;
}

/* Replays the files of a directory in name order; the count, or -1. */
static int replay_dir(const char *dir)
{
	struct dirent **names;
	int n = scandir(dir, &names, NULL, alphasort), replayed = 0;

	if (n < 0) {
		perror(dir);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		char path[4096];
		if (names[i]->d_name[0] != '.' && replayed >= 0) {
			snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
			replayed = replay_file(path) == 0 ? replayed + 1 : -1;
		}
		free(names[i]);
	}
	free(names);
	return replayed;
}

int main(int argc, char **argv)
{
	int replayed = 0;
	for (int i = 1; i < argc; i++) {
		struct stat sb;
		int r = stat(argv[i], &sb) == 0 && S_ISDIR(sb.st_mode) ? replay_dir(argv[i])
		                                                       : replay_file(argv[i]) == 0;
		if (r < 0)
			return 1;
		replayed += r;
	}
	printf("replayed %d inputs\n", replayed);
	return replayed > 0 ? 0 : 1;
}
