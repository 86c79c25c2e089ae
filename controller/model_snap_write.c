/* Whole-model snapshot, encoding (Raft snapshots; model_snap.c restores them).
 * Part of the model module: same ownership rules as model.c. The document is
 * written object by object (jw), never as one jansson tree of the model; the
 * format is described in docs/snapshots.md. */
#include <raft.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jw.h"
#include "model.h"
#include "model_int.h"
/* ---- encoding ---------------------------------------------------------------- */

static void w_kv(struct jw *w, const char *key, const struct kvlist *l)
{
	jw_key(w, key);
	kvlist_write(w, l);
}

static void w_list(struct jw *w, const char *key, const struct strlist *l)
{
	jw_key(w, key);
	strlist_write(w, l);
}

static void w_int(struct jw *w, const char *key, int64_t v)
{
	jw_key(w, key);
	jw_int(w, v);
}

static void w_str(struct jw *w, const char *key, const char *s)
{
	jw_key(w, key);
	jw_str(w, s);
}

static void snap_node(struct jw *w, const void *v)
{
	const struct model_node *n = v;
	const struct node_spec *s = &n->spec;
	jw_obj(w);
	jw_key(w, "spec");
	jw_obj(w);
	w_str(w, "id", s->id);
	w_str(w, "region", s->region);
	w_kv(w, "labels", &s->labels);
	w_int(w, "cpu_capacity", s->cpu_capacity);
	w_int(w, "memory_mb", s->memory_mb);
	w_int(w, "cpu_used", s->cpu_used);
	w_int(w, "memory_used_mb", s->memory_used_mb);
	w_int(w, "actor_count", s->actor_count);
	jw_obj_end(w);
	w_int(w, "cpu_measured", n->cpu_measured);
	w_int(w, "memory_measured_mb", n->memory_measured_mb);
	w_str(w, "status", model_node_status_name(n->status));
	jw_key(w, "cordoned");
	jw_bool(w, n->cordoned);
	jw_key(w, "draining");
	jw_bool(w, n->draining);
	w_int(w, "error_count", n->error_count);
	w_int(w, "last_heartbeat_ms", n->last_heartbeat_ms);
	w_int(w, "policy_version", n->policy_version);
	w_int(w, "policy_target", n->policy_target);
	if (n->agent_version)
		w_str(w, "agent_version", n->agent_version);
	jw_key(w, "generation");
	jw_uint(w, n->generation);
	w_int(w, "created_ms", n->created_ms);
	w_int(w, "updated_ms", n->updated_ms);
	jw_obj_end(w);
}

static void snap_actor(struct jw *w, const void *v)
{
	const struct model_actor *a = v;
	const struct actor_spec *s = &a->spec;
	jw_obj(w);
	jw_key(w, "spec");
	jw_obj(w);
	w_str(w, "id", s->id);
	if (s->name)
		w_str(w, "name", s->name);
	w_str(w, "module", s->module);
	w_int(w, "cpu_required", s->cpu_required);
	w_int(w, "memory_required_mb", s->memory_required_mb);
	w_str(w, "preferred_region", s->preferred_region ? s->preferred_region : "");
	w_kv(w, "constraints", &s->constraints);
	w_int(w, "priority", s->priority);
	w_int(w, "max_latency_ms", s->max_latency_ms);
	w_int(w, "replicas", s->replicas);
	w_str(w, "strategy", spec_strategy_name(s->strategy));
	w_list(w, "contracts", &s->contracts);
	jw_obj_end(w);
	jw_key(w, "placements");
	jw_arr(w);
	for (size_t i = 0; i < a->nplacements; i++) {
		jw_obj(w);
		w_str(w, "node", a->placements[i].node->spec.id);
		w_str(w, "state", model_placement_state_name(a->placements[i].state));
		w_int(w, "state_version", a->placements[i].state_version);
		jw_obj_end(w);
	}
	jw_arr_end(w);
	jw_key(w, "generation");
	jw_uint(w, a->generation);
	w_int(w, "created_ms", a->created_ms);
	w_int(w, "updated_ms", a->updated_ms);
	if (a->snap) {
		jw_key(w, "snapshot");
		jw_obj(w);
		w_int(w, "state_version", a->snap->state_version);
		w_str(w, "data", a->snap->data);
		w_str(w, "node", a->snap->node);
		w_int(w, "taken_ms", a->snap->taken_ms);
		jw_obj_end(w);
	}
	if (a->mig) {
		jw_key(w, "migration");
		jw_obj(w);
		w_str(w, "id", a->mig->id);
		w_int(w, "instance", a->mig->instance);
		w_str(w, "from", a->mig->from->spec.id);
		w_str(w, "to", a->mig->to->spec.id);
		w_int(w, "cpu", a->mig->cpu);
		w_int(w, "mem", a->mig->mem);
		w_str(w, "step", model_mig_step_name(a->mig->step));
		w_int(w, "started_ms", a->mig->started_ms);
		jw_obj_end(w);
	}
	jw_obj_end(w);
}

static void snap_provider(struct jw *w, const void *v)
{
	const struct model_provider *p = v;
	jw_obj(w);
	jw_key(w, "spec");
	jw_obj(w);
	w_str(w, "id", p->spec.id);
	w_str(w, "contract_id", p->spec.contract_id);
	w_str(w, "image", p->spec.image);
	w_list(w, "nodes", &p->spec.nodes);
	jw_obj_end(w);
	w_int(w, "created_ms", p->created_ms);
	jw_obj_end(w);
}

static void snap_link(struct jw *w, const void *v)
{
	const struct model_link *l = v;
	const struct link_spec *s = &l->spec;
	jw_obj(w);
	jw_key(w, "spec");
	jw_obj(w);
	w_str(w, "id", s->id);
	w_str(w, "actor_id", s->actor_id);
	w_str(w, "provider_id", s->provider_id);
	w_str(w, "contract_id", s->contract_id);
	w_str(w, "link_name", s->link_name ? s->link_name : "default");
	w_kv(w, "values", &s->values);
	w_int(w, "timeout_ms", s->timeout_ms);
	w_int(w, "retry_count", s->retry_count);
	w_int(w, "retry_delay_ms", s->retry_delay_ms);
	jw_obj_end(w);
	w_int(w, "created_ms", l->created_ms);
	jw_obj_end(w);
}

/* A policy's rules; the id only for the current version (history entries are
 * the policy's own). */
static void snap_policy_spec(struct jw *w, const struct policy_spec *s)
{
	jw_key(w, "spec");
	jw_obj(w);
	if (s->policy_id)
		w_str(w, "policy_id", s->policy_id);
	w_list(w, "allowed_contracts", &s->allowed_contracts);
	w_list(w, "denied_contracts", &s->denied_contracts);
	w_int(w, "max_actor_memory_mb", s->max_actor_memory_mb);
	w_list(w, "network_restrictions", &s->network_restrictions);
	jw_key(w, "selector");
	jw_obj(w);
	w_list(w, "regions", &s->sel_regions);
	w_kv(w, "labels", &s->sel_labels);
	jw_obj_end(w);
	jw_obj_end(w);
}

static void snap_policy(struct jw *w, const void *v)
{
	const struct model_policy *p = v;
	jw_obj(w);
	snap_policy_spec(w, &p->spec);
	w_int(w, "version", p->version);
	w_int(w, "created_ms", p->created_ms);
	w_int(w, "updated_ms", p->updated_ms);
	jw_key(w, "history");
	jw_arr(w);
	for (size_t i = 0; i < p->nhistory; i++) {
		jw_obj(w);
		w_int(w, "version", p->history[i].version);
		w_int(w, "made_ms", p->history[i].made_ms);
		snap_policy_spec(w, &p->history[i].spec);
		jw_obj_end(w);
	}
	jw_arr_end(w);
	jw_obj_end(w);
}

static void snap_command(struct jw *w, const struct model_command *c)
{
	jw_obj(w);
	w_str(w, "id", c->id);
	w_str(w, "type", model_cmd_type_name(c->type));
	w_str(w, "node", c->node);
	if (c->actor_id) {
		w_str(w, "actor_id", c->actor_id);
		w_int(w, "instance", c->instance);
	}
	jw_key(w, "term");
	jw_uint(w, c->term);
	jw_key(w, "generation");
	jw_uint(w, c->generation);
	w_int(w, "config_version", c->config_version);
	jw_key(w, "payload");
	model_cmd_write_payload(w, c);
	w_str(w, "status", model_cmd_status_name(c->status));
	w_int(w, "attempts", c->attempts);
	w_int(w, "created_ms", c->created_ms);
	w_int(w, "updated_ms", c->updated_ms);
	w_int(w, "published_ms", c->published_ms);
	w_int(w, "acked_ms", c->acked_ms);
	w_int(w, "applied_version", c->applied_version);
	if (c->error)
		w_str(w, "error", c->error);
	jw_obj_end(w);
}

static void snap_failover(struct jw *w, const struct model_failover *f)
{
	jw_obj(w);
	w_str(w, "id", f->id);
	w_str(w, "node", f->node);
	jw_key(w, "assign");
	jw_arr(w);
	for (size_t i = 0; i < f->nassign; i++) {
		jw_obj(w);
		w_str(w, "actor_id", f->assign[i].actor_id);
		w_int(w, "instance", f->assign[i].instance);
		if (f->assign[i].to_node)
			w_str(w, "to_node", f->assign[i].to_node);
		w_str(w, "step", model_fo_step_name(f->assign[i].step));
		jw_obj_end(w);
	}
	jw_arr_end(w);
	w_int(w, "moved", (int64_t)f->nmoved);
	w_int(w, "detected_ms", f->detected_ms);
	w_int(w, "started_ms", f->started_ms);
	w_int(w, "finished_ms", f->finished_ms);
	w_str(w, "status", model_fo_status_name(f->status));
	if (f->error)
		w_str(w, "error", f->error);
	jw_obj_end(w);
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
	jw_int(&w, MODEL_SNAP_VERSION);
	jw_key(&w, "index");
	jw_uint(&w, index);
	jw_key(&w, "event_seq");
	jw_uint(&w, m->event_seq);
	w_str(&w, "rr_cursor", m->rr_cursor);
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
		w_str(&w, "key", r->key);
		w_str(&w, "fp", fp);
		w_str(&w, "id", r->id);
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
		w_str(&w, "api_url", m->members[i].api_url);
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	/* Finished ones first, then open ones, each oldest first: the lists' order. */
	jw_key(&w, "commands");
	jw_arr(&w);
	for (const struct model_command *c = m->cmd_done.head; c; c = c->next)
		snap_command(&w, c);
	for (const struct model_command *c = m->cmd_open.head; c; c = c->next)
		snap_command(&w, c);
	jw_arr_end(&w);
	jw_key(&w, "failovers"); /* oldest first */
	jw_arr(&w);
	for (const struct model_failover *f = m->fo_head; f; f = f->next)
		snap_failover(&w, f);
	jw_arr_end(&w);
	jw_obj_end(&w);
	return jw_take(&w, len);
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
