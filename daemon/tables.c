/*
 * tables.c - which lock tables a database has: discovery, and carrying
 * each table's episode state over a rediscovery, so that a table that
 * stays keeps its episode and one that appears starts fresh (DESIGN.md
 * section 4).
 */
#include "tables.h"

#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tables_forget(struct arbiter_db *d)
{
	for (size_t i = 0; i < d->n_tables; i++)
		episode_table_done(&d->state[i]);
	free(d->state);
	db_tables_free(d->tables, d->n_tables);
	d->state = NULL;
	d->tables = NULL;
	d->n_tables = 0;
}

static struct episode_table *find_state(struct episode_table *st, size_t n, const char *schema,
                                        const char *table)
{
	/* Entries already taken over by adopt_tables are zeroed: skip them. */
	for (size_t i = 0; i < n; i++)
		if (st[i].schema != NULL && strcmp(st[i].schema, schema) == 0 &&
		    strcmp(st[i].table, table) == 0)
			return &st[i];
	return NULL;
}

/*
 * Replaces the table set, carrying over the episode state of tables that
 * stay, so that a rediscovery never makes a known episode look new.
 */
static int adopt_tables(struct arbiter_db *d, struct db_table *tables, size_t n)
{
	struct episode_table *st = calloc(n > 0 ? n : 1, sizeof(*st));

	if (st == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct episode_table *old =
		    find_state(d->state, d->n_tables, tables[i].schema, tables[i].table);
		if (old != NULL) {
			st[i] = *old;
			memset(old, 0, sizeof(*old));
		} else {
			if (episode_table_init(&st[i], tables[i].schema, tables[i].table) < 0) {
				for (size_t j = 0; j < i; j++)
					episode_table_done(&st[j]);
				free(st);
				return -ENOMEM;
			}
			log_info("lock table found", "database", d->label, "schema",
			         tables[i].schema, "table", tables[i].table, NULL);
		}
	}
	for (size_t i = 0; i < d->n_tables; i++) {
		if (d->state[i].schema != NULL)
			log_info("lock table gone", "database", d->label, "schema",
			         d->state[i].schema, "table", d->state[i].table, NULL);
	}
	tables_forget(d);
	d->state = st;
	d->tables = tables;
	d->n_tables = n;
	return 0;
}

int tables_discover(struct arbiter *a, struct arbiter_db *d, char *err, size_t cap)
{
	struct db_table *tables;
	size_t n;
	int rc;

	rc = db_discover(d->db, a->cfg->table, a->cfg->schemas.items, a->cfg->schemas.n, &tables,
	                 &n, err, cap);
	if (rc < 0)
		return rc;
	rc = adopt_tables(d, tables, n);
	if (rc < 0) {
		db_tables_free(tables, n);
		snprintf(err, cap, "out of memory adopting the lock tables");
		return rc;
	}
	if (n == 0 && !d->discovered)
		log_warn("no lock table found", "database", d->label, "table", a->cfg->table, NULL);
	d->discovered = true;
	return 0;
}
