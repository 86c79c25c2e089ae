/* model_cmd — the command outbox inside the model (SPEC "Commands"): apply
 * writes each command in the same entry as the change that causes it, and
 * records what the leader reports back (published, acked, failed), moving the
 * placements that wait on them. Deterministic like the rest of apply: ids come
 * from the entry's index, times from the entry. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jw.h"
#include "model_int.h"
#include "proj.h"

static const char *const type_names[CMD_TYPES] = {"actor_start", "actor_stop", "actor_migrate", "config_update",
						   "security_policy"};
static const char *const status_names[CMD_STATUSES] = {"pending", "published", "acked", "failed", "superseded"};

/* A node's open security_policy commands, by generation: what a newer one
 * supersedes, and what the outbox asks before publishing one. */
struct pol_set {
	char *node;
	struct model_command **c;
	size_t n, cap;
};

const char *model_cmd_type_name(enum cmd_type t)
{
	return (unsigned)t < CMD_TYPES ? type_names[t] : "unknown";
}

const char *model_cmd_status_name(enum cmd_status s)
{
	return (unsigned)s < CMD_STATUSES ? status_names[s] : "unknown";
}

void model_cmd_init(struct model *m)
{
	hmap_init(&m->commands);
	hmap_init(&m->cmd_policy);
	memset(&m->cmd_open, 0, sizeof(m->cmd_open));
	memset(&m->cmd_done, 0, sizeof(m->cmd_done));
	memset(m->cmd_finished, 0, sizeof(m->cmd_finished)); /* count_since_ms is the caller's */
	durhist_init(&m->cmd_rtt, DURHIST_SLOW);
}

void model_cmd_free(struct model_command *c)
{
	if (c == NULL)
		return;
	if (c->payload_own)
		free(c->payload);
	free(c->error);
	free(c);
}

/* An actor_start's payload in its usual form (model_cmd_start_on's). */
static void write_start(struct jw *w, const char *actor_id, int64_t instance, const char *module, int64_t cpu,
			int64_t mem)
{
	jw_obj(w);
	JW_KEY(w, "actor_id");
	jw_str(w, actor_id);
	JW_KEY(w, "instance");
	jw_int(w, instance);
	JW_KEY(w, "module");
	jw_str(w, module);
	JW_KEY(w, "cpu_required");
	jw_int(w, cpu);
	JW_KEY(w, "memory_required_mb");
	jw_int(w, mem);
	JW_KEY(w, "config");
	jw_json(w, "{}", 2);
	JW_KEY(w, "snapshot");
	jw_null(w);
	jw_obj_end(w);
}

void model_cmd_write_payload(struct jw *w, const struct model_command *c)
{
	if (c->payload)
		jw_json(w, c->payload, strlen(c->payload));
	else
		write_start(w, c->actor_id, c->instance, c->module, c->cpu_required, c->memory_required_mb);
}

char *model_cmd_payload(const struct model_command *c)
{
	if (c->payload)
		return strdup(c->payload);
	struct jw w;
	jw_init(&w);
	model_cmd_write_payload(&w, c);
	return jw_take(&w, NULL);
}

/* Whether t's payload text is an actor_start's usual form: then *module,
 * *cpu and *mem are its values (module borrowed from *doc, which the caller
 * frees). Decided by writing the usual form back: equal text, or not. */
static bool start_usual(const struct model_command *t, json_t **doc, const char **module, int64_t *cpu,
			int64_t *mem)
{
	*doc = NULL;
	if (t->type != CMD_ACTOR_START || t->payload == NULL || t->actor_id == NULL)
		return false;
	json_t *p = json_loads(t->payload, 0, NULL);
	json_t *mo = json_object_get(p, "module"), *cp = json_object_get(p, "cpu_required"),
	       *me = json_object_get(p, "memory_required_mb");
	if (!json_is_string(mo) || !json_is_integer(cp) || !json_is_integer(me)) {
		json_decref(p);
		return false;
	}
	struct jw w;
	jw_init(&w);
	write_start(&w, t->actor_id, t->instance, json_string_value(mo), json_integer_value(cp),
		    json_integer_value(me));
	bool same = !w.oom && strcmp(w.p, t->payload) == 0;
	jw_free(&w);
	if (!same) {
		json_decref(p);
		return false;
	}
	*doc = p;
	*module = json_string_value(mo);
	*cpu = json_integer_value(cp);
	*mem = json_integer_value(me);
	return true;
}

/* Copies s (NULL: none) to *at, returning where it now is. */
static char *pack_str(char **at, const char *s)
{
	if (s == NULL)
		return NULL;
	size_t n = strlen(s) + 1;
	char *p = memcpy(*at, s, n);
	*at += n;
	return p;
}

struct model_command *model_cmd_pack(const struct model_command *t)
{
	json_t *doc = NULL;
	const char *module = t->payload ? NULL : t->module;
	int64_t cpu = t->cpu_required, mem = t->memory_required_mb;
	if (t->payload && start_usual(t, &doc, &module, &cpu, &mem) == false)
		module = NULL;
	const char *payload = module ? NULL : t->payload;
	size_t size = sizeof(struct model_command) + strlen(t->id) + 1 + strlen(t->node) + 1 +
		      (t->actor_id ? strlen(t->actor_id) + 1 : 0) + (payload ? strlen(payload) + 1 : 0) +
		      (module ? strlen(module) + 1 : 0);
	struct model_command *c = malloc(size);
	if (c == NULL) {
		json_decref(doc);
		return NULL;
	}
	*c = *t;
	char *at = (char *)(c + 1);
	c->id = pack_str(&at, t->id);
	c->node = pack_str(&at, t->node);
	c->actor_id = pack_str(&at, t->actor_id);
	c->payload = pack_str(&at, payload);
	c->module = pack_str(&at, module);
	c->cpu_required = module ? cpu : 0;
	c->memory_required_mb = module ? mem : 0;
	c->payload_own = false;
	c->prev = c->next = NULL;
	c->error = NULL;
	json_decref(doc);
	if (t->error && (c->error = strdup(t->error)) == NULL) {
		free(c);
		return NULL;
	}
	return c;
}

static void pol_free(struct pol_set *ps)
{
	free(ps->node);
	free(ps->c);
	free(ps);
}

void model_cmd_release(struct model *m)
{
	size_t pos = 0;
	struct model_command *c;
	while ((c = hmap_next(&m->commands, &pos)) != NULL)
		model_cmd_free(c);
	hmap_release(&m->commands);
	pos = 0;
	struct pol_set *ps;
	while ((ps = hmap_next(&m->cmd_policy, &pos)) != NULL)
		pol_free(ps);
	hmap_release(&m->cmd_policy);
	model_cmd_init(m);
}

struct model_command *model_command_get(const struct model *m, const char *id)
{
	return hmap_get(&m->commands, id);
}

static void list_append(struct model_cmd_list *l, struct model_command *c)
{
	c->next = NULL;
	c->prev = l->tail;
	if (l->tail)
		l->tail->next = c;
	else
		l->head = c;
	l->tail = c;
	l->n++;
}

static void list_remove(struct model_cmd_list *l, struct model_command *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		l->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		l->tail = c->prev;
	c->prev = c->next = NULL;
	l->n--;
}

struct model_command *const *model_cmd_policy_open(const struct model *m, const char *node, size_t *n)
{
	const struct pol_set *ps = hmap_get(&m->cmd_policy, node);
	*n = ps ? ps->n : 0;
	return ps ? ps->c : NULL;
}

static void pol_add(struct model *m, struct model_command *c)
{
	struct pol_set *ps = hmap_get(&m->cmd_policy, c->node);
	if (ps == NULL) {
		ps = model_need(m, calloc(1, sizeof(*ps)), "a node's policy commands");
		ps->node = model_need(m, strdup(c->node), "a node's policy commands");
		if (hmap_put(&m->cmd_policy, ps->node, ps) != 0)
			model_oom(m, "a node's policy commands");
	}
	if (ps->n == ps->cap) {
		ps->cap = ps->cap ? ps->cap * 2 : 4;
		ps->c = model_need(m, realloc(ps->c, ps->cap * sizeof(*ps->c)), "a node's policy commands");
	}
	size_t i = ps->n; /* new ones come last; a snapshot's may come in any order */
	while (i > 0 && ps->c[i - 1]->generation > c->generation) {
		ps->c[i] = ps->c[i - 1];
		i--;
	}
	ps->c[i] = c;
	ps->n++;
}

static void pol_remove(struct model *m, const struct model_command *c)
{
	struct pol_set *ps = hmap_get(&m->cmd_policy, c->node);
	size_t i = 0;
	while (ps && i < ps->n && ps->c[i] != c)
		i++;
	if (ps == NULL || i == ps->n)
		return;
	memmove(&ps->c[i], &ps->c[i + 1], (ps->n - i - 1) * sizeof(*ps->c));
	if (--ps->n == 0) {
		hmap_del(&m->cmd_policy, ps->node);
		pol_free(ps);
	}
}

/* A finished command moves to the done list; the oldest finished ones beyond
 * MODEL_CMD_DONE_MAX are forgotten (PostgreSQL keeps them). */
static void finish(struct model *m, struct model_command *c)
{
	if (c->type == CMD_SECURITY_POLICY)
		pol_remove(m, c);
	if (m->applying_at_ms >= m->count_since_ms) {
		m->cmd_finished[c->status]++;
		/* Entry times, so every replica counts the same round trip. */
		if (c->status == CMD_ACKED && c->published_ms > 0)
			durhist_add(&m->cmd_rtt, (m->applying_at_ms - c->published_ms) * 1000);
	}
	list_remove(&m->cmd_open, c);
	list_append(&m->cmd_done, c);
	while (m->cmd_done.n > MODEL_CMD_DONE_MAX) {
		struct model_command *old = m->cmd_done.head;
		list_remove(&m->cmd_done, old);
		hmap_del(&m->commands, old->id);
		model_cmd_free(old);
	}
}

int model_cmd_restore(struct model *m, struct model_command *c)
{
	if (hmap_get(&m->commands, c->id) != NULL)
		return -1;
	if (hmap_put(&m->commands, c->id, c) != 0)
		model_oom(m, "the command map");
	list_append(model_cmd_open(c) ? &m->cmd_open : &m->cmd_done, c);
	if (c->type == CMD_SECURITY_POLICY && model_cmd_open(c))
		pol_add(m, c);
	return 0;
}

/* Finishes c as superseded by the command by (a newer security_policy for the
 * same node, or one that finished after it). */
static void supersede(struct model *m, const struct entry *e, struct model_command *c,
		      const struct model_command *by, struct proj_batch *out)
{
	char why[160];
	snprintf(why, sizeof(why), "superseded by %s, a newer security_policy for the node", by->id);
	c->status = CMD_SUPERSEDED;
	c->updated_ms = c->acked_ms = e->at_ms;
	free(c->error);
	c->error = model_need(m, strdup(why), "a command's error");
	model_cmd_finish(m, c, out);
}

/* Supersedes node's open security_policy commands older than by: all of them
 * (pending_only false: by was published or finished), or only those not
 * published yet (by is new: one on its way stays open until by is published
 * or finishes; the outbox holds by back while it is). Entry format 4 and newer
 * only, so an older log replays as it did. */
static void supersede_older(struct model *m, const struct entry *e, const struct model_command *by,
			    bool pending_only, struct proj_batch *out)
{
	if (e->version < 4)
		return;
	size_t n;
	struct model_command *const *open = model_cmd_policy_open(m, by->node, &n);
	if (n == 0)
		return;
	/* supersede() changes the set: work on a copy. */
	struct model_command **old = model_need(m, malloc(n * sizeof(*old)), "a node's policy commands");
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (open[i] != by && open[i]->generation < by->generation &&
		    (!pending_only || open[i]->status == CMD_PENDING))
			old[k++] = open[i];
	for (size_t i = 0; i < k; i++)
		supersede(m, e, old[i], by, out);
	free(old);
}

/* model_cmd_add with t's type, node, actor_id, instance, config_version and
 * payload or start form (borrowed). */
static struct model_command *cmd_add(struct model *m, const struct entry *e, struct model_command *t,
				     struct proj_batch *out)
{
	char id[64];
	snprintf(id, sizeof(id), "c%llu-%u", (unsigned long long)m->applying, m->cmd_next++);
	t->id = id;
	t->term = e->term;
	/* Fencing orders commands by (term, generation): the log index of the
	 * change orders them for every object, also across a delete and a
	 * re-create of the same id, and a stop for an actor the lattice no longer
	 * holds (reconciliation) is newer than anything an agent applied for it.
	 * (generation, the object's own count, is kept out of it.) */
	t->generation = m->applying;
	t->config_version = t->config_version != 0 ? (int64_t)m->applying : 0;
	t->status = CMD_PENDING;
	t->created_ms = t->updated_ms = e->at_ms;
	struct model_command *c = model_need(m, model_cmd_pack(t), "a command");
	if (c->type == CMD_SECURITY_POLICY)
		supersede_older(m, e, c, true, out);
	if (model_cmd_restore(m, c) != 0) /* an id is never made twice: the index is unique */
		model_oom(m, "a command id made twice");
	if (out)
		proj_command(out, c);
	return c;
}

struct model_command *model_cmd_add(struct model *m, const struct entry *e, enum cmd_type type,
				    const char *node, const char *actor_id, int64_t instance,
				    uint64_t generation, int64_t config_version, char *payload,
				    struct proj_batch *out)
{
	(void)generation; /* see cmd_add */
	struct model_command *c = NULL;
	if (e->term != 0) {
		struct model_command t = {.type = type, .node = (char *)node, .actor_id = (char *)actor_id,
					  .instance = instance, .config_version = config_version, .payload = payload};
		c = cmd_add(m, e, &t, out);
	}
	free(payload);
	return c;
}

void model_cmd_start(struct model *m, const struct entry *e, const struct model_actor *a, size_t instance,
		     struct proj_batch *out)
{
	model_cmd_start_on(m, e, a, instance, a->placements[instance].node, out);
}

struct model_command *model_cmd_start_on(struct model *m, const struct entry *e, const struct model_actor *a,
					 size_t instance, const struct model_node *node, struct proj_batch *out)
{
	if (e->term == 0)
		return NULL;
	struct model_command t = {.type = CMD_ACTOR_START,
				  .node = node->spec.id,
				  .actor_id = a->spec.id,
				  .instance = (int64_t)instance,
				  .config_version = (int64_t)a->generation,
				  .module = a->spec.module,
				  .cpu_required = a->spec.cpu_required,
				  .memory_required_mb = a->spec.memory_required_mb};
	return cmd_add(m, e, &t, out);
}

void model_cmd_want_snapshot(struct model *m, struct model_command *c, int64_t version, struct proj_batch *out)
{
	char *was = model_need(m, model_cmd_payload(c), "a command's payload");
	json_t *p = model_need(m, json_loads(was, 0, NULL), "a command's payload");
	free(was);
	if (json_object_set_new(p, "snapshot", model_need(m, json_pack("{s:I}", "state_version", (json_int_t)version),
							  "a command's payload")) != 0)
		model_oom(m, "a command's payload");
	char *text = model_need(m, json_dumps(p, JSON_COMPACT), "a command's payload");
	json_decref(p);
	if (c->payload_own)
		free(c->payload);
	c->payload = text;
	c->payload_own = true;
	c->module = NULL;
	if (out)
		proj_command(out, c);
}

void model_cmd_stop(struct model *m, const struct entry *e, const char *actor_id, uint64_t generation,
		    int64_t instance, const char *node, const char *reason, struct proj_batch *out)
{
	if (e->term == 0)
		return;
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "actor_id");
	jw_str(&w, actor_id);
	jw_key(&w, "instance");
	jw_int(&w, instance);
	jw_key(&w, "reason");
	jw_str(&w, reason);
	jw_obj_end(&w);
	char *payload = model_need(m, jw_take_fit(&w, NULL), "a command's payload");
	model_cmd_add(m, e, CMD_ACTOR_STOP, node, actor_id, instance, generation, 0, payload, out);
}

/* The placement an actor_start command is for, if it is still that command's:
 * the same replica on the same node. */
static struct model_placement *start_placement(const struct model *m, const struct model_command *c,
					       struct model_actor **actor)
{
	if (c->type != CMD_ACTOR_START || c->actor_id == NULL)
		return NULL;
	struct model_actor *a = model_actor_get(m, c->actor_id);
	if (a == NULL || c->instance < 0 || (size_t)c->instance >= a->nplacements)
		return NULL;
	struct model_placement *p = &a->placements[c->instance];
	if (strcmp(p->node->spec.id, c->node) != 0)
		return NULL;
	*actor = a;
	return p;
}

void model_cmd_finish(struct model *m, struct model_command *c, struct proj_batch *out)
{
	if (out)
		proj_command(out, c);
	finish(m, c);
}

void model_cmd_apply_update(struct model *m, struct entry *e, struct proj_batch *out, struct apply_result *res)
{
	for (size_t i = 0; i < e->nupdates; i++) {
		struct entry_cmd_update *u = &e->updates[i];
		struct model_command *c = model_command_get(m, u->command_id);
		/* Gone from memory, or finished already (a late or repeated report). */
		if (c == NULL || !model_cmd_open(c))
			continue;
		c->updated_ms = e->at_ms;
		if (u->attempts > c->attempts)
			c->attempts = u->attempts;
		enum cmd_status st = (enum cmd_status)u->status;
		/* A policy refused (stale: the agent has a newer one) or given up
		 * while a newer one for its node is open: that one decides. */
		if (st == CMD_FAILED && c->type == CMD_SECURITY_POLICY && e->version >= 4) {
			size_t n;
			struct model_command *const *open = model_cmd_policy_open(m, c->node, &n);
			if (n > 0 && open[n - 1]->generation > c->generation) {
				supersede(m, e, c, open[n - 1], out);
				continue;
			}
		}
		if (st == CMD_PUBLISHED) {
			c->status = CMD_PUBLISHED;
			c->published_ms = e->at_ms;
		} else {
			c->status = st == CMD_ACKED ? CMD_ACKED : CMD_FAILED;
			c->acked_ms = e->at_ms;
			/* The leader writes a publication late, and not at all when the
			 * ack comes first: this update records it. */
			if (c->published_ms == 0 && c->attempts > 0)
				c->published_ms = e->at_ms;
			if (st == CMD_ACKED) {
				c->applied_version = u->applied_version;
			} else {
				free(c->error);
				c->error = u->error ? u->error : model_need(m, strdup("failed"), "a command's error");
				u->error = NULL; /* moved */
				model_event(m, out, e, "command.failed", "command", c->id,
					    model_need(m,
						       json_pack("{s:s,s:s,s:s?,s:s}", "command_type",
								 model_cmd_type_name(c->type), "node_id", c->node,
								 "actor_id", c->actor_id, "error", c->error),
						       "an event"));
			}
		}
		/* A step of a migration moves the placement itself. */
		if (!model_mig_command_done(m, e, c, u, out)) {
			struct model_actor *a = NULL;
			struct model_placement *p = start_placement(m, c, &a);
			enum placement_state was = p ? p->state : PL_PENDING;
			if (p && c->status == CMD_PUBLISHED && p->state == PL_PENDING)
				p->state = PL_STARTING;
			if (p && c->status == CMD_ACKED &&
			    (p->state == PL_PENDING || p->state == PL_STARTING || p->state == PL_FAILED)) {
				p->state = PL_RUNNING;
				p->state_version = u->applied_version;
			}
			if (p && c->status == CMD_FAILED && p->state != PL_RUNNING)
				p->state = PL_FAILED;
			if (c->type == CMD_ACTOR_START && (c->status == CMD_ACKED || c->status == CMD_FAILED))
				model_fo_start_done(m, e, c, c->status == CMD_ACKED, out);
			/* Older policies for the node are moot once this one is on its
			 * way (the node gets it after them) or finished. */
			if (c->type == CMD_SECURITY_POLICY)
				supersede_older(m, e, c, false, out);
			if (c->type == CMD_SECURITY_POLICY && c->status == CMD_ACKED) {
				/* The node applied it: its version is now what it reported. */
				struct model_node *n = model_node_get(m, c->node);
				if (n && c->applied_version > n->policy_version) {
					n->policy_version = c->applied_version;
					if (out)
						proj_node(out, n);
				}
			}
			if (out && p && p->state != was)
				proj_placements(out, a);
		}
		if (!model_cmd_open(c))
			model_cmd_finish(m, c, out);
		else if (out)
			proj_command(out, c);
	}
	snprintf(res->id, sizeof(res->id), "%s", e->nupdates ? e->updates[0].command_id : "");
}

void model_cmd_apply_reconcile(struct model *m, struct entry *e, struct proj_batch *out, struct apply_result *res)
{
	struct model_node *n = model_node_get(m, e->target ? e->target : "");
	snprintf(res->id, sizeof(res->id), "%s", e->target ? e->target : "");
	if (n == NULL) {
		res->code = APPLY_NOT_FOUND;
		snprintf(res->message, sizeof(res->message), "node '%s' not found", e->target ? e->target : "");
		return;
	}
	/* Each difference re-checked: what changed since the leader saw it is left. */
	size_t started = 0, stopped = 0;
	for (size_t i = 0; i < e->nstarts; i++) {
		struct model_actor *a = model_actor_get(m, e->starts[i].actor_id);
		int64_t inst = e->starts[i].instance;
		if (a == NULL || a->mig || inst < 0 || (size_t)inst >= a->nplacements || a->placements[inst].node != n ||
		    a->placements[inst].state != PL_RUNNING)
			continue;
		a->placements[inst].state = PL_PENDING;
		model_cmd_start(m, e, a, (size_t)inst, out);
		if (out)
			proj_placements(out, a);
		started++;
	}
	for (size_t i = 0; i < e->nstops; i++) {
		struct model_actor *a = model_actor_get(m, e->stops[i].actor_id);
		int64_t inst = e->stops[i].instance;
		bool placed = a && inst >= 0 && (size_t)inst < a->nplacements && a->placements[inst].node == n;
		bool migrating = a && a->mig && a->mig->instance == inst && (a->mig->from == n || a->mig->to == n);
		if (placed || migrating)
			continue;
		model_cmd_stop(m, e, e->stops[i].actor_id, a ? a->generation : 0, inst, n->spec.id, "reconcile", out);
		stopped++;
	}
	if (started + stopped > 0)
		model_event(m, out, e, "node.reconciled", "node", n->spec.id,
			    model_need(m, json_pack("{s:I,s:I}", "started", (json_int_t)started, "stopped", (json_int_t)stopped),
				       "an event"));
}
