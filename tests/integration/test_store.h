/* test_store.h — what test_store.c's sections in other files share with it:
 * the test's SQL helpers, the store's waits and the model objects made by hand
 * (all defined in test_store.c). */
#ifndef LATTICE_TEST_STORE_H
#define LATTICE_TEST_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "model.h"
#include "store.h"

#define T0 1795309323456LL /* 2026-11-22T01:02:03.456Z */

void on_projected(void *arg, uint64_t index);
struct store *open_store(const char *instance, char *err, size_t errlen);
long long sql_int(const char *sql);
int sql_ok(const char *sql);
const char *sql_str(const char *sql, char *buf, size_t len);
bool wait_projected(struct store *s, uint64_t index, int timeout_ms);
bool wait_healthy(struct store *s, bool want, int timeout_ms);
void mk_node(struct model_node *n, char *id, char *region, struct kv *labels, size_t nl, enum node_status st);

extern struct kv n3_labels[1];
extern struct model_node n1, n2, n3;
extern struct model_actor a1;
extern struct model_provider p1;
extern struct model_link l1;
extern struct model_policy pol1;

/* test_store_coalesce.c: many entries in one transaction. */
void test_coalesce(struct store **sp, uint64_t *idx, uint64_t *seq);
void test_coalesce_reset(struct store **sp, uint64_t *idx, uint64_t *seq);

#endif
