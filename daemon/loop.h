/*
 * loop.h - the daemon's one event loop (STYLE.md: one main thread, every
 * database and API call non-blocking, each with its own deadline).
 *
 * Work that has to wait is written as a task: a function that runs on its
 * own small stack (a coroutine, as QEMU's block layer does on its one
 * AioContext) and gives the thread back whenever it would block: on a
 * descriptor (a database socket), on a deadline, or on a channel (any
 * address; another part of the daemon wakes the tasks waiting on it). The
 * loop polls the descriptors of every waiting task and of every source
 * (the API client's transfers, the pod watches) in one poll() and resumes
 * what is ready. So a database that stops answering keeps its own task
 * waiting until that task's deadline, and nothing else.
 *
 * Only one task runs at a time, and it runs until it waits: tasks share the
 * daemon's state without locks, but whatever a task reads before a wait
 * may have changed after it (a pointer into a growing array, say).
 *
 * Owned by the main thread. Times are CLOCK_MONOTONIC microseconds.
 */
#ifndef LOCK_ARBITER_LOOP_H
#define LOCK_ARBITER_LOOP_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;

/* A source's interest in a descriptor, and what poll() found. */
#define LOOP_IN 1  /* readable, or hung up, or in error */
#define LOOP_OUT 2 /* writable */

/*
 * A source of descriptors that is not a task (a libcurl multi handle): it
 * says what to poll and how long the loop may sleep, and is told what
 * poll() found. fds writes at most cap entries and returns how many it
 * has (more than cap: the loop grows its arrays and asks again). ready
 * gets back the descriptors fds wrote with what each is ready for (0:
 * nothing), after every poll: a timer of the source's own may be due.
 */
struct loop_source {
	size_t (*fds)(void *ctx, int *fds, int *events, size_t cap);
	int64_t (*timeout_us)(void *ctx); /* from now; -1 none */
	void (*ready)(void *ctx, const int *fds, const int *revents, size_t n);
	void *ctx;
};

/*
 * stop: the signal flag; once set, every wait returns -EINTR at once and
 * the loop no longer sleeps. NULL when the loop cannot be built.
 */
struct loop *loop_new(const volatile sig_atomic_t *stop);
/* Frees the loop; tasks still alive are abandoned with their stacks freed. */
void loop_free(struct loop *l);

/* At most LOOP_SOURCES sources; 0 or -ENOSPC. */
#define LOOP_SOURCES 4
int loop_add_source(struct loop *l, const struct loop_source *s);

/*
 * Starts fn(arg) as a task; it first runs at the next loop_run_once. 0 or
 * -ENOMEM. The task ends when fn returns.
 */
int loop_spawn(struct loop *l, const char *name, void (*fn)(void *arg), void *arg);

/* True while a task of l is running (the caller may wait). */
bool loop_in_task(const struct loop *l);

/*
 * From a task: waits until fd has one of events (POLLIN, POLLOUT) or the
 * deadline passes. Returns the revents (> 0), 0 at the deadline, -EINTR
 * when the loop is stopping.
 */
int loop_wait_fd(struct loop *l, int fd, short events, int64_t deadline_us);

/*
 * From a task: waits until loop_wake(chan) or the deadline (-1: none).
 * 1 woken, 0 deadline, -EINTR stopping.
 */
int loop_wait(struct loop *l, const void *chan, int64_t deadline_us);

/* Wakes every task waiting on chan (from a task, a source, or main). */
void loop_wake(struct loop *l, const void *chan);

/*
 * From main: one round: resumes the tasks that can run, then polls every
 * descriptor for at most max_wait_us (less when a deadline is nearer; not
 * at all when stopping or a task is runnable), then tells the sources and
 * resumes what became ready. 0, or a negative errno from poll().
 */
int loop_run_once(struct loop *l, int64_t max_wait_us);

/* Tasks alive. */
size_t loop_tasks(const struct loop *l);

#endif
