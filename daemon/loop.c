/*
 * loop.c - tasks on their own stacks, and the one poll() that drives them
 * (loop.h). Tasks are ucontext coroutines; the stacks are mmap'd with a
 * guard page below, and announced to AddressSanitizer and valgrind, which
 * otherwise take a stack switch for a wild write.
 */
#include "loop.h"

#include "timeutil.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define LOOP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LOOP_ASAN 1
#endif
#endif
#ifdef LOOP_ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old,
				     size_t *size_old);
#endif
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define LOOP_VALGRIND 1
#endif
#endif

/*
 * A task's stack: room for libpq's connect (OpenSSL, getaddrinfo) and the
 * verdict path with sanitizer redzones. Only the pages touched are ever
 * backed by memory.
 */
#define TASK_STACK (1024 * 1024)

enum task_state { TASK_READY, TASK_WAIT_FD, TASK_WAIT_CHAN, TASK_DONE };

struct task {
	struct loop *l;
	struct task *next;
	ucontext_t ctx;
	char *map; /* guard page + stack */
	size_t map_size;
	void (*fn)(void *arg);
	void *arg;
	char name[32];
	enum task_state state;
	int fd;
	short events;
	const void *chan;
	int64_t deadline_us; /* -1: none */
	int result;
#ifdef LOOP_ASAN
	void *fake_stack;
#endif
#ifdef LOOP_VALGRIND
	unsigned vg_id;
#endif
};

struct loop {
	const volatile sig_atomic_t *stop;
	ucontext_t main_ctx;
	struct task *tasks;
	struct task *current;
	size_t n_tasks;
	struct loop_source src[LOOP_SOURCES];
	size_t n_src;
	struct pollfd *pfd; /* the tasks' descriptors, then each source's */
	int *sfd, *sev;     /* the sources' view of the same entries */
	size_t cap_pfd;
#ifdef LOOP_ASAN
	const void *main_bottom;
	size_t main_size;
#endif
};

struct loop *loop_new(const volatile sig_atomic_t *stop)
{
	struct loop *l = calloc(1, sizeof(*l));

	if (l != NULL)
		l->stop = stop;
	return l;
}

static bool stopping(const struct loop *l)
{
	return l->stop != NULL && *l->stop;
}

static void task_free(struct task *t)
{
#ifdef LOOP_VALGRIND
	VALGRIND_STACK_DEREGISTER(t->vg_id);
#endif
	munmap(t->map, t->map_size);
	free(t);
}

void loop_free(struct loop *l)
{
	if (l == NULL)
		return;
	while (l->tasks != NULL) {
		struct task *t = l->tasks;
		l->tasks = t->next;
		task_free(t);
	}
	free(l->pfd);
	free(l->sfd);
	free(l->sev);
	free(l);
}

int loop_add_source(struct loop *l, const struct loop_source *s)
{
	if (l->n_src == LOOP_SOURCES)
		return -ENOSPC;
	l->src[l->n_src++] = *s;
	return 0;
}

bool loop_in_task(const struct loop *l)
{
	return l != NULL && l->current != NULL;
}

size_t loop_tasks(const struct loop *l)
{
	return l->n_tasks;
}

/* From a task to main; returns when main resumes the task. */
static void to_main(struct task *t, bool last)
{
	struct loop *l = t->l;
#ifdef LOOP_ASAN
	/* A task that ends has no fake stack to keep. */
	__sanitizer_start_switch_fiber(last ? NULL : &t->fake_stack, l->main_bottom, l->main_size);
#else
	(void)last;
#endif
	swapcontext(&t->ctx, &l->main_ctx);
#ifdef LOOP_ASAN
	__sanitizer_finish_switch_fiber(t->fake_stack, &l->main_bottom, &l->main_size);
#endif
}

/* makecontext passes ints: the task pointer comes in two halves. */
static void trampoline(unsigned hi, unsigned lo)
{
	struct task *t = (struct task *)(((uintptr_t)hi << 16 << 16) | (uintptr_t)lo);

#ifdef LOOP_ASAN
	__sanitizer_finish_switch_fiber(NULL, &t->l->main_bottom, &t->l->main_size);
#endif
	t->fn(t->arg);
	t->state = TASK_DONE;
	to_main(t, true);
	abort(); /* a finished task is never resumed */
}

int loop_spawn(struct loop *l, const char *name, void (*fn)(void *arg), void *arg)
{
	long page = sysconf(_SC_PAGESIZE);
	struct task *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -ENOMEM;
	t->map_size = TASK_STACK + (size_t)page;
	t->map = mmap(NULL, t->map_size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
	if (t->map == MAP_FAILED) {
		free(t);
		return -ENOMEM;
	}
	/* The guard page: an overflow faults instead of writing the heap. */
	mprotect(t->map, (size_t)page, PROT_NONE);
	if (getcontext(&t->ctx) < 0) {
		munmap(t->map, t->map_size);
		free(t);
		return -ENOMEM;
	}
	t->ctx.uc_stack.ss_sp = t->map + page;
	t->ctx.uc_stack.ss_size = TASK_STACK;
	t->ctx.uc_link = NULL;
#ifdef LOOP_VALGRIND
	t->vg_id = VALGRIND_STACK_REGISTER(t->map + page, t->map + t->map_size);
#endif
	uintptr_t p = (uintptr_t)t;
	makecontext(&t->ctx, (void (*)(void))trampoline, 2, (unsigned)(p >> 16 >> 16),
		    (unsigned)(p & 0xffffffffu));
	t->l = l;
	t->fn = fn;
	t->arg = arg;
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->state = TASK_READY;
	t->deadline_us = -1;
	t->fd = -1;
	t->next = l->tasks;
	l->tasks = t;
	l->n_tasks++;
	return 0;
}

/* From main to t, until t waits or ends; an ended task is freed. */
static void resume(struct loop *l, struct task *t)
{
	l->current = t;
#ifdef LOOP_ASAN
	void *fake = NULL;
	__sanitizer_start_switch_fiber(&fake, t->map + (t->map_size - TASK_STACK), TASK_STACK);
#endif
	swapcontext(&l->main_ctx, &t->ctx);
#ifdef LOOP_ASAN
	__sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
	l->current = NULL;
	if (t->state == TASK_DONE) {
		struct task **pp = &l->tasks;
		while (*pp != t)
			pp = &(*pp)->next;
		*pp = t->next;
		l->n_tasks--;
		task_free(t);
	}
}

/* Runs every ready task, and those they make ready, until none is. */
static void run_ready(struct loop *l)
{
	for (bool again = true; again;) {
		again = false;
		for (struct task *t = l->tasks, *next; t != NULL; t = next) {
			next = t->next;
			if (t->state != TASK_READY)
				continue;
			resume(l, t);
			again = true;
			break; /* the list may have changed: start over */
		}
	}
}

static int park(struct loop *l, enum task_state how)
{
	struct task *t = l->current;

	t->state = how;
	to_main(t, false);
	return t->result;
}

int loop_wait_fd(struct loop *l, int fd, short events, int64_t deadline_us)
{
	struct task *t = l->current;

	if (t == NULL)
		return -EINVAL;
	if (stopping(l))
		return -EINTR;
	t->fd = fd;
	t->events = events;
	t->deadline_us = deadline_us;
	return park(l, TASK_WAIT_FD);
}

int loop_wait(struct loop *l, const void *chan, int64_t deadline_us)
{
	struct task *t = l->current;

	if (t == NULL)
		return -EINVAL;
	if (stopping(l))
		return -EINTR;
	t->chan = chan;
	t->deadline_us = deadline_us;
	return park(l, TASK_WAIT_CHAN);
}

static void make_ready(struct task *t, int result)
{
	t->state = TASK_READY;
	t->result = result;
	t->fd = -1;
	t->chan = NULL;
	t->deadline_us = -1;
}

void loop_wake(struct loop *l, const void *chan)
{
	for (struct task *t = l->tasks; t != NULL; t = t->next)
		if (t->state == TASK_WAIT_CHAN && t->chan == chan)
			make_ready(t, 1);
}

static int grow(struct loop *l, size_t n)
{
	if (n <= l->cap_pfd)
		return 0;
	size_t cap = l->cap_pfd > 0 ? l->cap_pfd : 16;
	while (cap < n)
		cap *= 2;
	struct pollfd *p = realloc(l->pfd, cap * sizeof(*p));
	if (p != NULL)
		l->pfd = p;
	int *f = realloc(l->sfd, cap * sizeof(*f));
	if (f != NULL)
		l->sfd = f;
	int *e = realloc(l->sev, cap * sizeof(*e));
	if (e != NULL)
		l->sev = e;
	if (p == NULL || f == NULL || e == NULL)
		return -ENOMEM;
	l->cap_pfd = cap;
	return 0;
}

int loop_run_once(struct loop *l, int64_t max_wait_us)
{
	size_t n = 0, at[LOOP_SOURCES], count[LOOP_SOURCES];
	int64_t now, wait_us = max_wait_us;
	int rc = 0;

	run_ready(l);
	/* The tasks' descriptors first, then each source's slice. */
	for (struct task *t = l->tasks; t != NULL; t = t->next)
		if (t->state == TASK_WAIT_FD)
			n++;
	if (grow(l, n > 16 ? n : 16) < 0)
		return -ENOMEM;
	n = 0;
	for (struct task *t = l->tasks; t != NULL; t = t->next)
		if (t->state == TASK_WAIT_FD)
			l->pfd[n++] = (struct pollfd){.fd = t->fd, .events = t->events};
	size_t n_task_fds = n;
	for (size_t s = 0; s < l->n_src; s++) {
		struct loop_source *src = &l->src[s];
		size_t want;
		while ((want = src->fds(src->ctx, l->sfd + n, l->sev + n, l->cap_pfd - n)) >
		       l->cap_pfd - n)
			if (grow(l, n + want) < 0)
				return -ENOMEM;
		for (size_t i = n; i < n + want; i++)
			l->pfd[i] = (struct pollfd){
			    .fd = l->sfd[i],
			    .events = (short)(((l->sev[i] & LOOP_IN) ? POLLIN : 0) |
					      ((l->sev[i] & LOOP_OUT) ? POLLOUT : 0))};
		at[s] = n;
		count[s] = want;
		n += want;
		int64_t t = src->timeout_us(src->ctx);
		if (t >= 0 && (wait_us < 0 || t < wait_us))
			wait_us = t;
	}
	now = timeutil_mono_us();
	for (struct task *t = l->tasks; t != NULL; t = t->next) {
		if (t->state == TASK_READY)
			wait_us = 0;
		else if (t->deadline_us >= 0 && (wait_us < 0 || t->deadline_us - now < wait_us))
			wait_us = t->deadline_us > now ? t->deadline_us - now : 0;
	}
	if (stopping(l))
		wait_us = 0;
	/* Round up so poll() does not return a millisecond early and spin. */
	int ms = wait_us < 0 ? -1
		 : (wait_us + 999) / 1000 > INT_MAX ? INT_MAX : (int)((wait_us + 999) / 1000);
	if (poll(l->pfd, (nfds_t)n, ms) < 0) {
		if (errno != EINTR)
			rc = -errno;
		for (size_t i = 0; i < n; i++)
			l->pfd[i].revents = 0;
	}
	for (size_t s = 0; s < l->n_src; s++) {
		for (size_t i = at[s]; i < at[s] + count[s]; i++) {
			short r = l->pfd[i].revents;
			l->sev[i] = ((r & (POLLIN | POLLHUP | POLLERR)) ? LOOP_IN : 0) |
				    ((r & POLLOUT) ? LOOP_OUT : 0);
		}
		l->src[s].ready(l->src[s].ctx, l->sfd + at[s], l->sev + at[s], count[s]);
	}
	/*
	 * The tasks' entries were written in list order, and only running
	 * tasks change the list, and none ran meanwhile.
	 */
	size_t i = 0;
	now = timeutil_mono_us();
	for (struct task *t = l->tasks; t != NULL; t = t->next) {
		if (t->state == TASK_WAIT_FD && i < n_task_fds) {
			short rev = l->pfd[i++].revents;
			if (rev != 0) {
				make_ready(t, rev);
				continue;
			}
		}
		if (t->state != TASK_WAIT_FD && t->state != TASK_WAIT_CHAN)
			continue;
		if (stopping(l))
			make_ready(t, -EINTR);
		else if (t->deadline_us >= 0 && now >= t->deadline_us)
			make_ready(t, 0);
	}
	run_ready(l);
	return rc;
}
