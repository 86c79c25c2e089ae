/* store_coalesce — the projection writer's coalescing: one segment's changes
 * merged per (table, key), then rendered as lattice_project()'s parameters.
 *
 * A transaction carries up to STORE_TX_BATCHES entries (store.c); a statement
 * per change would make PostgreSQL pay its per-statement cost (executor start
 * and end, the CHECK constraints' expressions rebuilt) dozens of times per
 * transaction. So the changes of each segment (the in-flight changes between two
 * PROJ_RESETs) are coalesced per (table, key), and each (table, kind) becomes one
 * statement:
 *
 *   - the last change of a key wins: an upsert replaces the key's earlier upsert,
 *     a delete drops it;
 *   - a delete followed by an upsert keeps both, and every delete runs before
 *     every upsert (enum proj_stmt), so ON DELETE CASCADE still removes what the
 *     old row owned, and never a row the segment writes;
 *   - PROJ_ACTOR_DELETE also drops the segment's earlier PROJ_PLACEMENTS_SET of
 *     that actor, its earlier link upserts and its snapshot (whatever of them the database
 *     holds already, the cascade removes; written afterwards they would outlive
 *     their actor);
 *   - events are appended in log order and never coalesced (writing one twice
 *     stays an error);
 *   - a key whose first change in the segment is a fresh upsert (an actor, or its
 *     placements, created by that entry: proj.h) has no row in the database
 *     before the segment, whatever the segment does to it later, so its last
 *     upsert goes to a plain INSERT (PS_ACTORS_INSERT, PS_PLACEMENTS_INSERT),
 *     which skips ON CONFLICT's probe and the placements' replace-the-set
 *     statement: creating actors is the hot path;
 *   - PROJ_RESET ends the segment so far (one lattice_project() call); the next
 *     segment's call runs lattice_reset() before its own statements.
 *
 * The rows at the end are those that running every change in log order leaves,
 * and foreign keys are checked only then (DEFERRABLE INITIALLY DEFERRED, checked
 * by the round's last call), so the order of the statements within a segment
 * trips none. */
#include "store_coalesce.h"

#include <stdlib.h>
#include <string.h>

/* Tables that changes are coalesced by (key: the first parameter; policies: the
 * first two). */
enum wr_table {
	WT_NODES,
	WT_ACTORS,
	WT_PLACEMENTS, /* by actor id */
	WT_PROVIDERS,
	WT_LINKS,
	WT_POLICIES, /* by (policy_id, version) */
	WT_COMMANDS,
	WT_FAILOVERS,
	WT_SNAPSHOTS, /* by actor id: the latest only */
	WT_EVENTS,   /* appended, never coalesced */
	WT_NONE,     /* PROJ_RESET */
};

/* A row object's key for each parameter, in proj.h's order; json: the parameter
 * is JSON text and goes into the row as it is, not as a string. */
struct wr_col {
	const char *key;
	bool json;
};

static const struct wr_col wr_node_cols[] = {
	{"id", 0}, {"region", 0}, {"labels", 1}, {"cpu_capacity", 0}, {"memory_mb", 0},
	{"base_cpu_used", 0}, {"base_memory_used_mb", 0}, {"base_actor_count", 0},
	{"cpu_measured", 0}, {"memory_measured_mb", 0}, {"status", 0}, {"cordoned", 0},
	{"draining", 0}, {"error_count", 0}, {"last_heartbeat_ms", 0}, {"policy_version", 0},
	{"policy_target", 0}, {"agent_version", 0}, {"generation", 0}, {"created_ms", 0}, {"updated_ms", 0}};
static const struct wr_col wr_actor_cols[] = {
	{"id", 0}, {"name", 0}, {"module", 0}, {"cpu_required", 0}, {"memory_required_mb", 0},
	{"preferred_region", 0}, {"constraints", 1}, {"priority", 0}, {"max_latency_ms", 0},
	{"replicas", 0}, {"strategy", 0}, {"contracts", 1}, {"generation", 0},
	{"created_ms", 0}, {"updated_ms", 0}};
static const struct wr_col wr_placements_cols[] = {{"actor_id", 0}, {"placements", 1}};
static const struct wr_col wr_provider_cols[] = {
	{"id", 0}, {"contract_id", 0}, {"image", 0}, {"nodes", 1}, {"created_ms", 0}};
static const struct wr_col wr_link_cols[] = {
	{"id", 0}, {"actor_id", 0}, {"provider_id", 0}, {"contract_id", 0}, {"link_name", 0},
	{"values", 1}, {"timeout_ms", 0}, {"retry_count", 0}, {"retry_delay_ms", 0},
	{"created_ms", 0}};
static const struct wr_col wr_policy_cols[] = {
	{"policy_id", 0}, {"version", 0}, {"allowed_contracts", 1}, {"denied_contracts", 1},
	{"max_actor_memory_mb", 0}, {"network_restrictions", 1}, {"selector", 1},
	{"created_ms", 0}};
static const struct wr_col wr_command_cols[] = {
	{"command_id", 0}, {"command_type", 0}, {"target_node", 0}, {"actor_id", 0}, {"instance", 0},
	{"term", 0}, {"generation", 0}, {"config_version", 0}, {"payload", 1}, {"status", 0},
	{"attempts", 0}, {"created_ms", 0}, {"updated_ms", 0}, {"published_ms", 0}, {"acked_ms", 0},
	{"applied_version", 0}, {"error", 0}};
static const struct wr_col wr_failover_cols[] = {
	{"id", 0}, {"failed_node", 0}, {"assignments", 1}, {"actor_ids", 1}, {"detected_ms", 0},
	{"started_ms", 0}, {"finished_ms", 0}, {"downtime_ms", 0}, {"status", 0}, {"error", 0}};
static const struct wr_col wr_snapshot_cols[] = {
	{"actor_id", 0}, {"state_version", 0}, {"data", 0}, {"source_node", 0}, {"checkpoint_ms", 0}};
static const struct wr_col wr_event_cols[] = {
	{"seq", 0}, {"raft_index", 0}, {"at_ms", 0}, {"who", 0}, {"kind", 0},
	{"object_type", 0}, {"object_id", 0}, {"data", 1}};

#define WR_COLS(a) a, (int)(sizeof(a) / sizeof(a[0]))

/* What the writer does with each kind of change. */
static const struct wr_kind {
	enum wr_table table;
	bool del;                  /* a delete: the only parameter is the key */
	const struct wr_col *cols; /* upserts: the row object's keys */
	int nparams;
} wr_kinds[PROJ_KIND_COUNT] = {
	[PROJ_NODE_UPSERT] = {WT_NODES, false, WR_COLS(wr_node_cols)},
	[PROJ_NODE_DELETE] = {WT_NODES, true, NULL, 1},
	[PROJ_ACTOR_UPSERT] = {WT_ACTORS, false, WR_COLS(wr_actor_cols)},
	[PROJ_ACTOR_DELETE] = {WT_ACTORS, true, NULL, 1},
	[PROJ_PLACEMENTS_SET] = {WT_PLACEMENTS, false, WR_COLS(wr_placements_cols)},
	[PROJ_PROVIDER_UPSERT] = {WT_PROVIDERS, false, WR_COLS(wr_provider_cols)},
	[PROJ_PROVIDER_DELETE] = {WT_PROVIDERS, true, NULL, 1},
	[PROJ_LINK_UPSERT] = {WT_LINKS, false, WR_COLS(wr_link_cols)},
	[PROJ_LINK_DELETE] = {WT_LINKS, true, NULL, 1},
	[PROJ_POLICY_INSERT] = {WT_POLICIES, false, WR_COLS(wr_policy_cols)},
	[PROJ_COMMAND_UPSERT] = {WT_COMMANDS, false, WR_COLS(wr_command_cols)},
	[PROJ_FAILOVER_UPSERT] = {WT_FAILOVERS, false, WR_COLS(wr_failover_cols)},
	[PROJ_SNAPSHOT_PUT] = {WT_SNAPSHOTS, false, WR_COLS(wr_snapshot_cols)},
	[PROJ_EVENT_INSERT] = {WT_EVENTS, false, WR_COLS(wr_event_cols)},
	[PROJ_RESET] = {WT_NONE, false, NULL, 0},
};

/* Which table each statement writes, and how; fresh: it takes the fresh keys
 * (only actors and placements have them), the others take the rest. */
static const struct {
	enum wr_table table;
	bool del, fresh;
} wr_stmts[PS_RESET] = {
	[PS_LINKS_DELETE] = {WT_LINKS, true, false},
	[PS_ACTORS_DELETE] = {WT_ACTORS, true, false},
	[PS_PROVIDERS_DELETE] = {WT_PROVIDERS, true, false},
	[PS_NODES_DELETE] = {WT_NODES, true, false},
	[PS_NODES_UPSERT] = {WT_NODES, false, false},
	[PS_ACTORS_UPSERT] = {WT_ACTORS, false, false},
	[PS_ACTORS_INSERT] = {WT_ACTORS, false, true},
	[PS_PROVIDERS_UPSERT] = {WT_PROVIDERS, false, false},
	[PS_PLACEMENTS_SET] = {WT_PLACEMENTS, false, false},
	[PS_PLACEMENTS_INSERT] = {WT_PLACEMENTS, false, true},
	[PS_LINKS_UPSERT] = {WT_LINKS, false, false},
	[PS_POLICIES_UPSERT] = {WT_POLICIES, false, false},
	[PS_COMMANDS_UPSERT] = {WT_COMMANDS, false, false},
	[PS_FAILOVERS_UPSERT] = {WT_FAILOVERS, false, false},
	[PS_SNAPSHOTS_PUT] = {WT_SNAPSHOTS, false, false},
	[PS_EVENTS_INSERT] = {WT_EVENTS, false, false},
};

/* One key's changes within a segment, coalesced (see the top of this file). */
struct wr_ent {
	enum wr_table table;
	bool deleted;                 /* the key is deleted (before up, if any) */
	bool fresh;                   /* its first change was a fresh upsert */
	const struct proj_change *up; /* the last upsert after the last delete; NULL none */
	uint64_t up_seq, del_seq;     /* positions of that upsert / the last delete; 0 none */
	const char *k0, *k1;          /* the key, borrowed from a change */
	uint64_t hash;
};

static uint64_t co_hash_str(uint64_t h, const char *k)
{
	if (!k)
		return (h ^ 0x100) * 1099511628211ULL; /* NULL: no byte value collides */
	for (const unsigned char *p = (const unsigned char *)k; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return (h ^ 0x101) * 1099511628211ULL; /* end of this key part */
}

static uint64_t co_hash(enum wr_table t, const char *k0, const char *k1)
{
	uint64_t h = (14695981039346656037ULL ^ (uint64_t)t) * 1099511628211ULL;
	return co_hash_str(co_hash_str(h, k0), k1);
}

static bool co_keq(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* The entry of a key, or NULL; *slot: where it is or would go (nslots > 0). */
static struct wr_ent *co_find(const struct wr_co *co, enum wr_table t, const char *k0,
			      const char *k1, uint64_t h, size_t *slot)
{
	size_t mask = co->nslots - 1;
	for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
		*slot = i;
		if (!co->slots[i])
			return NULL;
		struct wr_ent *e = &co->ents[co->slots[i] - 1];
		if (e->hash == h && e->table == t && co_keq(e->k0, k0) && co_keq(e->k1, k1))
			return e;
	}
}

static const struct wr_ent *co_lookup(const struct wr_co *co, enum wr_table t, const char *k)
{
	size_t slot;
	return co->nslots ? co_find(co, t, k, NULL, co_hash(t, k, NULL), &slot) : NULL;
}

/* A new entry at the end of co->ents (zeroed), or NULL when out of memory. */
static struct wr_ent *co_append(struct wr_co *co)
{
	if (co->n == co->cap) {
		size_t cap = co->cap ? co->cap * 2 : 256;
		struct wr_ent *n = realloc(co->ents, cap * sizeof(*n));
		if (!n)
			return NULL;
		co->ents = n;
		co->cap = cap;
	}
	struct wr_ent *e = &co->ents[co->n++];
	memset(e, 0, sizeof(*e));
	return e;
}

/* Keeps the hash index at most half full, for one more key. */
static int co_reserve_slot(struct wr_co *co)
{
	if ((co->n + 1) * 2 <= co->nslots)
		return 0;
	size_t nslots = co->nslots ? co->nslots * 2 : 1024;
	if (nslots > UINT32_MAX)
		return -1;
	uint32_t *slots = calloc(nslots, sizeof(*slots));
	if (!slots)
		return -1;
	free(co->slots);
	co->slots = slots;
	co->nslots = nslots;
	for (size_t i = 0; i < co->n; i++) {
		if (co->ents[i].table == WT_EVENTS)
			continue;
		size_t slot;
		(void)co_find(co, co->ents[i].table, co->ents[i].k0, co->ents[i].k1, co->ents[i].hash,
			      &slot);
		co->slots[slot] = (uint32_t)(i + 1);
	}
	return 0;
}

int co_add(struct wr_co *co, uint64_t index, const struct proj_change *ch)
{
	const struct wr_kind *k = &wr_kinds[ch->kind];
	uint64_t seq = ++co->seq;
	struct wr_ent *e;
	if (!co->first)
		co->first = index;
	co->last = index;

	if (k->table == WT_EVENTS) {
		if (!(e = co_append(co)))
			return -1;
		*e = (struct wr_ent){.table = WT_EVENTS, .up = ch, .up_seq = seq};
		return 0;
	}
	const char *k0 = ch->nparams > 0 ? ch->params[0] : NULL;
	const char *k1 = k->table == WT_POLICIES && ch->nparams > 1 ? ch->params[1] : NULL;
	uint64_t h = co_hash(k->table, k0, k1);
	size_t slot;
	if (co_reserve_slot(co) != 0)
		return -1;
	e = co_find(co, k->table, k0, k1, h, &slot);
	if (!e) {
		if (!(e = co_append(co)))
			return -1;
		*e = (struct wr_ent){.table = k->table, .k0 = k0, .k1 = k1, .hash = h,
				     .fresh = !k->del && ch->fresh};
		co->slots[slot] = (uint32_t)co->n;
	}
	if (k->del) {
		e->deleted = true;
		e->up = NULL;
		e->up_seq = 0;
		e->del_seq = seq;
	} else {
		e->up = ch;
		e->up_seq = seq;
	}
	return 0;
}

/* true when an upsert of placements, of a link or of a snapshot lost its actor
 * to a later PROJ_ACTOR_DELETE of the segment. */
static bool co_orphaned(const struct wr_co *co, const struct wr_ent *e)
{
	const char *actor;
	if (e->table == WT_PLACEMENTS || e->table == WT_SNAPSHOTS)
		actor = e->up->params[0];
	else if (e->table == WT_LINKS)
		actor = e->up->params[1];
	else
		return false;
	const struct wr_ent *a = co_lookup(co, WT_ACTORS, actor);
	return a && a->del_seq > e->up_seq;
}

void co_clear(struct wr_co *co)
{
	co->n = 0;
	co->seq = co->first = co->last = 0;
	if (co->cap > 65536) {
		free(co->ents);
		co->ents = NULL;
		co->cap = 0;
	}
	if (co->nslots > 4096) {
		free(co->slots);
		co->slots = NULL;
		co->nslots = 0;
	} else if (co->nslots) {
		memset(co->slots, 0, co->nslots * sizeof(*co->slots));
	}
}

void co_free(struct wr_co *co)
{
	free(co->ents);
	free(co->slots);
	memset(co, 0, sizeof(*co));
}

/* s as an element of a PostgreSQL array literal (NULL: SQL NULL). */
static void co_array_str(struct jw *b, const char *s)
{
	if (!s) {
		jw_raw(b, "NULL", 4);
		return;
	}
	jw_raw(b, "\"", 1);
	for (const char *run = s, *p = s;; p++) {
		if (*p && *p != '"' && *p != '\\')
			continue;
		jw_raw(b, run, (size_t)(p - run));
		if (!*p)
			break;
		jw_raw(b, "\\", 1);
		run = p;
	}
	jw_raw(b, "\"", 1);
}

/* A change as a row object: {"key": value, ...}; NULL parameters are left out
 * (jsonb_to_recordset reads a missing key as NULL). */
static void co_row(struct jw *b, const struct proj_change *ch)
{
	const struct wr_kind *k = &wr_kinds[ch->kind];
	jw_obj(b);
	for (int i = 0; i < ch->nparams && i < k->nparams; i++) {
		const char *v = ch->params[i];
		if (!v)
			continue;
		jw_key(b, k->cols[i].key);
		if (k->cols[i].json)
			jw_json(b, v, strlen(v)); /* proj.c rendered it: one JSON value */
		else
			jw_str(b, v);
	}
	jw_obj_end(b);
}

size_t co_render(const struct wr_co *co, enum proj_stmt st, struct jw *b)
{
	enum wr_table t = wr_stmts[st].table;
	bool del = wr_stmts[st].del, fresh = wr_stmts[st].fresh;
	size_t rows = 0;
	jw_reset(b);
	if (del)
		jw_raw(b, "{", 1);
	else
		jw_arr(b);
	for (size_t i = 0; i < co->n; i++) {
		const struct wr_ent *e = &co->ents[i];
		if (e->table != t ||
		    (del ? !e->deleted : !e->up || e->fresh != fresh || co_orphaned(co, e)))
			continue;
		if (del) {
			if (rows)
				jw_raw(b, ",", 1);
			co_array_str(b, e->k0);
		} else {
			co_row(b, e->up);
		}
		rows++;
	}
	if (del)
		jw_raw(b, "}", 1);
	else
		jw_arr_end(b);
	return rows;
}

int co_kind_nparams(enum proj_kind kind)
{
	return wr_kinds[kind].nparams;
}
