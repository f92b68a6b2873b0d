/*
 * token.c - the service account's bearer token: read from its file (a
 * symlink kubelet swaps atomically), re-read every token_reread_us and
 * after a 401, the old one kept when a re-read fails, wiped whenever a
 * copy is freed, and never copied out of the client.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "k8s-internal.h"

/* A service-account token is a JWT of a few KiB; more is not a token. */
#define TOKEN_MAX (64 * 1024)

/*
 * Reads the token file: at most TOKEN_MAX bytes, surrounding whitespace
 * trimmed, and nothing but visible ASCII inside (a CR or LF would let the
 * file inject headers). 0, or a negative errno; *out is a new string.
 */
static int read_token(const char *path, char **out, size_t *out_len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	char *buf = malloc(TOKEN_MAX + 1);
	if (buf == NULL) {
		close(fd);
		return -ENOMEM;
	}
	size_t n = 0;
	int r = 0;
	while (n <= TOKEN_MAX) {
		ssize_t got = read(fd, buf + n, TOKEN_MAX + 1 - n);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	close(fd);
	if (r == 0 && n > TOKEN_MAX)
		r = -EFBIG;
	size_t a = 0, b = n;
	while (r == 0 && a < b &&
	       (buf[a] == ' ' || buf[a] == '\t' || buf[a] == '\n' || buf[a] == '\r'))
		a++;
	while (
	    r == 0 && b > a &&
	    (buf[b - 1] == ' ' || buf[b - 1] == '\t' || buf[b - 1] == '\n' || buf[b - 1] == '\r'))
		b--;
	if (r == 0 && a == b)
		r = -ENODATA;
	for (size_t i = a; r == 0 && i < b; i++)
		if ((unsigned char)buf[i] <= ' ' || (unsigned char)buf[i] >= 0x7f)
			r = -EINVAL;
	char *tok = NULL;
	if (r == 0) {
		tok = malloc(b - a + 1);
		if (tok == NULL) {
			r = -ENOMEM;
		} else {
			memcpy(tok, buf + a, b - a);
			tok[b - a] = '\0';
			*out = tok;
			*out_len = b - a;
		}
	}
	explicit_bzero(buf, TOKEN_MAX + 1);
	free(buf);
	return r;
}

static struct curl_slist *append(struct curl_slist *l, const char *h, bool *ok)
{
	if (!*ok)
		return l;
	struct curl_slist *n = curl_slist_append(l, h);
	if (n == NULL) {
		*ok = false;
		return l;
	}
	return n;
}

/*
 * Re-reads the token when token_reread_us has passed since the last
 * attempt, or at once when forced (after a 401). A failed read keeps the
 * old token: kubelet swaps the file atomically, so a failure is transient
 * or the old token is all there is.
 */
int k8s_token_refresh(struct k8s_client *k, bool force)
{
	if (k->cfg.token_file == NULL)
		return 0;
	int64_t now = k8s_mono_us();
	if (!force && k->token != NULL && now - k->token_checked < k->cfg.token_reread_us)
		return 0;
	k->token_checked = now;
	char *tok = NULL;
	size_t n = 0;
	int r = read_token(k->cfg.token_file, &tok, &n);
	if (r < 0)
		return r;
	if (k->token != NULL && n == k->token_len && memcmp(tok, k->token, n) == 0) {
		k8s_wipe_free(tok, n);
		return 0;
	}
	k8s_wipe_free(k->token, k->token_len);
	k->token = tok;
	k->token_len = n;
	return 0;
}

int k8s_client_auth_header(struct k8s_client *k, bool force, char **out)
{
	k8s_token_refresh(k, force);
	*out = NULL;
	if (k->token == NULL)
		return 0;
	*out = k8s_join("Authorization: Bearer ", k->token, (char *)NULL);
	return *out != NULL ? 0 : -ENOMEM;
}

bool k8s_client_holds_token(const struct k8s_client *k, const char *text, size_t len)
{
	return k->token != NULL && len > 0 && memmem(text, len, k->token, k->token_len) != NULL;
}


int k8s_token_headers(struct k8s_client *k, bool post, struct curl_slist **out)
{
	char *auth = NULL;
	if (k->token != NULL) {
		auth = k8s_join("Authorization: Bearer ", k->token, (char *)NULL);
		if (auth == NULL)
			return -ENOMEM;
	}
	bool ok = true;
	struct curl_slist *l = append(NULL, "Accept: application/json", &ok);
	if (post) {
		l = append(l, "Content-Type: application/json", &ok);
		/* Events are small; waiting for 100-continue would only add a round trip. */
		l = append(l, "Expect:", &ok);
	}
	if (auth != NULL) {
		l = append(l, auth, &ok);
		k8s_wipe_free(auth, strlen(auth));
	}
	if (!ok) {
		k8s_wipe_slist(l);
		return -ENOMEM;
	}
	*out = l;
	return 0;
}
