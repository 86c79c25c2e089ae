/* entry — see entry.h; the format is docs/entries.md. */
#include "entry.h"

#include <raft.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jw.h"
#include "log.h"

static const char *const entry_names[] = {
	[ENTRY_NODE_PUT] = "node_put",
	[ENTRY_NODE_FLAGS] = "node_flags",
	[ENTRY_NODE_DRAIN] = "node_drain",
	[ENTRY_NODE_DELETE] = "node_delete",
	[ENTRY_ACTOR_CREATE] = "actor_create",
	[ENTRY_ACTOR_UPDATE] = "actor_update",
	[ENTRY_ACTOR_DELETE] = "actor_delete",
	[ENTRY_PROVIDER_CREATE] = "provider_create",
	[ENTRY_PROVIDER_DELETE] = "provider_delete",
	[ENTRY_LINK_CREATE] = "link_create",
	[ENTRY_LINK_DELETE] = "link_delete",
	[ENTRY_POLICY_PUT] = "policy_put",
	[ENTRY_MEMBER_PUT] = "member_put",
	[ENTRY_MEMBER_DELETE] = "member_delete",
	[ENTRY_NODE_REPORT] = "node_report",
	[ENTRY_COMMAND_UPDATE] = "command_update",
	[ENTRY_FAILOVER] = "failover",
	[ENTRY_SNAPSHOT_PUT] = "snapshot_put",
	[ENTRY_ACTOR_MIGRATE] = "actor_migrate",
	[ENTRY_RECONCILE] = "reconcile",
};
#define ENTRY_NOPS (sizeof(entry_names) / sizeof(entry_names[0]))

const char *entry_op_name(enum entry_op op)
{
	if ((size_t)op < ENTRY_NOPS && entry_names[op])
		return entry_names[op];
	return "unknown";
}

static const char *const entry_errs[] = {
	[ENTRY_OK] = "ok",
	[ENTRY_E_MALFORMED] = "malformed entry",
	[ENTRY_E_VERSION] = "entry format version newer than this build reads",
	[ENTRY_E_OP] = "entry op unknown to this build",
	[ENTRY_E_NOMEM] = "out of memory",
};

const char *entry_strerror(int code)
{
	if (code >= 0 && (size_t)code < sizeof(entry_errs) / sizeof(entry_errs[0]) && entry_errs[code])
		return entry_errs[code];
	return "unknown";
}

/* ---- the JSON parser's allocations ----------------------------------------
 *
 * jansson's parser does not report a failed allocation reliably: the lexer drops
 * a byte it cannot save and goes on, and the error it gives, if any, reads like
 * malformed input. A replica that took that for a malformed entry would skip an
 * entry the others applied. So while an entry is parsed, a failed allocation
 * stops the process here (the restart replays the entry); at any other time the
 * allocator is plain malloc. It is installed before main(), while no thread can
 * be using jansson, and frees with free() as jansson's default does. */

static _Thread_local bool entry_parsing;

static void *entry_json_malloc(size_t n)
{
	void *p = malloc(n);
	if (p == NULL && entry_parsing) {
		log_error("out of memory (%zu bytes) decoding a raft log entry; exiting so a restart replays it",
			  n);
		abort();
	}
	return p;
}

__attribute__((constructor)) static void entry_json_init(void)
{
	json_set_alloc_funcs(entry_json_malloc, free);
}

/* ---- writing ------------------------------------------------------------- */

/* A string the format needs: NULL makes the text unusable. */
static void wr_str(struct jw *w, const char *key, const char *s)
{
	jw_key(w, key);
	if (s == NULL)
		w->oom = true;
	else
		jw_str(w, s);
}

static void wr_opt_str(struct jw *w, const char *key, const char *s)
{
	if (s != NULL) {
		jw_key(w, key);
		jw_str(w, s);
	}
}

static void wr_int(struct jw *w, const char *key, int64_t v)
{
	jw_key(w, key);
	jw_int(w, v);
}

static void wr_strs(struct jw *w, const char *key, char *const *items, size_t n)
{
	jw_key(w, key);
	jw_arr(w);
	for (size_t i = 0; i < n; i++) {
		if (items[i] == NULL)
			w->oom = true;
		else
			jw_str(w, items[i]);
	}
	jw_arr_end(w);
}

static void wr_kvs(struct jw *w, const char *key, const struct kvlist *l)
{
	jw_key(w, key);
	jw_obj(w);
	for (size_t i = 0; i < l->n; i++) {
		if (l->items[i].key == NULL)
			w->oom = true;
		else
			wr_str(w, l->items[i].key, l->items[i].value);
	}
	jw_obj_end(w);
}

void entry_node_write(struct jw *w, const struct node_spec *s)
{
	jw_obj(w);
	wr_str(w, "id", s->id);
	wr_str(w, "region", s->region);
	wr_kvs(w, "labels", &s->labels);
	wr_int(w, "cpu_capacity", s->cpu_capacity);
	wr_int(w, "memory_mb", s->memory_mb);
	wr_int(w, "cpu_used", s->cpu_used);
	wr_int(w, "memory_used_mb", s->memory_used_mb);
	wr_int(w, "actor_count", s->actor_count);
	jw_obj_end(w);
}

void entry_actor_write(struct jw *w, const struct actor_spec *s)
{
	jw_obj(w);
	wr_opt_str(w, "id", s->id);
	wr_opt_str(w, "name", s->name);
	wr_str(w, "module", s->module);
	wr_int(w, "cpu_required", s->cpu_required);
	wr_int(w, "memory_required_mb", s->memory_required_mb);
	wr_str(w, "preferred_region", s->preferred_region ? s->preferred_region : "");
	wr_kvs(w, "constraints", &s->constraints);
	wr_int(w, "priority", s->priority);
	wr_int(w, "max_latency_ms", s->max_latency_ms);
	wr_int(w, "replicas", s->replicas);
	wr_str(w, "strategy", s->strategy == STRATEGY_ROUND_ROBIN ? "round_robin" : "resources");
	wr_strs(w, "contracts", s->contracts.items, s->contracts.n);
	jw_obj_end(w);
}

void entry_patch_write(struct jw *w, const struct actor_patch *p)
{
	jw_obj(w);
	if (p->has_replicas)
		wr_int(w, "replicas", p->replicas);
	if (p->has_cpu_required)
		wr_int(w, "cpu_required", p->cpu_required);
	if (p->has_memory_required_mb)
		wr_int(w, "memory_required_mb", p->memory_required_mb);
	jw_obj_end(w);
}

void entry_provider_write(struct jw *w, const struct provider_spec *s)
{
	jw_obj(w);
	wr_opt_str(w, "id", s->id);
	wr_str(w, "contract_id", s->contract_id);
	wr_str(w, "image", s->image);
	wr_strs(w, "nodes", s->nodes.items, s->nodes.n);
	jw_obj_end(w);
}

void entry_link_write(struct jw *w, const struct link_spec *s)
{
	jw_obj(w);
	wr_opt_str(w, "id", s->id);
	wr_str(w, "actor_id", s->actor_id);
	wr_str(w, "provider_id", s->provider_id);
	wr_str(w, "contract_id", s->contract_id);
	wr_str(w, "link_name", s->link_name ? s->link_name : "default");
	wr_kvs(w, "values", &s->values);
	wr_int(w, "timeout_ms", s->timeout_ms);
	wr_int(w, "retry_count", s->retry_count);
	wr_int(w, "retry_delay_ms", s->retry_delay_ms);
	jw_obj_end(w);
}

void entry_policy_write(struct jw *w, const struct policy_spec *s)
{
	jw_obj(w);
	wr_opt_str(w, "policy_id", s->policy_id);
	wr_strs(w, "allowed_contracts", s->allowed_contracts.items, s->allowed_contracts.n);
	wr_strs(w, "denied_contracts", s->denied_contracts.items, s->denied_contracts.n);
	wr_int(w, "max_actor_memory_mb", s->max_actor_memory_mb);
	wr_strs(w, "network_restrictions", s->network_restrictions.items, s->network_restrictions.n);
	jw_key(w, "selector");
	jw_obj(w);
	wr_strs(w, "regions", s->sel_regions.items, s->sel_regions.n);
	wr_kvs(w, "labels", &s->sel_labels);
	jw_obj_end(w);
	jw_obj_end(w);
}

/* key: [{actor_id, instance}] (none written when n is 0). */
static void refs_write(struct jw *w, const char *key, const struct entry_move *refs, size_t n)
{
	if (n == 0)
		return;
	jw_key(w, key);
	jw_arr(w);
	for (size_t i = 0; i < n; i++) {
		jw_obj(w);
		wr_str(w, "actor_id", refs[i].actor_id);
		wr_int(w, "instance", refs[i].instance);
		jw_obj_end(w);
	}
	jw_arr_end(w);
}

int entry_encode(const struct entry *e, void **buf, size_t *len)
{
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	wr_int(&w, "v", e->version > 3 ? e->version : e->term ? 3 : e->idem_key ? 2 : 1);
	if (e->term) {
		jw_key(&w, "term");
		jw_uint(&w, e->term);
	}
	wr_str(&w, "op", entry_op_name(e->op));
	wr_int(&w, "at", e->at_ms);
	wr_opt_str(&w, "who", e->who);
	wr_opt_str(&w, "target", e->target);
	if (e->flag)
		wr_int(&w, "flag", e->flag);
	switch (e->op) {
	case ENTRY_NODE_PUT:
		jw_key(&w, "node");
		entry_node_write(&w, &e->node);
		break;
	case ENTRY_ACTOR_CREATE:
		jw_key(&w, "actor");
		entry_actor_write(&w, &e->actor);
		break;
	case ENTRY_ACTOR_UPDATE:
		jw_key(&w, "patch");
		entry_patch_write(&w, &e->patch);
		break;
	case ENTRY_PROVIDER_CREATE:
		jw_key(&w, "provider");
		entry_provider_write(&w, &e->provider);
		break;
	case ENTRY_LINK_CREATE:
		jw_key(&w, "link");
		entry_link_write(&w, &e->link);
		break;
	case ENTRY_POLICY_PUT:
		jw_key(&w, "policy");
		entry_policy_write(&w, &e->policy);
		break;
	case ENTRY_MEMBER_PUT:
	case ENTRY_MEMBER_DELETE:
		jw_key(&w, "member");
		jw_obj(&w);
		jw_key(&w, "id");
		jw_uint(&w, e->member_id);
		if (e->op == ENTRY_MEMBER_PUT)
			wr_str(&w, "api_url", e->api_url);
		jw_obj_end(&w);
		break;
	default:
		break;
	}
	if (e->nplacements)
		wr_strs(&w, "placements", e->placements, e->nplacements);
	wr_opt_str(&w, "rr_cursor", e->rr_cursor);
	if (e->idem_key) {
		char fp[24];
		snprintf(fp, sizeof(fp), "%016llx", (unsigned long long)e->idem_fp);
		jw_key(&w, "idem");
		jw_obj(&w);
		wr_str(&w, "key", e->idem_key);
		wr_str(&w, "fp", fp);
		jw_obj_end(&w);
	}
	if (e->nreports) {
		jw_key(&w, "reports");
		jw_arr(&w);
		for (size_t i = 0; i < e->nreports; i++) {
			const struct entry_report *rp = &e->reports[i];
			jw_obj(&w);
			wr_str(&w, "node_id", rp->node_id);
			wr_int(&w, "status", rp->status);
			wr_int(&w, "error_count", rp->error_count);
			wr_int(&w, "cpu_measured", rp->cpu_measured);
			wr_int(&w, "memory_measured_mb", rp->memory_measured_mb);
			wr_int(&w, "policy_version", rp->policy_version);
			wr_int(&w, "last_heartbeat_ms", rp->last_heartbeat_ms);
			wr_opt_str(&w, "agent_version", rp->agent_version);
			jw_obj_end(&w);
		}
		jw_arr_end(&w);
	}
	if (e->nupdates) {
		jw_key(&w, "updates");
		jw_arr(&w);
		for (size_t i = 0; i < e->nupdates; i++) {
			const struct entry_cmd_update *u = &e->updates[i];
			jw_obj(&w);
			wr_str(&w, "command_id", u->command_id);
			wr_int(&w, "status", u->status);
			wr_int(&w, "attempts", u->attempts);
			wr_opt_str(&w, "error", u->error);
			wr_int(&w, "applied_version", u->applied_version);
			jw_obj_end(&w);
		}
		jw_arr_end(&w);
	}
	refs_write(&w, "unplaced", e->unplaced, e->nunplaced);
	refs_write(&w, "starts", e->starts, e->nstarts);
	refs_write(&w, "stops", e->stops, e->nstops);
	if (e->op == ENTRY_FAILOVER)
		wr_int(&w, "detected_at", e->detected_ms);
	if (e->op == ENTRY_SNAPSHOT_PUT) {
		jw_key(&w, "snap");
		jw_obj(&w);
		wr_str(&w, "node", e->snap.node);
		wr_int(&w, "state_version", e->snap.state_version);
		wr_str(&w, "data", e->snap.data);
		wr_opt_str(&w, "migration_id", e->snap.migration_id);
		jw_obj_end(&w);
	}
	if (e->nmoves) {
		jw_key(&w, "moves");
		jw_arr(&w);
		for (size_t i = 0; i < e->nmoves; i++) {
			jw_obj(&w);
			wr_str(&w, "actor_id", e->moves[i].actor_id);
			wr_int(&w, "instance", e->moves[i].instance);
			wr_str(&w, "to_node", e->moves[i].to_node);
			jw_obj_end(&w);
		}
		jw_arr_end(&w);
	}
	jw_obj_end(&w);
	size_t n;
	char *s = jw_take(&w, &n);
	if (s == NULL)
		return -1;
	/* raft 0.15's segment writer requires entry lengths that are multiples of 8
	 * (it asserts it only in debug builds and otherwise writes a segment it
	 * cannot read back): pad with spaces, which JSON ignores. */
	size_t padded = (n + 7) & ~(size_t)7;
	char *b = raft_malloc(padded);
	if (b == NULL) {
		free(s);
		return -1;
	}
	memcpy(b, s, n);
	memset(b + n, ' ', padded - n);
	free(s);
	*buf = b;
	*len = padded;
	return 0;
}

/* ---- reading ------------------------------------------------------------- */

/* A reading in progress: the first failure's code and message. */
struct rd {
	char *err;
	size_t errlen;
	const char *what; /* the object being read ("node", "policy.selector"); NULL: the entry */
	int code;
};

/* Records the first failure (key: the field it concerns, NULL for the object
 * itself) and returns -1. The message goes to the log: bytes outside printable
 * ASCII (jansson quotes input in its errors) become '?'. */
__attribute__((format(printf, 4, 5))) static int rd_fail(struct rd *r, int code, const char *key, const char *fmt,
							  ...)
{
	if (r->code != 0)
		return -1;
	r->code = code;
	if (r->errlen == 0)
		return -1;
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(r->err, r->errlen, "%s%s%s%s%s", r->what ? r->what : "", r->what && key ? "." : "",
		 key ? key : "", r->what || key ? ": " : "", msg);
	for (char *p = r->err; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			*p = '?';
	return -1;
}

static int rd_nomem(struct rd *r)
{
	return rd_fail(r, ENTRY_E_NOMEM, NULL, "out of memory");
}

/* A JSON string's bytes, or NULL when it is not a string or holds a NUL (only
 * possible in trees not parsed by entry_decode). */
static const char *rd_text(const json_t *v)
{
	const char *s = json_string_value(v);
	return s && strlen(s) == json_string_length(v) ? s : NULL;
}

/* Absent: 0, *out untouched (NULL), or a failure when required. */
static int rd_str(struct rd *r, const json_t *o, const char *key, bool required, char **out)
{
	const json_t *v = json_object_get(o, key);
	if (v == NULL)
		return required ? rd_fail(r, ENTRY_E_MALFORMED, key, "missing") : 0;
	const char *s = rd_text(v);
	if (s == NULL)
		return rd_fail(r, ENTRY_E_MALFORMED, key, "must be a string without NUL");
	if ((*out = strdup(s)) == NULL)
		return rd_nomem(r);
	return 0;
}

/* Absent: 0 with *out untouched (its default). */
static int rd_int(struct rd *r, const json_t *o, const char *key, bool required, int64_t min, int64_t max,
		  int64_t *out, bool *present)
{
	const json_t *v = json_object_get(o, key);
	if (present)
		*present = v != NULL;
	if (v == NULL)
		return required ? rd_fail(r, ENTRY_E_MALFORMED, key, "missing") : 0;
	json_int_t x = json_integer_value(v);
	if (!json_is_integer(v) || x < min || x > max)
		return rd_fail(r, ENTRY_E_MALFORMED, key, "must be an integer from %lld to %lld", (long long)min,
			       (long long)max);
	*out = (int64_t)x;
	return 0;
}

static int rd_qty(struct rd *r, const json_t *o, const char *key, bool required, int64_t *out, bool *present)
{
	return rd_int(r, o, key, required, 0, ENTRY_QTY_MAX, out, present);
}

/* An array of strings, in its order (absent: none). *n counts the strings
 * copied so far, so a partial array frees cleanly. */
static int rd_strs(struct rd *r, const json_t *o, const char *key, char ***items, size_t *n)
{
	const json_t *v = json_object_get(o, key);
	if (v == NULL)
		return 0;
	if (!json_is_array(v))
		return rd_fail(r, ENTRY_E_MALFORMED, key, "must be an array of strings");
	size_t cnt = json_array_size(v);
	if (cnt == 0)
		return 0;
	if ((*items = calloc(cnt, sizeof(char *))) == NULL)
		return rd_nomem(r);
	for (size_t i = 0; i < cnt; i++) {
		const char *s = rd_text(json_array_get(v, i));
		if (s == NULL)
			return rd_fail(r, ENTRY_E_MALFORMED, key, "entry %zu is not a string without NUL", i);
		if (((*items)[i] = strdup(s)) == NULL)
			return rd_nomem(r);
		*n = i + 1;
	}
	return 0;
}

static int rd_cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A set of strings: sorted, each once, as the API makes them and snapshots
 * hold them, so a model applied from the log and one restored from a snapshot
 * are the same whatever order or repeats an entry carried. */
static int rd_strlist(struct rd *r, const json_t *o, const char *key, struct strlist *out)
{
	if (rd_strs(r, o, key, &out->items, &out->n) != 0)
		return -1;
	if (out->n > 1)
		qsort(out->items, out->n, sizeof(*out->items), rd_cmp_str);
	size_t w = 0;
	for (size_t i = 0; i < out->n; i++) {
		if (w > 0 && strcmp(out->items[w - 1], out->items[i]) == 0) {
			free(out->items[i]);
			continue;
		}
		out->items[w++] = out->items[i];
	}
	out->n = w;
	return 0;
}

static int rd_cmp_kv(const void *a, const void *b)
{
	return strcmp(((const struct kv *)a)->key, ((const struct kv *)b)->key);
}

/* An object of strings (absent: empty), sorted by key: the same list whatever
 * order the JSON library iterates in. */
static int rd_kvlist(struct rd *r, const json_t *o, const char *key, struct kvlist *out)
{
	json_t *v = json_object_get(o, key);
	if (v == NULL)
		return 0;
	if (!json_is_object(v))
		return rd_fail(r, ENTRY_E_MALFORMED, key, "must be an object of strings");
	size_t cnt = json_object_size(v);
	if (cnt == 0)
		return 0;
	if ((out->items = calloc(cnt, sizeof(*out->items))) == NULL)
		return rd_nomem(r);
	const char *k;
	size_t klen;
	json_t *e;
	json_object_keylen_foreach(v, k, klen, e) {
		const char *s = rd_text(e);
		if (klen != strlen(k) || s == NULL)
			return rd_fail(r, ENTRY_E_MALFORMED, key, "must be an object of strings without NUL");
		struct kv *kv = &out->items[out->n++]; /* counted first: free releases a half-made pair */
		if ((kv->key = strdup(k)) == NULL || (kv->value = strdup(s)) == NULL)
			return rd_nomem(r);
	}
	qsort(out->items, out->n, sizeof(*out->items), rd_cmp_kv);
	return 0;
}

static int rd_object(struct rd *r, const json_t *j)
{
	if (!json_is_object(j))
		return rd_fail(r, ENTRY_E_MALFORMED, NULL, "must be an object");
	return 0;
}

/* The spec readers fill s (which owns nothing before) field by field; on failure
 * s may hold some fields and the caller frees it. The defaults of absent optional
 * fields are those the API's decoders gave when they wrote the entry. */

static int node_read(struct rd *r, const json_t *j, struct node_spec *s)
{
	r->what = "node";
	return rd_object(r, j) || rd_str(r, j, "id", true, &s->id) || rd_str(r, j, "region", true, &s->region) ||
	       rd_kvlist(r, j, "labels", &s->labels) || rd_qty(r, j, "cpu_capacity", false, &s->cpu_capacity, NULL) ||
	       rd_qty(r, j, "memory_mb", false, &s->memory_mb, NULL) ||
	       rd_qty(r, j, "cpu_used", false, &s->cpu_used, NULL) ||
	       rd_qty(r, j, "memory_used_mb", false, &s->memory_used_mb, NULL) ||
	       rd_qty(r, j, "actor_count", false, &s->actor_count, NULL);
}

static int strategy_read(struct rd *r, const json_t *j, enum actor_strategy *out)
{
	const json_t *v = json_object_get(j, "strategy");
	const char *s = json_string_value(v);
	if (v == NULL)
		return 0;
	if (s != NULL && strcmp(s, "resources") == 0)
		*out = STRATEGY_RESOURCES;
	else if (s != NULL && strcmp(s, "round_robin") == 0)
		*out = STRATEGY_ROUND_ROBIN;
	else /* a new strategy comes with a new format version (docs/entries.md) */
		return rd_fail(r, ENTRY_E_MALFORMED, "strategy", "must be \"resources\" or \"round_robin\"");
	return 0;
}

static int actor_read(struct rd *r, const json_t *j, struct actor_spec *s)
{
	r->what = "actor";
	s->replicas = 1;
	s->strategy = STRATEGY_RESOURCES;
	if (rd_object(r, j) || rd_str(r, j, "id", false, &s->id) || rd_str(r, j, "name", false, &s->name) ||
	    rd_str(r, j, "module", true, &s->module) || rd_qty(r, j, "cpu_required", true, &s->cpu_required, NULL) ||
	    rd_qty(r, j, "memory_required_mb", true, &s->memory_required_mb, NULL) ||
	    rd_str(r, j, "preferred_region", false, &s->preferred_region) ||
	    rd_kvlist(r, j, "constraints", &s->constraints) || rd_qty(r, j, "priority", false, &s->priority, NULL) ||
	    rd_qty(r, j, "max_latency_ms", false, &s->max_latency_ms, NULL) ||
	    rd_qty(r, j, "replicas", false, &s->replicas, NULL) || strategy_read(r, j, &s->strategy) ||
	    rd_strlist(r, j, "contracts", &s->contracts))
		return -1;
	if (s->preferred_region == NULL && (s->preferred_region = strdup("")) == NULL)
		return rd_nomem(r);
	if (s->name == NULL && s->id != NULL && (s->name = strdup(s->id)) == NULL)
		return rd_nomem(r);
	return 0;
}

static int patch_read(struct rd *r, const json_t *j, struct actor_patch *p)
{
	r->what = "patch";
	return rd_object(r, j) || rd_qty(r, j, "replicas", false, &p->replicas, &p->has_replicas) ||
	       rd_qty(r, j, "cpu_required", false, &p->cpu_required, &p->has_cpu_required) ||
	       rd_qty(r, j, "memory_required_mb", false, &p->memory_required_mb, &p->has_memory_required_mb);
}

static int provider_read(struct rd *r, const json_t *j, struct provider_spec *s)
{
	r->what = "provider";
	return rd_object(r, j) || rd_str(r, j, "id", false, &s->id) ||
	       rd_str(r, j, "contract_id", true, &s->contract_id) || rd_str(r, j, "image", true, &s->image) ||
	       rd_strlist(r, j, "nodes", &s->nodes);
}

static int link_read(struct rd *r, const json_t *j, struct link_spec *s)
{
	r->what = "link";
	s->timeout_ms = 5000;
	s->retry_count = 3;
	s->retry_delay_ms = 1000;
	if (rd_object(r, j) || rd_str(r, j, "id", false, &s->id) || rd_str(r, j, "actor_id", true, &s->actor_id) ||
	    rd_str(r, j, "provider_id", true, &s->provider_id) ||
	    rd_str(r, j, "contract_id", true, &s->contract_id) || rd_str(r, j, "link_name", false, &s->link_name) ||
	    rd_kvlist(r, j, "values", &s->values) || rd_qty(r, j, "timeout_ms", false, &s->timeout_ms, NULL) ||
	    rd_qty(r, j, "retry_count", false, &s->retry_count, NULL) ||
	    rd_qty(r, j, "retry_delay_ms", false, &s->retry_delay_ms, NULL))
		return -1;
	if (s->link_name == NULL && (s->link_name = strdup("default")) == NULL)
		return rd_nomem(r);
	return 0;
}

static int policy_read(struct rd *r, const json_t *j, struct policy_spec *s)
{
	r->what = "policy";
	if (rd_object(r, j) || rd_str(r, j, "policy_id", false, &s->policy_id) ||
	    rd_strlist(r, j, "allowed_contracts", &s->allowed_contracts) ||
	    rd_strlist(r, j, "denied_contracts", &s->denied_contracts) ||
	    rd_qty(r, j, "max_actor_memory_mb", false, &s->max_actor_memory_mb, NULL) ||
	    rd_strlist(r, j, "network_restrictions", &s->network_restrictions))
		return -1;
	const json_t *sel = json_object_get(j, "selector");
	if (sel == NULL)
		return 0;
	r->what = "policy.selector";
	return rd_object(r, sel) || rd_strlist(r, sel, "regions", &s->sel_regions) ||
	       rd_kvlist(r, sel, "labels", &s->sel_labels);
}

#define RD_INIT(err, errlen) {(err), (errlen), NULL, 0}

int entry_node_read(const json_t *j, struct node_spec *out, char *err, size_t errlen)
{
	struct rd r = RD_INIT(err, errlen);
	struct node_spec s = {0};
	if (node_read(&r, j, &s) != 0) {
		spec_node_free(&s);
		return r.code;
	}
	*out = s;
	return 0;
}

int entry_actor_read(const json_t *j, struct actor_spec *out, char *err, size_t errlen)
{
	struct rd r = RD_INIT(err, errlen);
	struct actor_spec s = {0};
	if (actor_read(&r, j, &s) != 0) {
		spec_actor_free(&s);
		return r.code;
	}
	*out = s;
	return 0;
}

int entry_patch_read(const json_t *j, struct actor_patch *out, char *err, size_t errlen)
{
	struct rd r = RD_INIT(err, errlen);
	struct actor_patch p = {0};
	if (patch_read(&r, j, &p) != 0)
		return r.code;
	*out = p;
	return 0;
}

int entry_provider_read(const json_t *j, struct provider_spec *out, char *err, size_t errlen)
{
	struct rd r = RD_INIT(err, errlen);
	struct provider_spec s = {0};
	if (provider_read(&r, j, &s) != 0) {
		spec_provider_free(&s);
		return r.code;
	}
	*out = s;
	return 0;
}

int entry_link_read(const json_t *j, struct link_spec *out, char *err, size_t errlen)
{
	struct rd r = RD_INIT(err, errlen);
	struct link_spec s = {0};
	if (link_read(&r, j, &s) != 0) {
		spec_link_free(&s);
		return r.code;
	}
	*out = s;
	return 0;
}

int entry_policy_read(const json_t *j, struct policy_spec *out, char *err, size_t errlen)
{
	struct rd r = RD_INIT(err, errlen);
	struct policy_spec s = {0};
	if (policy_read(&r, j, &s) != 0) {
		spec_policy_free(&s);
		return r.code;
	}
	*out = s;
	return 0;
}

static int moves_read(struct rd *r, const json_t *o, struct entry *e)
{
	const json_t *mv = json_object_get(o, "moves");
	if (mv == NULL)
		return 0;
	if (!json_is_array(mv))
		return rd_fail(r, ENTRY_E_MALFORMED, "moves", "must be an array");
	size_t cnt = json_array_size(mv);
	if (cnt == 0)
		return 0;
	if ((e->moves = calloc(cnt, sizeof(*e->moves))) == NULL)
		return rd_nomem(r);
	for (size_t i = 0; i < cnt; i++) {
		const json_t *m = json_array_get(mv, i);
		const json_t *inst = json_object_get(m, "instance");
		const char *actor = rd_text(json_object_get(m, "actor_id"));
		const char *to = rd_text(json_object_get(m, "to_node"));
		if (!json_is_object(m) || actor == NULL || to == NULL || !json_is_integer(inst))
			return rd_fail(r, ENTRY_E_MALFORMED, "moves",
				       "entry %zu needs actor_id, instance and to_node", i);
		struct entry_move *d = &e->moves[e->nmoves++];
		d->instance = json_integer_value(inst);
		if ((d->actor_id = strdup(actor)) == NULL || (d->to_node = strdup(to)) == NULL)
			return rd_nomem(r);
	}
	return 0;
}

/* "snap": {node, state_version, data, migration_id?} (snapshot_put). */
static int snap_read(struct rd *r, const json_t *o, struct entry *e)
{
	const json_t *v = json_object_get(o, "snap");
	if (v == NULL)
		return e->op == ENTRY_SNAPSHOT_PUT ? rd_fail(r, ENTRY_E_MALFORMED, "snap", "missing") : 0;
	if (!json_is_object(v))
		return rd_fail(r, ENTRY_E_MALFORMED, "snap", "not an object");
	r->what = "snap";
	return rd_str(r, v, "node", true, &e->snap.node) ||
	       rd_int(r, v, "state_version", true, 0, INT64_MAX, &e->snap.state_version, NULL) ||
	       rd_str(r, v, "data", true, &e->snap.data) || rd_str(r, v, "migration_id", false, &e->snap.migration_id);
}

static int term_read(struct rd *r, const json_t *o, struct entry *e)
{
	int64_t t = 0;
	if (rd_int(r, o, "term", false, 1, INT64_MAX, &t, NULL) != 0)
		return -1;
	e->term = (uint64_t)t;
	return 0;
}

/* "reports": [{node_id, status 0..2, error_count, cpu_measured, memory_measured_mb
 * (-1 unknown), policy_version, last_heartbeat_ms, agent_version?}]. */
static int reports_read(struct rd *r, const json_t *o, struct entry *e)
{
	const json_t *arr = json_object_get(o, "reports");
	if (arr == NULL)
		return 0;
	if (!json_is_array(arr))
		return rd_fail(r, ENTRY_E_MALFORMED, "reports", "must be an array");
	size_t cnt = json_array_size(arr);
	if (cnt == 0)
		return 0;
	if ((e->reports = calloc(cnt, sizeof(*e->reports))) == NULL)
		return rd_nomem(r);
	r->what = "reports";
	for (size_t i = 0; i < cnt; i++) {
		const json_t *j = json_array_get(arr, i);
		struct entry_report *d = &e->reports[e->nreports++];
		if (!json_is_object(j))
			return rd_fail(r, ENTRY_E_MALFORMED, "reports", "entry %zu is not an object", i);
		if (rd_str(r, j, "node_id", true, &d->node_id) ||
		    rd_int(r, j, "status", true, 0, 2, &d->status, NULL) ||
		    rd_int(r, j, "error_count", true, 0, ENTRY_QTY_MAX, &d->error_count, NULL) ||
		    rd_int(r, j, "cpu_measured", true, -1, ENTRY_QTY_MAX, &d->cpu_measured, NULL) ||
		    rd_int(r, j, "memory_measured_mb", true, -1, ENTRY_QTY_MAX, &d->memory_measured_mb, NULL) ||
		    rd_int(r, j, "policy_version", true, 0, INT64_MAX, &d->policy_version, NULL) ||
		    rd_int(r, j, "last_heartbeat_ms", true, 0, INT64_MAX, &d->last_heartbeat_ms, NULL) ||
		    rd_str(r, j, "agent_version", false, &d->agent_version))
			return -1;
	}
	return 0;
}

/* key: [{actor_id, instance}] into *refs (absent: none). */
static int refs_read(struct rd *r, const json_t *o, const char *key, struct entry_move **refs, size_t *n)
{
	const json_t *arr = json_object_get(o, key);
	if (arr == NULL)
		return 0;
	if (!json_is_array(arr))
		return rd_fail(r, ENTRY_E_MALFORMED, key, "must be an array");
	size_t cnt = json_array_size(arr);
	if (cnt == 0)
		return 0;
	if ((*refs = calloc(cnt, sizeof(**refs))) == NULL)
		return rd_nomem(r);
	for (size_t i = 0; i < cnt; i++) {
		const json_t *u = json_array_get(arr, i);
		const json_t *inst = json_object_get(u, "instance");
		const char *actor = rd_text(json_object_get(u, "actor_id"));
		if (!json_is_object(u) || actor == NULL || !json_is_integer(inst) || json_integer_value(inst) < 0)
			return rd_fail(r, ENTRY_E_MALFORMED, key, "entry %zu needs actor_id and instance", i);
		struct entry_move *d = &(*refs)[(*n)++];
		d->instance = json_integer_value(inst);
		if ((d->actor_id = strdup(actor)) == NULL)
			return rd_nomem(r);
	}
	return 0;
}

/* "unplaced" and "detected_at" (failover); "starts" and "stops" (reconcile). */
static int unplaced_read(struct rd *r, const json_t *o, struct entry *e)
{
	if (rd_int(r, o, "detected_at", false, INT64_MIN, INT64_MAX, &e->detected_ms, NULL) != 0)
		return -1;
	return refs_read(r, o, "unplaced", &e->unplaced, &e->nunplaced) ||
	       refs_read(r, o, "starts", &e->starts, &e->nstarts) || refs_read(r, o, "stops", &e->stops, &e->nstops);
}

/* "updates": [{command_id, status 1..3, attempts, error?, applied_version}]. */
static int updates_read(struct rd *r, const json_t *o, struct entry *e)
{
	const json_t *arr = json_object_get(o, "updates");
	if (arr == NULL)
		return 0;
	if (!json_is_array(arr))
		return rd_fail(r, ENTRY_E_MALFORMED, "updates", "must be an array");
	size_t cnt = json_array_size(arr);
	if (cnt == 0)
		return 0;
	if ((e->updates = calloc(cnt, sizeof(*e->updates))) == NULL)
		return rd_nomem(r);
	r->what = "updates";
	for (size_t i = 0; i < cnt; i++) {
		const json_t *j = json_array_get(arr, i);
		struct entry_cmd_update *d = &e->updates[e->nupdates++];
		if (!json_is_object(j))
			return rd_fail(r, ENTRY_E_MALFORMED, "updates", "entry %zu is not an object", i);
		if (rd_str(r, j, "command_id", true, &d->command_id) ||
		    rd_int(r, j, "status", true, 1, 3, &d->status, NULL) ||
		    rd_int(r, j, "attempts", true, 0, ENTRY_QTY_MAX, &d->attempts, NULL) ||
		    rd_str(r, j, "error", false, &d->error) ||
		    rd_int(r, j, "applied_version", false, 0, INT64_MAX, &d->applied_version, NULL))
			return -1;
	}
	return 0;
}

/* {"id": raft server id, "api_url": its REST URL (member_put only)}. */
static int member_read(struct rd *r, const json_t *o, struct entry *e)
{
	if (!json_is_object(o))
		return rd_fail(r, ENTRY_E_MALFORMED, "member", "missing or not an object");
	int64_t id = 0;
	if (rd_int(r, o, "id", true, 1, INT64_MAX, &id, NULL) != 0)
		return -1;
	e->member_id = (uint64_t)id;
	return e->op == ENTRY_MEMBER_PUT ? rd_str(r, o, "api_url", true, &e->api_url) : 0;
}

/* "idem": {"key", "fp": 16 hex digits} (version 2; absent: none). */
static int idem_read(struct rd *r, const json_t *o, struct entry *e)
{
	const json_t *v = json_object_get(o, "idem");
	if (v == NULL)
		return 0;
	char *fp = NULL;
	if (!json_is_object(v))
		return rd_fail(r, ENTRY_E_MALFORMED, "idem", "not an object");
	if (rd_str(r, v, "key", true, &e->idem_key) != 0 || rd_str(r, v, "fp", true, &fp) != 0) {
		free(fp);
		return -1;
	}
	char *end;
	e->idem_fp = strtoull(fp, &end, 16);
	bool bad = strlen(fp) != 16 || *end != '\0';
	free(fp);
	return bad ? rd_fail(r, ENTRY_E_MALFORMED, "idem", "fp must be 16 hex digits") : 0;
}

static int payload_read(struct rd *r, const json_t *o, struct entry *e)
{
	switch (e->op) {
	case ENTRY_NODE_PUT: return node_read(r, json_object_get(o, "node"), &e->node);
	case ENTRY_ACTOR_CREATE: return actor_read(r, json_object_get(o, "actor"), &e->actor);
	case ENTRY_ACTOR_UPDATE: return patch_read(r, json_object_get(o, "patch"), &e->patch);
	case ENTRY_PROVIDER_CREATE: return provider_read(r, json_object_get(o, "provider"), &e->provider);
	case ENTRY_LINK_CREATE: return link_read(r, json_object_get(o, "link"), &e->link);
	case ENTRY_POLICY_PUT: return policy_read(r, json_object_get(o, "policy"), &e->policy);
	case ENTRY_MEMBER_PUT:
	case ENTRY_MEMBER_DELETE: return member_read(r, json_object_get(o, "member"), e);
	default: return 0;
	}
}

/* Reads the envelope and the op; the rest follows in entry_decode. */
static int head_read(struct rd *r, const json_t *o, struct entry *e)
{
	if (!json_is_object(o))
		return rd_fail(r, ENTRY_E_MALFORMED, NULL, "not a JSON object");
	const json_t *v = json_object_get(o, "v");
	if (!json_is_integer(v) || json_integer_value(v) < 1)
		return rd_fail(r, ENTRY_E_MALFORMED, "v", "no format version (an integer from 1)");
	if (json_integer_value(v) > ENTRY_VERSION)
		return rd_fail(r, ENTRY_E_VERSION, "v", "format version %lld is newer than this build reads (1 to %d)",
			       (long long)json_integer_value(v), ENTRY_VERSION);
	e->version = (int)json_integer_value(v);
	const char *op = json_string_value(json_object_get(o, "op"));
	if (op == NULL)
		return rd_fail(r, ENTRY_E_MALFORMED, "op", "must be a string");
	for (size_t i = 1; i < ENTRY_NOPS; i++)
		if (entry_names[i] && strcmp(entry_names[i], op) == 0)
			e->op = (enum entry_op)i;
	if (e->op == 0)
		return rd_fail(r, ENTRY_E_OP, "op", "'%.40s' is unknown to this build", op);
	return 0;
}

int entry_decode(const void *buf, size_t len, struct entry *out, char *err, size_t errlen)
{
	struct rd r = RD_INIT(err, errlen);
	json_error_t jerr;
	entry_parsing = true;
	json_t *o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	entry_parsing = false;
	if (o == NULL) {
		rd_fail(&r, ENTRY_E_MALFORMED, NULL, "not a JSON object: %s", jerr.text);
		return r.code;
	}
	struct entry e;
	memset(&e, 0, sizeof(e));
	if (head_read(&r, o, &e) || rd_int(&r, o, "at", false, INT64_MIN, INT64_MAX, &e.at_ms, NULL) ||
	    rd_int(&r, o, "flag", false, INT64_MIN, INT64_MAX, &e.flag, NULL) ||
	    rd_str(&r, o, "who", false, &e.who) || rd_str(&r, o, "target", false, &e.target) ||
	    rd_str(&r, o, "rr_cursor", false, &e.rr_cursor) ||
	    rd_strs(&r, o, "placements", &e.placements, &e.nplacements) || moves_read(&r, o, &e) ||
	    idem_read(&r, o, &e) || reports_read(&r, o, &e) || updates_read(&r, o, &e) || term_read(&r, o, &e) ||
	    unplaced_read(&r, o, &e) || snap_read(&r, o, &e) ||
	    payload_read(&r, o, &e)) {
		entry_release(&e);
		json_decref(o);
		return r.code;
	}
	json_decref(o);
	*out = e;
	return 0;
}

void entry_release(struct entry *e)
{
	free(e->who);
	free(e->target);
	free(e->rr_cursor);
	for (size_t i = 0; i < e->nplacements; i++)
		free(e->placements[i]);
	free(e->placements);
	for (size_t i = 0; i < e->nmoves; i++) {
		free(e->moves[i].actor_id);
		free(e->moves[i].to_node);
	}
	free(e->moves);
	for (size_t i = 0; i < e->nunplaced; i++)
		free(e->unplaced[i].actor_id);
	free(e->unplaced);
	for (size_t i = 0; i < e->nstarts; i++)
		free(e->starts[i].actor_id);
	free(e->starts);
	for (size_t i = 0; i < e->nstops; i++)
		free(e->stops[i].actor_id);
	free(e->stops);
	free(e->snap.node);
	free(e->snap.data);
	free(e->snap.migration_id);
	for (size_t i = 0; i < e->nreports; i++) {
		free(e->reports[i].node_id);
		free(e->reports[i].agent_version);
	}
	free(e->reports);
	for (size_t i = 0; i < e->nupdates; i++) {
		free(e->updates[i].command_id);
		free(e->updates[i].error);
	}
	free(e->updates);
	spec_node_free(&e->node);
	spec_actor_free(&e->actor);
	spec_provider_free(&e->provider);
	spec_link_free(&e->link);
	spec_policy_free(&e->policy);
	free(e->api_url);
	free(e->idem_key);
	memset(e, 0, sizeof(*e));
}
