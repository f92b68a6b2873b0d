/*
 * page.h - the status page at "/": one readable table of lock tables for a
 * person behind `kubectl port-forward`. No JavaScript; it refreshes itself.
 * A pure function of a struct status; everything from the database is
 * escaped.
 */
#ifndef LOCK_ARBITER_PAGE_H
#define LOCK_ARBITER_PAGE_H

#include "status.h"

#include <stdint.h>
#include <stdio.h>

/* now_wall_us: shown as the page's time, and to age the last releases. */
void page_render(const struct status *st, int64_t now_wall_us, FILE *out);

#endif
