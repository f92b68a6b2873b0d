/*
 * cycle_probe.so: an LD_PRELOAD shim for the benchmark (bench/bench.py), not
 * part of lock-arbiter.
 *
 * The daemon's main loop is "cycle, then nanosleep() until the next poll"
 * (daemon/arbiter.c: sleep_until, in slices of at most 200 ms). This shim
 * wraps nanosleep() and, for calls made by the main thread only, appends one
 * record per call to a file named by BENCH_CYCLE_PROBE:
 *
 *     int64 enter_ns, int64 exit_ns, int64 requested_ns   (CLOCK_MONOTONIC)
 *
 * The file is mapped shared and preallocated, so records are visible to the
 * reader at once, cost no system call, and survive a SIGKILL. The first 8
 * bytes hold the number of records written. The busy time between the exit
 * of the nanosleep that ended a wait and the next nanosleep is one cycle of
 * the main loop (poll, verdicts, releases, status publication).
 *
 * Without the environment variable the shim only forwards to libc.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define PROBE_RECORDS (1u << 20) /* 24 MiB of records: hours at 10 ms */

struct probe_rec {
	int64_t enter_ns, exit_ns, req_ns;
};

struct probe_file {
	_Atomic uint64_t n;
	uint64_t pad;
	struct probe_rec rec[];
};

static int (*real_nanosleep)(const struct timespec *, struct timespec *);
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
	if (p != MAP_FAILED)
		probe = p;
}

int nanosleep(const struct timespec *req, struct timespec *rem)
{
	int64_t enter, rc;
	uint64_t i;

	if (on_main < 0)
		on_main = (pid_t)syscall(SYS_gettid) == main_tid;
	if (probe == NULL || !on_main)
		return real_nanosleep(req, rem);
	enter = mono_ns();
	rc = real_nanosleep(req, rem);
	i = atomic_load_explicit(&probe->n, memory_order_relaxed);
	if (i < PROBE_RECORDS) {
		probe->rec[i].enter_ns = enter;
		probe->rec[i].exit_ns = mono_ns();
		probe->rec[i].req_ns = (int64_t)req->tv_sec * 1000000000 + req->tv_nsec;
		atomic_store_explicit(&probe->n, i + 1, memory_order_release);
	}
	return (int)rc;
}
