#include "edge.h"

#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "leader.h"
#include "log.h"
#include "loop.h"
#include "model.h"
#include "ops.h"
#include "proto.h"

/* What the leader knows of a node from its heartbeats (soft state). */
struct edge_seen {
	char id[SPEC_TOKEN_MAX + 1];
	int64_t last_ms;      /* monotonic time of the last heartbeat */
	int64_t last_wall_ms; /* the leader's wall clock then (what the model records) */
	int64_t good_ms;      /* since when it is neither silent nor erroring (0: it is; damping) */
	char instance[PROTO_INSTANCE_MAX + 1], prev_instance[PROTO_INSTANCE_MAX + 1];
	int64_t seq;
	int64_t cpu_measured, memory_measured_mb, error_count, policy_version;
	char agent_version[PROTO_AGENT_VERSION_MAX + 1];
	int64_t flaps[8];       /* monotonic times it went unhealthy lately (ring) */
	unsigned nflaps;
	int64_t proposed_ms;    /* last report proposed for it (one in flight at a time) */
	bool profile_pending;   /* an OP_NODE_PROFILE is on its way */
	uint64_t diff_hash;     /* the last reconcile pass's differences (0: none) */
	struct proto_hb *hb;    /* its last heartbeat (actors, for reconciliation) */
};

void edge_init(struct edge *e, struct loop *l, bool enabled)
{
	memset(e, 0, sizeof(*e));
	e->loop = l;
	e->enabled = enabled;
	hmap_init(&e->seen);
	hmap_init(&e->consumers);
	durhist_init(&e->hb_gap, DURHIST_SLOW);
}

static void seen_free(struct edge_seen *s)
{
	if (s->hb) {
		proto_hb_free(s->hb);
		free(s->hb);
	}
	free(s);
}

static void forget_all(struct edge *e)
{
	size_t pos = 0;
	struct edge_seen *s;
	while ((s = hmap_next(&e->seen, &pos)) != NULL)
		seen_free(s);
	hmap_release(&e->seen);
	hmap_init(&e->seen);
	pos = 0;
	char *k;
	while ((k = hmap_next(&e->consumers, &pos)) != NULL)
		free(k);
	hmap_release(&e->consumers);
	hmap_init(&e->consumers);
}

void edge_release(struct edge *e)
{
	forget_all(e);
	hmap_release(&e->seen);
	hmap_release(&e->consumers);
}

/* ---- the leader's own writes ---------------------------------------------------------- */

struct edge_op {
	struct op op;
	struct edge *edge;
	char node[SPEC_TOKEN_MAX + 1]; /* OP_NODE_PROFILE */
};

static void op_done(struct op *op)
{
	struct edge_op *eo = (struct edge_op *)op;
	struct edge *e = eo->edge;
	if (op->kind == OP_NODE_REPORT) {
		e->report_inflight = false;
	} else {
		struct edge_seen *s = hmap_get(&e->seen, eo->node);
		if (s)
			s->profile_pending = false;
	}
	if (op->http_status != 0)
		log_warn("%s %s: %s", op->kind == OP_NODE_REPORT ? "node report" : "registering node",
			 op->kind == OP_NODE_REPORT ? "" : eo->node, op->message);
	op_release(op);
	free(eo);
}

static struct edge_op *new_op(struct edge *e, enum op_kind kind, int64_t now)
{
	struct edge_op *eo = calloc(1, sizeof(*eo));
	if (eo == NULL)
		return NULL;
	op_init(&eo->op, kind);
	eo->edge = e;
	eo->op.internal = true;
	eo->op.deadline_ms = now + e->loop->cfg->write_timeout_ms;
	eo->op.done = op_done;
	eo->op.entry.who = strdup("edge");
	if (eo->op.entry.who == NULL) {
		free(eo);
		return NULL;
	}
	return eo;
}

static bool labels_equal(const struct kvlist *a, const struct kvlist *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->items[i].key, b->items[i].key) != 0 || strcmp(a->items[i].value, b->items[i].value) != 0)
			return false;
	return true;
}

/* Registers the node of hb, or updates its profile, when the model differs. */
static void maybe_profile(struct edge *e, struct edge_seen *s, struct proto_hb *hb, int64_t now)
{
	const struct model_node *n = model_node_get(&e->loop->model, hb->profile.id);
	if (s->profile_pending)
		return;
	if (n != NULL && strcmp(n->spec.region, hb->profile.region) == 0 &&
	    labels_equal(&n->spec.labels, &hb->profile.labels) &&
	    n->spec.cpu_capacity == hb->profile.cpu_capacity && n->spec.memory_mb == hb->profile.memory_mb)
		return;
	struct edge_op *eo = new_op(e, OP_NODE_PROFILE, now);
	if (eo == NULL)
		return;
	snprintf(eo->node, sizeof(eo->node), "%s", hb->profile.id);
	eo->op.entry.node = hb->profile; /* moved, id and all */
	memset(&hb->profile, 0, sizeof(hb->profile));
	snprintf(eo->op.target, sizeof(eo->op.target), "%s", eo->node);
	s->profile_pending = true;
	e->profiles++;
	log_info("node %s: %s from its heartbeat", eo->node, n ? "profile updated" : "registered");
	loop_submit(e->loop, &eo->op);
}

void edge_heartbeat(struct edge *e, struct proto_hb *hb, int64_t now)
{
	if (!e->leading) {
		proto_hb_free(hb);
		free(hb);
		return;
	}
	struct edge_seen *s = hmap_get(&e->seen, hb->profile.id);
	if (s == NULL) {
		s = calloc(1, sizeof(*s));
		if (s == NULL || (snprintf(s->id, sizeof(s->id), "%s", hb->profile.id), hmap_put(&e->seen, s->id, s)) != 0) {
			log_error("node %s: out of memory recording its heartbeat", hb->profile.id);
			free(s);
			proto_hb_free(hb);
			free(hb);
			return;
		}
	} else if ((strcmp(hb->instance, s->instance) == 0 && hb->seq <= s->seq) ||
		   strcmp(hb->instance, s->prev_instance) == 0) {
		char why[200];
		snprintf(why, sizeof(why), "instance %s seq %lld is not newer than instance %s seq %lld", hb->instance,
			 (long long)hb->seq, s->instance, (long long)s->seq);
		bus_dropped(&e->loop->bus, BUS_SUBJ_HB, PROTO_STALE, s->id, why);
		proto_hb_free(hb);
		free(hb);
		return;
	}
	/* Gaps within one agent instance: a restart's silence is not lag. */
	if (s->last_ms > 0 && strcmp(hb->instance, s->instance) == 0)
		durhist_add(&e->hb_gap, (now - s->last_ms) * 1000);
	if (strcmp(hb->instance, s->instance) != 0) {
		if (s->instance[0])
			log_info("node %s: agent restarted (instance %s, was %s)", s->id, hb->instance, s->instance);
		memcpy(s->prev_instance, s->instance, sizeof(s->instance));
		memcpy(s->instance, hb->instance, sizeof(s->instance));
	}
	s->seq = hb->seq;
	s->last_ms = now;
	s->last_wall_ms = loop_wallclock_ms();
	s->cpu_measured = hb->cpu_measured;
	s->memory_measured_mb = hb->memory_measured_mb;
	s->error_count = hb->error_count;
	s->policy_version = hb->policy_version;
	memcpy(s->agent_version, hb->agent_version, sizeof(s->agent_version));
	maybe_profile(e, s, hb, now);
	if (s->hb) {
		proto_hb_free(s->hb);
		free(s->hb);
	}
	s->hb = hb;
}

/* ---- snapshots ---------------------------------------------------------------------------- */

struct snap_op {
	struct op op;
	void *msg;
};

static void snap_done(struct op *op)
{
	struct snap_op *so = (struct snap_op *)op;
	/* Refused by apply (stale, from a node that does not run it): the same
	 * message would be refused again; only a write that did not happen (no
	 * longer leader) leaves it to JetStream to deliver again. */
	bool done = op->http_status == 0 || op->http_status == 404 || op->http_status == 409;
	if (op->http_status != 0)
		log_debug("snapshot of %s: %s", op->entry.target ? op->entry.target : "?", op->message);
	bus_msg_done(so->msg, done);
	op_release(op);
	free(so);
}

void edge_snapshot(struct edge *e, struct proto_snap *sn, void *msg)
{
	struct loop *l = e->loop;
	const struct model_actor *a = e->leading ? model_actor_get(&l->model, sn->actor_id) : NULL;
	char subject[160];
	proto_subject(subject, sizeof(subject), l->cfg->lattice, "snap", sn->node_id);
	bool holds = false;
	for (size_t i = 0; a && i < a->nplacements; i++)
		holds |= strcmp(a->placements[i].node->spec.id, sn->node_id) == 0;
	if (a && a->mig)
		holds |= strcmp(a->mig->from->spec.id, sn->node_id) == 0;
	/* A migration's checkpoint: the open migration's id, from its source. Any
	 * other snapshot is periodic, whatever migration_id it carries. */
	bool checkpoint = a && a->mig && sn->migration_id && strcmp(a->mig->id, sn->migration_id) == 0 &&
			  strcmp(a->mig->from->spec.id, sn->node_id) == 0;
	if (!e->leading) {
		bus_msg_done(msg, false);
	} else if (sn->state_version == 0) {
		bus_msg_done(msg, true); /* a stateless actor's (exec driver): nothing to keep */
	} else if (a == NULL) {
		bus_dropped(&l->bus, BUS_SUBJ_SNAP, PROTO_UNKNOWN, subject, "a snapshot of an unknown actor");
		bus_msg_done(msg, true);
	} else if (!holds) {
		bus_dropped(&l->bus, BUS_SUBJ_SNAP, PROTO_SPOOFED, subject, "a snapshot from a node that does not run the actor");
		bus_msg_done(msg, true);
	} else if (a->snap && sn->state_version <= a->snap->state_version) {
		bus_dropped(&l->bus, BUS_SUBJ_SNAP, PROTO_STALE, subject, "a snapshot not newer than the one held");
		bus_msg_done(msg, true);
	} else if (a->snap && !checkpoint && loop_wallclock_ms() - a->snap->taken_ms < EDGE_SNAP_MIN_MS) {
		/* Every snapshot is a log entry (up to 256 KiB): periodic ones are
		 * kept at most once per EDGE_SNAP_MIN_MS per actor; a migration's
		 * checkpoint always is. */
		bus_dropped(&l->bus, BUS_SUBJ_SNAP, PROTO_STALE, subject, "a periodic snapshot sooner than 1 s after the last");
		bus_msg_done(msg, true);
	} else {
		struct snap_op *so = calloc(1, sizeof(*so));
		if (so == NULL) {
			bus_msg_done(msg, false);
		} else {
			op_init(&so->op, OP_SNAPSHOT_PUT);
			so->msg = msg;
			so->op.internal = true;
			so->op.deadline_ms = loop_now_ms() + l->cfg->write_timeout_ms;
			so->op.done = snap_done;
			struct entry *en = &so->op.entry;
			en->who = strdup("edge");
			en->target = strdup(sn->actor_id);
			en->snap.node = strdup(sn->node_id);
			en->snap.state_version = sn->state_version;
			en->snap.data = sn->data;
			en->snap.migration_id = sn->migration_id;
			sn->data = sn->migration_id = NULL;
			snprintf(so->op.target, sizeof(so->op.target), "%s", sn->actor_id);
			if (en->who == NULL || en->target == NULL || en->snap.node == NULL) {
				op_release(&so->op);
				free(so);
				bus_msg_done(msg, false);
			} else {
				loop_submit(l, &so->op);
			}
		}
	}
	proto_snap_free(sn);
	free(sn);
}

/* ---- reconciliation (anti-entropy) ------------------------------------------------------- */

/* A replica of an actor (reconcile's lists). */
struct ref {
	const char *actor_id;
	int64_t instance;
};

struct refs {
	struct ref *v;
	size_t n, cap;
};

static int refs_add(struct refs *r, const char *actor_id, int64_t instance)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 8;
		struct ref *v = realloc(r->v, cap * sizeof(*v));
		if (v == NULL)
			return -1;
		r->v = v;
		r->cap = cap;
	}
	r->v[r->n++] = (struct ref){actor_id, instance};
	return 0;
}

static void key_of(char *buf, size_t len, const char *actor, int64_t inst, const char *node)
{
	snprintf(buf, len, "%s\x1f%lld\x1f%s", actor, (long long)inst, node);
}

static bool hb_lists(const struct proto_hb *hb, const char *actor, int64_t inst)
{
	size_t lo = 0, hi = hb->nactors;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(hb->actors[mid].actor_id, actor);
		if (c == 0)
			c = hb->actors[mid].instance < inst ? -1 : hb->actors[mid].instance > inst;
		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static void reconcile_done(struct op *op)
{
	if (op->http_status != 0)
		log_warn("reconciling node %s: %s", op->target, op->message);
	op_release(op);
	free(op);
}

static uint64_t fnv(uint64_t h, const char *s, int64_t n)
{
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return (h ^ (uint64_t)n) * 1099511628211ULL;
}

/* Compares each heartbeating node's last heartbeat with the placements the
 * lattice holds for it; a difference seen on two passes in a row (so not just
 * a heartbeat sent before an ack) and not already being fixed by an open
 * command is proposed as a reconcile entry: start what it should run (not on
 * an unhealthy node), stop what it should not. */
static void reconcile(struct edge *e, int64_t now)
{
	struct loop *l = e->loop;
	const struct model *m = &l->model;
	struct hmap open, expect;
	hmap_init(&open);
	hmap_init(&expect);
	char key[SPEC_ID_MAX + SPEC_TOKEN_MAX + 32];
	for (const struct model_command *c = m->cmd_open.head; c; c = c->next) {
		if (c->actor_id == NULL)
			continue;
		key_of(key, sizeof(key), c->actor_id, c->instance, c->node);
		if (hmap_get(&open, key) != NULL)
			continue; /* another open command of that replica there (a put would leak its key) */
		char *k = strdup(key);
		if (k == NULL || hmap_put(&open, k, k) != 0)
			free(k);
	}
	size_t pos = 0;
	const struct model_actor *a;
	while ((a = hmap_next(&m->actors, &pos)) != NULL)
		for (size_t i = 0; i < a->nplacements; i++) {
			if (a->placements[i].state != PL_RUNNING)
				continue;
			struct refs *r = hmap_get(&expect, a->placements[i].node->spec.id);
			if (r == NULL && ((r = calloc(1, sizeof(*r))) == NULL ||
					  hmap_put(&expect, a->placements[i].node->spec.id, r) != 0)) {
				free(r);
				continue;
			}
			refs_add(r, a->spec.id, (int64_t)i);
		}
	int64_t timeout = l->cfg->heartbeat_timeout_ms;
	pos = 0;
	struct edge_seen *s;
	while ((s = hmap_next(&e->seen, &pos)) != NULL) {
		const struct model_node *n = model_node_get(m, s->id);
		if (s->hb == NULL || n == NULL || (timeout > 0 && now - s->last_ms > timeout))
			continue;
		struct refs starts = {0}, stops = {0};
		uint64_t h = 1469598103934665603ULL;
		/* A node unhealthy while it heartbeats (erring, or held by flap
		 * damping) gets no starts (its replicas are failed over or wait for
		 * it), but what it runs that it should not is stopped now. */
		struct refs *want = n->status == NODE_UNHEALTHY ? NULL : hmap_get(&expect, s->id);
		for (size_t i = 0; want && i < want->n; i++) {
			key_of(key, sizeof(key), want->v[i].actor_id, want->v[i].instance, s->id);
			if (!hb_lists(s->hb, want->v[i].actor_id, want->v[i].instance) && !hmap_get(&open, key)) {
				refs_add(&starts, want->v[i].actor_id, want->v[i].instance);
				h = fnv(fnv(h, "start", 0), want->v[i].actor_id, want->v[i].instance);
			}
		}
		for (size_t i = 0; i < s->hb->nactors; i++) {
			const struct proto_hb_actor *x = &s->hb->actors[i];
			const struct model_actor *b = model_actor_get(m, x->actor_id);
			bool placed = b && x->instance < (int64_t)b->nplacements && b->placements[x->instance].node == n;
			bool migrating = b && b->mig && b->mig->instance == x->instance && (b->mig->from == n || b->mig->to == n);
			key_of(key, sizeof(key), x->actor_id, x->instance, s->id);
			if (!placed && !migrating && !hmap_get(&open, key)) {
				refs_add(&stops, x->actor_id, x->instance);
				h = fnv(fnv(h, "stop", 0), x->actor_id, x->instance);
			}
		}
		bool any = starts.n + stops.n > 0;
		bool again = any && s->diff_hash == h;
		s->diff_hash = any && !again ? h : 0;
		if (again) {
			struct op *op = calloc(1, sizeof(*op));
			struct entry *en = op ? &op->entry : NULL;
			if (op) {
				op_init(op, OP_RECONCILE);
				op->internal = true;
				op->deadline_ms = now + l->cfg->write_timeout_ms;
				op->done = reconcile_done;
				snprintf(op->target, sizeof(op->target), "%s", s->id);
				en->who = strdup("reconcile");
				en->target = strdup(s->id);
				en->starts = calloc(starts.n + 1, sizeof(*en->starts));
				en->stops = calloc(stops.n + 1, sizeof(*en->stops));
				bool oom = !en->who || !en->target || !en->starts || !en->stops;
				for (size_t i = 0; !oom && i < starts.n; i++) {
					en->starts[en->nstarts].instance = starts.v[i].instance;
					oom = (en->starts[en->nstarts++].actor_id = strdup(starts.v[i].actor_id)) == NULL;
				}
				for (size_t i = 0; !oom && i < stops.n; i++) {
					en->stops[en->nstops].instance = stops.v[i].instance;
					oom = (en->stops[en->nstops++].actor_id = strdup(stops.v[i].actor_id)) == NULL;
				}
				if (oom) {
					op_release(op);
					free(op);
				} else {
					log_info("node %s: its heartbeats differ from the lattice: %zu to start, %zu to stop", s->id,
						 starts.n, stops.n);
					loop_submit(l, op);
				}
			}
		}
		free(starts.v);
		free(stops.v);
	}
	pos = 0;
	char *k;
	while ((k = hmap_next(&open, &pos)) != NULL)
		free(k);
	hmap_release(&open);
	pos = 0;
	struct refs *r;
	while ((r = hmap_next(&expect, &pos)) != NULL) {
		free(r->v);
		free(r);
	}
	hmap_release(&expect);
}

/* ---- health ---------------------------------------------------------------------------- */

static unsigned recent_flaps(const struct edge_seen *s, int64_t now)
{
	unsigned n = 0;
	for (unsigned i = 0; i < s->nflaps && i < 8; i++)
		if (now - s->flaps[i] <= EDGE_FLAP_WINDOW_MS)
			n++;
	return n;
}

/* How long a node that came back stays unhealthy before it is trusted again. */
static int64_t hold_ms(const struct edge *e, const struct edge_seen *s, int64_t now)
{
	unsigned f = recent_flaps(s, now);
	if (f <= 1)
		return 0;
	int64_t h = e->loop->cfg->heartbeat_timeout_ms;
	for (unsigned i = 1; i < f && h < EDGE_HOLD_MAX_MS; i++)
		h *= 2;
	return h < EDGE_HOLD_MAX_MS ? h : EDGE_HOLD_MAX_MS;
}

static int64_t absdiff(int64_t a, int64_t b)
{
	return a > b ? a - b : b - a;
}

/* Measured usage worth recording: first known, or moved by 5% of capacity
 * (50 millicores / 64 MiB when capacity is unknown). */
static bool usage_moved(int64_t was, int64_t now, int64_t capacity, int64_t floor)
{
	if (was < 0)
		return true;
	int64_t step = capacity / 20 > floor ? capacity / 20 : floor;
	return absdiff(was, now) >= step;
}

/* The report for n, or false when the model already says it all. */
static bool node_report(struct edge *e, const struct model_node *n, int64_t now, struct entry_report *out)
{
	const struct config *cfg = e->loop->cfg;
	struct edge_seen *s = hmap_get(&e->seen, n->spec.id);
	int64_t timeout = cfg->heartbeat_timeout_ms;
	enum node_status want = n->status;
	/* Silence counts only while connected, and from when the watch began. */
	bool watching = e->watch_since_ms > 0;
	int64_t heard = s != NULL && s->last_ms > e->watch_since_ms ? s->last_ms : e->watch_since_ms;
	bool silent = watching && timeout > 0 && now - heard > timeout;
	if (s != NULL && s->last_ms > 0) {
		if (silent)
			want = NODE_UNHEALTHY;
		else if (s->error_count >= cfg->max_error_count)
			want = NODE_UNHEALTHY;
		else
			want = s->error_count > 0 ? NODE_DEGRADED : NODE_HEALTHY;
		if (want == NODE_UNHEALTHY)
			s->good_ms = 0;
		else if (s->good_ms == 0)
			s->good_ms = now;
		/* Damping: a flapping node waits before it is trusted again, the hold
		 * counted from when it came good (heard again, or its errors cleared). */
		if (n->status == NODE_UNHEALTHY && want != NODE_UNHEALTHY && now - s->good_ms < hold_ms(e, s, now))
			want = NODE_UNHEALTHY;
	} else if (silent) {
		/* Never heard since this leader took over, one whole timeout ago. */
		want = NODE_UNHEALTHY;
	}
	out->node_id = (char *)n->spec.id;
	out->status = want;
	out->error_count = n->error_count;
	out->cpu_measured = n->cpu_measured;
	out->memory_measured_mb = n->memory_measured_mb;
	out->policy_version = n->policy_version;
	out->last_heartbeat_ms = n->last_heartbeat_ms;
	out->agent_version = n->agent_version;
	bool report = want != n->status;
	if (s != NULL && s->last_ms > 0) {
		if (s->error_count != n->error_count || s->policy_version != n->policy_version ||
		    n->agent_version == NULL || strcmp(s->agent_version, n->agent_version) != 0 ||
		    usage_moved(n->cpu_measured, s->cpu_measured, n->spec.cpu_capacity, 50) ||
		    usage_moved(n->memory_measured_mb, s->memory_measured_mb, n->spec.memory_mb, 64) ||
		    s->last_wall_ms - n->last_heartbeat_ms >= EDGE_SEEN_REFRESH_MS)
			report = true;
		out->error_count = s->error_count;
		out->cpu_measured = s->cpu_measured;
		out->memory_measured_mb = s->memory_measured_mb;
		out->policy_version = s->policy_version;
		out->last_heartbeat_ms = s->last_wall_ms;
		out->agent_version = s->agent_version;
	}
	if (!report || (s != NULL && now - s->proposed_ms < 1000))
		return false;
	if (want == NODE_UNHEALTHY && n->status != NODE_UNHEALTHY) {
		if (s != NULL) {
			s->flaps[s->nflaps++ % 8] = now;
		}
		log_warn("node %s is unhealthy: %s", n->spec.id,
			 s == NULL || s->last_ms == 0 ? "no heartbeat since this replica became leader"
			 : silent ? "heartbeats stopped" : "too many errors");
	} else if (want != n->status) {
		log_info("node %s is %s (was %s)", n->spec.id, model_node_status_name(want),
			 model_node_status_name(n->status));
	}
	if (s != NULL)
		s->proposed_ms = now;
	return true;
}

/* Proposes one report entry for every node whose model record is behind. */
static void propose_reports(struct edge *e, int64_t now)
{
	if (e->report_inflight)
		return;
	const struct model *m = &e->loop->model;
	size_t cap = m->nodes.n, n = 0;
	if (cap == 0)
		return;
	struct entry_report *rs = calloc(cap, sizeof(*rs));
	if (rs == NULL)
		return;
	size_t pos = 0;
	const struct model_node *node;
	while ((node = hmap_next(&m->nodes, &pos)) != NULL && n < cap)
		if (node_report(e, node, now, &rs[n]))
			n++;
	if (n == 0) {
		free(rs);
		return;
	}
	/* The entry owns copies: the model's strings may go before it is applied. */
	bool oom = false;
	for (size_t i = 0; i < n; i++) {
		rs[i].node_id = strdup(rs[i].node_id);
		rs[i].agent_version = rs[i].agent_version ? strdup(rs[i].agent_version) : NULL;
		oom |= rs[i].node_id == NULL;
	}
	struct edge_op *eo = oom ? NULL : new_op(e, OP_NODE_REPORT, now);
	if (eo == NULL) {
		for (size_t i = 0; i < n; i++) {
			free(rs[i].node_id);
			free(rs[i].agent_version);
		}
		free(rs);
		return;
	}
	eo->op.entry.reports = rs;
	eo->op.entry.nreports = n;
	e->report_inflight = true;
	e->reports++;
	loop_submit(e->loop, &eo->op);
}

/* The bus keeps a consumer for every node the model holds. */
static void sync_consumers(struct edge *e)
{
	const struct model *m = &e->loop->model;
	size_t pos = 0;
	const struct model_node *n;
	while ((n = hmap_next(&m->nodes, &pos)) != NULL) {
		if (hmap_get(&e->consumers, n->spec.id) != NULL)
			continue;
		char *k = strdup(n->spec.id);
		if (k == NULL || hmap_put(&e->consumers, k, k) != 0) {
			free(k);
			return;
		}
		bus_node(&e->loop->bus, k, true);
	}
	if (e->consumers.n == m->nodes.n)
		return;
	/* Some node went: find which (rare; deletions only). */
	char **gone = calloc(e->consumers.n, sizeof(*gone));
	size_t ngone = 0;
	if (gone == NULL)
		return;
	pos = 0;
	char *k;
	while ((k = hmap_next(&e->consumers, &pos)) != NULL)
		if (model_node_get(m, k) == NULL)
			gone[ngone++] = k;
	for (size_t i = 0; i < ngone; i++) {
		hmap_del(&e->consumers, gone[i]);
		bus_node(&e->loop->bus, gone[i], false);
		struct edge_seen *s = hmap_del(&e->seen, gone[i]);
		if (s)
			seen_free(s);
		free(gone[i]);
	}
	free(gone);
}

static void lead(struct edge *e, bool on, int64_t now)
{
	e->leading = on;
	forget_all(e);
	if (!on) {
		bus_lead(&e->loop->bus, false, NULL, 0);
		log_info("edge: no longer leading; heartbeats are the next leader's");
		return;
	}
	e->lead_since_ms = now;
	e->watch_since_ms = 0; /* set by the tick once NATS is connected */
	const struct model *m = &e->loop->model;
	const char **ids = calloc(m->nodes.n + 1, sizeof(*ids));
	size_t n = 0, pos = 0;
	const struct model_node *node;
	while (ids && (node = hmap_next(&m->nodes, &pos)) != NULL) {
		ids[n++] = node->spec.id;
		char *k = strdup(node->spec.id);
		if (k == NULL || hmap_put(&e->consumers, k, k) != 0)
			free(k);
	}
	bus_lead(&e->loop->bus, true, ids, n);
	free(ids);
	log_info("edge: leading; %zu nodes get %lld ms to be heard before any is declared dead", n,
		 (long long)e->loop->cfg->heartbeat_timeout_ms);
}

void edge_tick(struct edge *e, int64_t now)
{
	if (!e->enabled)
		return;
	if (now >= e->next_census_ms) {
		uint64_t behind = 0, down = 0;
		size_t pos = 0;
		const struct model_node *n;
		int64_t oldest = 0;
		while ((n = hmap_next(&e->loop->model.nodes, &pos)) != NULL) {
			behind += n->policy_version < n->policy_target;
			down += n->status == NODE_UNHEALTHY;
			const struct edge_seen *s = hmap_get(&e->seen, n->spec.id);
			if (s && s->last_ms > 0 && now - s->last_ms > oldest)
				oldest = now - s->last_ms;
		}
		e->hb_age_max_ms = e->leading ? oldest : 0;
		atomic_store(&e->loop->bus.stats.nodes_policy_behind, behind);
		atomic_store(&e->loop->bus.stats.nodes_unhealthy, down);
		e->next_census_ms = now + 1000;
	}
	bool leading = leader_writable(e->loop) && !e->loop->closing;
	if (leading != e->leading)
		lead(e, leading, now);
	if (!leading)
		return;
	bool connected = atomic_load(&e->loop->bus.stats.connected) != 0;
	if (!connected && e->watch_since_ms != 0) {
		e->watch_since_ms = 0;
		log_warn("edge: NATS is away; no node is declared dead until it is back and heard from");
	} else if (connected && e->watch_since_ms == 0) {
		e->watch_since_ms = now > e->lead_since_ms ? now : e->lead_since_ms;
	}
	if (now >= e->next_sync_ms) {
		sync_consumers(e);
		e->next_sync_ms = now + 1000;
	}
	propose_reports(e, now);
	if (now >= e->next_reconcile_ms) {
		if (e->next_reconcile_ms != 0)
			reconcile(e, now);
		e->next_reconcile_ms = now + EDGE_RECONCILE_MS;
	}
}
