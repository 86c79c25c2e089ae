/* ctl_res — the resource commands: list, get, create, delete of nodes, actors,
 * providers, links, policies, commands and failovers, and the actions on them
 * (cordon, drain, scale, migrate, new policy versions...).
 *
 * Each resource is a struct ctl_kind: where it lives, its id member and its
 * table columns. The list, get, create and delete commands are the same code
 * for all of them; the tree (ctl_tree.c) hands the kind over as cmd->data. */
#ifndef LATTICE_CTL_RES_H
#define LATTICE_CTL_RES_H

#include <jansson.h>

#include "ctl_cmd.h"
#include "ctl_table.h"
#include "ctl_util.h"

struct ctl_kind {
	const char *plural;     /* "nodes" */
	const char *singular;   /* "node" (also -o name's prefix) */
	const char *path;       /* "/v1/nodes" */
	const char *id_key;     /* "id", "policy_id", "command_id" */
	const char *const *headers;      /* the columns, NULL-terminated */
	const char *const *wide_headers; /* -o wide's extra columns */
	/* Adds one row's cells: the columns, then (wide) the extra ones. */
	void (*row)(struct ctl_table *t, const json_t *o, bool wide, time_t now);
};

extern const struct ctl_kind ctl_kind_nodes, ctl_kind_actors, ctl_kind_providers, ctl_kind_links,
	ctl_kind_policies, ctl_kind_policy_versions, ctl_kind_commands, ctl_kind_failovers, ctl_kind_events,
	ctl_kind_members;

/* Generic commands (cmd->data is the kind). */
int ctl_run_list(struct ctl_ctx *x);
int ctl_run_get(struct ctl_ctx *x);
int ctl_run_create(struct ctl_ctx *x);
int ctl_run_delete(struct ctl_ctx *x);

/* Actions. */
int ctl_run_node_cordon(struct ctl_ctx *x);   /* also uncordon: the word is the action */
int ctl_run_node_drain(struct ctl_ctx *x);
int ctl_run_failover_plan(struct ctl_ctx *x);
int ctl_run_actor_scale(struct ctl_ctx *x);
int ctl_run_actor_patch(struct ctl_ctx *x);
int ctl_run_actor_migrate(struct ctl_ctx *x);
int ctl_run_policy_update(struct ctl_ctx *x);
int ctl_run_policy_versions(struct ctl_ctx *x);
int ctl_run_policy_violations(struct ctl_ctx *x);

/* Shared with ctl_ops.c. */

/* Prints items (a JSON array) of kind as the output format asks. */
void ctl_print_items(struct ctl_ctx *x, const struct ctl_kind *k, const json_t *items);
/* The request body of a create or patch: the -f file's object (or {}), then
 * every flag of the command with a body field. NULL after printing why. */
json_t *ctl_body(struct ctl_ctx *x);
/* Appends "key=value" to a query string being built ('?' or '&' first). */
void ctl_query_add(struct ctl_buf *q, const char *key, const char *value);

#endif
