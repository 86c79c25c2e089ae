/* policy — which contracts and how much memory the security policies covering a
 * node allow. Pure. */
#ifndef LATTICE_POLICY_H
#define LATTICE_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spec.h"

struct model;
struct model_node;
struct model_policy;

/* Does the policy's selector cover a node in region with labels? An empty selector
 * (no regions, no labels) covers every node. regions: node's region must be listed;
 * labels: every pair must match. */
bool policy_covers(const struct policy_spec *p, const char *region, const struct kvlist *labels);

/* Is contract allowed on node n by every covering policy? (allowed_contracts of
 * each covering policy whose list is non-empty must hold it; no covering policy
 * may deny it.) */
bool policy_allows_contract(const struct model_node *n, const char *contract);

/* Smallest max_actor_memory_mb among covering policies, 0 when none caps. */
int64_t policy_memory_cap(const struct model_node *n);

/* Recomputes n->policies (the covering policies, sorted by id) from m->policies.
 * Returns 0 or -1 (out of memory; n unchanged). */
int policy_refresh_node(struct model *m, struct model_node *n);

/* The merged policy of every policy covering n, as a security_policy
 * command's payload (docs/protocol.md): allowed = the intersection of the
 * non-empty allow lists ([] when none has one; ["lattice:none"] when they
 * share no contract), denied and network_restrictions = unions, the smallest
 * memory cap (null: none). JSON text the caller frees; NULL: out of memory. */
char *policy_merged_payload(const struct model_node *n, int64_t version);

#endif
