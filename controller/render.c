#include "render.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "jw.h"

static void render_time_libc(int64_t ms, char *buf, size_t len)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&s, &tm);
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03dZ", (int)(ms % 1000));
}

static char *digits(char *p, unsigned v, int n)
{
	for (int i = n - 1; i >= 0; i--, v /= 10)
		p[i] = (char)('0' + v % 10);
	return p + n;
}

static char *two(char *p, unsigned v)
{
	p[0] = (char)('0' + v / 10);
	p[1] = (char)('0' + v % 10);
	return p + 2;
}

/* The civil date of a day count since 1970-01-01 (proleptic Gregorian), by
 * 400-year eras of 146,097 days whose years start on March 1st, so that the
 * leap day is the era-year's last. */
static void civil(int64_t days, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t z = days + 719468; /* days since 0000-03-01 */
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);                            /* 0..146096 */
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* 0..399 */
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);                 /* 0..365, from March 1st */
	unsigned mp = (5 * doy + 2) / 153;                                      /* 0 = March */
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* Every timestamp of every API answer goes through here (a page of 100 actors
 * has 200): written digit by digit, about 8 times cheaper than gmtime_r and
 * strftime, which remain for what this does not cover (before 1970, after
 * 9999, a short buffer). test_render holds the two equal. */
size_t render_time(int64_t ms, char *buf, size_t len)
{
	if (ms < 0 || len < 25 || ms >= 253402300800000LL) { /* 10000-01-01 */
		render_time_libc(ms, buf, len);
		return strlen(buf);
	}
	/* A page of 100 actors renders 200 timestamps, mostly of a few days:
	 * each thread keeps its last day's date. */
	static _Thread_local int64_t last_day = -1;
	static _Thread_local char last_date[11];
	int64_t s = ms / 1000, days = s / 86400;
	unsigned sod = (unsigned)(s % 86400);
	if (days != last_day) {
		unsigned m, d;
		int64_t y;
		civil(days, &y, &m, &d);
		char *p = digits(last_date, (unsigned)y, 4);
		*p++ = '-';
		p = two(p, m);
		*p++ = '-';
		p = two(p, d);
		*p = 'T';
		last_day = days;
	}
	memcpy(buf, last_date, 11);
	char *p = two(buf + 11, sod / 3600);
	*p++ = ':';
	p = two(p, sod / 60 % 60);
	*p++ = ':';
	p = two(p, sod % 60);
	*p++ = '.';
	p = digits(p, (unsigned)(ms % 1000), 3);
	*p++ = 'Z';
	*p = '\0';
	return 24;
}

static json_t *time_or_null(int64_t ms)
{
	if (ms <= 0)
		return json_null();
	char buf[40];
	render_time(ms, buf, sizeof(buf));
	return json_string(buf);
}

static json_t *int_or_null(int64_t v)
{
	return v < 0 ? json_null() : json_integer((json_int_t)v);
}

json_t *render_node(const struct model_node *n)
{
	return json_pack("{s:s,s:s,s:o,s:I,s:I,s:I,s:I,s:I,s:{s:I,s:I,s:I},s:o,s:o,s:s,s:b,s:b,s:I,s:o,s:I,"
			 "s:I,s:s?,s:I,s:o,s:o}",
			 "id", n->spec.id, "region", n->spec.region, "labels", kvlist_to_json(&n->spec.labels),
			 "cpu_capacity", (json_int_t)n->spec.cpu_capacity, "memory_mb",
			 (json_int_t)n->spec.memory_mb, "cpu_used", (json_int_t)n->cpu_used, "memory_used_mb",
			 (json_int_t)n->memory_used_mb, "actor_count", (json_int_t)n->actor_count, "base",
			 "cpu_used", (json_int_t)n->spec.cpu_used, "memory_used_mb",
			 (json_int_t)n->spec.memory_used_mb, "actor_count", (json_int_t)n->spec.actor_count,
			 "cpu_measured", int_or_null(n->cpu_measured), "memory_measured_mb",
			 int_or_null(n->memory_measured_mb), "status", model_node_status_name(n->status),
			 "cordoned", n->cordoned, "draining", n->draining, "error_count",
			 (json_int_t)n->error_count, "last_heartbeat", time_or_null(n->last_heartbeat_ms),
			 "policy_version", (json_int_t)n->policy_version, "policy_target",
			 (json_int_t)n->policy_target, "agent_version", n->agent_version,
			 "generation", (json_int_t)n->generation, "created_at", time_or_null(n->created_ms),
			 "updated_at", time_or_null(n->updated_ms));
}

/* Timestamps as the API shows them: RFC 3339, or null before the epoch's first ms. */
char *render_put_time(char *p, int64_t ms)
{
	if (ms <= 0)
		return JW_PUT(p, "null");
	*p = '"'; /* digits and -:T.Z: nothing to escape */
	size_t n = render_time(ms, p + 1, RENDER_TIME_MAX - 1);
	p[n + 1] = '"';
	return p + n + 2;
}

void render_write_time(struct jw *w, int64_t ms)
{
	char *p = jw_value_room(w, RENDER_TIME_MAX);
	if (p)
		jw_value_done(w, render_put_time(p, ms));
}

void render_placements(struct jw *w, const struct model_actor *a)
{
	jw_arr(w);
	for (size_t i = 0; i < a->nplacements; i++) {
		const struct model_placement *p = &a->placements[i];
		jw_obj(w);
		jw_key(w, "instance");
		jw_uint(w, i);
		jw_key(w, "node_id");
		jw_str(w, p->node ? p->node->spec.id : NULL);
		jw_key(w, "state");
		jw_str(w, model_placement_state_name(p->state));
		jw_key(w, "state_version");
		jw_int(w, p->state_version);
		jw_obj_end(w);
	}
	jw_arr_end(w);
}

char *render_actor_text(const struct model_actor *a)
{
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	spec_actor_fields(&w, &a->spec); /* apply gives every actor a name (its id by default) */
	jw_key(&w, "placements");
	render_placements(&w, a);
	jw_key(&w, "generation");
	jw_uint(&w, a->generation);
	jw_key(&w, "created_at");
	render_write_time(&w, a->created_ms);
	jw_key(&w, "updated_at");
	render_write_time(&w, a->updated_ms);
	jw_obj_end(&w);
	return jw_take(&w, NULL);
}

json_t *render_provider(const struct model_provider *p)
{
	return json_pack("{s:s,s:s,s:s,s:o,s:o}", "id", p->spec.id, "contract_id", p->spec.contract_id, "image",
			 p->spec.image, "nodes", strlist_to_json(&p->spec.nodes), "created_at",
			 time_or_null(p->created_ms));
}

json_t *render_link(const struct model_link *l)
{
	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:I,s:I,s:I,s:o}", "id", l->spec.id, "actor_id",
			 l->spec.actor_id, "provider_id", l->spec.provider_id, "contract_id", l->spec.contract_id,
			 "link_name", l->spec.link_name, "values", kvlist_to_json(&l->spec.values), "timeout_ms",
			 (json_int_t)l->spec.timeout_ms, "retry_count", (json_int_t)l->spec.retry_count,
			 "retry_delay_ms", (json_int_t)l->spec.retry_delay_ms, "created_at",
			 time_or_null(l->created_ms));
}

json_t *render_policy(const struct model_policy *p)
{
	return json_pack("{s:s,s:I,s:o,s:o,s:I,s:o,s:{s:o,s:o},s:o}", "policy_id", p->spec.policy_id, "version",
			 (json_int_t)p->version, "allowed_contracts", strlist_to_json(&p->spec.allowed_contracts),
			 "denied_contracts", strlist_to_json(&p->spec.denied_contracts), "max_actor_memory_mb",
			 (json_int_t)p->spec.max_actor_memory_mb, "network_restrictions",
			 strlist_to_json(&p->spec.network_restrictions), "selector", "regions",
			 strlist_to_json(&p->spec.sel_regions), "labels", kvlist_to_json(&p->spec.sel_labels),
			 "created_at", time_or_null(p->updated_ms > 0 ? p->updated_ms : p->created_ms));
}

static const struct render_member *member_of(const struct render_cluster *c, raft_id id)
{
	for (size_t i = 0; c->members && i < c->nmembers; i++)
		if (c->members[i].id == id)
			return &c->members[i];
	return NULL;
}

static const char *member_url(const struct render_cluster *c, raft_id id)
{
	const struct render_member *m = member_of(c, id);
	return m ? m->api_url : NULL;
}

char *render_cluster(const struct render_cluster *c)
{
	static const char *const states[] = {"unavailable", "follower", "candidate", "leader"};
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "leader");
	if (c->leader_id == 0) {
		jw_null(&w);
	} else {
		jw_obj(&w);
		jw_key(&w, "id");
		jw_uint(&w, c->leader_id);
		jw_key(&w, "address");
		jw_str(&w, c->leader_address ? c->leader_address : "");
		jw_key(&w, "api_url");
		jw_str(&w, c->leader_id == c->self_id ? c->api_url : member_url(c, c->leader_id));
		jw_obj_end(&w);
	}
	jw_key(&w, "term");
	jw_uint(&w, c->term);
	jw_key(&w, "commit_index");
	jw_uint(&w, c->commit_index);
	jw_key(&w, "applied_index");
	jw_uint(&w, c->applied_index);
	jw_key(&w, "projected_index");
	jw_uint(&w, c->projected_index);
	jw_key(&w, "members");
	jw_arr(&w);
	for (unsigned i = 0; c->conf && i < c->conf->n; i++) {
		const struct raft_server *s = &c->conf->servers[i];
		jw_obj(&w);
		jw_key(&w, "id");
		jw_uint(&w, s->id);
		jw_key(&w, "address");
		jw_str(&w, s->address);
		jw_key(&w, "role");
		jw_str(&w, s->role == RAFT_VOTER ? "voter" : s->role == RAFT_STANDBY ? "standby" : "spare");
		jw_key(&w, "leader");
		jw_bool(&w, s->id == c->leader_id);
		const struct render_member *m = member_of(c, s->id);
		jw_key(&w, "api_url");
		jw_str(&w, s->id == c->self_id ? c->api_url : m ? m->api_url : NULL);
		jw_key(&w, "reachable");
		if (m == NULL || m->reachable < 0)
			jw_null(&w);
		else
			jw_bool(&w, m->reachable > 0);
		jw_key(&w, "applied_index");
		if (m && m->indices)
			jw_uint(&w, m->applied_index);
		else
			jw_null(&w);
		jw_key(&w, "projected_index");
		if (m && m->indices)
			jw_uint(&w, m->projected_index);
		else
			jw_null(&w);
		jw_key(&w, "projection_lag");
		if (m && m->indices)
			jw_uint(&w, m->applied_index > m->projected_index ? m->applied_index - m->projected_index : 0);
		else
			jw_null(&w);
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	jw_key(&w, "self");
	jw_obj(&w);
	jw_key(&w, "id");
	jw_uint(&w, c->self_id);
	jw_key(&w, "state");
	jw_str(&w, c->state >= 0 && c->state <= 3 ? states[c->state] : "unknown");
	jw_key(&w, "api_url");
	jw_str(&w, c->api_url);
	if (c->self_pg_ok >= 0) {
		jw_key(&w, "postgresql_ok");
		jw_bool(&w, c->self_pg_ok > 0);
	}
	jw_obj_end(&w);
	jw_obj_end(&w);
	return jw_take(&w, NULL);
}
