/* ctl_ops — see ctl_ops.h. */
#include "ctl_ops.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl_fmt.h"
#include "ctl_res.h"
#include "ctl_table.h"
#include "ctl_util.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0"
#endif

/* A request whose answer must have status want (or want2) and be a JSON
 * object; 0 with *out owned. */
static int call(struct ctl_ctx *x, const char *method, const char *path, const char *body, int want, int want2,
		json_t **out)
{
	struct ctl_resp r;
	*out = NULL;
	int rc = ctl_request(&x->client, method, path, body, 0, &r);
	if (rc != CTL_EXIT_OK)
		return rc;
	bool write = strcmp(method, "GET") != 0;
	if (r.status != want && r.status != want2)
		rc = ctl_fail(&r, write);
	else if (!json_is_object(r.json)) {
		fprintf(stderr, "error: %s answered %d without a JSON object\n", r.server, r.status);
		rc = CTL_EXIT_FAILED;
	} else
		*out = json_incref(r.json);
	ctl_resp_free(&r);
	return rc;
}

/* Key/value lines ("Leader:  1 ..."), aligned. */
static void kv(struct ctl_table *t, const char *k, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void kv(struct ctl_table *t, const char *k, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char v[1024];
	vsnprintf(v, sizeof(v), fmt, ap);
	va_end(ap);
	ctl_table_cell(t, k);
	ctl_table_cell(t, v);
}

/* ---- cluster ---------------------------------------------------------------------------------- */

int ctl_run_cluster_status(struct ctl_ctx *x)
{
	json_t *c;
	int rc = call(x, "GET", "/v1/cluster", NULL, 200, 200, &c);
	if (rc != CTL_EXIT_OK)
		return rc;
	if (x->out == CTL_OUT_JSON) {
		ctl_print_json(x, c);
		json_decref(c);
		return rc;
	}
	static const char *const h[] = {"", ""};
	struct ctl_table *t = ctl_table_new(2, h);
	const json_t *l = json_object_get(c, "leader"), *self = json_object_get(c, "self"), *m;
	char *api = ctl_fmt_json(json_object_get(l, "api_url"));
	if (json_is_object(l))
		kv(t, "Leader:", "%lld at %s, API %s", (long long)ctl_jint(l, "id", 0), ctl_jstr(l, "address"),
		   api[0] ? api : "not recorded yet");
	else
		kv(t, "Leader:", "none known");
	free(api);
	char *v;
	static const char *const nums[][2] = {{"Term:", "term"},
					      {"Commit index:", "commit_index"},
					      {"Applied index:", "applied_index"},
					      {"Projected index:", "projected_index"}};
	for (size_t i = 0; i < 4; i++) {
		v = ctl_fmt_json(json_object_get(c, nums[i][1]));
		kv(t, nums[i][0], "%s", v);
		free(v);
	}
	const json_t *pg = json_object_get(self, "postgresql_ok");
	kv(t, "This replica:", "%lld, %s, %s%s", (long long)ctl_jint(self, "id", 0), ctl_jstr(self, "state"),
	   ctl_jstr(self, "api_url"),
	   json_is_boolean(pg) ? (json_is_true(pg) ? ", PostgreSQL ok" : ", PostgreSQL unreachable") : "");
	size_t i, voters = 0;
	json_array_foreach(json_object_get(c, "members"), i, m) voters += strcmp(ctl_jstr(m, "role"), "voter") == 0;
	kv(t, "Members:", "%zu (%zu voters)", json_array_size(json_object_get(c, "members")), voters);
	ctl_table_print(t, x->o, false);
	ctl_table_free(t);
	json_decref(c);
	return rc;
}

int ctl_run_cluster_members(struct ctl_ctx *x)
{
	json_t *c;
	int rc = call(x, "GET", "/v1/cluster", NULL, 200, 200, &c);
	if (rc != CTL_EXIT_OK)
		return rc;
	json_t *members = json_object_get(c, "members");
	if (!json_is_array(members)) {
		fprintf(stderr, "error: the answer has no member list\n");
		rc = CTL_EXIT_FAILED;
	} else if (x->out == CTL_OUT_JSON) {
		json_t *j = json_pack("{s:O,s:n}", "items", members, "next");
		ctl_print_json(x, j);
		json_decref(j);
	} else {
		ctl_print_items(x, &ctl_kind_members, members);
	}
	json_decref(c);
	return rc;
}

int ctl_run_cluster_add(struct ctl_ctx *x)
{
	long long id;
	const char *ra = ctl_args_get(&x->args, "raft-address"), *api = ctl_args_get(&x->args, "api-url");
	if (ctl_parse_int(x->args.pos[0], 1, 2147483647, &id) != 0)
		return ctl_usage_error(x, "the member id '%s' is not a number from 1 to 2147483647", x->args.pos[0]);
	if (!ra || !api)
		return ctl_usage_error(x, "'latticectl cluster add-member' needs --raft-address and --api-url");
	json_t *b = json_pack("{s:I,s:s,s:s}", "id", (json_int_t)id, "raft_address", ra, "api_url", api);
	if (!b)
		return ctl_usage_error(x, "--raft-address and --api-url must be valid UTF-8");
	char *body = json_dumps(b, JSON_COMPACT);
	json_decref(b);
	struct ctl_resp r;
	int rc = ctl_request(&x->client, "POST", "/v1/cluster/members", body, 0, &r);
	free(body);
	if (rc != CTL_EXIT_OK)
		return rc;
	if (r.status != 200 && r.status != 201)
		rc = ctl_fail(&r, true);
	else if (x->out == CTL_OUT_JSON)
		ctl_print_json(x, r.json);
	else if (x->out == CTL_OUT_NAME)
		fprintf(x->o, "member/%lld\n", id);
	else
		fprintf(x->o, "member/%lld %s\n", id,
			r.status == 201 ? "added" : "was a member already (its API URL is recorded)");
	ctl_resp_free(&r);
	return rc;
}

int ctl_run_cluster_remove(struct ctl_ctx *x)
{
	long long id;
	if (ctl_parse_int(x->args.pos[0], 1, 2147483647, &id) != 0)
		return ctl_usage_error(x, "the member id '%s' is not a number from 1 to 2147483647", x->args.pos[0]);
	char path[64];
	snprintf(path, sizeof(path), "/v1/cluster/members/%lld", id);
	json_t *c;
	int rc = call(x, "DELETE", path, NULL, 200, 204, &c);
	if (rc != CTL_EXIT_OK)
		return rc;
	if (x->out == CTL_OUT_JSON)
		ctl_print_json(x, c);
	else if (x->out == CTL_OUT_NAME)
		fprintf(x->o, "member/%lld\n", id);
	else
		fprintf(x->o, "member/%lld removed\n", id);
	json_decref(c);
	return rc;
}

int ctl_run_cluster_transfer(struct ctl_ctx *x)
{
	const char *to = ctl_args_get(&x->args, "to");
	long long id = 0;
	if (to && ctl_parse_int(to, 1, 2147483647, &id) != 0)
		return ctl_usage_error(x, "--to: '%s' is not a member id", to);
	char body[64];
	snprintf(body, sizeof(body), "{\"to\":%lld}", id);
	json_t *c;
	int rc = call(x, "POST", "/v1/cluster/transfer", to ? body : NULL, 200, 200, &c);
	if (rc != CTL_EXIT_OK)
		return rc;
	if (x->out == CTL_OUT_JSON)
		ctl_print_json(x, c);
	else
		fprintf(x->o, "leadership handed to %lld\n",
			(long long)ctl_jint(json_object_get(c, "leader"), "id", id));
	json_decref(c);
	return rc;
}

int ctl_run_cluster_read_index(struct ctl_ctx *x)
{
	json_t *c;
	int rc = call(x, "POST", "/v1/cluster/read-index", NULL, 200, 200, &c);
	if (rc != CTL_EXIT_OK)
		return rc;
	if (x->out == CTL_OUT_JSON)
		ctl_print_json(x, c);
	else
		fprintf(x->o, "%lld\n", (long long)ctl_jint(c, "index", 0));
	json_decref(c);
	return rc;
}

/* ---- health, metrics, chaos -------------------------------------------------------------------- */

int ctl_run_health(struct ctl_ctx *x)
{
	static const char *const h[] = {"SERVER", "LIVE", "READY", "LEADER", "APPLIED", "PROJECTED", "REASON"};
	struct ctl_table *t = ctl_table_new(7, h);
	json_t *all = json_array();
	int rc = CTL_EXIT_OK;
	for (size_t i = 0; i < x->cfg.nservers; i++) {
		const char *url = x->cfg.servers[i];
		struct ctl_resp live, ready;
		char err[256] = "";
		bool got_live = ctl_request_at(&x->client, url, "GET", "/healthz", &live, err, sizeof(err)) == 0;
		bool alive = got_live && live.status == 200;
		bool answered = alive && ctl_request_at(&x->client, url, "GET", "/readyz", &ready, err, sizeof(err)) == 0;
		bool ok = answered && ready.status == 200;
		if (!ok)
			rc = CTL_EXIT_UNAVAILABLE;
		const json_t *rj = answered ? ready.json : NULL;
		ctl_table_cell(t, url);
		ctl_table_cell(t, alive ? "yes" : "no");
		ctl_table_cell(t, ok ? "yes" : "no");
		const json_t *ld = json_object_get(rj, "leader");
		ctl_table_cell(t, json_is_boolean(ld) ? (json_is_true(ld) ? "yes" : "no") : "");
		char *a = ctl_fmt_json(json_object_get(rj, "applied_index")), *p = ctl_fmt_json(json_object_get(rj, "projected_index"));
		ctl_table_cell(t, a);
		ctl_table_cell(t, p);
		free(a);
		free(p);
		const char *why = !alive ? (err[0] ? err : "/healthz did not answer 200")
				  : ok   ? ""
				  : answered && ready.message[0] ? ready.message
								 : err;
		ctl_table_cell(t, why);
		json_t *e = json_pack("{s:s,s:b,s:b,s:O?,s:s}", "server", url, "live", alive, "ready", ok, "readyz",
				      (json_t *)rj, "reason", why);
		json_array_append_new(all, e ? e : json_null());
		if (got_live)
			ctl_resp_free(&live);
		if (answered)
			ctl_resp_free(&ready);
	}
	if (x->out == CTL_OUT_JSON) {
		json_t *j = json_pack("{s:O}", "items", all);
		ctl_print_json(x, j);
		json_decref(j);
	} else {
		ctl_table_print(t, x->o, x->headers);
	}
	json_decref(all);
	ctl_table_free(t);
	return rc;
}

/* The body of a GET as it came (metrics, the timeline picture). */
static int raw_get(struct ctl_ctx *x, const char *path)
{
	struct ctl_resp r;
	int rc = ctl_request(&x->client, "GET", path, NULL, 0, &r);
	if (rc != CTL_EXIT_OK)
		return rc;
	if (r.status != 200)
		rc = ctl_fail(&r, false);
	else
		fwrite(r.body, 1, r.body_len, x->o);
	ctl_resp_free(&r);
	return rc;
}

int ctl_run_metrics(struct ctl_ctx *x)
{
	return raw_get(x, "/metrics");
}

int ctl_run_chaos_timeline(struct ctl_ctx *x)
{
	if (isatty(STDOUT_FILENO)) {
		fprintf(stderr, "error: the timeline is an SVG picture: redirect it to a file "
				"(latticectl chaos timeline > timeline.svg)\n");
		return CTL_EXIT_USAGE;
	}
	return raw_get(x, "/v1/chaos/report/timeline.svg");
}

int ctl_run_chaos_report(struct ctl_ctx *x)
{
	json_t *c;
	int rc = call(x, "GET", "/v1/chaos/report", NULL, 200, 200, &c);
	if (rc != CTL_EXIT_OK)
		return rc;
	if (x->out == CTL_OUT_JSON) {
		ctl_print_json(x, c);
	} else {
		static const char *const h[] = {"", ""};
		struct ctl_table *t = ctl_table_new(2, h);
		const char *key;
		json_t *v;
		json_object_foreach(c, key, v) {
			if (json_is_object(v) || json_is_array(v))
				continue; /* the figures: -o json */
			char *s = ctl_fmt_json(v), k2[80];
			snprintf(k2, sizeof(k2), "%s:", key);
			kv(t, k2, "%s", s);
			free(s);
		}
		ctl_table_print(t, x->o, false);
		ctl_table_free(t);
		fprintf(x->o, "(all the figures: latticectl chaos report -o json)\n");
	}
	json_decref(c);
	return rc;
}

/* ---- summary ------------------------------------------------------------------------------------- */

/* "3 pending, 120 acked" from an object of counts, in the order of keys (NULL:
 * the object's own order); "none" when all are 0. malloc'd. */
static char *counts(const json_t *o, const char *const *keys)
{
	struct ctl_buf b = {0};
	ctl_buf_add(&b, "", 0);
	const char *k;
	json_t *v;
	if (keys) {
		for (size_t i = 0; keys[i]; i++)
			ctl_buf_printf(&b, "%s%lld %s", i ? ", " : "", (long long)ctl_jint(o, keys[i], 0), keys[i]);
	} else {
		json_object_foreach((json_t *)o, k, v)
			if (json_integer_value(v) > 0)
				ctl_buf_printf(&b, "%s%lld %s", b.len ? ", " : "", (long long)json_integer_value(v), k);
		if (b.len == 0)
			ctl_buf_puts(&b, "none");
	}
	return b.s;
}

int ctl_run_summary(struct ctl_ctx *x)
{
	struct ctl_resp r;
	int rc = ctl_request(&x->client, "GET", x->consistent ? "/v1/summary?consistent=true" : "/v1/summary", NULL, 0, &r);
	if (rc != CTL_EXIT_OK)
		return rc;
	if (r.status == 404 || r.status == 405) { /* a latticed from before GET /v1/summary */
		fprintf(stderr, "error: %s does not serve GET /v1/summary\n", r.server);
		ctl_resp_free(&r);
		return CTL_EXIT_FAILED;
	}
	if (r.status != 200 || !json_is_object(r.json)) {
		rc = r.status != 200 ? ctl_fail(&r, false) : CTL_EXIT_FAILED;
		if (r.status == 200)
			fprintf(stderr, "error: %s answered without a JSON object\n", r.server);
		ctl_resp_free(&r);
		return rc;
	}
	if (x->out == CTL_OUT_JSON) {
		ctl_print_json(x, r.json);
		ctl_resp_free(&r);
		return rc;
	}
	static const char *const status_keys[] = {"healthy", "degraded", "unhealthy", NULL};
	static const char *const cmd_keys[] = {"pending", "published", "acked", "failed", "superseded", NULL};
	const json_t *n = json_object_get(r.json, "nodes"), *a = json_object_get(r.json, "actors"), *reg;
	char *ns = counts(json_object_get(n, "by_status"), status_keys);
	char *as = counts(json_object_get(a, "by_state"), NULL);
	char *cs = counts(json_object_get(json_object_get(r.json, "commands"), "by_status"), cmd_keys);
	char *fs = counts(json_object_get(json_object_get(r.json, "failovers"), "by_status"), NULL);
	static const char *const h[] = {"", ""};
	struct ctl_table *t = ctl_table_new(2, h);
	kv(t, "Nodes:", "%lld (%s; %lld cordoned, %lld draining, %lld behind on policy)", (long long)ctl_jint(n, "total", 0),
	   ns, (long long)ctl_jint(n, "cordoned", 0), (long long)ctl_jint(n, "draining", 0),
	   (long long)ctl_jint(n, "policy_behind", 0));
	kv(t, "Actors:", "%lld, %lld instances (%s)", (long long)ctl_jint(a, "total", 0),
	   (long long)ctl_jint(a, "instances", 0), as);
	kv(t, "Commands:", "%s", cs);
	kv(t, "Failovers:", "%s", fs);
	kv(t, "Index:", "%lld", (long long)ctl_jint(r.json, "index", 0));
	ctl_table_print(t, x->o, false);
	ctl_table_free(t);
	free(ns), free(as), free(cs), free(fs);
	static const char *const rh[] = {"REGION",   "NODES",  "HEALTHY", "DEGRADED", "UNHEALTHY",
					 "CORDONED", "BEHIND", "CPU",     "MEMORY",   "ACTORS"};
	t = ctl_table_new(10, rh);
	size_t i;
	json_array_foreach(json_object_get(n, "regions"), i, reg) {
		const json_t *bs = json_object_get(reg, "by_status");
		ctl_table_cell(t, ctl_jstr(reg, "region"));
		ctl_table_cellf(t, "%lld", (long long)ctl_jint(reg, "total", 0));
		for (size_t k = 0; status_keys[k]; k++)
			ctl_table_cellf(t, "%lld", (long long)ctl_jint(bs, status_keys[k], 0));
		ctl_table_cellf(t, "%lld", (long long)ctl_jint(reg, "cordoned", 0));
		ctl_table_cellf(t, "%lld", (long long)ctl_jint(reg, "policy_behind", 0));
		char u[32], c[32];
		ctl_fmt_cpu(ctl_jint(reg, "cpu_used", 0), u, sizeof(u));
		ctl_fmt_cpu(ctl_jint(reg, "cpu_capacity", 0), c, sizeof(c));
		ctl_table_cellf(t, "%s/%s", u, c);
		ctl_fmt_mem(ctl_jint(reg, "memory_used_mb", 0), u, sizeof(u));
		ctl_fmt_mem(ctl_jint(reg, "memory_mb", 0), c, sizeof(c));
		ctl_table_cellf(t, "%s/%s", u, c);
		ctl_table_cellf(t, "%lld", (long long)ctl_jint(reg, "actor_count", 0));
	}
	if (ctl_table_rows(t) > 0) {
		fputc('\n', x->o);
		ctl_table_print(t, x->o, x->headers);
	}
	ctl_table_free(t);
	ctl_resp_free(&r);
	return rc;
}

/* ---- plan ---------------------------------------------------------------------------------------- */

int ctl_run_plan(struct ctl_ctx *x)
{
	long long limit = -1;
	const char *ls = ctl_args_get(&x->args, "limit");
	if (ls && ctl_parse_int(ls, 1, 1000000000, &limit) != 0)
		return ctl_usage_error(x, "--limit: '%s' is not a number from 1 up", ls);
	json_t *b = ctl_body(x);
	if (!b)
		return CTL_EXIT_USAGE;
	char *body = json_dumps(b, JSON_COMPACT);
	json_decref(b);
	json_t *plan = NULL, *nodes = json_array();
	char *cursor = NULL;
	int rc = CTL_EXIT_OK;
	for (;;) { /* every node's reason, a page at a time */
		struct ctl_buf p = {0};
		ctl_buf_puts(&p, "/v1/schedule/plan?nodes=true");
		long long want = limit < 0 ? 1000 : limit - (long long)json_array_size(nodes);
		char num[24];
		snprintf(num, sizeof(num), "%lld", want > 1000 ? 1000 : want);
		ctl_query_add(&p, "limit", num);
		if (cursor)
			ctl_query_add(&p, "after", cursor);
		json_t *page;
		rc = call(x, "POST", p.s, body, 200, 200, &page);
		ctl_buf_free(&p);
		if (rc != CTL_EXIT_OK)
			break;
		json_array_extend(nodes, json_object_get(page, "nodes"));
		const json_t *nx = json_object_get(page, "next");
		bool more = json_is_string(nx) && !(cursor && strcmp(cursor, json_string_value(nx)) == 0) &&
			    (limit < 0 || (long long)json_array_size(nodes) < limit);
		free(cursor);
		cursor = more ? ctl_xstrdup(json_string_value(nx)) : NULL;
		if (!plan)
			plan = json_incref(page);
		else
			json_object_set(plan, "next", json_object_get(page, "next"));
		json_decref(page);
		if (!more)
			break;
	}
	free(body);
	free(cursor);
	if (rc == CTL_EXIT_OK) {
		json_object_set(plan, "nodes", nodes);
		const json_t *err = json_object_get(plan, "error");
		if (x->out == CTL_OUT_JSON) {
			ctl_print_json(x, plan);
		} else {
			struct ctl_buf pl = {0};
			size_t i;
			const json_t *c;
			json_array_foreach(json_object_get(plan, "chosen"), i, c) {
				char *sc = ctl_fmt_json(json_object_get(c, "score"));
				ctl_buf_printf(&pl, "%s%s (%s%s%s%s)", i ? ", " : "", ctl_jstr(c, "node_id"),
					       sc[0] ? "score " : "score unknown", sc,
					       json_is_true(json_object_get(c, "round_robin")) ? ", round robin" : "",
					       json_is_true(json_object_get(c, "other_region")) ? ", other region" : "");
				free(sc);
			}
			char *placements = ctl_clean(ctl_buf_str(&pl));
			char *summary = ctl_clean(ctl_jstr(plan, "summary"));
			if (err)
				fprintf(x->o, "Does not fit: %s (%s)\n", ctl_jstr(err, "message"), ctl_jstr(err, "code"));
			else
				fprintf(x->o, "Placements: %s\n", placements);
			fprintf(x->o, "Summary:    %s\n\n", summary);
			free(placements);
			free(summary);
			ctl_buf_free(&pl);
			static const char *const h[] = {"NODE", "REGION", "FIT", "SCORE", "CHOSEN", "REASON"};
			struct ctl_table *t = ctl_table_new(6, h);
			json_array_foreach(nodes, i, c) {
				char *sc = ctl_fmt_json(json_object_get(c, "score"));
				ctl_table_cell(t, ctl_jstr(c, "node_id"));
				ctl_table_cell(t, ctl_jstr(c, "region"));
				ctl_table_cell(t, json_is_true(json_object_get(c, "candidate")) ? "yes" : "no");
				ctl_table_cell(t, sc);
				ctl_table_cell(t, json_is_true(json_object_get(c, "chosen")) ? "yes" : "no");
				ctl_table_cell(t, ctl_jstr(c, "reason"));
				free(sc);
			}
			if (ctl_table_rows(t) > 0)
				ctl_table_print(t, x->o, x->headers);
			else
				fprintf(stderr, "No nodes in the lattice.\n");
			ctl_table_free(t);
			if (json_is_string(json_object_get(plan, "next")))
				fprintf(stderr, "(more nodes: raise --limit)\n");
		}
		if (err) /* as `actors create` with this body would fail */
			rc = CTL_EXIT_CONFLICT;
	}
	json_decref(plan);
	json_decref(nodes);
	return rc;
}

/* ---- events -------------------------------------------------------------------------------------- */

/* Is there an event numbered s or above? GET since=s-1&limit=1. 0 with *has,
 * and *seen (that event's seq) when there is; else an exit code. */
static int probe(struct ctl_ctx *x, long long s, bool *has, long long *seen)
{
	char path[96];
	snprintf(path, sizeof(path), "/v1/events?since=%lld&limit=1", s - 1);
	struct ctl_resp r;
	int rc = ctl_request(&x->client, "GET", path, NULL, 0, &r);
	if (rc != CTL_EXIT_OK)
		return rc;
	const json_t *first = json_array_get(json_object_get(r.json, "items"), 0);
	if (r.status == 410 && strcmp(r.code, "events_compacted") == 0) { /* held from first_seq on */
		*has = true;
		*seen = ctl_jint(json_object_get(r.json, "error"), "first_seq", s);
	} else if (r.status == 200) {
		*has = first != NULL;
		*seen = first ? ctl_jint(first, "seq", s) : 0;
	} else {
		rc = ctl_fail(&r, false);
	}
	ctl_resp_free(&r);
	if (rc == CTL_EXIT_OK && *has && *seen < s)
		*seen = s;
	return rc;
}

/* The newest event's seq (0: none): grows a step until nothing is there, then
 * halves the gap, so a long log costs a few dozen small reads, not all of it. */
static int newest_seq(struct ctl_ctx *x, long long *out)
{
	bool has;
	long long seen, lo, hi, step = 1;
	int rc = probe(x, 1, &has, &seen);
	if (rc != CTL_EXIT_OK || !has) {
		*out = 0;
		return rc;
	}
	lo = seen;
	for (;;) {
		if ((rc = probe(x, lo + step, &has, &seen)) != CTL_EXIT_OK)
			return rc;
		if (!has)
			break;
		lo = seen;
		if (step < (1LL << 40))
			step *= 2;
	}
	hi = lo + step;
	while (hi - lo > 1) {
		long long mid = lo + (hi - lo) / 2;
		if ((rc = probe(x, mid, &has, &seen)) != CTL_EXIT_OK)
			return rc;
		if (has)
			lo = seen < hi ? seen : mid;
		else
			hi = mid;
	}
	*out = lo;
	return CTL_EXIT_OK;
}

/* Columns of events --watch: fixed widths, as rows come one at a time. */
static const size_t event_widths[] = {6, 24, 20, 24, 6, 6, 0};

static void event_line(struct ctl_ctx *x, const json_t *e)
{
	if (x->out == CTL_OUT_JSON) { /* one JSON object a line */
		if (json_dumpf(e, x->o, JSON_COMPACT) == 0)
			fputc('\n', x->o);
		fflush(x->o);
		return;
	}
	if (x->out == CTL_OUT_NAME) {
		fprintf(x->o, "event/%lld\n", (long long)ctl_jint(e, "seq", 0));
		fflush(x->o);
		return;
	}
	char s_seq[32], s_obj[600], s_idx[32];
	snprintf(s_seq, sizeof(s_seq), "%lld", (long long)ctl_jint(e, "seq", 0));
	const char *ot = json_string_value(json_object_get(e, "object_type"));
	const char *oi = json_string_value(json_object_get(e, "object_id"));
	if (ot || oi)
		snprintf(s_obj, sizeof(s_obj), "%s/%s", ot ? ot : "?", oi ? oi : "?");
	else
		s_obj[0] = '\0';
	snprintf(s_idx, sizeof(s_idx), "%lld", (long long)ctl_jint(e, "index", 0));
	char *d = json_dumps(json_object_get(e, "data"), JSON_COMPACT | JSON_ENCODE_ANY);
	const char *row[] = {s_seq, ctl_jstr(e, "at"), ctl_jstr(e, "kind"), s_obj, ctl_jstr(e, "who"), s_idx, d ? d : ""};
	ctl_table_stream_row(x->o, event_widths, row, x->out == CTL_OUT_WIDE ? 7 : 5);
	free(d);
}

int ctl_run_events(struct ctl_ctx *x)
{
	bool watch = ctl_args_has(&x->args, "watch");
	long long since = 0, limit = -1, wait = 30;
	const char *v;
	if ((v = ctl_args_get(&x->args, "since")) && ctl_parse_int(v, 0, 9223372036854775806LL, &since) != 0)
		return ctl_usage_error(x, "--since: '%s' is not an event number (0 to 9223372036854775806)", v);
	if ((v = ctl_args_get(&x->args, "limit")) && ctl_parse_int(v, 1, 1000000000, &limit) != 0)
		return ctl_usage_error(x, "--limit: '%s' is not a number from 1 up", v);
	if ((v = ctl_args_get(&x->args, "wait")) && ctl_parse_int(v, 1, 60, &wait) != 0)
		return ctl_usage_error(x, "--wait: '%s' is not a number of seconds from 1 to 60", v);
	long long chunk = 1000;
	if ((v = ctl_args_get(&x->args, "chunk-size")) && ctl_parse_int(v, 1, 1000, &chunk) != 0)
		return ctl_usage_error(x, "--chunk-size: '%s' is not a number from 1 to 1000", v);
	if (!watch && ctl_args_has(&x->args, "wait"))
		return ctl_usage_error(x, "--wait goes with --watch");
	int rc;
	if (watch && !ctl_args_has(&x->args, "since") && (rc = newest_seq(x, &since)) != CTL_EXIT_OK)
		return rc;
	bool stream = watch;
	json_t *all = json_array();
	if (stream && x->headers && (x->out == CTL_OUT_TABLE || x->out == CTL_OUT_WIDE)) {
		const char *h[] = {"SEQ", "TIME", "KIND", "OBJECT", "WHO", "INDEX", "DATA"};
		ctl_table_stream_row(x->o, event_widths, h, x->out == CTL_OUT_WIDE ? 7 : 5);
	}
	long long printed = 0, backoff = 0;
	rc = CTL_EXIT_OK;
	while (limit < 0 || printed < limit) {
		char path[200];
		long long page = limit < 0 || limit - printed > chunk ? chunk : limit - printed;
		snprintf(path, sizeof(path), "/v1/events?since=%lld&limit=%lld", since, page);
		if (watch)
			snprintf(path + strlen(path), sizeof(path) - strlen(path), "&wait=%lld", wait);
		if (x->consistent)
			snprintf(path + strlen(path), sizeof(path) - strlen(path), "&consistent=true");
		struct ctl_resp r;
		rc = ctl_request(&x->client, "GET", path, NULL, watch ? wait * 1000 : 0, &r);
		if (rc == CTL_EXIT_UNAVAILABLE && watch) { /* keep watching: replicas come back */
			backoff = backoff ? (backoff * 2 > 10 ? 10 : backoff * 2) : 1;
			fprintf(stderr, "latticectl: retrying in %llds\n", backoff);
			sleep((unsigned)backoff);
			continue;
		}
		if (rc != CTL_EXIT_OK)
			break;
		backoff = 0;
		if (r.status == 410 && strcmp(r.code, "events_compacted") == 0) {
			long long first = ctl_jint(json_object_get(r.json, "error"), "first_seq", since + 1);
			fprintf(stderr,
				"latticectl: %s does not hold events %lld to %lld (its database was rebuilt from a "
				"snapshot, which keeps no event history); continuing from %lld\n",
				r.server, since + 1, first - 1, first);
			since = first > since + 1 ? first - 1 : since + 1;
			ctl_resp_free(&r);
			continue;
		}
		const json_t *items = json_object_get(r.json, "items"), *e;
		if (r.status != 200 || !json_is_array(items)) {
			rc = r.status != 200 ? ctl_fail(&r, false) : CTL_EXIT_FAILED;
			if (r.status == 200)
				fprintf(stderr, "error: %s answered without a list of events\n", r.server);
			ctl_resp_free(&r);
			break;
		}
		size_t i;
		json_array_foreach(items, i, e) {
			if (limit >= 0 && printed >= limit)
				break;
			if (stream)
				event_line(x, e);
			else
				json_array_append(all, (json_t *)e);
			printed++;
			long long s = ctl_jint(e, "seq", since);
			if (s > since)
				since = s;
		}
		long long nx = ctl_jint(r.json, "next", since);
		if (nx > since)
			since = nx;
		size_t got = json_array_size(items);
		ctl_resp_free(&r);
		if (!watch && got == 0)
			break;
	}
	if (!stream && rc == CTL_EXIT_OK) {
		if (x->out == CTL_OUT_JSON) {
			json_t *j = json_pack("{s:O,s:I}", "items", all, "next", (json_int_t)since);
			ctl_print_json(x, j);
			json_decref(j);
		} else {
			ctl_print_items(x, &ctl_kind_events, all);
		}
	}
	json_decref(all);
	return rc;
}

/* ---- the rest -------------------------------------------------------------------------------------- */

int ctl_run_config_view(struct ctl_ctx *x)
{
	const struct ctl_config *c = &x->cfg;
	struct ctl_buf s = {0};
	for (size_t i = 0; i < c->nservers; i++)
		ctl_buf_printf(&s, "%s%s", i ? "," : "", c->servers[i]);
	char tok[64];
	if (c->token)
		snprintf(tok, sizeof(tok), "(set, %zu characters)", strlen(c->token));
	else
		snprintf(tok, sizeof(tok), "(none)");
	char to[32];
	ctl_fmt_ms(c->timeout_ms, to, sizeof(to));
	if (x->out == CTL_OUT_JSON) {
		json_t *srv = json_array();
		for (size_t i = 0; i < c->nservers; i++)
			json_array_append_new(srv, json_string(c->servers[i]));
		json_t *j = json_pack("{s:o,s:s,s:b,s:s,s:I,s:s,s:s,s:b}", "servers", srv, "servers_from", c->server_from,
				      "token_set", c->token != NULL, "token_from", c->token_from, "timeout_ms",
				      (json_int_t)c->timeout_ms, "timeout_from", c->timeout_from, "config_file", c->file,
				      "config_file_found", c->file_found);
		ctl_print_json(x, j);
		json_decref(j);
	} else {
		static const char *const h[] = {"SETTING", "VALUE", "FROM"};
		struct ctl_table *t = ctl_table_new(3, h);
		ctl_table_cell(t, "server");
		ctl_table_cell(t, ctl_buf_str(&s));
		ctl_table_cell(t, c->server_from);
		ctl_table_cell(t, "token");
		ctl_table_cell(t, tok);
		ctl_table_cell(t, c->token_from);
		ctl_table_cell(t, "timeout");
		ctl_table_cell(t, to);
		ctl_table_cell(t, c->timeout_from);
		ctl_table_cell(t, "config");
		ctl_table_cell(t, c->file[0] ? c->file : "(none)");
		ctl_table_cell(t, c->file_found ? "read" : "not found");
		ctl_table_print(t, x->o, x->headers);
		ctl_table_free(t);
	}
	ctl_buf_free(&s);
	return CTL_EXIT_OK;
}

int ctl_run_completion(struct ctl_ctx *x)
{
	if (ctl_complete_script(x->args.pos[0], x->o) != 0)
		return ctl_usage_error(x, "no completion for shell '%s' (bash or zsh)", x->args.pos[0]);
	return CTL_EXIT_OK;
}

int ctl_run_version(struct ctl_ctx *x)
{
	if (x->out == CTL_OUT_JSON)
		fprintf(x->o, "{\n  \"version\": \"%s\"\n}\n", PACKAGE_VERSION);
	else
		fprintf(x->o, "latticectl %s\n", PACKAGE_VERSION);
	return CTL_EXIT_OK;
}

int ctl_run_help(struct ctl_ctx *x)
{
	int words[16], nwords;
	const char *unknown;
	const struct ctl_cmd *group;
	const struct ctl_cmd *cmd = ctl_resolve(x->args.npos, (char **)x->args.pos, words, &nwords, &unknown, &group);
	if (unknown || nwords < x->args.npos) {
		fprintf(stderr, "error: unknown command '%s'\n", unknown ? unknown : x->args.pos[nwords]);
		return CTL_EXIT_USAGE;
	}
	char path[128] = "";
	for (int i = 0; i < nwords; i++)
		snprintf(path + strlen(path), sizeof(path) - strlen(path), "%s%s", i ? " " : "", x->args.pos[i]);
	ctl_help(group ? group : cmd, path, x->o);
	return CTL_EXIT_OK;
}
