/* Whole-model snapshot restore (Raft snapshots; model_snap_write.c writes
 * them). Part of the model module: same ownership rules as model.c.
 *
 * A snapshot is a storage format, not API input: it has its own encoder and
 * decoder here, versioned ("v"), and never goes through spec.c's request
 * validators, so tightening an API rule cannot make an old snapshot unreadable.
 * The decoder checks what the model itself relies on (types, ids, the bounds
 * that keep accounting arithmetic and the projection's columns in range) and
 * that the objects fit together the way applying entries leaves them (ids
 * unique, placements on known nodes and as many as replicas, links to existing
 * actors and providers). Accounted usage, placement counts, policy coverage and
 * the scheduler's index are not stored: restore recomputes them. The format is
 * described in docs/snapshots.md. */
#include <raft.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jw.h"
#include "model.h"
#include "model_int.h"
#include "policy.h"


/* ---- decoding: fields --------------------------------------------------------
 *
 * Bounds are the model's, not the API's: far above what the API accepts today
 * (so a limit raised later still reads), low enough that a node's accounted
 * usage (its base load plus every replica on it) cannot overflow, and within
 * what the projection's columns hold (bigint >= 0, timestamps). */

#define SD_QTY_MAX (1LL << 40)   /* millicores, MiB, counts of one object */
#define SD_TOTAL_MAX (1LL << 52) /* a node's accounted usage (score: x100 fits) */
#define SD_MS_MAX (1LL << 52)    /* timestamps in ms (PostgreSQL holds them) */
#define SD_INT_MAX INT64_MAX
#define SD_REPLICAS_MAX INT32_MAX /* placements.instance is an integer column */

struct sd_ctx {
	char *err;
	size_t errlen;
	enum model_snap_code code; /* of the first failure */
};

/* One object being read; `what` names it in messages ("node 'n1'", "actor #3"),
 * prefix names the nested object ("spec."). */
struct sd {
	struct sd_ctx *ctx;
	const json_t *o;
	const char *what;
	const char *prefix;
};

__attribute__((format(printf, 3, 4))) static int sd_fail_code(struct sd_ctx *c, enum model_snap_code code,
							       const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(c->err, c->errlen, "snapshot: %s", msg);
	c->code = code;
	return -1;
}

#define sd_fail(c, ...) sd_fail_code((c), MODEL_SNAP_MALFORMED, __VA_ARGS__)

static int sd_oom(struct sd_ctx *c)
{
	return sd_fail_code(c, MODEL_SNAP_NOMEM, "out of memory");
}

/* Unknown fields are refused: a field this build does not know is a format it
 * does not read (a newer one would have said so with "v"). */
static int sd_keys(const struct sd *d, const char *const *known)
{
	const char *key;
	size_t klen;
	json_t *v;
	json_object_keylen_foreach((json_t *)d->o, key, klen, v)
	{
		const char *const *k = known;
		while (*k && (klen != strlen(key) || strcmp(*k, key) != 0))
			k++;
		if (*k == NULL)
			return sd_fail(d->ctx, "%s: unknown field '%s%.40s'", d->what, d->prefix, key);
	}
	return 0;
}

static const json_t *sd_get(const struct sd *d, const char *key)
{
	const json_t *v = json_object_get(d->o, key);
	if (v == NULL)
		sd_fail(d->ctx, "%s: field '%s%s' is missing", d->what, d->prefix, key);
	return v;
}

static int sd_int(const struct sd *d, const char *key, int64_t min, int64_t max, int64_t *out)
{
	const json_t *v = sd_get(d, key);
	if (v == NULL)
		return -1;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return sd_fail(d->ctx, "%s: field '%s%s' must be an integer from %lld to %lld", d->what, d->prefix,
			       key, (long long)min, (long long)max);
	*out = json_integer_value(v);
	return 0;
}

static int sd_bool(const struct sd *d, const char *key, bool *out)
{
	const json_t *v = sd_get(d, key);
	if (v == NULL)
		return -1;
	if (!json_is_boolean(v))
		return sd_fail(d->ctx, "%s: field '%s%s' must be true or false", d->what, d->prefix, key);
	*out = json_is_true(v);
	return 0;
}

enum { SD_ANY = 0, SD_NONEMPTY = 1, SD_ID = 2 };

/* A string without NUL; SD_ID: 1..SPEC_ID_MAX bytes (the model's buffers hold
 * ids of that size), SD_NONEMPTY: at least one byte. */
static bool sd_text_ok(const json_t *v, int kind)
{
	const char *s = json_string_value(v);
	if (s == NULL)
		return false;
	size_t n = json_string_length(v);
	if (strlen(s) != n)
		return false;
	if (kind == SD_ID)
		return n >= 1 && n <= SPEC_ID_MAX;
	return kind != SD_NONEMPTY || n >= 1;
}

static const char *sd_kind_what(int kind)
{
	return kind == SD_ID ? "an id (1 to 128 bytes)" : kind == SD_NONEMPTY ? "a non-empty string" : "a string";
}

/* *out gets a copy (it must own nothing before). */
static int sd_text(const struct sd *d, const char *key, int kind, char **out)
{
	const json_t *v = sd_get(d, key);
	if (v == NULL)
		return -1;
	if (!sd_text_ok(v, kind))
		return sd_fail(d->ctx, "%s: field '%s%s' must be %s without NUL", d->what, d->prefix, key,
			       sd_kind_what(kind));
	if ((*out = strdup(json_string_value(v))) == NULL)
		return sd_oom(d->ctx);
	return 0;
}

/* Absent or null: *out stays NULL. */
static int sd_text_opt(const struct sd *d, const char *key, int kind, char **out)
{
	const json_t *v = json_object_get(d->o, key);
	if (v == NULL || json_is_null(v))
		return 0;
	return sd_text(d, key, kind, out);
}

/* The nested object under key, as a reader with its own prefix (pbuf holds it). */
static int sd_sub(const struct sd *d, const char *key, struct sd *sub, char *pbuf, size_t plen)
{
	const json_t *v = sd_get(d, key);
	if (v == NULL)
		return -1;
	if (!json_is_object(v))
		return sd_fail(d->ctx, "%s: field '%s%s' must be an object", d->what, d->prefix, key);
	snprintf(pbuf, plen, "%s%s.", d->prefix, key);
	*sub = (struct sd){d->ctx, v, d->what, pbuf};
	return 0;
}

static int sd_cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int sd_cmp_kv(const void *a, const void *b)
{
	return strcmp(((const struct kv *)a)->key, ((const struct kv *)b)->key);
}

/* An array of non-empty strings; kept sorted and unique (strlist's contract). */
static int sd_strlist(const struct sd *d, const char *key, struct strlist *out)
{
	const json_t *v = sd_get(d, key);
	if (v == NULL)
		return -1;
	if (!json_is_array(v))
		return sd_fail(d->ctx, "%s: field '%s%s' must be an array of strings", d->what, d->prefix, key);
	size_t n = json_array_size(v);
	if (n == 0)
		return 0;
	if ((out->items = calloc(n, sizeof(*out->items))) == NULL)
		return sd_oom(d->ctx);
	for (size_t i = 0; i < n; i++) {
		const json_t *e = json_array_get(v, i);
		if (!sd_text_ok(e, SD_NONEMPTY))
			return sd_fail(d->ctx, "%s: field '%s%s' entry %zu must be a non-empty string without NUL",
				       d->what, d->prefix, key, i);
		if ((out->items[i] = strdup(json_string_value(e))) == NULL)
			return sd_oom(d->ctx);
		out->n = i + 1;
	}
	qsort(out->items, out->n, sizeof(*out->items), sd_cmp_str);
	for (size_t i = 1; i < out->n; i++)
		if (strcmp(out->items[i - 1], out->items[i]) == 0)
			return sd_fail(d->ctx, "%s: field '%s%s' lists '%.40s' twice", d->what, d->prefix, key,
				       out->items[i]);
	return 0;
}

/* An object of strings (keys non-empty); kept sorted by key (kvlist's contract). */
static int sd_kvlist(const struct sd *d, const char *key, struct kvlist *out)
{
	const json_t *v = sd_get(d, key);
	if (v == NULL)
		return -1;
	if (!json_is_object(v))
		return sd_fail(d->ctx, "%s: field '%s%s' must be an object of strings", d->what, d->prefix, key);
	size_t n = json_object_size(v);
	if (n == 0)
		return 0;
	if ((out->items = calloc(n, sizeof(*out->items))) == NULL)
		return sd_oom(d->ctx);
	const char *k;
	size_t klen;
	json_t *e;
	json_object_keylen_foreach((json_t *)v, k, klen, e)
	{
		if (klen == 0 || klen != strlen(k) || !sd_text_ok(e, SD_ANY))
			return sd_fail(d->ctx, "%s: field '%s%s' must map non-empty keys to strings without NUL",
				       d->what, d->prefix, key);
		struct kv *kv = &out->items[out->n];
		kv->key = strdup(k);
		kv->value = strdup(json_string_value(e));
		out->n++; /* counted first, so kvlist_free releases a half-made pair */
		if (kv->key == NULL || kv->value == NULL)
			return sd_oom(d->ctx);
	}
	qsort(out->items, out->n, sizeof(*out->items), sd_cmp_kv);
	return 0;
}

/* Element i of a top-level array, o, as an object reader named "<kind> #i". */
static int sd_elem(struct sd_ctx *c, const json_t *o, size_t i, const char *kind, char *what, size_t wlen,
		   struct sd *out)
{
	snprintf(what, wlen, "%s #%zu", kind, i);
	if (!json_is_object(o))
		return sd_fail(c, "%s is not an object", what);
	*out = (struct sd){c, o, what, ""};
	return 0;
}

/* Once the id is known, messages name the object by it. */
static void sd_named(struct sd *d, char *what, size_t wlen, const char *kind, const char *id)
{
	snprintf(what, wlen, "%s '%s'", kind, id);
	d->what = what;
}

static int status_parse(const char *s, enum node_status *out)
{
	for (int i = NODE_HEALTHY; i <= NODE_UNHEALTHY; i++)
		if (s && strcmp(s, model_node_status_name((enum node_status)i)) == 0) {
			*out = (enum node_status)i;
			return 0;
		}
	return -1;
}

static int state_parse(const char *s, enum placement_state *out)
{
	for (int i = PL_PENDING; i <= PL_FAILED; i++)
		if (s && strcmp(s, model_placement_state_name((enum placement_state)i)) == 0) {
			*out = (enum placement_state)i;
			return 0;
		}
	return -1;
}

/* ---- decoding: objects -------------------------------------------------------- */

#define WHAT_LEN (SPEC_ID_MAX + 32)

static int restore_node(struct sd_ctx *c, struct model *m, const json_t *o, size_t i)
{
	static const char *const known[] = {"spec",	      "cpu_measured",	   "memory_measured_mb",
					    "status",	      "cordoned",	   "draining",
					    "error_count",    "last_heartbeat_ms", "policy_version",
					    "agent_version",  "generation",	   "created_ms",
					    "updated_ms",     "policy_target",	   NULL};
	static const char *const spec_known[] = {"id",	      "region",	  "labels",	    "cpu_capacity",
						 "memory_mb", "cpu_used", "memory_used_mb", "actor_count",
						 NULL};
	char what[WHAT_LEN], pre[32];
	struct sd d, s;
	if (sd_elem(c, o, i, "node", what, sizeof(what), &d) != 0 || sd_sub(&d, "spec", &s, pre, sizeof(pre)) != 0)
		return -1;
	struct model_node *n = calloc(1, sizeof(*n));
	if (n == NULL)
		return sd_oom(c);
	struct node_spec *ns = &n->spec;
	const char *status = NULL;
	int64_t gen = 0;
	if (sd_text(&s, "id", SD_ID, &ns->id) != 0)
		goto fail;
	sd_named(&d, what, sizeof(what), "node", ns->id);
	s.what = what;
	if (sd_keys(&d, known) != 0 || sd_keys(&s, spec_known) != 0)
		goto fail;
	if (model_node_get(m, ns->id) != NULL) {
		sd_fail(c, "%s appears twice", what);
		goto fail;
	}
	if (sd_text(&s, "region", SD_NONEMPTY, &ns->region) != 0 || sd_kvlist(&s, "labels", &ns->labels) != 0 ||
	    sd_int(&s, "cpu_capacity", 0, SD_QTY_MAX, &ns->cpu_capacity) != 0 ||
	    sd_int(&s, "memory_mb", 0, SD_QTY_MAX, &ns->memory_mb) != 0 ||
	    sd_int(&s, "cpu_used", 0, SD_QTY_MAX, &ns->cpu_used) != 0 ||
	    sd_int(&s, "memory_used_mb", 0, SD_QTY_MAX, &ns->memory_used_mb) != 0 ||
	    sd_int(&s, "actor_count", 0, SD_QTY_MAX, &ns->actor_count) != 0 ||
	    sd_int(&d, "cpu_measured", -1, SD_QTY_MAX, &n->cpu_measured) != 0 ||
	    sd_int(&d, "memory_measured_mb", -1, SD_QTY_MAX, &n->memory_measured_mb) != 0 ||
	    sd_bool(&d, "cordoned", &n->cordoned) != 0 || sd_bool(&d, "draining", &n->draining) != 0 ||
	    sd_int(&d, "error_count", 0, SD_INT_MAX, &n->error_count) != 0 ||
	    sd_int(&d, "last_heartbeat_ms", 0, SD_MS_MAX, &n->last_heartbeat_ms) != 0 ||
	    sd_int(&d, "policy_version", 0, SD_INT_MAX, &n->policy_version) != 0 ||
	    (sd_get(&d, "policy_target") && sd_int(&d, "policy_target", 0, SD_INT_MAX, &n->policy_target) != 0) ||
	    sd_text_opt(&d, "agent_version", SD_ANY, &n->agent_version) != 0 ||
	    sd_int(&d, "generation", 1, SD_INT_MAX, &gen) != 0 ||
	    sd_int(&d, "created_ms", 0, SD_MS_MAX, &n->created_ms) != 0 ||
	    sd_int(&d, "updated_ms", 0, SD_MS_MAX, &n->updated_ms) != 0)
		goto fail;
	const json_t *st = sd_get(&d, "status");
	if (st == NULL || (status = json_string_value(st)) == NULL || status_parse(status, &n->status) != 0) {
		sd_fail(c, "%s: field 'status' must be healthy, degraded or unhealthy", what);
		goto fail;
	}
	/* A drain cordons; uncordoning ends the drain. */
	if (n->draining && !n->cordoned) {
		sd_fail(c, "%s is draining but not cordoned", what);
		goto fail;
	}
	n->generation = (uint64_t)gen;
	/* Accounting starts at the base load; restore_actor adds the replicas. */
	n->cpu_used = ns->cpu_used;
	n->memory_used_mb = ns->memory_used_mb;
	n->actor_count = ns->actor_count;
	if (hmap_put(&m->nodes, ns->id, n) != 0) {
		sd_oom(c);
		goto fail;
	}
	return 0;
fail:
	model_node_free(n);
	return -1;
}

static const char *const policy_spec_known[] = {"policy_id",	      "allowed_contracts",
						"denied_contracts",     "max_actor_memory_mb",
						"network_restrictions", "selector",
						NULL};

/* The rules of a policy version (s: its "spec"); the id is read by the caller. */
static int restore_policy_rules(const struct sd *s, struct policy_spec *ps)
{
	static const char *const sel_known[] = {"regions", "labels", NULL};
	char pre[48];
	struct sd sel;
	if (sd_keys(s, policy_spec_known) != 0 || sd_strlist(s, "allowed_contracts", &ps->allowed_contracts) != 0 ||
	    sd_strlist(s, "denied_contracts", &ps->denied_contracts) != 0 ||
	    sd_int(s, "max_actor_memory_mb", 0, SD_QTY_MAX, &ps->max_actor_memory_mb) != 0 ||
	    sd_strlist(s, "network_restrictions", &ps->network_restrictions) != 0 ||
	    sd_sub(s, "selector", &sel, pre, sizeof(pre)) != 0 || sd_keys(&sel, sel_known) != 0 ||
	    sd_strlist(&sel, "regions", &ps->sel_regions) != 0 || sd_kvlist(&sel, "labels", &ps->sel_labels) != 0)
		return -1;
	return 0;
}

/* Earlier versions (format 2 on): oldest first, each below the next and below
 * the current one. */
static int restore_history(struct sd_ctx *c, const struct sd *d, struct model_policy *p)
{
	static const char *const known[] = {"version", "made_ms", "spec", NULL};
	const json_t *h = sd_get(d, "history");
	if (h == NULL)
		return -1;
	if (!json_is_array(h))
		return sd_fail(c, "%s: field 'history' must be an array", d->what);
	size_t n = json_array_size(h);
	if (n == 0)
		return 0;
	if ((p->history = calloc(n, sizeof(*p->history))) == NULL)
		return sd_oom(c);
	for (size_t i = 0; i < n; i++) {
		char what[WHAT_LEN + 40], pre[32];
		snprintf(what, sizeof(what), "%s version #%zu", d->what, i);
		const json_t *o = json_array_get(h, i);
		if (!json_is_object(o))
			return sd_fail(c, "%s is not an object", what);
		struct sd e = {c, o, what, ""}, s;
		struct model_policy_version *pv = &p->history[i];
		p->nhistory = i + 1; /* counted first: policy_free frees a half-read version */
		int64_t floor = i ? p->history[i - 1].version + 1 : 1;
		if (sd_keys(&e, known) != 0 || sd_int(&e, "version", floor, p->version - 1, &pv->version) != 0 ||
		    sd_int(&e, "made_ms", 0, SD_MS_MAX, &pv->made_ms) != 0 ||
		    sd_sub(&e, "spec", &s, pre, sizeof(pre)) != 0)
			return -1;
		if (json_object_get(s.o, "policy_id") != NULL)
			return sd_fail(c, "%s: an earlier version carries no policy_id", what);
		if (restore_policy_rules(&s, &pv->spec) != 0)
			return -1;
	}
	return 0;
}

static int restore_policy(struct sd_ctx *c, struct model *m, const json_t *o, size_t i, int64_t version)
{
	static const char *const known[] = {"spec", "version", "created_ms", "updated_ms", "history", NULL};
	/* Format 1 kept no history. */
	const char *const *k = version >= 2 ? known : (const char *const[]){"spec", "version", "created_ms",
									   "updated_ms", NULL};
	char what[WHAT_LEN], pre[32];
	struct sd d, s;
	if (sd_elem(c, o, i, "policy", what, sizeof(what), &d) != 0 || sd_sub(&d, "spec", &s, pre, sizeof(pre)) != 0)
		return -1;
	struct model_policy *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return sd_oom(c);
	if (sd_text(&s, "policy_id", SD_ID, &p->spec.policy_id) != 0)
		goto fail;
	sd_named(&d, what, sizeof(what), "policy", p->spec.policy_id);
	s.what = what;
	if (sd_keys(&d, k) != 0)
		goto fail;
	if (hmap_get(&m->policies, p->spec.policy_id) != NULL) {
		sd_fail(c, "%s appears twice", what);
		goto fail;
	}
	if (restore_policy_rules(&s, &p->spec) != 0 || sd_int(&d, "version", 1, SD_INT_MAX, &p->version) != 0 ||
	    sd_int(&d, "created_ms", 0, SD_MS_MAX, &p->created_ms) != 0 ||
	    sd_int(&d, "updated_ms", 0, SD_MS_MAX, &p->updated_ms) != 0 ||
	    (version >= 2 && restore_history(c, &d, p) != 0))
		goto fail;
	if (hmap_put(&m->policies, p->spec.policy_id, p) != 0) {
		sd_oom(c);
		goto fail;
	}
	return 0;
fail:
	model_policy_free(p);
	return -1;
}

static int restore_actor_spec(const struct sd *s, struct actor_spec *as)
{
	static const char *const known[] = {"id",	      "name",		  "module",	 "cpu_required",
					    "memory_required_mb", "preferred_region", "constraints", "priority",
					    "max_latency_ms",	      "replicas",	  "strategy",	 "contracts",
					    NULL};
	if (sd_keys(s, known) != 0 || sd_text_opt(s, "name", SD_ANY, &as->name) != 0 ||
	    sd_text(s, "module", SD_NONEMPTY, &as->module) != 0 ||
	    sd_int(s, "cpu_required", 0, SD_QTY_MAX, &as->cpu_required) != 0 ||
	    sd_int(s, "memory_required_mb", 0, SD_QTY_MAX, &as->memory_required_mb) != 0 ||
	    sd_text(s, "preferred_region", SD_ANY, &as->preferred_region) != 0 ||
	    sd_kvlist(s, "constraints", &as->constraints) != 0 || sd_int(s, "priority", 0, 255, &as->priority) != 0 ||
	    sd_int(s, "max_latency_ms", 0, SD_INT_MAX, &as->max_latency_ms) != 0 ||
	    sd_int(s, "replicas", 0, SD_REPLICAS_MAX, &as->replicas) != 0 ||
	    sd_strlist(s, "contracts", &as->contracts) != 0)
		return -1;
	const json_t *st = sd_get(s, "strategy");
	const char *name = json_string_value(st);
	if (name != NULL && strcmp(name, "resources") == 0)
		as->strategy = STRATEGY_RESOURCES;
	else if (name != NULL && strcmp(name, "round_robin") == 0)
		as->strategy = STRATEGY_ROUND_ROBIN;
	else if (st != NULL)
		return sd_fail(s->ctx, "%s: field 'spec.strategy' must be resources or round_robin", s->what);
	else
		return -1;
	/* Apply names an actor after its id when the request gave no name. */
	if (as->name == NULL && (as->name = strdup(as->id)) == NULL)
		return sd_oom(s->ctx);
	return 0;
}

/* Adds one replica's request to n's accounting as model_node_account does,
 * without re-filing n in the scheduler's index (restore files every node once,
 * at the end), refusing totals the model cannot hold (a snapshot cannot make
 * the arithmetic overflow). */
static int account_replica(struct sd_ctx *c, struct model_node *n, const struct model_actor *a)
{
	if (n->cpu_used > SD_TOTAL_MAX - a->spec.cpu_required ||
	    n->memory_used_mb > SD_TOTAL_MAX - a->spec.memory_required_mb)
		return sd_fail(c, "actor '%s': node '%s' would account more than %lld", a->spec.id, n->spec.id,
			       (long long)SD_TOTAL_MAX);
	n->cpu_used += a->spec.cpu_required;
	n->memory_used_mb += a->spec.memory_required_mb;
	n->actor_count++;
	n->nplacements++;
	return 0;
}

/* An actor's latest state snapshot and its migration in progress (both
 * optional); the migration's reservation on its target is accounted. */
static int restore_actor_extras(struct sd_ctx *c, struct model *m, const struct sd *d, struct model_actor *a,
				const char *what)
{
	static const char *const snap_known[] = {"state_version", "data", "node", "taken_ms", NULL};
	static const char *const mig_known[] = {"id", "instance", "from", "to", "cpu", "mem", "step", "started_ms", NULL};
	char pre[32];
	struct sd s;
	if (sd_get(d, "snapshot") != NULL) {
		struct model_actor_snap *sn = calloc(1, sizeof(*sn));
		if (sn == NULL)
			return sd_oom(c);
		a->snap = sn;
		if (sd_sub(d, "snapshot", &s, pre, sizeof(pre)) != 0 || sd_keys(&s, snap_known) != 0 ||
		    sd_int(&s, "state_version", 0, SD_INT_MAX, &sn->state_version) != 0 ||
		    sd_text(&s, "data", SD_ANY, &sn->data) != 0 || sd_text(&s, "node", SD_NONEMPTY, &sn->node) != 0 ||
		    sd_int(&s, "taken_ms", 0, SD_MS_MAX, &sn->taken_ms) != 0)
			return -1;
	}
	if (sd_get(d, "migration") == NULL)
		return 0;
	struct model_migration *g = calloc(1, sizeof(*g));
	char *from = NULL, *to = NULL, *step = NULL;
	if (g == NULL)
		return sd_oom(c);
	a->mig = g;
	int rc = -1;
	if (sd_sub(d, "migration", &s, pre, sizeof(pre)) != 0 || sd_keys(&s, mig_known) != 0 ||
	    sd_text(&s, "id", SD_NONEMPTY, &g->id) != 0 || sd_int(&s, "instance", 0, SD_REPLICAS_MAX, &g->instance) != 0 ||
	    sd_text(&s, "from", SD_NONEMPTY, &from) != 0 || sd_text(&s, "to", SD_NONEMPTY, &to) != 0 ||
	    sd_int(&s, "cpu", 0, SD_QTY_MAX, &g->cpu) != 0 || sd_int(&s, "mem", 0, SD_QTY_MAX, &g->mem) != 0 ||
	    sd_text(&s, "step", SD_NONEMPTY, &step) != 0 || sd_int(&s, "started_ms", 0, SD_MS_MAX, &g->started_ms) != 0)
		goto out;
	int st = -1;
	for (int k = 0; k <= MIG_STOPPING; k++)
		if (strcmp(step, model_mig_step_name((enum mig_step)k)) == 0)
			st = k;
	g->from = model_node_get(m, from);
	g->to = model_node_get(m, to);
	if (st < 0 || g->from == NULL || g->to == NULL || (size_t)g->instance >= a->nplacements) {
		sd_fail(c, "%s: a migration with an unknown step, node or instance", what);
		goto out;
	}
	g->step = (enum mig_step)st;
	if (g->step != MIG_STOPPING) {
		/* As model_node_account does in apply (the index is built at the end). */
		g->to->cpu_used += g->cpu;
		g->to->memory_used_mb += g->mem;
		g->to->actor_count++;
		g->to->nplacements++;
	}
	rc = 0;
out:
	free(from);
	free(to);
	free(step);
	return rc;
}

static int restore_actor(struct sd_ctx *c, struct model *m, const json_t *o, size_t i)
{
	static const char *const known[] = {"spec",	  "placements", "generation", "created_ms",
					    "updated_ms", "snapshot",	"migration",  NULL};
	static const char *const pl_known[] = {"node", "state", "state_version", NULL};
	char what[WHAT_LEN], pre[32];
	struct sd d, s;
	if (sd_elem(c, o, i, "actor", what, sizeof(what), &d) != 0 || sd_sub(&d, "spec", &s, pre, sizeof(pre)) != 0)
		return -1;
	struct model_actor *a = calloc(1, sizeof(*a));
	if (a == NULL)
		return sd_oom(c);
	int64_t gen = 0;
	if (sd_text(&s, "id", SD_ID, &a->spec.id) != 0)
		goto fail;
	sd_named(&d, what, sizeof(what), "actor", a->spec.id);
	s.what = what;
	if (sd_keys(&d, known) != 0)
		goto fail;
	if (model_actor_get(m, a->spec.id) != NULL) {
		sd_fail(c, "%s appears twice", what);
		goto fail;
	}
	if (restore_actor_spec(&s, &a->spec) != 0 || sd_int(&d, "generation", 1, SD_INT_MAX, &gen) != 0 ||
	    sd_int(&d, "created_ms", 0, SD_MS_MAX, &a->created_ms) != 0 ||
	    sd_int(&d, "updated_ms", 0, SD_MS_MAX, &a->updated_ms) != 0)
		goto fail;
	a->generation = (uint64_t)gen;
	const json_t *pl = sd_get(&d, "placements");
	if (pl == NULL)
		goto fail;
	if (!json_is_array(pl)) {
		sd_fail(c, "%s: field 'placements' must be an array", what);
		goto fail;
	}
	/* Apply keeps one placement per replica (instance = index). */
	size_t np = json_array_size(pl);
	if ((int64_t)np != a->spec.replicas) {
		sd_fail(c, "%s has %zu placements for %lld replicas", what, np, (long long)a->spec.replicas);
		goto fail;
	}
	if ((a->placements = calloc(np ? np : 1, sizeof(*a->placements))) == NULL) {
		sd_oom(c);
		goto fail;
	}
	/* Parsed whole before anything is accounted, so a refusal has nothing to undo. */
	for (size_t k = 0; k < np; k++) {
		char pwhat[WHAT_LEN + 32];
		snprintf(pwhat, sizeof(pwhat), "%s placement #%zu", what, k);
		const json_t *po = json_array_get(pl, k);
		if (!json_is_object(po)) {
			sd_fail(c, "%s is not an object", pwhat);
			goto fail;
		}
		struct sd p = {c, po, pwhat, ""};
		struct model_placement *mp = &a->placements[k];
		const json_t *node = sd_get(&p, "node"), *state = NULL;
		if (sd_keys(&p, pl_known) != 0 || node == NULL || (state = sd_get(&p, "state")) == NULL ||
		    sd_int(&p, "state_version", 0, SD_INT_MAX, &mp->state_version) != 0)
			goto fail;
		if (!sd_text_ok(node, SD_ID) || (mp->node = model_node_get(m, json_string_value(node))) == NULL) {
			sd_fail(c, "%s is on node '%.128s', which the snapshot does not hold", pwhat,
				json_is_string(node) ? json_string_value(node) : "?");
			goto fail;
		}
		if (state_parse(json_string_value(state), &mp->state) != 0) {
			sd_fail(c, "%s: field 'state' is not a placement state", pwhat);
			goto fail;
		}
	}
	if (hmap_put(&m->actors, a->spec.id, a) != 0) {
		sd_oom(c);
		goto fail;
	}
	/* From here the actor is the model's: a refusal below is freed with it. */
	for (size_t k = 0; k < np; k++) {
		if (account_replica(c, a->placements[k].node, a) != 0)
			return -1;
		a->nplacements = k + 1;
	}
	return restore_actor_extras(c, m, &d, a, what);
fail:
	model_actor_free(a);
	return -1;
}

static int restore_provider(struct sd_ctx *c, struct model *m, const json_t *o, size_t i)
{
	static const char *const known[] = {"spec", "created_ms", NULL};
	static const char *const spec_known[] = {"id", "contract_id", "image", "nodes", NULL};
	char what[WHAT_LEN], pre[32];
	struct sd d, s;
	if (sd_elem(c, o, i, "provider", what, sizeof(what), &d) != 0 || sd_sub(&d, "spec", &s, pre, sizeof(pre)) != 0)
		return -1;
	struct model_provider *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return sd_oom(c);
	if (sd_text(&s, "id", SD_ID, &p->spec.id) != 0)
		goto fail;
	sd_named(&d, what, sizeof(what), "provider", p->spec.id);
	s.what = what;
	if (sd_keys(&d, known) != 0 || sd_keys(&s, spec_known) != 0)
		goto fail;
	if (hmap_get(&m->providers, p->spec.id) != NULL) {
		sd_fail(c, "%s appears twice", what);
		goto fail;
	}
	/* Its nodes are not checked: deleting a node leaves the providers listing it. */
	if (sd_text(&s, "contract_id", SD_NONEMPTY, &p->spec.contract_id) != 0 ||
	    sd_text(&s, "image", SD_NONEMPTY, &p->spec.image) != 0 || sd_strlist(&s, "nodes", &p->spec.nodes) != 0 ||
	    sd_int(&d, "created_ms", 0, SD_MS_MAX, &p->created_ms) != 0)
		goto fail;
	if (hmap_put(&m->providers, p->spec.id, p) != 0) {
		sd_oom(c);
		goto fail;
	}
	return 0;
fail:
	model_provider_free(p);
	return -1;
}

/* names: "actor \x1f contract \x1f link_name" of every link restored so far, to
 * refuse two links apply would not have made (strings owned by the caller). */
static int restore_link(struct sd_ctx *c, struct model *m, const json_t *o, size_t i, struct hmap *names)
{
	static const char *const known[] = {"spec", "created_ms", NULL};
	static const char *const spec_known[] = {"id",	       "actor_id",   "provider_id",
						 "contract_id", "link_name",  "values",
						 "timeout_ms",  "retry_count", "retry_delay_ms",
						 NULL};
	char what[WHAT_LEN], pre[32];
	struct sd d, s;
	if (sd_elem(c, o, i, "link", what, sizeof(what), &d) != 0 || sd_sub(&d, "spec", &s, pre, sizeof(pre)) != 0)
		return -1;
	struct model_link *l = calloc(1, sizeof(*l));
	if (l == NULL)
		return sd_oom(c);
	struct link_spec *ls = &l->spec;
	char *name = NULL;
	if (sd_text(&s, "id", SD_ID, &ls->id) != 0)
		goto fail;
	sd_named(&d, what, sizeof(what), "link", ls->id);
	s.what = what;
	if (sd_keys(&d, known) != 0 || sd_keys(&s, spec_known) != 0)
		goto fail;
	if (hmap_get(&m->links, ls->id) != NULL) {
		sd_fail(c, "%s appears twice", what);
		goto fail;
	}
	if (sd_text(&s, "actor_id", SD_ID, &ls->actor_id) != 0 || sd_text(&s, "provider_id", SD_ID, &ls->provider_id) != 0 ||
	    sd_text(&s, "contract_id", SD_NONEMPTY, &ls->contract_id) != 0 ||
	    sd_text(&s, "link_name", SD_NONEMPTY, &ls->link_name) != 0 || sd_kvlist(&s, "values", &ls->values) != 0 ||
	    sd_int(&s, "timeout_ms", 0, SD_INT_MAX, &ls->timeout_ms) != 0 ||
	    sd_int(&s, "retry_count", 0, SD_INT_MAX, &ls->retry_count) != 0 ||
	    sd_int(&s, "retry_delay_ms", 0, SD_INT_MAX, &ls->retry_delay_ms) != 0 ||
	    sd_int(&d, "created_ms", 0, SD_MS_MAX, &l->created_ms) != 0)
		goto fail;
	/* A link goes with its actor and keeps its provider; it serves the provider's contract. */
	const struct model_provider *p = hmap_get(&m->providers, ls->provider_id);
	if (model_actor_get(m, ls->actor_id) == NULL) {
		sd_fail(c, "%s belongs to actor '%s', which the snapshot does not hold", what, ls->actor_id);
		goto fail;
	}
	if (p == NULL) {
		sd_fail(c, "%s uses provider '%s', which the snapshot does not hold", what, ls->provider_id);
		goto fail;
	}
	if (strcmp(p->spec.contract_id, ls->contract_id) != 0) {
		sd_fail(c, "%s is for contract '%.128s' but provider '%s' serves '%.128s'", what, ls->contract_id,
			p->spec.id, p->spec.contract_id);
		goto fail;
	}
	size_t na = strlen(ls->actor_id), nc = strlen(ls->contract_id), nn = strlen(ls->link_name);
	if ((name = malloc(na + nc + nn + 3)) == NULL) {
		sd_oom(c);
		goto fail;
	}
	snprintf(name, na + nc + nn + 3, "%s\x1f%s\x1f%s", ls->actor_id, ls->contract_id, ls->link_name);
	if (hmap_get(names, name) != NULL) {
		sd_fail(c, "%s: actor '%s' has another %.128s link named '%.128s'", what, ls->actor_id, ls->contract_id,
			ls->link_name);
		goto fail;
	}
	if (hmap_put(names, name, name) != 0 || hmap_put(&m->links, ls->id, l) != 0) {
		hmap_del(names, name);
		sd_oom(c);
		goto fail;
	}
	return 0;
fail:
	free(name);
	model_link_free(l);
	return -1;
}

static void free_names(struct hmap *names)
{
	size_t pos = 0;
	void *v;
	while ((v = hmap_next(names, &pos)) != NULL)
		free(v);
	hmap_release(names);
}

/* ---- decoding: the document ---------------------------------------------------
 *
 * The document is read as a stream: its top-level fields one by one and each
 * element of its arrays parsed, restored and freed on its own, so restoring
 * never holds a JSON tree of the whole model (several times the snapshot's size,
 * and heap the process keeps: 400 MB at 100,000 actors). That needs the order
 * writers use: the scalars first, then the arrays in the order below (actors
 * after the nodes they are placed on, links after their actors and providers). */

/* "idem", "members" and "commands" are optional (older snapshots lack them). */
enum root_field {
	F_V,
	F_INDEX,
	F_EVENT_SEQ,
	F_RR_CURSOR,
	F_NODES,
	F_ACTORS,
	F_PROVIDERS,
	F_LINKS,
	F_POLICIES,
	F_IDEM,
	F_MEMBERS,
	F_COMMANDS,
	F_FAILOVERS,
	F_COUNT
};
#define F_REQUIRED_END F_IDEM
static const char *const root_names[F_COUNT] = {"v",	"index", "event_seq", "rr_cursor", "nodes",  "actors",
						"providers", "links", "policies",  "idem",	   "members", "commands", "failovers"};
static const char *const elem_kind[F_COUNT] = {[F_NODES] = "node",	   [F_ACTORS] = "actor",
					       [F_PROVIDERS] = "provider", [F_LINKS] = "link",
					       [F_POLICIES] = "policy",	   [F_IDEM] = "idempotency key",
					       [F_MEMBERS] = "member", [F_COMMANDS] = "command", [F_FAILOVERS] = "failover"};

struct sd_stream {
	struct sd_ctx *c;
	struct model *m;
	const char *p;
	size_t len, pos;
	int64_t version;
	struct hmap link_names; /* see restore_link */
	int64_t idem_at;        /* the previous key's time: they come oldest first */
};

/* {"key", "fp": 16 hex digits, "id", "index", "at"}: an idempotency key applied. */
static int restore_idem(struct sd_stream *st, const json_t *o, size_t i)
{
	static const char *const known[] = {"key", "fp", "id", "index", "at", NULL};
	char what[WHAT_LEN];
	struct sd d;
	char *key = NULL, *fp = NULL, *id = NULL;
	int64_t index = 0, at = 0;
	int rc = -1;
	if (sd_elem(st->c, o, i, "idempotency key", what, sizeof(what), &d) != 0 || sd_keys(&d, known) != 0 ||
	    sd_text(&d, "key", SD_NONEMPTY, &key) != 0 || sd_text(&d, "fp", SD_NONEMPTY, &fp) != 0 ||
	    sd_text(&d, "id", SD_ANY, &id) != 0 || sd_int(&d, "index", 1, SD_INT_MAX, &index) != 0 ||
	    sd_int(&d, "at", INT64_MIN, INT64_MAX, &at) != 0)
		goto out;
	char *end;
	unsigned long long f = strtoull(fp, &end, 16);
	if (strlen(fp) != 16 || *end != '\0')
		sd_fail(st->c, "%s: field 'fp' must be 16 hex digits", what);
	else if (strlen(id) > SPEC_ID_MAX)
		sd_fail(st->c, "%s: field 'id' is longer than an id", what);
	else if (i > 0 && at < st->idem_at)
		sd_fail(st->c, "%s: older than the key before it (they come oldest first)", what);
	else if (model_idem_get(st->m, key) != NULL)
		sd_fail(st->c, "%s: key '%.60s' appears twice", what, key);
	else {
		model_idem_put(st->m, key, f, id, (uint64_t)index, at);
		st->idem_at = at;
		rc = 0;
	}
out:
	free(key);
	free(fp);
	free(id);
	return rc;
}

/* {"id", "api_url"}: a replica's REST API URL. */
static int restore_member(struct sd_stream *st, const json_t *o, size_t i)
{
	static const char *const known[] = {"id", "api_url", NULL};
	char what[WHAT_LEN];
	struct sd d;
	char *url = NULL;
	int64_t id = 0;
	int rc = -1;
	if (sd_elem(st->c, o, i, "member", what, sizeof(what), &d) != 0 || sd_keys(&d, known) != 0 ||
	    sd_int(&d, "id", 1, SD_INT_MAX, &id) != 0 || sd_text(&d, "api_url", SD_NONEMPTY, &url) != 0)
		goto out;
	if (model_member_url(st->m, (uint64_t)id) != NULL)
		sd_fail(st->c, "%s: server %lld appears twice", what, (long long)id);
	else if (model_member_set(st->m, (uint64_t)id, url) != 0)
		sd_oom(st->c);
	else
		rc = 0;
out:
	free(url);
	return rc;
}

static int name_parse(const char *s, const char *(*name)(int), int n)
{
	for (int i = 0; i < n; i++)
		if (s && strcmp(s, name(i)) == 0)
			return i;
	return -1;
}

static const char *type_name_i(int i)
{
	return model_cmd_type_name((enum cmd_type)i);
}

static const char *status_name_i(int i)
{
	return model_cmd_status_name((enum cmd_status)i);
}

/* A command of the outbox (snap_command's fields). */
static int restore_command(struct sd_stream *st, const json_t *o, size_t i)
{
	static const char *const known[] = {"id",	   "type",	 "node",	"actor_id",
					    "instance",	   "term",	 "generation",	"config_version",
					    "payload",	   "status",	 "attempts",	"created_ms",
					    "updated_ms",  "published_ms", "acked_ms",	"applied_version",
					    "error",	   NULL};
	char what[WHAT_LEN];
	struct sd d;
	struct model_command *c = calloc(1, sizeof(*c));
	char *type = NULL, *status = NULL;
	int64_t term = 0, gen = 0;
	if (c == NULL)
		return sd_oom(st->c);
	int rc = -1;
	if (sd_elem(st->c, o, i, "command", what, sizeof(what), &d) != 0 || sd_keys(&d, known) != 0 ||
	    sd_text(&d, "id", SD_NONEMPTY, &c->id) != 0 || sd_text(&d, "type", SD_NONEMPTY, &type) != 0 ||
	    sd_text(&d, "node", SD_NONEMPTY, &c->node) != 0 ||
	    sd_text_opt(&d, "actor_id", SD_NONEMPTY, &c->actor_id) != 0 ||
	    sd_int(&d, "term", 0, SD_INT_MAX, &term) != 0 || sd_int(&d, "generation", 0, SD_INT_MAX, &gen) != 0 ||
	    sd_int(&d, "config_version", 0, SD_INT_MAX, &c->config_version) != 0 ||
	    sd_text(&d, "status", SD_NONEMPTY, &status) != 0 ||
	    sd_int(&d, "attempts", 0, SD_INT_MAX, &c->attempts) != 0 ||
	    sd_int(&d, "created_ms", 0, SD_MS_MAX, &c->created_ms) != 0 ||
	    sd_int(&d, "updated_ms", 0, SD_MS_MAX, &c->updated_ms) != 0 ||
	    sd_int(&d, "published_ms", 0, SD_MS_MAX, &c->published_ms) != 0 ||
	    sd_int(&d, "acked_ms", 0, SD_MS_MAX, &c->acked_ms) != 0 ||
	    sd_int(&d, "applied_version", 0, SD_INT_MAX, &c->applied_version) != 0 ||
	    sd_text_opt(&d, "error", SD_ANY, &c->error) != 0)
		goto out;
	c->term = (uint64_t)term;
	c->generation = (uint64_t)gen;
	if (c->actor_id && sd_int(&d, "instance", 0, SD_REPLICAS_MAX, &c->instance) != 0)
		goto out;
	int t = name_parse(type, type_name_i, CMD_TYPES), stt = name_parse(status, status_name_i, CMD_STATUSES);
	const json_t *payload = sd_get(&d, "payload");
	if (t < 0) {
		sd_fail(st->c, "%s: unknown type '%.40s'", what, type);
		goto out;
	}
	if (stt < 0) {
		sd_fail(st->c, "%s: unknown status '%.40s'", what, status);
		goto out;
	}
	if (!json_is_object(payload)) {
		sd_fail(st->c, "%s: field 'payload' must be an object", what);
		goto out;
	}
	c->type = (enum cmd_type)t;
	c->status = (enum cmd_status)stt;
	if ((c->payload = json_dumps(payload, JSON_COMPACT)) == NULL) {
		sd_oom(st->c);
		goto out;
	}
	struct model_command *packed = model_cmd_pack(c);
	if (packed == NULL) {
		sd_oom(st->c);
		goto out;
	}
	if (model_cmd_restore(st->m, packed) != 0) {
		sd_fail(st->c, "%s: command '%.60s' appears twice", what, c->id);
		model_cmd_free(packed);
		goto out;
	}
	rc = 0;
out:
	if (c) {
		free(c->id);
		free(c->node);
		free(c->actor_id);
		free(c->payload);
		free(c->error);
		free(c);
	}
	free(type);
	free(status);
	return rc;
}

static const char *fo_status_i(int i)
{
	return model_fo_status_name((enum fo_status)i);
}

static const char *fo_step_i(int i)
{
	return model_fo_step_name((enum fo_step)i);
}

/* A failover (snap_failover's fields). */
static int restore_failover(struct sd_stream *st, const json_t *o, size_t i)
{
	static const char *const known[] = {"id",	   "node",	  "assign",	"moved", "detected_ms",
					    "started_ms", "finished_ms", "status",	"error", NULL};
	static const char *const aknown[] = {"actor_id", "instance", "to_node", "step", NULL};
	char what[WHAT_LEN];
	struct sd d;
	struct model_failover *f = calloc(1, sizeof(*f));
	char *status = NULL;
	int64_t moved = 0;
	int rc = -1;
	if (f == NULL)
		return sd_oom(st->c);
	if (sd_elem(st->c, o, i, "failover", what, sizeof(what), &d) != 0 || sd_keys(&d, known) != 0 ||
	    sd_text(&d, "id", SD_NONEMPTY, &f->id) != 0 || sd_text(&d, "node", SD_NONEMPTY, &f->node) != 0 ||
	    sd_int(&d, "moved", 0, SD_INT_MAX, &moved) != 0 ||
	    sd_int(&d, "detected_ms", 0, SD_MS_MAX, &f->detected_ms) != 0 ||
	    sd_int(&d, "started_ms", 0, SD_MS_MAX, &f->started_ms) != 0 ||
	    sd_int(&d, "finished_ms", 0, SD_MS_MAX, &f->finished_ms) != 0 ||
	    sd_text(&d, "status", SD_NONEMPTY, &status) != 0 || sd_text_opt(&d, "error", SD_ANY, &f->error) != 0)
		goto out;
	int stt = name_parse(status, fo_status_i, FO_STATUSES);
	const json_t *arr = sd_get(&d, "assign");
	if (stt < 0 || !json_is_array(arr) || (size_t)moved > json_array_size(arr)) {
		sd_fail(st->c, "%s: a bad status, assign or moved", what);
		goto out;
	}
	f->status = (enum fo_status)stt;
	f->nmoved = (size_t)moved;
	size_t n = json_array_size(arr);
	if (n > 0 && (f->assign = calloc(n, sizeof(*f->assign))) == NULL) {
		sd_oom(st->c);
		goto out;
	}
	for (size_t k = 0; k < n; k++) {
		struct sd ad;
		char awhat[WHAT_LEN + 32];
		char *step = NULL;
		snprintf(awhat, sizeof(awhat), "%s.assign[%zu]", what, k);
		ad = d;
		ad.o = json_array_get(arr, k);
		ad.what = awhat;
		struct model_fo_assign *a = &f->assign[f->nassign++];
		if (!json_is_object(ad.o) || sd_keys(&ad, aknown) != 0 ||
		    sd_text(&ad, "actor_id", SD_NONEMPTY, &a->actor_id) != 0 ||
		    sd_int(&ad, "instance", 0, SD_REPLICAS_MAX, &a->instance) != 0 ||
		    sd_text_opt(&ad, "to_node", SD_NONEMPTY, &a->to_node) != 0 ||
		    sd_text(&ad, "step", SD_NONEMPTY, &step) != 0) {
			free(step);
			if (!json_is_object(ad.o))
				sd_fail(st->c, "%s: not an object", awhat);
			goto out;
		}
		int sp = name_parse(step, fo_step_i, FO_SUPERSEDED + 1);
		free(step);
		if (sp < 0 || (k < f->nmoved) != (a->to_node != NULL)) {
			sd_fail(st->c, "%s: a bad step, or a target where there is none", awhat);
			goto out;
		}
		a->step = (enum fo_step)sp;
		if (k < f->nmoved && a->step == FO_WAITING)
			f->waiting++;
	}
	if (model_fo_restore(st->m, f) != 0) {
		sd_fail(st->c, "%s: failover '%.60s' appears twice", what, f->id);
		goto out;
	}
	f = NULL;
	rc = 0;
out:
	if (f)
		model_fo_free(f);
	free(status);
	return rc;
}

static void st_ws(struct sd_stream *st)
{
	while (st->pos < st->len && (st->p[st->pos] == ' ' || st->p[st->pos] == '\t' || st->p[st->pos] == '\n' ||
				     st->p[st->pos] == '\r'))
		st->pos++;
}

/* Skips blanks, then consumes ch if it is next (returns true). */
static bool st_take(struct sd_stream *st, char ch)
{
	st_ws(st);
	if (st->pos < st->len && st->p[st->pos] == ch) {
		st->pos++;
		return true;
	}
	return false;
}

static int st_expected(struct sd_stream *st, const char *what)
{
	return sd_fail(st->c, "not a snapshot: expected %s at byte %zu", what, st->pos);
}

/* One JSON value at the current position (objects without repeated keys), or
 * NULL after reporting it as `what`'s. */
static json_t *st_value(struct sd_stream *st, const char *what)
{
	json_error_t e;
	json_t *v = json_loadb(st->p + st->pos, st->len - st->pos,
			       JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK | JSON_REJECT_DUPLICATES, &e);
	if (v == NULL) {
		sd_fail(st->c, "%s is not JSON (byte %zu: %s)", what, st->pos + (size_t)e.position, e.text);
		return NULL;
	}
	st->pos += (size_t)e.position;
	return v;
}

/* A scalar field's value. */
static int st_scalar(struct sd_stream *st, enum root_field f, uint64_t *index, bool *seen)
{
	char what[32];
	snprintf(what, sizeof(what), "field '%s'", root_names[f]);
	json_t *v = st_value(st, what);
	if (v == NULL)
		return -1;
	json_t *holder = json_object();
	if (holder == NULL || json_object_set_new(holder, root_names[f], v) != 0) {
		json_decref(holder);
		return sd_oom(st->c);
	}
	struct sd d = {st->c, holder, "document", ""};
	int64_t x = 0;
	char *cursor = NULL;
	int rc = 0;
	switch (f) {
	case F_V:
		/* A newer snapshot is reported as such, whatever else it holds. */
		if (!json_is_integer(v) || json_integer_value(v) < 1)
			rc = sd_fail(st->c, "field 'v' must be a format version (an integer from 1)");
		else if (json_integer_value(v) > MODEL_SNAP_VERSION)
			rc = sd_fail_code(st->c, MODEL_SNAP_NEWER,
					  "format version %lld is newer than this build reads (%d): upgrade this replica",
					  (long long)json_integer_value(v), MODEL_SNAP_VERSION);
		else
			st->version = json_integer_value(v);
		break;
	case F_INDEX:
		if ((rc = sd_int(&d, "index", 0, SD_INT_MAX, &x)) == 0)
			*index = (uint64_t)x;
		break;
	case F_EVENT_SEQ:
		if ((rc = sd_int(&d, "event_seq", 0, SD_INT_MAX, &x)) == 0)
			st->m->event_seq = (uint64_t)x;
		break;
	case F_RR_CURSOR:
		/* It may name a node deleted since: only its size is the model's concern. */
		if ((rc = sd_text(&d, "rr_cursor", SD_ANY, &cursor)) == 0 && strlen(cursor) > SPEC_ID_MAX)
			rc = sd_fail(st->c, "field 'rr_cursor' is longer than an id");
		else if (rc == 0)
			snprintf(st->m->rr_cursor, sizeof(st->m->rr_cursor), "%s", cursor);
		free(cursor);
		break;
	default: break;
	}
	json_decref(holder);
	*seen = rc == 0;
	return rc;
}

static int st_element(struct sd_stream *st, enum root_field f, const json_t *o, size_t i)
{
	switch (f) {
	case F_NODES: return restore_node(st->c, st->m, o, i);
	case F_ACTORS: return restore_actor(st->c, st->m, o, i);
	case F_PROVIDERS: return restore_provider(st->c, st->m, o, i);
	case F_LINKS: return restore_link(st->c, st->m, o, i, &st->link_names);
	case F_POLICIES: return restore_policy(st->c, st->m, o, i, st->version);
	case F_IDEM: return restore_idem(st, o, i);
	case F_MEMBERS: return restore_member(st, o, i);
	case F_COMMANDS: return restore_command(st, o, i);
	case F_FAILOVERS: return restore_failover(st, o, i);
	default: return -1;
	}
}

/* An array field: each element parsed, restored and freed in turn. */
static int st_array(struct sd_stream *st, enum root_field f)
{
	if (!st_take(st, '['))
		return sd_fail(st->c, "field '%s' must be an array", root_names[f]);
	if (st_take(st, ']'))
		return 0;
	for (size_t i = 0;; i++) {
		char what[48];
		snprintf(what, sizeof(what), "%s #%zu", elem_kind[f], i);
		st_ws(st);
		json_t *o = st_value(st, what);
		if (o == NULL)
			return -1;
		int rc = st_element(st, f, o, i);
		json_decref(o);
		if (rc != 0)
			return -1;
		if (st_take(st, ']'))
			return 0;
		if (!st_take(st, ','))
			return st_expected(st, "',' or ']'");
	}
}

static int st_key(struct sd_stream *st, enum root_field *out)
{
	st_ws(st);
	if (st->pos >= st->len || st->p[st->pos] != '"')
		return st_expected(st, "a field name");
	json_t *k = st_value(st, "a field name");
	if (k == NULL)
		return -1;
	const char *name = json_string_value(k);
	int f = 0;
	while (f < F_COUNT && (strlen(name) != json_string_length(k) || strcmp(name, root_names[f]) != 0))
		f++;
	if (f == F_COUNT)
		sd_fail(st->c, "unknown field '%.40s'", name);
	json_decref(k);
	if (f == F_COUNT)
		return -1;
	*out = (enum root_field)f;
	return 0;
}

static int restore_stream(struct sd_stream *st, uint64_t *index)
{
	bool seen[F_COUNT] = {false};
	int last = -1;
	if (!st_take(st, '{'))
		return sd_fail(st->c, "not a snapshot (not a JSON object)");
	if (!st_take(st, '}')) {
		for (;;) {
			enum root_field f = F_V;
			if (st_key(st, &f) != 0)
				return -1;
			if (seen[f])
				return sd_fail(st->c, "field '%s' appears twice", root_names[f]);
			if ((int)f < last)
				return sd_fail(st->c,
					       "field '%s' comes after '%s' (the order is v, index, event_seq, "
					       "rr_cursor, nodes, actors, providers, links, policies, idem, members, "
					       "commands, failovers)",
					       root_names[f], root_names[last]);
			if (!st_take(st, ':'))
				return st_expected(st, "':'");
			if (f >= F_NODES && !(seen[F_EVENT_SEQ] && seen[F_RR_CURSOR]))
				return sd_fail(st->c, "field '%s' is missing before '%s'",
					       seen[F_EVENT_SEQ] ? "rr_cursor" : "event_seq", root_names[f]);
			st_ws(st);
			if ((f < F_NODES ? st_scalar(st, f, index, &seen[f]) : st_array(st, f)) != 0)
				return -1;
			seen[f] = true;
			last = (int)f;
			if (st_take(st, '}'))
				break;
			if (!st_take(st, ','))
				return st_expected(st, "',' or '}'");
		}
	}
	st_ws(st);
	if (st->pos != st->len)
		return st_expected(st, "the end");
	for (int f = F_EVENT_SEQ; f < F_REQUIRED_END; f++)
		if (!seen[f])
			return sd_fail(st->c, "field '%s' is missing", root_names[f]);
	/* Coverage and the scheduler's index, as apply leaves them. */
	size_t pos = 0;
	struct model_node *n;
	while ((n = hmap_next(&st->m->nodes, &pos)) != NULL)
		if (policy_refresh_node(st->m, n) != 0 || sched_index_update(&st->m->sched, n) != 0)
			return sd_oom(st->c);
	return 0;
}

int model_restore_text(struct model *m, const void *buf, size_t len, uint64_t *index, char *err, size_t errlen)
{
	struct sd_ctx c = {err, errlen, MODEL_SNAP_OK};
	struct sd_stream st = {&c, m, buf, len, 0, 1, {0}, 0};
	uint64_t idx = 0;
	if (errlen > 0)
		err[0] = '\0';
	hmap_init(&st.link_names);
	int rc = restore_stream(&st, &idx);
	free_names(&st.link_names);
	if (rc == 0) {
		if (index != NULL)
			*index = idx;
		return MODEL_SNAP_OK;
	}
	/* Whatever was restored goes: the caller's model is empty again. */
	model_release(m);
	model_init(m);
	return c.code != MODEL_SNAP_OK ? (int)c.code : MODEL_SNAP_MALFORMED;
}

int model_restore(struct model *m, const json_t *snap, char *err, size_t errlen)
{
	if (!json_is_object(snap)) {
		snprintf(err, errlen, "snapshot: not a snapshot (not a JSON object)");
		return MODEL_SNAP_MALFORMED;
	}
	/* As text, its fields in the writers' order (a tree keeps no order of its
	 * own that tests could rely on); unknown ones last, to be refused. */
	json_t *ordered = json_object();
	const char *key;
	json_t *v;
	bool bad = ordered == NULL;
	for (int f = 0; f < F_COUNT && !bad; f++)
		if ((v = json_object_get(snap, root_names[f])) != NULL)
			bad = json_object_set(ordered, root_names[f], v) != 0;
	json_object_foreach((json_t *)snap, key, v)
	{
		if (!bad && json_object_get(ordered, key) == NULL)
			bad = json_object_set(ordered, key, v) != 0;
	}
	char *text = bad ? NULL : json_dumps(ordered, JSON_COMPACT);
	json_decref(ordered);
	if (text == NULL) {
		snprintf(err, errlen, "snapshot: out of memory");
		return MODEL_SNAP_NOMEM;
	}
	int rc = model_restore_text(m, text, strlen(text), NULL, err, errlen);
	free(text);
	return rc;
}
