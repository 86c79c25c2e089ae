#include "outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "jw.h"
#include "leader.h"
#include "log.h"
#include "loop.h"
#include "model.h"
#include "ops.h"
#include "proto.h"
#include "render.h"

/* What this leader knows of one open command. */
struct ob_track {
	char *id;
	int64_t next_ms;   /* publish (again) at */
	bool busy;         /* a publication or an update of it is on its way */
	int64_t attempt;   /* the latest publication: its number */
	bool held;         /* that publication is not in the log yet (see hold_ms) */
};

/* A node's security_policy on its way: the next waits for its ack or until.
 * unacked: publications to the node since its last policy ack; each doubles
 * the wait (up to OUTBOX_BACKOFF_MAX_MS), so a node, or a leader, that falls
 * behind on policy gets fewer of them, not one per version. */
struct ob_flight {
	char *node;
	char *id;
	uint64_t generation;
	int64_t until_ms;
	unsigned unacked;
};

/* A publication waiting to be written to the log (FIFO: all wait as long). */
struct ob_held {
	char *id;
	int64_t due_ms;
	struct ob_held *next;
};

/* Commands published per tick at most: a backlog (NATS was away) drains
 * without stalling the loop. */
#define OUTBOX_BATCH 1024
/* How often the open commands are scanned for what is due. */
#define OUTBOX_SCAN_MS 20
/* How long a migration's start waits for the checkpoint it names. */
#define OUTBOX_SNAPSHOT_WAIT_MS 5000
/* A publication is written to the log this long after it happened (at most a
 * quarter of the command timeout), unless the ack comes first: then the ack's
 * update alone records both, and a command costs two log updates, not three. */
#define OUTBOX_HOLD_MS 500

static int64_t hold_ms(const struct outbox *o)
{
	int64_t q = o->loop->cfg->command_timeout_ms / 4;
	return q < OUTBOX_HOLD_MS ? q : OUTBOX_HOLD_MS;
}

void outbox_init(struct outbox *o, struct loop *l, bool enabled)
{
	memset(o, 0, sizeof(*o));
	o->loop = l;
	o->enabled = enabled;
	hmap_init(&o->track);
	hmap_init(&o->flight);
}

static void pend_clear(struct outbox *o)
{
	for (size_t i = 0; i < o->npend; i++) {
		free(o->pend[i].command_id);
		free(o->pend[i].error);
	}
	o->npend = 0;
	for (size_t i = 0; i < o->nmsgs; i++)
		bus_msg_done(o->msgs[i], false); /* JetStream redelivers them */
	o->nmsgs = 0;
}

static void held_clear(struct outbox *o)
{
	while (o->held_head) {
		struct ob_held *h = o->held_head;
		o->held_head = h->next;
		free(h->id);
		free(h);
	}
	o->held_tail = NULL;
}

static void track_clear(struct outbox *o)
{
	size_t pos = 0;
	struct ob_track *t;
	while ((t = hmap_next(&o->track, &pos)) != NULL) {
		free(t->id);
		free(t);
	}
	hmap_release(&o->track);
	hmap_init(&o->track);
}

static void flight_del(struct outbox *o, struct ob_flight *f)
{
	hmap_del(&o->flight, f->node);
	free(f->node);
	free(f->id);
	free(f);
}

static void flight_clear(struct outbox *o)
{
	size_t pos = 0;
	struct ob_flight *f;
	while ((f = hmap_next(&o->flight, &pos)) != NULL) {
		free(f->node);
		free(f->id);
		free(f);
	}
	hmap_release(&o->flight);
	hmap_init(&o->flight);
}

/* Records c, a security_policy just published at now, as its node's one on
 * its way: for c's own timeout (until_ms), longer when earlier ones are not
 * acked yet. Out of memory: not recorded (the next may go sooner). */
static int64_t backoff_ms(const struct outbox *o, int64_t attempt);

static void flight_set(struct outbox *o, const struct model_command *c, int64_t now, int64_t until_ms)
{
	struct ob_flight *f = hmap_get(&o->flight, c->node);
	unsigned unacked = f ? f->unacked + 1 : 0;
	int64_t wait = backoff_ms(o, (int64_t)unacked + 1); /* the timeout, doubled per unacked one */
	if (now + wait > until_ms)
		until_ms = now + wait;
	if (f == NULL) {
		f = calloc(1, sizeof(*f));
		if (f == NULL || (f->node = strdup(c->node)) == NULL || hmap_put(&o->flight, f->node, f) != 0) {
			if (f)
				free(f->node);
			free(f);
			return;
		}
	}
	char *id = strdup(c->id);
	if (id == NULL) {
		flight_del(o, f);
		return;
	}
	free(f->id);
	f->id = id;
	f->generation = c->generation;
	f->until_ms = until_ms;
	f->unacked = unacked;
}

/* Idempotent: the loop releases the outbox when it begins to close and again
 * in loop_close. */
void outbox_release(struct outbox *o)
{
	flight_clear(o);
	pend_clear(o);
	free(o->pend);
	o->pend = NULL;
	o->cappend = 0;
	free(o->msgs);
	o->msgs = NULL;
	o->capmsgs = 0;
	held_clear(o);
	track_clear(o);
}

static struct ob_track *track(struct outbox *o, const struct model_command *c, int64_t now)
{
	struct ob_track *t = hmap_get(&o->track, c->id);
	if (t != NULL)
		return t;
	t = calloc(1, sizeof(*t));
	if (t == NULL || (t->id = strdup(c->id)) == NULL || hmap_put(&o->track, t->id, t) != 0) {
		if (t)
			free(t->id);
		free(t);
		return NULL;
	}
	/* Published by an earlier leader, maybe moments ago: give it a timeout. */
	t->next_ms = c->status == CMD_PENDING ? now : now + o->loop->cfg->command_timeout_ms;
	return t;
}

static int64_t backoff_ms(const struct outbox *o, int64_t attempt)
{
	int64_t d = o->loop->cfg->command_timeout_ms;
	for (int64_t i = 1; i < attempt && d < OUTBOX_BACKOFF_MAX_MS; i++)
		d *= 2;
	return d < OUTBOX_BACKOFF_MAX_MS ? d : OUTBOX_BACKOFF_MAX_MS;
}

/* Queues an update (strings copied); msg: the ack's JetStream message, acked
 * once the update is applied (transferred). Returns -1 when out of memory
 * (msg then goes back to JetStream unacked). */
static int pend_add(struct outbox *o, const char *id, enum cmd_status st, int64_t attempts, const char *error,
		    int64_t applied_version, void *msg)
{
	if (o->npend == o->cappend) {
		size_t cap = o->cappend ? o->cappend * 2 : 64;
		struct entry_cmd_update *p = realloc(o->pend, cap * sizeof(*p));
		if (p == NULL)
			goto oom;
		o->pend = p;
		o->cappend = cap;
	}
	if (msg != NULL && o->nmsgs == o->capmsgs) {
		size_t cap = o->capmsgs ? o->capmsgs * 2 : 64;
		void **p = realloc(o->msgs, cap * sizeof(*p));
		if (p == NULL)
			goto oom;
		o->msgs = p;
		o->capmsgs = cap;
	}
	struct entry_cmd_update *u = &o->pend[o->npend];
	memset(u, 0, sizeof(*u));
	u->command_id = strdup(id);
	u->error = error ? strdup(error) : NULL;
	if (u->command_id == NULL || (error && u->error == NULL)) {
		free(u->command_id);
		free(u->error);
		goto oom;
	}
	u->status = st;
	u->attempts = attempts;
	u->applied_version = applied_version;
	o->npend++;
	if (msg != NULL)
		o->msgs[o->nmsgs++] = msg;
	return 0;
oom:
	log_error("outbox: out of memory queueing an update of %s", id);
	bus_msg_done(msg, false);
	return -1;
}

/* ---- proposing updates ------------------------------------------------------------------ */

struct ob_op {
	struct op op;
	struct outbox *o;
	void **msgs;
	size_t nmsgs;
};

static void update_done(struct op *op)
{
	struct ob_op *oo = (struct ob_op *)op;
	struct outbox *o = oo->o;
	bool ok = op->http_status == 0;
	if (!ok)
		log_warn("outbox: recording %zu command updates failed (%s); they are learned again", op->entry.nupdates,
			 op->message);
	/* Whatever happened, the commands are free to move on: a failed update is
	 * retried by the publication timeout or the ack's redelivery. */
	for (size_t i = 0; i < op->entry.nupdates; i++) {
		struct ob_track *t = hmap_get(&o->track, op->entry.updates[i].command_id);
		if (t && op->entry.updates[i].status != CMD_PUBLISHED)
			t->busy = false;
	}
	for (size_t i = 0; i < oo->nmsgs; i++)
		bus_msg_done(oo->msgs[i], ok);
	free(oo->msgs);
	op_release(op);
	free(oo);
}

static void propose(struct outbox *o, int64_t now)
{
	if (o->npend == 0)
		return;
	struct ob_op *oo = calloc(1, sizeof(*oo));
	char *who = strdup("outbox");
	if (oo == NULL || who == NULL) {
		free(oo);
		free(who);
		return; /* tried again next tick */
	}
	op_init(&oo->op, OP_COMMAND_UPDATE);
	oo->o = o;
	oo->op.internal = true;
	oo->op.deadline_ms = now + o->loop->cfg->write_timeout_ms;
	oo->op.done = update_done;
	oo->op.entry.who = who;
	oo->op.entry.updates = o->pend;
	oo->op.entry.nupdates = o->npend;
	oo->msgs = o->msgs;
	oo->nmsgs = o->nmsgs;
	for (size_t i = 0; i < o->npend; i++) {
		if (o->pend[i].status == CMD_PUBLISHED)
			o->publications++;
		else if (o->pend[i].status == CMD_ACKED)
			o->acks++;
		else
			o->failures++;
	}
	o->pend = NULL;
	o->npend = o->cappend = 0;
	o->msgs = NULL;
	o->nmsgs = o->capmsgs = 0;
	loop_submit(o->loop, &oo->op);
}

/* ---- publishing ------------------------------------------------------------------------- */

/* actor_start's payload as published: the actor's latest state snapshot, if
 * it has one, is put in at publication (the freshest state, and the log holds
 * the data once, not once per command). Caller frees; NULL: out of memory. */
static char *start_payload(const struct model *m, const struct model_command *c, bool *wait)
{
	const struct model_actor *a = c->actor_id ? model_actor_get(m, c->actor_id) : NULL;
	char *text = model_cmd_payload(c);
	json_t *p = text ? json_loads(text, 0, NULL) : NULL;
	free(text);
	/* A migration's start names the checkpoint it needs: wait for it to be
	 * recorded, OUTBOX_SNAPSHOT_WAIT_MS at most. */
	json_int_t want = json_integer_value(json_object_get(json_object_get(p, "snapshot"), "state_version"));
	if (want > 0 && (a == NULL || a->snap == NULL || a->snap->state_version < want) &&
	    loop_wallclock_ms() - c->created_ms < OUTBOX_SNAPSHOT_WAIT_MS) {
		json_decref(p);
		*wait = true;
		return NULL;
	}
	if (a == NULL || a->snap == NULL) {
		json_object_set_new(p, "snapshot", json_null());
		char *out = p ? json_dumps(p, JSON_COMPACT) : NULL;
		json_decref(p);
		return out;
	}
	json_t *snap = json_pack("{s:I,s:s}", "state_version", (json_int_t)a->snap->state_version, "data",
				 a->snap->data);
	char *out = NULL;
	if (p && snap && json_object_set_new(p, "snapshot", snap) == 0) {
		snap = NULL;
		out = json_dumps(p, JSON_COMPACT);
	}
	json_decref(snap);
	json_decref(p);
	return out;
}

/* The message for c (docs/protocol.md, "Command"). NULL when out of memory. */
static char *message(const struct model *m, const struct model_command *c, size_t *len, bool *wait)
{
	char *payload = c->type == CMD_ACTOR_START ? start_payload(m, c, wait) : NULL;
	if (c->type == CMD_ACTOR_START && payload == NULL)
		return NULL;
	char issued[40];
	render_time(c->created_ms, issued, sizeof(issued));
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "command_id");
	jw_str(&w, c->id);
	jw_key(&w, "command_type");
	jw_str(&w, model_cmd_type_name(c->type));
	jw_key(&w, "target_node");
	jw_str(&w, c->node);
	jw_key(&w, "term");
	jw_uint(&w, c->term);
	jw_key(&w, "generation");
	jw_uint(&w, c->generation);
	jw_key(&w, "config_version");
	jw_int(&w, c->config_version);
	jw_key(&w, "issued_at");
	jw_str(&w, issued);
	jw_key(&w, "payload");
	if (payload)
		jw_json(&w, payload, strlen(payload));
	else
		model_cmd_write_payload(&w, c);
	jw_obj_end(&w);
	free(payload);
	return jw_take(&w, len);
}

/* Whether c, a security_policy, waits: a node gets one policy at a time, the
 * newest. An older one is not published again once a newer one exists (the
 * newer one's publication supersedes it), and the newest waits while another
 * is on its way (published less than its timeout ago and not acked: the
 * flight map, which also remembers one the model already superseded), so a
 * node that acks slowly gets the latest policy once per round trip instead of
 * every version, each retried; one that does not ack, ever less often. */
static bool policy_waits(struct outbox *o, const struct model_command *c, int64_t now)
{
	size_t n;
	struct model_command *const *open = model_cmd_policy_open(&o->loop->model, c->node, &n);
	if (n == 0)
		return false;
	if (open[n - 1] != c)
		return true;
	const struct ob_flight *f = hmap_get(&o->flight, c->node);
	if (f && now < f->until_ms && strcmp(f->id, c->id) != 0)
		return true;
	for (size_t i = 0; i + 1 < n; i++) {
		const struct ob_track *t = hmap_get(&o->track, open[i]->id);
		if (t == NULL ? open[i]->status == CMD_PUBLISHED : t->busy || now < t->next_ms)
			return true;
	}
	return false;
}

static void scan(struct outbox *o, int64_t now)
{
	const struct config *cfg = o->loop->cfg;
	struct bus_cmd *batch = NULL;
	size_t n = 0;
	for (const struct model_command *c = o->loop->model.cmd_open.head; c && n < OUTBOX_BATCH; c = c->next) {
		struct ob_track *t = track(o, c, now);
		if (t == NULL || t->busy || now < t->next_ms)
			continue;
		if (c->type == CMD_SECURITY_POLICY && policy_waits(o, c, now))
			continue;
		if (c->attempts >= cfg->command_max_attempts) {
			char why[160];
			snprintf(why, sizeof(why), "not acked after %lld attempts", (long long)c->attempts);
			if (pend_add(o, c->id, CMD_FAILED, c->attempts, why, 0, NULL) == 0) {
				t->busy = true;
				log_warn("command %s (%s to %s) failed: %s", c->id, model_cmd_type_name(c->type), c->node,
					 why);
			}
			continue;
		}
		if (batch == NULL && (batch = calloc(OUTBOX_BATCH, sizeof(*batch))) == NULL)
			return;
		struct bus_cmd *b = &batch[n];
		char subject[160];
		proto_subject(subject, sizeof(subject), cfg->lattice, "cmd", c->node);
		bool wait = false;
		b->body = message(&o->loop->model, c, &b->len, &wait);
		if (wait) {
			t->next_ms = now + 50; /* its snapshot is on its way to the log */
			continue;
		}
		b->id = strdup(c->id);
		b->subject = strdup(subject);
		if (b->id == NULL || b->subject == NULL || b->body == NULL) {
			free(b->id);
			free(b->subject);
			free(b->body);
			memset(b, 0, sizeof(*b));
			break;
		}
		t->busy = true;
		t->attempt = (c->attempts > t->attempt ? c->attempts : t->attempt) + 1;
		n++;
	}
	if (n > 0)
		bus_publish(&o->loop->bus, batch, n);
	else
		free(batch);
}

/* Forgets what it tracked of commands that are no longer open, and the
 * policies on their way of nodes quiet for OUTBOX_BACKOFF_MAX_MS past their
 * wait (their unacked count goes with them). */
static void sweep(struct outbox *o, int64_t now)
{
	size_t fpos = 0, nf = 0;
	struct ob_flight *f, *done[64];
	/* Kept a while past its wait: its count of unacked publications is what
	 * the next one's wait grows from. */
	while (nf < 64 && (f = hmap_next(&o->flight, &fpos)) != NULL)
		if (f->until_ms + OUTBOX_BACKOFF_MAX_MS <= now)
			done[nf++] = f;
	for (size_t i = 0; i < nf; i++)
		flight_del(o, done[i]);
	size_t pos = 0, ngone = 0;
	struct ob_track *t;
	struct ob_track **gone = calloc(o->track.n + 1, sizeof(*gone));
	if (gone == NULL)
		return;
	while ((t = hmap_next(&o->track, &pos)) != NULL) {
		const struct model_command *c = model_command_get(&o->loop->model, t->id);
		if (!t->busy && (c == NULL || !model_cmd_open(c)))
			gone[ngone++] = t;
	}
	for (size_t i = 0; i < ngone; i++) {
		hmap_del(&o->track, gone[i]->id);
		free(gone[i]->id);
		free(gone[i]);
	}
	free(gone);
}

/* Writes the publications that waited hold_ms and saw no ack. */
static void release_held(struct outbox *o, int64_t now)
{
	while (o->held_head && o->held_head->due_ms <= now) {
		struct ob_held *h = o->held_head;
		o->held_head = h->next;
		if (o->held_head == NULL)
			o->held_tail = NULL;
		struct ob_track *t = hmap_get(&o->track, h->id);
		if (t && t->held && pend_add(o, h->id, CMD_PUBLISHED, t->attempt, NULL, 0, NULL) == 0)
			t->held = false;
		free(h->id);
		free(h);
	}
}

void outbox_tick(struct outbox *o, int64_t now)
{
	if (!o->enabled)
		return;
	bool leading = leader_writable(o->loop) && !o->loop->closing;
	if (leading != o->leading) {
		o->leading = leading;
		pend_clear(o);
		held_clear(o);
		track_clear(o);
		flight_clear(o);
		if (leading)
			log_info("outbox: leading; %zu open commands to publish or watch", o->loop->model.cmd_open.n);
	}
	if (!leading)
		return;
	if (atomic_load(&o->loop->bus.stats.streams_ok) && now >= o->next_scan_ms) {
		scan(o, now);
		o->next_scan_ms = now + OUTBOX_SCAN_MS;
	}
	release_held(o, now);
	propose(o, now);
	if (now >= o->next_sweep_ms) {
		sweep(o, now);
		o->next_sweep_ms = now + 1000;
	}
}

void outbox_published(struct outbox *o, const char *id, bool ok, const char *err)
{
	struct ob_track *t = o->leading ? hmap_get(&o->track, id) : NULL;
	if (t == NULL)
		return;
	int64_t now = loop_now_ms();
	if (!ok) {
		t->busy = false;
		t->next_ms = now + 1000;
		log_warn("outbox: publishing command %s failed (%s); retrying in 1 s", id, err ? err : "?");
		return;
	}
	/* The next publication is due after the timeout, whether or not the
	 * update saying this one happened is applied by then. */
	t->busy = false;
	t->next_ms = now + backoff_ms(o, t->attempt);
	const struct model_command *c = model_command_get(&o->loop->model, id);
	if (c && c->type == CMD_SECURITY_POLICY)
		flight_set(o, c, now, t->next_ms);
	struct ob_held *h = calloc(1, sizeof(*h));
	if (h == NULL || (h->id = strdup(id)) == NULL) {
		free(h);
		pend_add(o, id, CMD_PUBLISHED, t->attempt, NULL, 0, NULL); /* no memory to wait */
		return;
	}
	t->held = true;
	h->due_ms = now + hold_ms(o);
	if (o->held_tail)
		o->held_tail->next = h;
	else
		o->held_head = h;
	o->held_tail = h;
}

void outbox_ack(struct outbox *o, struct proto_ack *a, void *msg)
{
	const struct model_command *c = o->leading ? model_command_get(&o->loop->model, a->command_id) : NULL;
	char subject[160];
	proto_subject(subject, sizeof(subject), o->loop->cfg->lattice, "ack", a->node_id);
	struct ob_flight *f = c && c->type == CMD_SECURITY_POLICY && strcmp(c->node, a->node_id) == 0
				      ? hmap_get(&o->flight, c->node)
				      : NULL;
	if (f && c->generation >= f->generation)
		flight_del(o, f); /* the node has it, or a newer one: the next may go */
	if (!o->leading) {
		bus_msg_done(msg, false);
	} else if (c == NULL) {
		bus_dropped(&o->loop->bus, BUS_SUBJ_ACK, PROTO_UNKNOWN, subject, "no such command (or long finished)");
		bus_msg_done(msg, true);
	} else if (strcmp(c->node, a->node_id) != 0) {
		char why[200];
		snprintf(why, sizeof(why), "command %s is for node %s", c->id, c->node);
		bus_dropped(&o->loop->bus, BUS_SUBJ_ACK, PROTO_SPOOFED, subject, why);
		bus_msg_done(msg, true);
	} else if (!model_cmd_open(c)) {
		bus_msg_done(msg, true); /* a repeated ack, or one for a superseded command */
	} else {
		struct ob_track *t = track(o, c, loop_now_ms());
		int64_t attempts = c->attempts;
		if (t) {
			t->busy = true; /* no publication while its ack is on its way to the log */
			t->held = false; /* this update records the publication too */
			if (t->attempt > attempts)
				attempts = t->attempt;
		}
		if (!a->ok)
			log_warn("command %s (%s to %s) refused by the agent: %s", c->id, model_cmd_type_name(c->type),
				 c->node, a->error);
		pend_add(o, c->id, a->ok ? CMD_ACKED : CMD_FAILED, attempts, a->error, a->applied_version, msg);
	}
	proto_ack_free(a);
	free(a);
}
