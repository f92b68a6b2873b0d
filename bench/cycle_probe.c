/*
 * cycle_probe.so: an LD_PRELOAD shim for the benchmark (bench/bench.py), not
 * part of lock-arbiter.
 *
 * It wraps nanosleep() and poll() and, for calls made by the main thread
 * only, appends one record per call to a file named by BENCH_CYCLE_PROBE:
 *
 *     int64 enter_ns, int64 exit_ns, int64 requested_ns, int64 kind
 *
 * (CLOCK_MONOTONIC). kind 0 is a nanosleep (requested_ns: its length);
 * for a poll, requested_ns is its timeout (-1: none), the low byte of kind
 * says how it ended (1 timed out: returned 0, 2 descriptors ready, 3 an
 * error) and kind >> 8 is the number of descriptors it waited on.
 *
 * The file is mapped shared and preallocated, so records are visible to the
 * reader at once, cost no system call, and survive a SIGKILL. The first 8
 * bytes hold the number of records written, the next 8 the format (2: these
 * 32-byte records; files of format 0 had 24-byte nanosleep records only).
 *
 * Up to d2ebfb0 the main loop was "cycle, then nanosleep() until the next
 * poll" (sleep_until in slices of at most 200 ms): the busy time from the
 * exit of the nanosleep that ended a wait to the next nanosleep was one
 * cycle. Since then every wait is the event loop's poll() (daemon/loop.c),
 * in slices of at most 100 ms. A database task that sleeps until its next
 * poll adds no descriptor, one that waits for the server adds its socket:
 * with one database, a cycle runs from the exit of the last sleeping poll()
 * (timed out, with the descriptors most of those have) to the entry of the
 * next one, the waits for the server included (bench.py: probe_poll_cycles).
 *
 * Without the environment variable the shim only forwards to libc.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define PROBE_RECORDS (1u << 20) /* 32 MiB of records: hours at 10 ms */

struct probe_rec {
	int64_t enter_ns, exit_ns, req_ns, kind;
};

#define PROBE_FORMAT 2

struct probe_file {
	_Atomic uint64_t n;
	uint64_t format;
	struct probe_rec rec[];
};

static int (*real_nanosleep)(const struct timespec *, struct timespec *);
static int (*real_poll)(struct pollfd *, nfds_t, int);
static struct probe_file *probe;
static pid_t main_tid;
static __thread int on_main = -1; /* -1: not asked yet on this thread */

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

__attribute__((constructor)) static void probe_init(void)
{
	const char *path = getenv("BENCH_CYCLE_PROBE");
	size_t size = sizeof(struct probe_file) + PROBE_RECORDS * sizeof(struct probe_rec);
	int fd;
	void *p;

	real_nanosleep = (int (*)(const struct timespec *, struct timespec *))dlsym(RTLD_NEXT,
										      "nanosleep");
	real_poll = (int (*)(struct pollfd *, nfds_t, int))dlsym(RTLD_NEXT, "poll");
	main_tid = getpid();
	if (path == NULL || path[0] == '\0')
		return;
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (ftruncate(fd, (off_t)size) < 0) {
		close(fd);
		return;
	}
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p != MAP_FAILED) {
		probe = p;
		probe->format = PROBE_FORMAT;
	}
}

static void record(int64_t enter, int64_t req, int64_t kind)
{
	uint64_t i = atomic_load_explicit(&probe->n, memory_order_relaxed);

	if (i < PROBE_RECORDS) {
		probe->rec[i].enter_ns = enter;
		probe->rec[i].exit_ns = mono_ns();
		probe->rec[i].req_ns = req;
		probe->rec[i].kind = kind;
		atomic_store_explicit(&probe->n, i + 1, memory_order_release);
	}
}

static bool probing(void)
{
	if (on_main < 0)
		on_main = (pid_t)syscall(SYS_gettid) == main_tid;
	return probe != NULL && on_main;
}

int nanosleep(const struct timespec *req, struct timespec *rem)
{
	int64_t enter;
	int rc;

	if (!probing())
		return real_nanosleep(req, rem);
	enter = mono_ns();
	rc = real_nanosleep(req, rem);
	record(enter, (int64_t)req->tv_sec * 1000000000 + req->tv_nsec, 0);
	return rc;
}

int poll(struct pollfd *fds, nfds_t n, int timeout_ms)
{
	int64_t enter;
	int rc, saved;

	if (real_poll == NULL)
		real_poll = (int (*)(struct pollfd *, nfds_t, int))dlsym(RTLD_NEXT, "poll");
	if (!probing())
		return real_poll(fds, n, timeout_ms);
	enter = mono_ns();
	rc = real_poll(fds, n, timeout_ms);
	saved = errno;
	record(enter, timeout_ms < 0 ? -1 : (int64_t)timeout_ms * 1000000,
	       (rc == 0 ? 1 : rc > 0 ? 2 : 3) | (int64_t)n << 8);
	errno = saved;
	return rc;
}
