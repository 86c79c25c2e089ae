/* Whole-model snapshot and restore (Raft snapshots). Part of the model module:
 * same ownership rules as model.c. Accounted usage is not stored: restore
 * recomputes it from the base load and the placements, so it cannot drift. */
#include <raft.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jw.h"
#include "model.h"
#include "policy.h"

#define SNAP_VERSION 1

/* Nodes, providers, links and policies go in as trees (they are few); actors,
 * most of a snapshot, are written directly. */
static void snap_node(struct jw *w, const void *v)
{
	const struct model_node *n = v;
	jw_tree_new(w, json_pack("{s:o,s:I,s:I,s:s,s:b,s:b,s:I,s:I,s:I,s:s?,s:I,s:I,s:I}", "spec",
			 spec_node_to_json(&n->spec), "cpu_measured", (json_int_t)n->cpu_measured,
			 "memory_measured_mb", (json_int_t)n->memory_measured_mb, "status",
			 model_node_status_name(n->status), "cordoned", n->cordoned, "draining", n->draining,
			 "error_count", (json_int_t)n->error_count, "last_heartbeat_ms",
			 (json_int_t)n->last_heartbeat_ms, "policy_version", (json_int_t)n->policy_version,
			 "agent_version", n->agent_version, "generation", (json_int_t)n->generation,
			 "created_ms", (json_int_t)n->created_ms, "updated_ms", (json_int_t)n->updated_ms));
}

/* Actors are most of a snapshot: written directly, no tree. */
static void snap_actor(struct jw *w, const void *v)
{
	const struct model_actor *a = v;
	jw_obj(w);
	jw_key(w, "spec");
	spec_actor_write(w, &a->spec);
	jw_key(w, "placements");
	jw_arr(w);
	for (size_t i = 0; i < a->nplacements; i++) {
		jw_obj(w);
		jw_key(w, "node");
		jw_str(w, a->placements[i].node->spec.id);
		jw_key(w, "state");
		jw_str(w, model_placement_state_name(a->placements[i].state));
		jw_key(w, "state_version");
		jw_int(w, a->placements[i].state_version);
		jw_obj_end(w);
	}
	jw_arr_end(w);
	jw_key(w, "generation");
	jw_uint(w, a->generation);
	jw_key(w, "created_ms");
	jw_int(w, a->created_ms);
	jw_key(w, "updated_ms");
	jw_int(w, a->updated_ms);
	jw_obj_end(w);
}

static void snap_provider(struct jw *w, const void *v)
{
	const struct model_provider *p = v;
	jw_tree_new(w, json_pack("{s:o,s:I}", "spec", spec_provider_to_json(&p->spec), "created_ms",
			       (json_int_t)p->created_ms));
}

static void snap_link(struct jw *w, const void *v)
{
	const struct model_link *l = v;
	jw_tree_new(w, json_pack("{s:o,s:I}", "spec", spec_link_to_json(&l->spec), "created_ms",
			       (json_int_t)l->created_ms));
}

static void snap_policy(struct jw *w, const void *v)
{
	const struct model_policy *p = v;
	jw_tree_new(w, json_pack("{s:o,s:I,s:I,s:I}", "spec", spec_policy_to_json(&p->spec), "version",
			       (json_int_t)p->version, "created_ms", (json_int_t)p->created_ms,
			       "updated_ms", (json_int_t)p->updated_ms));
}

/* The same document as model_snapshot_dump, as a tree (tests compare models
 * with it); one renderer, so the two cannot drift apart. */
json_t *model_snapshot(const struct model *m)
{
	size_t len = 0;
	char *text = model_snapshot_dump(m, 0, &len);
	if (text == NULL)
		return NULL;
	json_t *root = json_loadb(text, len, 0, NULL);
	raft_free(text);
	if (root != NULL)
		json_object_del(root, "index");
	return root;
}

/* key: an array of every object of map, each written by put. */
static void snap_array(struct jw *w, const char *key, const struct hmap *map,
		       void (*put)(struct jw *, const void *))
{
	size_t pos = 0;
	void *v;
	jw_key(w, key);
	jw_arr(w);
	while ((v = hmap_next(map, &pos)) != NULL)
		put(w, v);
	jw_arr_end(w);
}

char *model_snapshot_dump(const struct model *m, uint64_t index, size_t *len)
{
	struct jw w;
	jw_init_alloc(&w, raft_realloc, raft_free); /* raft frees the snapshot's buffer */
	jw_obj(&w);
	jw_key(&w, "v");
	jw_int(&w, SNAP_VERSION);
	jw_key(&w, "index");
	jw_uint(&w, index);
	jw_key(&w, "event_seq");
	jw_uint(&w, m->event_seq);
	jw_key(&w, "rr_cursor");
	jw_str(&w, m->rr_cursor);
	snap_array(&w, "nodes", &m->nodes, snap_node);
	snap_array(&w, "actors", &m->actors, snap_actor);
	snap_array(&w, "providers", &m->providers, snap_provider);
	snap_array(&w, "links", &m->links, snap_link);
	snap_array(&w, "policies", &m->policies, snap_policy);
	jw_key(&w, "idem"); /* oldest first, as they are forgotten */
	jw_arr(&w);
	for (const struct model_idem *r = m->idem_oldest; r; r = r->next) {
		char fp[24];
		snprintf(fp, sizeof(fp), "%016llx", (unsigned long long)r->fp);
		jw_obj(&w);
		jw_key(&w, "key");
		jw_str(&w, r->key);
		jw_key(&w, "fp");
		jw_str(&w, fp);
		jw_key(&w, "id");
		jw_str(&w, r->id);
		jw_key(&w, "index");
		jw_uint(&w, r->index);
		jw_key(&w, "at");
		jw_int(&w, r->at_ms);
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	jw_key(&w, "members");
	jw_arr(&w);
	for (size_t i = 0; i < m->nmembers; i++) {
		jw_obj(&w);
		jw_key(&w, "id");
		jw_uint(&w, m->members[i].id);
		jw_key(&w, "api_url");
		jw_str(&w, m->members[i].api_url);
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	jw_obj_end(&w);
	return jw_take(&w, len);
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

#define FAIL(...)                                         \
	do {                                              \
		snprintf(err, errlen, __VA_ARGS__);       \
		return -1;                                \
	} while (0)

static int restore_nodes(struct model *m, const json_t *arr, char *err, size_t errlen)
{
	size_t i;
	const json_t *o;
	json_array_foreach(arr, i, o)
	{
		struct spec_err se;
		struct model_node *n = calloc(1, sizeof(*n));
		if (n == NULL)
			FAIL("out of memory");
		const char *status = NULL;
		json_t *spec = NULL, *agent = NULL;
		json_int_t cm, mm, ec, hb, pv, gen, cr, up;
		int b1, b2;
		if (json_unpack((json_t *)o, "{s:o,s:I,s:I,s:s,s:b,s:b,s:I,s:I,s:I,s?o,s:I,s:I,s:I}", "spec", &spec,
				"cpu_measured", &cm, "memory_measured_mb", &mm, "status", &status, "cordoned", &b1,
				"draining", &b2, "error_count", &ec, "last_heartbeat_ms", &hb, "policy_version", &pv,
				"agent_version", &agent, "generation", &gen, "created_ms", &cr, "updated_ms",
				&up) != 0 ||
		    status_parse(status, &n->status) != 0 || spec_node_from_json(spec, &n->spec, &se) != 0) {
			free(n);
			FAIL("snapshot: bad node #%zu", i);
		}
		n->cpu_measured = cm;
		n->memory_measured_mb = mm;
		n->cordoned = b1;
		n->draining = b2;
		n->error_count = ec;
		n->last_heartbeat_ms = hb;
		n->policy_version = pv;
		n->agent_version = json_is_string(agent) ? strdup(json_string_value(agent)) : NULL;
		n->generation = (uint64_t)gen;
		n->created_ms = cr;
		n->updated_ms = up;
		n->cpu_used = n->spec.cpu_used;
		n->memory_used_mb = n->spec.memory_used_mb;
		n->actor_count = n->spec.actor_count;
		if (hmap_put(&m->nodes, n->spec.id, n) != 0) {
			spec_node_free(&n->spec);
			free(n->agent_version);
			free(n);
			FAIL("out of memory");
		}
	}
	return 0;
}

static int restore_actors(struct model *m, const json_t *arr, char *err, size_t errlen)
{
	size_t i;
	const json_t *o;
	json_array_foreach(arr, i, o)
	{
		struct spec_err se;
		json_t *spec = NULL, *pl = NULL;
		json_int_t gen, cr, up;
		if (json_unpack((json_t *)o, "{s:o,s:o,s:I,s:I,s:I}", "spec", &spec, "placements", &pl, "generation", &gen,
				"created_ms", &cr, "updated_ms", &up) != 0 ||
		    !json_is_array(pl))
			FAIL("snapshot: bad actor #%zu", i);
		struct model_actor *a = calloc(1, sizeof(*a));
		if (a == NULL)
			FAIL("out of memory");
		if (spec_actor_from_json(spec, &a->spec, &se) != 0 || a->spec.id == NULL) {
			free(a);
			FAIL("snapshot: bad actor #%zu: %s", i, se.message);
		}
		size_t np = json_array_size(pl);
		a->placements = calloc(np ? np : 1, sizeof(*a->placements));
		if (a->placements == NULL || hmap_put(&m->actors, a->spec.id, a) != 0) {
			spec_actor_free(&a->spec);
			free(a->placements);
			free(a);
			FAIL("out of memory");
		}
		a->generation = (uint64_t)gen;
		a->created_ms = cr;
		a->updated_ms = up;
		for (size_t k = 0; k < np; k++) {
			const char *node = NULL, *state = NULL;
			json_int_t sv = 0;
			struct model_placement *p = &a->placements[k];
			if (json_unpack(json_array_get(pl, k), "{s:s,s:s,s:I}", "node", &node, "state", &state,
					"state_version", &sv) != 0 ||
			    (p->node = model_node_get(m, node)) == NULL || state_parse(state, &p->state) != 0)
				FAIL("snapshot: actor '%s' placement #%zu is bad", a->spec.id, k);
			p->state_version = sv;
			a->nplacements++;
			model_node_account(m, p->node, a->spec.cpu_required, a->spec.memory_required_mb, +1);
		}
	}
	return 0;
}

int model_restore(struct model *m, const json_t *snap, char *err, size_t errlen)
{
	json_int_t v = 0, seq = 0;
	const char *cursor = NULL;
	json_t *nodes, *actors, *providers, *links, *policies;
	if (json_unpack((json_t *)snap, "{s:I,s:I,s:s,s:o,s:o,s:o,s:o,s:o}", "v", &v, "event_seq", &seq,
			"rr_cursor", &cursor, "nodes", &nodes, "actors", &actors, "providers", &providers,
			"links", &links, "policies", &policies) != 0)
		FAIL("snapshot: not a model snapshot");
	if (v != SNAP_VERSION)
		FAIL("snapshot format %lld not supported (this build reads %d)", (long long)v, SNAP_VERSION);
	m->event_seq = (uint64_t)seq;
	snprintf(m->rr_cursor, sizeof(m->rr_cursor), "%s", cursor);
	if (restore_nodes(m, nodes, err, errlen) != 0)
		return -1;
	size_t i;
	const json_t *o;
	json_array_foreach(policies, i, o)
	{
		struct spec_err se;
		json_t *spec = NULL;
		json_int_t ver, cr, up;
		struct model_policy *p = calloc(1, sizeof(*p));
		if (p == NULL)
			FAIL("out of memory");
		if (json_unpack((json_t *)o, "{s:o,s:I,s:I,s:I}", "spec", &spec, "version", &ver, "created_ms", &cr,
				"updated_ms", &up) != 0 ||
		    spec_policy_from_json(spec, &p->spec, &se) != 0 || p->spec.policy_id == NULL ||
		    hmap_put(&m->policies, p->spec.policy_id, p) != 0) {
			spec_policy_free(&p->spec);
			free(p);
			FAIL("snapshot: bad policy #%zu", i);
		}
		p->version = ver;
		p->created_ms = cr;
		p->updated_ms = up;
	}
	size_t pos = 0;
	struct model_node *n;
	while ((n = hmap_next(&m->nodes, &pos)) != NULL) {
		if (policy_refresh_node(m, n) != 0 || sched_index_update(&m->sched, n) != 0)
			FAIL("out of memory");
	}
	if (restore_actors(m, actors, err, errlen) != 0)
		return -1;
	/* "idem" and "members" arrived after the first snapshots: absent means none. */
	const json_t *idem = json_object_get(snap, "idem");
	if (idem != NULL && !json_is_array(idem))
		FAIL("snapshot: idem is not an array");
	int64_t prev_at = INT64_MIN;
	json_array_foreach(idem, i, o)
	{
		const char *key = json_string_value(json_object_get(o, "key"));
		const char *fp = json_string_value(json_object_get(o, "fp"));
		const char *id = json_string_value(json_object_get(o, "id"));
		json_t *ix = json_object_get(o, "index"), *at = json_object_get(o, "at");
		char *end = NULL;
		unsigned long long f = fp ? strtoull(fp, &end, 16) : 0;
		if (key == NULL || fp == NULL || strlen(fp) != 16 || *end != '\0' || id == NULL ||
		    strlen(id) > SPEC_ID_MAX || !json_is_integer(ix) || !json_is_integer(at) ||
		    json_integer_value(at) < prev_at || model_idem_get(m, key) != NULL)
			FAIL("snapshot: bad, repeated or out-of-order idempotency key #%zu", i);
		prev_at = json_integer_value(at);
		model_idem_put(m, key, f, id, (uint64_t)json_integer_value(ix), prev_at);
	}
	/* "members" arrived after the first snapshots: absent means none. */
	const json_t *members = json_object_get(snap, "members");
	if (members != NULL && !json_is_array(members))
		FAIL("snapshot: members is not an array");
	json_array_foreach(members, i, o)
	{
		json_int_t id = json_integer_value(json_object_get(o, "id"));
		const char *url = json_string_value(json_object_get(o, "api_url"));
		if (id < 1 || url == NULL || model_member_url(m, (uint64_t)id) != NULL)
			FAIL("snapshot: bad or repeated member #%zu", i);
		if (model_member_set(m, (uint64_t)id, url) != 0)
			FAIL("out of memory");
	}
	json_array_foreach(providers, i, o)
	{
		struct spec_err se;
		json_t *spec = NULL;
		json_int_t cr;
		struct model_provider *p = calloc(1, sizeof(*p));
		if (p == NULL)
			FAIL("out of memory");
		if (json_unpack((json_t *)o, "{s:o,s:I}", "spec", &spec, "created_ms", &cr) != 0 ||
		    spec_provider_from_json(spec, &p->spec, &se) != 0 || p->spec.id == NULL ||
		    hmap_put(&m->providers, p->spec.id, p) != 0) {
			spec_provider_free(&p->spec);
			free(p);
			FAIL("snapshot: bad provider #%zu", i);
		}
		p->created_ms = cr;
	}
	json_array_foreach(links, i, o)
	{
		struct spec_err se;
		json_t *spec = NULL;
		json_int_t cr;
		struct model_link *l = calloc(1, sizeof(*l));
		if (l == NULL)
			FAIL("out of memory");
		if (json_unpack((json_t *)o, "{s:o,s:I}", "spec", &spec, "created_ms", &cr) != 0 ||
		    spec_link_from_json(spec, &l->spec, &se) != 0 || l->spec.id == NULL ||
		    hmap_put(&m->links, l->spec.id, l) != 0) {
			spec_link_free(&l->spec);
			free(l);
			FAIL("snapshot: bad link #%zu", i);
		}
		l->created_ms = cr;
	}
	return 0;
}
