/* ctl_res — see ctl_res.h. */
#include "ctl_res.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_fmt.h"
#include "ctl_util.h"

#define BODY_FILE_MAX (1024 * 1024) /* the API's body limit */
#define PAGE 500                    /* items per request (--chunk-size), as kubectl */

/* ---- cells ------------------------------------------------------------------------------ */

static void cell_json(struct ctl_table *t, const json_t *v)
{
	char *s = ctl_fmt_json(v);
	ctl_table_cell(t, s);
	free(s);
}

static void cell_key(struct ctl_table *t, const json_t *o, const char *key)
{
	cell_json(t, json_object_get(o, key));
}

static void cell_age(struct ctl_table *t, const json_t *o, const char *key, time_t now)
{
	char b[32];
	ctl_fmt_age(json_string_value(json_object_get(o, key)), now, b, sizeof(b));
	ctl_table_cell(t, b);
}

/* used/capacity: "1700m/4000m", "?" for an unknown (0) capacity */
static void cell_usage(struct ctl_table *t, const json_t *o, const char *used, const char *cap,
		       void (*fmt)(int64_t, char *, size_t))
{
	char u[32], c[32];
	fmt(ctl_jint(o, used, 0), u, sizeof(u));
	int64_t cv = ctl_jint(o, cap, 0);
	if (cv > 0)
		fmt(cv, c, sizeof(c));
	else
		snprintf(c, sizeof(c), "?");
	ctl_table_cellf(t, "%s/%s", u, c);
}

static void cell_fmt_int(struct ctl_table *t, const json_t *o, const char *key, void (*fmt)(int64_t, char *, size_t))
{
	const json_t *v = json_object_get(o, key);
	char b[32] = "";
	if (json_is_integer(v))
		fmt((int64_t)json_integer_value(v), b, sizeof(b));
	ctl_table_cell(t, b);
}

/* The id of o as text (an integer id too). */
static void id_of(const struct ctl_kind *k, const json_t *o, char *out, size_t n)
{
	char *s = ctl_fmt_json(json_object_get(o, k->id_key));
	snprintf(out, n, "%s", s);
	free(s);
}

/* ---- the kinds ---------------------------------------------------------------------------- */

static void node_row(struct ctl_table *t, const json_t *o, bool wide, time_t now)
{
	cell_key(t, o, "id");
	cell_key(t, o, "region");
	ctl_table_cellf(t, "%s%s%s", ctl_jstr(o, "status"), json_is_true(json_object_get(o, "cordoned")) ? ",cordoned" : "",
			json_is_true(json_object_get(o, "draining")) ? ",draining" : "");
	cell_usage(t, o, "cpu_used", "cpu_capacity", ctl_fmt_cpu);
	cell_usage(t, o, "memory_used_mb", "memory_mb", ctl_fmt_mem);
	cell_key(t, o, "actor_count");
	int64_t pv = ctl_jint(o, "policy_version", 0), pt = ctl_jint(o, "policy_target", 0);
	if (pt > pv)
		ctl_table_cellf(t, "%lld of %lld", (long long)pv, (long long)pt);
	else
		ctl_table_cellf(t, "%lld", (long long)pv);
	cell_age(t, o, "created_at", now);
	if (!wide)
		return;
	cell_key(t, o, "labels");
	cell_age(t, o, "last_heartbeat", now);
	cell_fmt_int(t, o, "cpu_measured", ctl_fmt_cpu);
	cell_fmt_int(t, o, "memory_measured_mb", ctl_fmt_mem);
	cell_key(t, o, "error_count");
	cell_key(t, o, "agent_version");
	cell_key(t, o, "generation");
}
static const char *const node_h[] = {"ID", "REGION", "STATUS", "CPU", "MEMORY", "ACTORS", "POLICY", "AGE", NULL};
static const char *const node_w[] = {"LABELS", "HEARTBEAT", "CPU-MEASURED", "MEM-MEASURED", "ERRORS", "AGENT",
				     "GENERATION", NULL};
const struct ctl_kind ctl_kind_nodes = {"nodes", "node", "/v1/nodes", "id", node_h, node_w, node_row};

static void actor_row(struct ctl_table *t, const json_t *o, bool wide, time_t now)
{
	const json_t *pl = json_object_get(o, "placements"), *p;
	size_t i, running = 0;
	struct ctl_buf nodes = {0}, all = {0};
	ctl_buf_add(&nodes, "", 0);
	ctl_buf_add(&all, "", 0);
	json_array_foreach(pl, i, p) {
		const char *node = json_string_value(json_object_get(p, "node_id"));
		const char *state = ctl_jstr(p, "state");
		running += strcmp(state, "running") == 0;
		/* each node once, in instance order */
		bool seen = false;
		for (size_t k = 0; node && k < i && !seen; k++)
			seen = json_equal(json_object_get(json_array_get(pl, k), "node_id"), json_object_get(p, "node_id"));
		if (!seen)
			ctl_buf_printf(&nodes, "%s%s", nodes.len ? "," : "", node ? node : "<pending>");
		ctl_buf_printf(&all, "%s%lld=%s:%s", i ? "," : "", (long long)ctl_jint(p, "instance", (int64_t)i),
			       node ? node : "<none>", state);
	}
	cell_key(t, o, "id");
	cell_key(t, o, "module");
	ctl_table_cellf(t, "%zu/%lld", running, (long long)ctl_jint(o, "replicas", 0));
	cell_fmt_int(t, o, "cpu_required", ctl_fmt_cpu);
	cell_fmt_int(t, o, "memory_required_mb", ctl_fmt_mem);
	ctl_table_cell(t, ctl_buf_str(&nodes));
	cell_age(t, o, "created_at", now);
	if (wide) {
		cell_key(t, o, "name");
		cell_key(t, o, "preferred_region");
		cell_key(t, o, "strategy");
		cell_key(t, o, "priority");
		cell_key(t, o, "constraints");
		cell_key(t, o, "contracts");
		ctl_table_cell(t, ctl_buf_str(&all));
		cell_key(t, o, "generation");
	}
	ctl_buf_free(&nodes);
	ctl_buf_free(&all);
}
static const char *const actor_h[] = {"ID", "MODULE", "READY", "CPU", "MEMORY", "NODES", "AGE", NULL};
static const char *const actor_w[] = {"NAME",      "REGION",     "STRATEGY",   "PRIORITY", "CONSTRAINTS",
				      "CONTRACTS", "PLACEMENTS", "GENERATION", NULL};
const struct ctl_kind ctl_kind_actors = {"actors", "actor", "/v1/actors", "id", actor_h, actor_w, actor_row};

static void provider_row(struct ctl_table *t, const json_t *o, bool wide, time_t now)
{
	(void)wide;
	cell_key(t, o, "id");
	cell_key(t, o, "contract_id");
	cell_key(t, o, "image");
	cell_key(t, o, "nodes");
	cell_age(t, o, "created_at", now);
}
static const char *const provider_h[] = {"ID", "CONTRACT", "IMAGE", "NODES", "AGE", NULL};
static const char *const no_w[] = {NULL};
const struct ctl_kind ctl_kind_providers = {"providers", "provider", "/v1/providers", "id",
					    provider_h,  no_w,       provider_row};

static void link_row(struct ctl_table *t, const json_t *o, bool wide, time_t now)
{
	cell_key(t, o, "id");
	cell_key(t, o, "actor_id");
	cell_key(t, o, "provider_id");
	cell_key(t, o, "contract_id");
	cell_key(t, o, "link_name");
	cell_age(t, o, "created_at", now);
	if (!wide)
		return;
	cell_key(t, o, "values");
	cell_fmt_int(t, o, "timeout_ms", ctl_fmt_ms);
	char d[32];
	ctl_fmt_ms(ctl_jint(o, "retry_delay_ms", 0), d, sizeof(d));
	ctl_table_cellf(t, "%lld every %s", (long long)ctl_jint(o, "retry_count", 0), d);
}
static const char *const link_h[] = {"ID", "ACTOR", "PROVIDER", "CONTRACT", "NAME", "AGE", NULL};
static const char *const link_w[] = {"VALUES", "TIMEOUT", "RETRIES", NULL};
const struct ctl_kind ctl_kind_links = {"links", "link", "/v1/links", "id", link_h, link_w, link_row};

/* A policy's selector for people: "all nodes", "region=eu-west,gpu=true". */
static void cell_selector(struct ctl_table *t, const json_t *o)
{
	const json_t *sel = json_object_get(o, "selector"), *v;
	struct ctl_buf b = {0};
	ctl_buf_add(&b, "", 0);
	size_t i;
	json_array_foreach(json_object_get(sel, "regions"), i, v)
		ctl_buf_printf(&b, "%sregion=%s", b.len ? "," : "", json_string_value(v) ? json_string_value(v) : "?");
	char *labels = ctl_fmt_json(json_object_get(sel, "labels"));
	if (labels[0])
		ctl_buf_printf(&b, "%s%s", b.len ? "," : "", labels);
	free(labels);
	ctl_table_cell(t, b.len ? b.s : "all nodes");
	ctl_buf_free(&b);
}

static void cell_max_mem(struct ctl_table *t, const json_t *o)
{
	int64_t m = ctl_jint(o, "max_actor_memory_mb", 0);
	char b[32] = "";
	if (m > 0)
		ctl_fmt_mem(m, b, sizeof(b));
	ctl_table_cell(t, b);
}

static void policy_row(struct ctl_table *t, const json_t *o, bool wide, time_t now)
{
	const json_t *drift = json_object_get(o, "drift"), *behind = json_object_get(drift, "nodes_behind");
	cell_key(t, o, "policy_id");
	cell_key(t, o, "version");
	cell_key(t, o, "allowed_contracts");
	cell_key(t, o, "denied_contracts");
	cell_max_mem(t, o);
	cell_selector(t, o);
	cell_key(t, drift, "nodes_covered");
	ctl_table_cellf(t, "%zu", json_array_size(behind));
	cell_age(t, o, "created_at", now);
	if (!wide)
		return;
	cell_key(t, o, "network_restrictions");
	struct ctl_buf b = {0};
	ctl_buf_add(&b, "", 0);
	size_t i;
	const json_t *n;
	json_array_foreach(behind, i, n)
		ctl_buf_printf(&b, "%s%s (%lld of %lld)", i ? "," : "", ctl_jstr(n, "node_id"),
			       (long long)ctl_jint(n, "policy_version", 0), (long long)ctl_jint(n, "policy_target", 0));
	ctl_table_cell(t, b.s);
	ctl_buf_free(&b);
}
static const char *const policy_h[] = {"ID",     "VERSION", "ALLOWED", "DENIED", "MAX-MEMORY",
				       "SELECTOR", "COVERS", "BEHIND",  "AGE",    NULL};
static const char *const policy_w[] = {"NETWORK", "BEHIND-NODES", NULL};
const struct ctl_kind ctl_kind_policies = {"policies", "policy", "/v1/policies", "policy_id",
					   policy_h,   policy_w, policy_row};

static void version_row(struct ctl_table *t, const json_t *o, bool wide, time_t now)
{
	cell_key(t, o, "version");
	cell_key(t, o, "allowed_contracts");
	cell_key(t, o, "denied_contracts");
	cell_max_mem(t, o);
	cell_selector(t, o);
	cell_age(t, o, "created_at", now);
	if (wide)
		cell_key(t, o, "network_restrictions");
}
static const char *const version_h[] = {"VERSION", "ALLOWED", "DENIED", "MAX-MEMORY", "SELECTOR", "AGE", NULL};
static const char *const version_w[] = {"NETWORK", NULL};
const struct ctl_kind ctl_kind_policy_versions = {"versions", "policy-version", NULL, "version",
						  version_h,  version_w,        version_row};

static void command_row(struct ctl_table *t, const json_t *o, bool wide, time_t now)
{
	cell_key(t, o, "command_id");
	cell_key(t, o, "command_type");
	cell_key(t, o, "target_node");
	const char *actor = json_string_value(json_object_get(o, "actor_id"));
	const json_t *inst = json_object_get(o, "instance");
	if (actor && json_is_integer(inst))
		ctl_table_cellf(t, "%s#%lld", actor, (long long)json_integer_value(inst));
	else
		ctl_table_cell(t, actor);
	cell_key(t, o, "status");
	cell_key(t, o, "attempts");
	cell_age(t, o, "created_at", now);
	if (!wide)
		return;
	cell_key(t, o, "term");
	cell_key(t, o, "generation");
	cell_age(t, o, "published_at", now);
	cell_age(t, o, "acked_at", now);
	cell_key(t, o, "error");
}
static const char *const command_h[] = {"ID", "TYPE", "NODE", "ACTOR", "STATUS", "ATTEMPTS", "AGE", NULL};
static const char *const command_w[] = {"TERM", "GENERATION", "PUBLISHED", "ACKED", "ERROR", NULL};
const struct ctl_kind ctl_kind_commands = {"commands", "command", "/v1/commands", "command_id",
					   command_h,  command_w, command_row};

static void failover_row(struct ctl_table *t, const json_t *o, bool wide, time_t now)
{
	const json_t *as = json_object_get(o, "assignments"), *a;
	cell_key(t, o, "id");
	cell_key(t, o, "node_id");
	cell_key(t, o, "status");
	ctl_table_cellf(t, "%zu", json_array_size(as));
	cell_fmt_int(t, o, "downtime_ms", ctl_fmt_ms);
	cell_age(t, o, "started_at", now);
	if (!wide)
		return;
	cell_age(t, o, "detected_at", now);
	cell_age(t, o, "finished_at", now);
	cell_key(t, o, "error");
	struct ctl_buf b = {0};
	ctl_buf_add(&b, "", 0);
	size_t i;
	json_array_foreach(as, i, a) {
		const char *to = json_string_value(json_object_get(a, "node_id"));
		ctl_buf_printf(&b, "%s%s#%lld>%s:%s", i ? "," : "", ctl_jstr(a, "actor_id"),
			       (long long)ctl_jint(a, "instance", 0), to ? to : "<none>", ctl_jstr(a, "state"));
	}
	ctl_table_cell(t, b.s);
	ctl_buf_free(&b);
}
static const char *const failover_h[] = {"ID", "NODE", "STATUS", "ACTORS", "DOWNTIME", "AGE", NULL};
static const char *const failover_w[] = {"DETECTED", "FINISHED", "ERROR", "ASSIGNMENTS", NULL};
const struct ctl_kind ctl_kind_failovers = {"failovers", "failover", "/v1/failovers", "id",
					    failover_h,  failover_w, failover_row};

static void event_row(struct ctl_table *t, const json_t *o, bool wide, time_t now)
{
	(void)now;
	cell_key(t, o, "seq");
	cell_key(t, o, "at");
	cell_key(t, o, "kind");
	const char *ot = json_string_value(json_object_get(o, "object_type"));
	const char *oi = json_string_value(json_object_get(o, "object_id"));
	if (ot || oi)
		ctl_table_cellf(t, "%s/%s", ot ? ot : "?", oi ? oi : "?");
	else
		ctl_table_cell(t, NULL);
	cell_key(t, o, "who");
	if (!wide)
		return;
	cell_key(t, o, "index");
	char *d = json_dumps(json_object_get(o, "data"), JSON_COMPACT | JSON_ENCODE_ANY);
	ctl_table_cell(t, d);
	free(d);
}
static const char *const event_h[] = {"SEQ", "TIME", "KIND", "OBJECT", "WHO", NULL};
static const char *const event_w[] = {"INDEX", "DATA", NULL};
const struct ctl_kind ctl_kind_events = {"events", "event", "/v1/events", "seq", event_h, event_w, event_row};

static void member_row(struct ctl_table *t, const json_t *o, bool wide, time_t now)
{
	(void)now, (void)wide;
	cell_key(t, o, "id");
	cell_key(t, o, "address");
	cell_key(t, o, "role");
	ctl_table_cell(t, json_is_true(json_object_get(o, "leader")) ? "yes" : "no");
	cell_key(t, o, "api_url");
	cell_key(t, o, "reachable");
	cell_key(t, o, "applied_index");
	cell_key(t, o, "projected_index");
	cell_key(t, o, "projection_lag");
}
static const char *const member_h[] = {"ID",        "ADDRESS", "ROLE",      "LEADER", "API-URL",
				       "REACHABLE", "APPLIED", "PROJECTED", "LAG",    NULL};
const struct ctl_kind ctl_kind_members = {"members", "member", NULL, "id", member_h, no_w, member_row};

/* ---- output --------------------------------------------------------------------------------- */

static size_t count(const char *const *h)
{
	size_t n = 0;
	while (h[n])
		n++;
	return n;
}

void ctl_print_items(struct ctl_ctx *x, const struct ctl_kind *k, const json_t *items)
{
	size_t i;
	const json_t *o;
	if (x->out == CTL_OUT_NAME) {
		char id[300];
		json_array_foreach(items, i, o) {
			id_of(k, o, id, sizeof(id));
			char *clean = ctl_clean(id);
			fprintf(x->o, "%s/%s\n", k->singular, clean);
			free(clean);
		}
		return;
	}
	bool wide = x->out == CTL_OUT_WIDE;
	size_t n = count(k->headers), nw = wide ? count(k->wide_headers) : 0;
	const char **h = ctl_xmalloc((n + nw) * sizeof(*h));
	memcpy(h, k->headers, n * sizeof(*h));
	if (nw)
		memcpy(h + n, k->wide_headers, nw * sizeof(*h));
	struct ctl_table *t = ctl_table_new(n + nw, h);
	free(h);
	json_array_foreach(items, i, o) k->row(t, o, wide, x->now);
	if (ctl_table_rows(t) == 0)
		fprintf(stderr, "No %s found.\n", k->plural);
	else
		ctl_table_print(t, x->o, x->headers);
	ctl_table_free(t);
}

/* A path: base, "/" and the id percent-encoded, then suffix. malloc'd. */
static char *id_path(const char *base, const char *id, const char *suffix)
{
	struct ctl_buf b = {0};
	ctl_buf_puts(&b, base);
	ctl_buf_puts(&b, "/");
	ctl_buf_urlenc(&b, id);
	ctl_buf_puts(&b, suffix ? suffix : "");
	return b.s;
}

void ctl_query_add(struct ctl_buf *q, const char *key, const char *value)
{
	ctl_buf_puts(q, strchr(ctl_buf_str(q), '?') ? "&" : "?");
	ctl_buf_urlenc(q, key);
	ctl_buf_puts(q, "=");
	ctl_buf_urlenc(q, value);
}

/* An answer that should be JSON of some shape and is not. */
static int bad_answer(const struct ctl_resp *r, const char *what)
{
	fprintf(stderr, "error: %s answered %d without %s\n", r->server ? r->server : "the server", r->status, what);
	return CTL_EXIT_FAILED;
}

/* ---- list and get ---------------------------------------------------------------------------- */

int ctl_run_list(struct ctl_ctx *x)
{
	const struct ctl_kind *k = x->cmd->data;
	long long limit = -1;
	const char *ls = ctl_args_get(&x->args, "limit");
	if (ls && ctl_parse_int(ls, 1, 1000000000, &limit) != 0)
		return ctl_usage_error(x, "--limit: '%s' is not a number from 1 up", ls);
	long long chunk = PAGE;
	const char *cs = ctl_args_get(&x->args, "chunk-size");
	if (cs && ctl_parse_int(cs, 1, 1000, &chunk) != 0)
		return ctl_usage_error(x, "--chunk-size: '%s' is not a number from 1 to 1000", cs);
	const char *after = ctl_args_get(&x->args, "after");
	char *cursor = after ? ctl_xstrdup(after) : NULL;
	json_t *all = json_array(), *next = json_null();
	int rc = CTL_EXIT_OK;
	for (;;) {
		struct ctl_buf p = {0};
		ctl_buf_puts(&p, k->path);
		for (int i = 0; i < x->args.nflags; i++)
			if (x->args.flags[i].flag->ftype == 'q')
				ctl_query_add(&p, x->args.flags[i].flag->field, x->args.flags[i].value);
		long long want = limit < 0 ? chunk : limit - (long long)json_array_size(all);
		char num[24];
		snprintf(num, sizeof(num), "%lld", want > chunk ? chunk : want);
		ctl_query_add(&p, "limit", num);
		if (cursor)
			ctl_query_add(&p, "after", cursor);
		if (x->consistent)
			ctl_query_add(&p, "consistent", "true");
		struct ctl_resp r;
		rc = ctl_request(&x->client, "GET", p.s, NULL, 0, &r);
		ctl_buf_free(&p);
		if (rc != CTL_EXIT_OK)
			break;
		const json_t *items = json_object_get(r.json, "items"), *nx = json_object_get(r.json, "next");
		if (r.status != 200)
			rc = ctl_fail(&r, false);
		else if (!json_is_array(items))
			rc = bad_answer(&r, "a list of items");
		if (rc != CTL_EXIT_OK) {
			ctl_resp_free(&r);
			break;
		}
		json_array_extend(all, (json_t *)items);
		bool more = json_is_string(nx) && !(cursor && strcmp(cursor, json_string_value(nx)) == 0);
		free(cursor);
		cursor = more ? ctl_xstrdup(json_string_value(nx)) : NULL;
		ctl_resp_free(&r);
		if (!more)
			break;
		if (limit >= 0 && (long long)json_array_size(all) >= limit) {
			json_decref(next);
			next = json_string(cursor);
			break;
		}
	}
	if (rc == CTL_EXIT_OK) {
		if (x->out == CTL_OUT_JSON) {
			json_t *j = json_pack("{s:O,s:O}", "items", all, "next", next);
			ctl_print_json(x, j);
			json_decref(j);
		} else {
			ctl_print_items(x, k, all);
			if (json_is_string(next)) /* stderr: -o name's lines stay clean */
				fprintf(stderr, "(more: --after %s)\n", json_string_value(next));
		}
	}
	free(cursor);
	json_decref(all);
	json_decref(next);
	return rc;
}

/* GET path, 200 expected. Returns the exit code; *out the JSON (owned) on 0. */
static int get_json(struct ctl_ctx *x, const char *path, bool consistent, json_t **out)
{
	struct ctl_buf p = {0};
	ctl_buf_puts(&p, path);
	if (consistent && x->consistent)
		ctl_query_add(&p, "consistent", "true");
	struct ctl_resp r;
	int rc = ctl_request(&x->client, "GET", p.s, NULL, 0, &r);
	ctl_buf_free(&p);
	*out = NULL;
	if (rc != CTL_EXIT_OK)
		return rc;
	if (r.status != 200)
		rc = ctl_fail(&r, false);
	else if (!json_is_object(r.json))
		rc = bad_answer(&r, "a JSON object");
	else
		*out = json_incref(r.json);
	ctl_resp_free(&r);
	return rc;
}

/* The first failure of several (a later success does not hide it). */
static int worst(int acc, int rc)
{
	return acc != CTL_EXIT_OK ? acc : rc;
}

int ctl_run_get(struct ctl_ctx *x)
{
	const struct ctl_kind *k = x->cmd->data;
	json_t *got = json_array();
	int rc = CTL_EXIT_OK;
	for (int i = 0; i < x->args.npos; i++) {
		char *p = id_path(k->path, x->args.pos[i], NULL);
		json_t *o;
		int r1 = get_json(x, p, true, &o);
		free(p);
		rc = worst(rc, r1);
		if (o)
			json_array_append_new(got, o);
	}
	if (json_array_size(got) > 0) {
		if (x->out != CTL_OUT_JSON)
			ctl_print_items(x, k, got);
		else if (x->args.npos == 1)
			ctl_print_json(x, json_array_get(got, 0));
		else {
			json_t *j = json_pack("{s:O,s:n}", "items", got, "next");
			ctl_print_json(x, j);
			json_decref(j);
		}
	}
	json_decref(got);
	return rc;
}

/* ---- bodies ------------------------------------------------------------------------------------ */

/* The object holding the member at a dotted path ("selector.regions") of body,
 * made on the way when missing, and the member's own name. */
static void slot_for(json_t *body, const char *path, json_t **holder, char *last, size_t lastlen)
{
	json_t *o = body;
	const char *p = path;
	for (;;) {
		const char *dot = strchr(p, '.');
		if (!dot)
			break;
		char part[64];
		snprintf(part, sizeof(part), "%.*s", (int)(dot - p), p);
		json_t *n = json_object_get(o, part);
		if (!json_is_object(n)) {
			n = json_object();
			json_object_set_new(o, part, n);
		}
		o = n;
		p = dot + 1;
	}
	snprintf(last, lastlen, "%s", p);
	*holder = o;
}

json_t *ctl_body(struct ctl_ctx *x)
{
	json_t *b;
	const char *file = ctl_args_get(&x->args, "filename");
	if (file) {
		char err[300];
		size_t len;
		char *text = ctl_read_file(file, BODY_FILE_MAX, &len, err, sizeof(err));
		if (!text) {
			ctl_usage_error(x, "%s", err);
			return NULL;
		}
		json_error_t je;
		b = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
		free(text);
		const char *name = strcmp(file, "-") == 0 ? "standard input" : file;
		if (!b) {
			ctl_usage_error(x, "%s:%d:%d: %s", name, je.line, je.column, je.text);
			return NULL;
		}
		if (!json_is_object(b)) {
			json_decref(b);
			ctl_usage_error(x, "%s: want a JSON object", name);
			return NULL;
		}
	} else {
		b = json_object();
	}
	/* Flags in the order given; the first of a list or map flag replaces the file's. */
	const struct ctl_flag *seen[CTL_ARGS_MAX];
	size_t nseen = 0;
	for (int i = 0; i < x->args.nflags; i++) {
		const struct ctl_flag *f = x->args.flags[i].flag;
		const char *v = x->args.flags[i].value;
		if (!f->field || f->ftype == 'q')
			continue;
		json_t *holder;
		char key[64];
		slot_for(b, f->field, &holder, key, sizeof(key));
		bool first = true;
		for (size_t s = 0; s < nseen && first; s++)
			first = seen[s] != f;
		if (first)
			seen[nseen++] = f;
		json_t *val = NULL;
		long long n;
		switch (f->ftype) {
		case 's':
			if (!(val = json_string(v))) {
				json_decref(b);
				ctl_usage_error(x, "--%s: not valid UTF-8", f->name);
				return NULL;
			}
			json_object_set_new(holder, key, val);
			break;
		case 'i':
			if (ctl_parse_int(v, -9007199254740991LL, 9007199254740991LL, &n) != 0) {
				json_decref(b);
				ctl_usage_error(x, "--%s: '%s' is not an integer", f->name, v);
				return NULL;
			}
			json_object_set_new(holder, key, json_integer(n));
			break;
		case 'l':
			if (first || !json_is_array(json_object_get(holder, key)))
				json_object_set_new(holder, key, json_array());
			if (!(val = json_string(v))) {
				json_decref(b);
				ctl_usage_error(x, "--%s: not valid UTF-8", f->name);
				return NULL;
			}
			json_array_append_new(json_object_get(holder, key), val);
			break;
		case 'm': {
			const char *eq = strchr(v, '=');
			if (!eq || eq == v) {
				json_decref(b);
				ctl_usage_error(x, "--%s: want KEY=VALUE, not '%s'", f->name, v);
				return NULL;
			}
			if (first || !json_is_object(json_object_get(holder, key)))
				json_object_set_new(holder, key, json_object());
			char *mk = ctl_xstrndup(v, (size_t)(eq - v));
			if (!(val = json_string(eq + 1)) || json_object_set_new(json_object_get(holder, key), mk, val) != 0) {
				free(mk);
				json_decref(b);
				ctl_usage_error(x, "--%s: not valid UTF-8", f->name);
				return NULL;
			}
			free(mk);
			break;
		}
		}
	}
	return b;
}

/* Sends a write; 0 with *out (the answer's JSON, owned, maybe NULL) when the
 * status is one of want (0-terminated... up to two). */
static int write_req(struct ctl_ctx *x, const char *method, const char *path, const json_t *body, int want1, int want2,
		     json_t **out)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	if (body && !text) {
		fputs("latticectl: out of memory\n", stderr);
		return CTL_EXIT_FAILED;
	}
	struct ctl_resp r;
	int rc = ctl_request(&x->client, method, path, text, 0, &r);
	free(text);
	*out = NULL;
	if (rc != CTL_EXIT_OK)
		return rc;
	if (r.status != want1 && r.status != want2)
		rc = ctl_fail(&r, true);
	else if (r.json)
		*out = json_incref(r.json);
	ctl_resp_free(&r);
	return rc;
}

/* "node/edge-1 created" (table), "node/edge-1" (name), the object (json). */
static void print_done(struct ctl_ctx *x, const struct ctl_kind *k, const json_t *o, const char *id, const char *what)
{
	char idb[300];
	if (o && json_object_get(o, k->id_key))
		id_of(k, o, idb, sizeof(idb));
	else
		snprintf(idb, sizeof(idb), "%s", id);
	char *clean = ctl_clean(idb);
	if (x->out == CTL_OUT_JSON) {
		if (o)
			ctl_print_json(x, o);
	} else if (x->out == CTL_OUT_NAME) {
		fprintf(x->o, "%s/%s\n", k->singular, clean);
	} else {
		fprintf(x->o, "%s/%s %s\n", k->singular, clean, what);
	}
	free(clean);
}

int ctl_run_create(struct ctl_ctx *x)
{
	const struct ctl_kind *k = x->cmd->data;
	json_t *b = ctl_body(x);
	if (!b)
		return CTL_EXIT_USAGE;
	if (x->args.npos == 1)
		json_object_set_new(b, k->id_key, json_string(x->args.pos[0]));
	json_t *o;
	int rc = write_req(x, "POST", k->path, b, 201, 201, &o);
	json_decref(b);
	if (rc == CTL_EXIT_OK)
		print_done(x, k, o, "?", "created");
	json_decref(o);
	return rc;
}

int ctl_run_delete(struct ctl_ctx *x)
{
	const struct ctl_kind *k = x->cmd->data;
	int rc = CTL_EXIT_OK;
	for (int i = 0; i < x->args.npos; i++) {
		char *p = id_path(k->path, x->args.pos[i], NULL);
		json_t *o;
		int r1 = write_req(x, "DELETE", p, NULL, 204, 200, &o);
		free(p);
		if (r1 == CTL_EXIT_OK && x->out != CTL_OUT_JSON)
			print_done(x, k, NULL, x->args.pos[i], "deleted");
		json_decref(o);
		rc = worst(rc, r1);
	}
	return rc;
}

/* ---- node actions ------------------------------------------------------------------------------- */

int ctl_run_node_cordon(struct ctl_ctx *x)
{
	const struct ctl_kind *k = &ctl_kind_nodes;
	const char *action = x->cmd->name; /* cordon or uncordon */
	char suffix[32], done[32];
	snprintf(suffix, sizeof(suffix), "/%s", action);
	snprintf(done, sizeof(done), "%sed", action);
	int rc = CTL_EXIT_OK;
	for (int i = 0; i < x->args.npos; i++) {
		char *p = id_path(k->path, x->args.pos[i], suffix);
		json_t *o;
		int r1 = write_req(x, "POST", p, NULL, 200, 200, &o);
		free(p);
		if (r1 == CTL_EXIT_OK)
			print_done(x, k, o, x->args.pos[i], done);
		json_decref(o);
		rc = worst(rc, r1);
	}
	return rc;
}

int ctl_run_node_drain(struct ctl_ctx *x)
{
	int rc = CTL_EXIT_OK;
	for (int i = 0; i < x->args.npos; i++) {
		char *p = id_path("/v1/nodes", x->args.pos[i], "/drain");
		json_t *o;
		int r1 = write_req(x, "POST", p, NULL, 200, 200, &o);
		free(p);
		rc = worst(rc, r1);
		if (r1 != CTL_EXIT_OK || !o) {
			json_decref(o);
			continue;
		}
		const json_t *moved = json_object_get(o, "moved"), *unmoved = json_object_get(o, "unmoved"), *m;
		if (x->out == CTL_OUT_JSON) {
			ctl_print_json(x, o);
		} else if (x->out == CTL_OUT_NAME) {
			print_done(x, &ctl_kind_nodes, NULL, x->args.pos[i], "");
		} else {
			char *id = ctl_clean(x->args.pos[i]);
			fprintf(x->o, "node/%s drained: %zu moved, %zu unmoved\n", id, json_array_size(moved),
				json_array_size(unmoved));
			free(id);
			if (json_array_size(moved) + json_array_size(unmoved) > 0) {
				static const char *const h[] = {"ACTOR", "INSTANCE", "RESULT"};
				struct ctl_table *t = ctl_table_new(3, h);
				size_t j;
				json_array_foreach(moved, j, m) {
					cell_key(t, m, "actor_id");
					cell_key(t, m, "instance");
					ctl_table_cellf(t, "moved to %s", ctl_jstr(m, "to_node"));
				}
				json_array_foreach(unmoved, j, m) {
					cell_key(t, m, "actor_id");
					cell_key(t, m, "instance");
					ctl_table_cell(t, "stays: no other node can take it");
				}
				ctl_table_print(t, x->o, x->headers);
				ctl_table_free(t);
			}
		}
		json_decref(o);
	}
	return rc;
}

int ctl_run_failover_plan(struct ctl_ctx *x)
{
	char *p = id_path("/v1/nodes", x->args.pos[0], "/failover-plan");
	json_t *o;
	int rc = write_req(x, "POST", p, NULL, 200, 200, &o);
	free(p);
	if (rc != CTL_EXIT_OK || !o) {
		json_decref(o);
		return rc != CTL_EXIT_OK ? rc : CTL_EXIT_FAILED;
	}
	if (x->out == CTL_OUT_JSON) {
		ctl_print_json(x, o);
	} else {
		char *id = ctl_clean(ctl_jstr(o, "node_id"));
		fprintf(x->o, "If node %s (%s) died now: %lld replicas, %lld would move, %lld would find no home\n", id,
			ctl_jstr(o, "status"), (long long)ctl_jint(o, "replicas", 0), (long long)ctl_jint(o, "moved", 0),
			(long long)ctl_jint(o, "unplaced", 0));
		free(id);
		static const char *const h[] = {"ACTOR", "INSTANCE", "PRIORITY", "RESULT"};
		struct ctl_table *t = ctl_table_new(4, h);
		size_t j;
		const json_t *m;
		json_array_foreach(json_object_get(o, "moves"), j, m) {
			cell_key(t, m, "actor_id");
			cell_key(t, m, "instance");
			cell_key(t, m, "priority");
			ctl_table_cellf(t, "to %s", ctl_jstr(m, "to_node"));
		}
		json_array_foreach(json_object_get(o, "no_home"), j, m) {
			cell_key(t, m, "actor_id");
			cell_key(t, m, "instance");
			cell_key(t, m, "priority");
			cell_key(t, m, "reason");
		}
		if (ctl_table_rows(t) > 0)
			ctl_table_print(t, x->o, x->headers);
		ctl_table_free(t);
	}
	json_decref(o);
	return rc;
}

/* ---- actor actions ------------------------------------------------------------------------------- */

static int patch_actor(struct ctl_ctx *x, json_t *b, const char *what)
{
	char *p = id_path("/v1/actors", x->args.pos[0], NULL);
	json_t *o;
	int rc = write_req(x, "PATCH", p, b, 200, 200, &o);
	free(p);
	if (rc == CTL_EXIT_OK)
		print_done(x, &ctl_kind_actors, o, x->args.pos[0], what);
	json_decref(o);
	return rc;
}

int ctl_run_actor_scale(struct ctl_ctx *x)
{
	if (!ctl_args_has(&x->args, "replicas"))
		return ctl_usage_error(x, "'latticectl actors scale' needs --replicas N");
	json_t *b = ctl_body(x);
	if (!b)
		return CTL_EXIT_USAGE;
	char what[64];
	snprintf(what, sizeof(what), "scaled to %lld replicas", (long long)ctl_jint(b, "replicas", 0));
	int rc = patch_actor(x, b, what);
	json_decref(b);
	return rc;
}

int ctl_run_actor_patch(struct ctl_ctx *x)
{
	json_t *b = ctl_body(x);
	if (!b)
		return CTL_EXIT_USAGE;
	if (json_object_size(b) == 0) {
		json_decref(b);
		return ctl_usage_error(x, "nothing to change: give --replicas, --cpu or --memory (or -f FILE)");
	}
	int rc = patch_actor(x, b, "patched");
	json_decref(b);
	return rc;
}

int ctl_run_actor_migrate(struct ctl_ctx *x)
{
	json_t *b = ctl_body(x);
	if (!b)
		return CTL_EXIT_USAGE;
	char *p = id_path("/v1/actors", x->args.pos[0], "/migrate");
	json_t *o;
	int rc = write_req(x, "POST", p, b, 202, 200, &o);
	free(p);
	if (rc == CTL_EXIT_OK) {
		char what[200];
		const char *to = ctl_jstr(b, "target_node");
		snprintf(what, sizeof(what), "migrating (instance %lld to %s)", (long long)ctl_jint(b, "instance", 0),
			 to[0] ? to : "the node the scheduler picks");
		print_done(x, &ctl_kind_actors, o, x->args.pos[0], what);
	}
	json_decref(o);
	json_decref(b);
	return rc;
}

/* ---- policies ------------------------------------------------------------------------------------ */

int ctl_run_policy_update(struct ctl_ctx *x)
{
	json_t *b = ctl_body(x);
	if (!b)
		return CTL_EXIT_USAGE;
	char *p = id_path("/v1/policies", x->args.pos[0], NULL);
	json_t *o;
	int rc = write_req(x, "PUT", p, b, 200, 200, &o);
	free(p);
	json_decref(b);
	if (rc == CTL_EXIT_OK) {
		char what[64];
		snprintf(what, sizeof(what), "updated to version %lld", (long long)ctl_jint(o, "version", 0));
		print_done(x, &ctl_kind_policies, o, x->args.pos[0], what);
	}
	json_decref(o);
	return rc;
}

int ctl_run_policy_versions(struct ctl_ctx *x)
{
	char *p = id_path("/v1/policies", x->args.pos[0], "/versions");
	json_t *o;
	int rc = get_json(x, p, true, &o);
	free(p);
	if (rc != CTL_EXIT_OK)
		return rc;
	const json_t *items = json_object_get(o, "items");
	if (!json_is_array(items)) {
		rc = CTL_EXIT_FAILED;
		fprintf(stderr, "error: the answer has no list of versions\n");
	} else if (x->out == CTL_OUT_JSON) {
		ctl_print_json(x, o);
	} else {
		ctl_print_items(x, &ctl_kind_policy_versions, items);
	}
	json_decref(o);
	return rc;
}

/* Items of an unknown shape as a table: one column per scalar member of the
 * first item. */
static void print_generic(struct ctl_ctx *x, const json_t *items)
{
	const json_t *first = json_array_get(items, 0), *v;
	const char *keys[32], *key;
	size_t n = 0, i;
	json_object_foreach((json_t *)first, key, v) if (n < 32 && !json_is_object(v)) keys[n++] = key;
	if (n == 0) {
		json_array_foreach(items, i, v) ctl_print_json(x, v);
		return;
	}
	char *up[32];
	for (i = 0; i < n; i++) {
		up[i] = ctl_xstrdup(keys[i]);
		for (char *c = up[i]; *c; c++)
			*c = *c == '_' ? '-' : (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
	}
	struct ctl_table *t = ctl_table_new(n, (const char *const *)up);
	json_array_foreach(items, i, v) {
		for (size_t k = 0; k < n; k++)
			cell_key(t, v, keys[k]);
	}
	ctl_table_print(t, x->o, x->headers);
	ctl_table_free(t);
	for (i = 0; i < n; i++)
		free(up[i]);
}

int ctl_run_policy_violations(struct ctl_ctx *x)
{
	/* The policy first: a 404 for the violations then means the route, not the policy. */
	char *pp = id_path("/v1/policies", x->args.pos[0], NULL);
	json_t *pol;
	int rc = get_json(x, pp, true, &pol);
	free(pp);
	json_decref(pol);
	if (rc != CTL_EXIT_OK)
		return rc;
	char *p = id_path("/v1/policies", x->args.pos[0], "/violations");
	struct ctl_buf q = {0};
	ctl_buf_puts(&q, p);
	free(p);
	if (x->consistent)
		ctl_query_add(&q, "consistent", "true");
	struct ctl_resp r;
	rc = ctl_request(&x->client, "GET", q.s, NULL, 0, &r);
	ctl_buf_free(&q);
	if (rc != CTL_EXIT_OK)
		return rc;
	if (r.status == 404 || r.status == 405) {
		fprintf(stderr, "error: %s does not serve GET /v1/policies/{id}/violations (%s)\n", r.server,
			r.message && r.message[0] ? r.message : "no such route");
		ctl_resp_free(&r);
		return CTL_EXIT_FAILED;
	}
	if (r.status != 200) {
		rc = ctl_fail(&r, false);
	} else if (x->out == CTL_OUT_JSON) {
		ctl_print_json(x, r.json);
	} else {
		const json_t *items = json_object_get(r.json, "items");
		if (!json_is_array(items))
			items = json_object_get(r.json, "violations");
		if (!json_is_array(items))
			ctl_print_json(x, r.json);
		else if (json_array_size(items) == 0)
			fprintf(stderr, "No violations found.\n");
		else
			print_generic(x, items);
		json_int_t total = json_integer_value(json_object_get(r.json, "total"));
		if (json_is_array(items) && total > (json_int_t)json_array_size(items))
			fprintf(stderr, "(the first %zu of %lld violations)\n", json_array_size(items), (long long)total);
	}
	ctl_resp_free(&r);
	return rc;
}
