#include "agent.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hmap.h"
#include "journal.h"
#include "log.h"

#define MAX_COMMAND_BYTES (512 * 1024)
#define MAX_ERROR_CHARS 1024
#define MAX_ID_CHARS 256
#define ERROR_WINDOW_MS 60000
#define ERROR_RING 1024
#define POLICY_OBJECT "policy"

/* The outcome of an applied command, as its ack repeats it. */
struct outcome {
	char *id; /* the map's key */
	int ok;
	char *error;
	long long applied_version;
};

/* The highest (term, generation) applied per object. */
struct fence {
	char *obj; /* "actor:<id>" or "policy": the map's key */
	long long term, gen;
};

/* An actor instance the agent runs, as the journal remembers it. */
struct actor_rec {
	char *key; /* "<actor_id>\x1f<instance>" */
	char *actor_id;
	long long instance;
	char *module;
	long long cpu, mem;
	char *config; /* compact JSON object */
	long long snap_version;
	char *snap_data; /* base64 of the last snapshot, NULL: none */
};

struct agent {
	char *lattice, *node_id, *region, *agent_version, *agent_instance;
	json_t *labels;
	long long cpu_capacity, memory_mb;
	int64_t snapshot_interval_ms;
	int usage_from_requests;
	struct agent_io io;
	struct driver *drv;
	struct journal *journal;
	char *subj_hb, *subj_cmd, *subj_ack, *subj_snap, *consumer, *cmd_stream;

	struct hmap outcomes; /* id -> struct outcome */
	struct outcome **ring; /* insertion order, oldest at ring[head] */
	size_t ring_cap, ring_head, ring_n;
	struct hmap fences;   /* obj -> struct fence */
	struct hmap actors;   /* key -> struct actor_rec */
	long long policy_version;
	long long policy_max_mem; /* -1: no cap */

	long long seq;
	uint64_t applied;
	int64_t errors[ERROR_RING];
	size_t err_head, err_n;
	int64_t next_snapshot;
	int unsynced; /* records appended by deferred commands and not fsynced yet */
};

/* ---- small helpers -------------------------------------------------------- */

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	char *s = malloc((size_t)n + 1);
	if (!s)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

int agent_valid_token(const char *s)
{
	size_t n = 0;
	if (!s)
		return 0;
	for (; s[n]; n++) {
		char c = s[n];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
		      c == '-'))
			return 0;
	}
	return n >= 1 && n <= 64;
}

/* Ids go into NATS headers (Nats-Msg-Id): printable, no spaces, bounded. */
static int valid_id(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > MAX_ID_CHARS)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
			return 0;
	return 1;
}

void agent_format_time(int64_t unix_ms, char *buf, size_t len)
{
	time_t sec = (time_t)(unix_ms / 1000);
	struct tm tm;
	gmtime_r(&sec, &tm);
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03dZ", (int)(unix_ms % 1000));
}

static char *actor_key(const char *actor_id, long long instance)
{
	return xasprintf("%s\x1f%lld", actor_id, instance);
}

static void note_error(struct agent *a, int64_t now)
{
	a->errors[(a->err_head + a->err_n) % ERROR_RING] = now;
	if (a->err_n < ERROR_RING)
		a->err_n++;
	else
		a->err_head = (a->err_head + 1) % ERROR_RING;
}

void agent_note_error(struct agent *a, int64_t now)
{
	note_error(a, now);
}

int agent_error_count(struct agent *a, int64_t now)
{
	while (a->err_n && a->errors[a->err_head] <= now - ERROR_WINDOW_MS) {
		a->err_head = (a->err_head + 1) % ERROR_RING;
		a->err_n--;
	}
	return (int)a->err_n;
}

uint64_t agent_applied_count(const struct agent *a)
{
	return a->applied;
}

long long agent_policy_version(const struct agent *a)
{
	return a->policy_version;
}

void agent_list(struct agent *a, void (*fn)(void *ctx, const struct driver_status *st), void *ctx)
{
	a->drv->ops->list(a->drv, fn, ctx);
}

const char *agent_subject_hb(const struct agent *a) { return a->subj_hb; }
const char *agent_subject_cmd(const struct agent *a) { return a->subj_cmd; }
const char *agent_subject_ack(const struct agent *a) { return a->subj_ack; }
const char *agent_subject_snap(const struct agent *a) { return a->subj_snap; }
const char *agent_consumer(const struct agent *a) { return a->consumer; }
const char *agent_cmd_stream(const struct agent *a) { return a->cmd_stream; }
const char *agent_node_id(const struct agent *a) { return a->node_id; }

/* ---- in-memory state ------------------------------------------------------ */

static void outcome_free(struct outcome *o)
{
	if (!o)
		return;
	free(o->id);
	free(o->error);
	free(o);
}

static void actor_rec_free(struct actor_rec *r)
{
	if (!r)
		return;
	free(r->key);
	free(r->actor_id);
	free(r->module);
	free(r->config);
	free(r->snap_data);
	free(r);
}

/* Remembers an outcome; beyond ring_cap the oldest is forgotten. */
static int outcome_put(struct agent *a, const char *id, int ok, const char *error, long long version)
{
	struct outcome *o = calloc(1, sizeof(*o));
	if (!o || !(o->id = strdup(id)) || (error && !(o->error = strdup(error)))) {
		outcome_free(o);
		return -1;
	}
	o->ok = ok;
	o->applied_version = version;
	struct outcome *old = hmap_get(&a->outcomes, id);
	if (old) { /* cannot happen through the agent (replays never record); keep one */
		hmap_del(&a->outcomes, id);
		old->ok = o->ok;
		free(old->error);
		old->error = o->error;
		o->error = NULL;
		old->applied_version = o->applied_version;
		outcome_free(o);
		return hmap_put(&a->outcomes, old->id, old);
	}
	if (hmap_put(&a->outcomes, o->id, o) < 0) {
		outcome_free(o);
		return -1;
	}
	if (a->ring_n == a->ring_cap) {
		struct outcome *oldest = a->ring[a->ring_head];
		hmap_del(&a->outcomes, oldest->id);
		outcome_free(oldest);
		a->ring_head = (a->ring_head + 1) % a->ring_cap;
		a->ring_n--;
	}
	a->ring[(a->ring_head + a->ring_n) % a->ring_cap] = o;
	a->ring_n++;
	return 0;
}

static int fence_put(struct agent *a, const char *obj, long long term, long long gen)
{
	struct fence *f = hmap_get(&a->fences, obj);
	if (f) {
		f->term = term;
		f->gen = gen;
		return 0;
	}
	f = calloc(1, sizeof(*f));
	if (!f || !(f->obj = strdup(obj)) || hmap_put(&a->fences, f->obj, f) < 0) {
		if (f)
			free(f->obj);
		free(f);
		return -1;
	}
	f->term = term;
	f->gen = gen;
	return 0;
}

/* Records (replaces) an actor instance it runs. Strings borrowed. */
static int actor_put(struct agent *a, const char *actor_id, long long instance, const char *module, long long cpu,
		     long long mem, const char *config)
{
	struct actor_rec *r = calloc(1, sizeof(*r));
	if (!r || !(r->key = actor_key(actor_id, instance)) || !(r->actor_id = strdup(actor_id)) ||
	    !(r->module = strdup(module)) || !(r->config = strdup(config))) {
		actor_rec_free(r);
		return -1;
	}
	r->instance = instance;
	r->cpu = cpu;
	r->mem = mem;
	struct actor_rec *old = hmap_del(&a->actors, r->key);
	if (old) { /* keep its last snapshot */
		r->snap_version = old->snap_version;
		r->snap_data = old->snap_data;
		old->snap_data = NULL;
		actor_rec_free(old);
	}
	if (hmap_put(&a->actors, r->key, r) < 0) {
		actor_rec_free(r);
		return -1;
	}
	return 0;
}

static struct actor_rec *actor_get(struct agent *a, const char *actor_id, long long instance)
{
	char *k = actor_key(actor_id, instance);
	struct actor_rec *r = k ? hmap_get(&a->actors, k) : NULL;
	free(k);
	return r;
}

static void actor_drop(struct agent *a, const char *actor_id, long long instance)
{
	char *k = actor_key(actor_id, instance);
	if (k)
		actor_rec_free(hmap_del(&a->actors, k));
	free(k);
}

static int actor_snap(struct agent *a, const char *actor_id, long long instance, long long version, const char *data)
{
	struct actor_rec *r = actor_get(a, actor_id, instance);
	if (!r)
		return 0;
	char *d = strdup(data);
	if (!d)
		return -1;
	free(r->snap_data);
	r->snap_data = d;
	r->snap_version = version;
	return 0;
}

/* ---- journal records ------------------------------------------------------ */
/* One compact JSON object per record, "k" naming its kind:
 *   cmd    {id, ok, error, v}                 an applied command's outcome
 *   fence  {obj, t, g}                        an object's fencing position
 *   run    {actor_id, instance, module, cpu, mem, config}   an instance it runs
 *   gone   {actor_id, instance}               no longer runs it
 *   snap   {actor_id, instance, v, data}      its last snapshot
 *   policy {version, max_mem (null: none)}    the security policy applied */

static int jappend(struct agent *a, json_t *rec, int compacting, char *err, size_t errlen)
{
	if (!rec) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	char *s = json_dumps(rec, JSON_COMPACT);
	json_decref(rec);
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	int rc = compacting ? journal_compact_add(a->journal, s, strlen(s), err, errlen)
			    : journal_append(a->journal, s, strlen(s), err, errlen);
	free(s);
	return rc;
}

static json_t *rec_cmd(const struct outcome *o)
{
	return json_pack("{s:s, s:s, s:b, s:s*, s:I}", "k", "cmd", "id", o->id, "ok", o->ok, "error", o->error, "v",
			 (json_int_t)o->applied_version);
}

static json_t *rec_fence(const struct fence *f)
{
	return json_pack("{s:s, s:s, s:I, s:I}", "k", "fence", "obj", f->obj, "t", (json_int_t)f->term, "g",
			 (json_int_t)f->gen);
}

static json_t *rec_run(const struct actor_rec *r)
{
	json_t *cfg = json_loads(r->config, 0, NULL);
	return json_pack("{s:s, s:s, s:I, s:s, s:I, s:I, s:o}", "k", "run", "actor_id", r->actor_id, "instance",
			 (json_int_t)r->instance, "module", r->module, "cpu", (json_int_t)r->cpu, "mem",
			 (json_int_t)r->mem, "config", cfg ? cfg : json_object());
}

static json_t *rec_snap(const char *actor_id, long long instance, long long version, const char *data)
{
	return json_pack("{s:s, s:s, s:I, s:I, s:s}", "k", "snap", "actor_id", actor_id, "instance",
			 (json_int_t)instance, "v", (json_int_t)version, "data", data);
}

static json_t *rec_policy(const struct agent *a)
{
	return json_pack("{s:s, s:I, s:o}", "k", "policy", "version", (json_int_t)a->policy_version, "max_mem",
			 a->policy_max_mem < 0 ? json_null() : json_integer(a->policy_max_mem));
}

static int replay(void *ctx, const char *s, size_t len)
{
	struct agent *a = ctx;
	json_error_t je;
	json_t *j = json_loadb(s, len, 0, &je);
	const char *k = j ? json_string_value(json_object_get(j, "k")) : NULL;
	int rc = -1;
	if (!k) {
		log_error("journal: a record is not JSON with a kind: %s", je.text);
		json_decref(j);
		return -1;
	}
	const char *id = NULL, *error = NULL, *obj = NULL, *module = NULL, *data = NULL;
	json_int_t v = 0, t = 0, g = 0, inst = 0, cpu = 0, mem = 0;
	int ok = 0;
	json_t *cfg = NULL, *max = NULL;
	if (strcmp(k, "cmd") == 0) {
		if (json_unpack(j, "{s:s, s:b, s?s, s:I}", "id", &id, "ok", &ok, "error", &error, "v", &v) == 0)
			rc = outcome_put(a, id, ok, error, v);
	} else if (strcmp(k, "fence") == 0) {
		if (json_unpack(j, "{s:s, s:I, s:I}", "obj", &obj, "t", &t, "g", &g) == 0)
			rc = fence_put(a, obj, t, g);
	} else if (strcmp(k, "run") == 0) {
		if (json_unpack(j, "{s:s, s:I, s:s, s:I, s:I, s:o}", "actor_id", &id, "instance", &inst, "module",
				&module, "cpu", &cpu, "mem", &mem, "config", &cfg) == 0) {
			char *c = json_dumps(cfg, JSON_COMPACT);
			rc = c ? actor_put(a, id, inst, module, cpu, mem, c) : -1;
			free(c);
		}
	} else if (strcmp(k, "gone") == 0) {
		if (json_unpack(j, "{s:s, s:I}", "actor_id", &id, "instance", &inst) == 0) {
			actor_drop(a, id, inst);
			rc = 0;
		}
	} else if (strcmp(k, "snap") == 0) {
		if (json_unpack(j, "{s:s, s:I, s:I, s:s}", "actor_id", &id, "instance", &inst, "v", &v, "data",
				&data) == 0)
			rc = actor_snap(a, id, inst, v, data);
	} else if (strcmp(k, "policy") == 0) {
		if (json_unpack(j, "{s:I, s:o}", "version", &v, "max_mem", &max) == 0) {
			a->policy_version = v;
			a->policy_max_mem = json_is_integer(max) ? json_integer_value(max) : -1;
			rc = 0;
		}
	} else {
		rc = 0; /* a kind from a newer agent: skip it */
	}
	if (rc != 0)
		log_error("journal: cannot apply a '%s' record", k);
	json_decref(j);
	return rc;
}

/* Rewrites the journal with the live state only. */
static int compact(struct agent *a, char *err, size_t errlen)
{
	if (!a->journal)
		return 0;
	if (journal_compact_begin(a->journal, err, errlen) < 0)
		return -1;
	if (a->policy_version > 0 || a->policy_max_mem >= 0)
		if (jappend(a, rec_policy(a), 1, err, errlen) < 0)
			goto fail;
	size_t pos = 0;
	struct fence *f;
	while ((f = hmap_next(&a->fences, &pos)))
		if (jappend(a, rec_fence(f), 1, err, errlen) < 0)
			goto fail;
	pos = 0;
	struct actor_rec *r;
	while ((r = hmap_next(&a->actors, &pos))) {
		if (jappend(a, rec_run(r), 1, err, errlen) < 0)
			goto fail;
		if (r->snap_data &&
		    jappend(a, rec_snap(r->actor_id, r->instance, r->snap_version, r->snap_data), 1, err, errlen) < 0)
			goto fail;
	}
	for (size_t i = 0; i < a->ring_n; i++)
		if (jappend(a, rec_cmd(a->ring[(a->ring_head + i) % a->ring_cap]), 1, err, errlen) < 0)
			goto fail;
	return journal_compact_commit(a->journal, err, errlen);
fail:
	journal_compact_abort(a->journal);
	return -1;
}

static void maybe_compact(struct agent *a)
{
	if (!a->journal)
		return;
	uint64_t live = a->ring_n + a->fences.n + 2 * a->actors.n + 1;
	if (journal_records(a->journal) <= 2 * live + 10000)
		return;
	char err[256];
	if (compact(a, err, sizeof(err)) < 0)
		log_warn("%s", err); /* the journal only grows: correct, and tried again later */
}

/* ---- lifecycle ------------------------------------------------------------ */

static struct driver_actor spec_of(const struct actor_rec *r)
{
	struct driver_actor s = {
		.actor_id = r->actor_id,
		.instance = r->instance,
		.module = r->module,
		.cpu_required = r->cpu,
		.memory_required_mb = r->mem,
		.config_json = r->config,
	};
	return s;
}

int agent_open(struct agent **out, const struct agent_config *cfg, const struct agent_io *io, struct driver *drv,
	       const char *state_dir, int64_t now, char *err, size_t errlen)
{
	struct agent *a = calloc(1, sizeof(*a));
	if (!a) {
		drv->ops->destroy(drv);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	a->drv = drv;
	a->io = *io;
	hmap_init(&a->outcomes);
	hmap_init(&a->fences);
	hmap_init(&a->actors);
	a->policy_max_mem = -1;
	a->ring_cap = cfg->max_command_ids ? cfg->max_command_ids : AGENT_MAX_COMMAND_IDS;
	a->ring = calloc(a->ring_cap, sizeof(*a->ring));
	a->lattice = xstrdup(cfg->lattice);
	a->node_id = xstrdup(cfg->node_id);
	a->region = xstrdup(cfg->region);
	a->agent_version = xstrdup(cfg->agent_version);
	a->agent_instance = xstrdup(cfg->agent_instance);
	a->labels = json_object();
	a->cpu_capacity = cfg->cpu_capacity;
	a->memory_mb = cfg->memory_mb;
	a->snapshot_interval_ms = cfg->snapshot_interval_ms;
	a->usage_from_requests = cfg->usage_from_requests;
	a->next_snapshot = now + cfg->snapshot_interval_ms;
	if (!a->ring || !a->lattice || !a->node_id || !a->region || !a->agent_version || !a->agent_instance ||
	    !a->labels) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (!agent_valid_token(a->node_id) || !agent_valid_token(a->lattice)) {
		snprintf(err, errlen, "%s '%s' cannot be a NATS subject token: use 1-64 of A-Z a-z 0-9 _ -",
			 agent_valid_token(a->lattice) ? "node id" : "lattice name",
			 agent_valid_token(a->lattice) ? a->node_id : a->lattice);
		goto fail;
	}
	for (size_t i = 0; i < cfg->n_labels; i++)
		if (json_object_set_new(a->labels, cfg->labels[i].key, json_string(cfg->labels[i].value)) < 0) {
			snprintf(err, errlen, "label '%s': not valid UTF-8", cfg->labels[i].key);
			goto fail;
		}
	a->subj_hb = xasprintf("lattice.%s.hb.%s", a->lattice, a->node_id);
	a->subj_cmd = xasprintf("lattice.%s.cmd.%s", a->lattice, a->node_id);
	a->subj_ack = xasprintf("lattice.%s.ack.%s", a->lattice, a->node_id);
	a->subj_snap = xasprintf("lattice.%s.snap.%s", a->lattice, a->node_id);
	a->consumer = xasprintf("agent_%s", a->node_id);
	a->cmd_stream = xasprintf("LATTICE_%s_CMD", a->lattice);
	if (!a->subj_hb || !a->subj_cmd || !a->subj_ack || !a->subj_snap || !a->consumer || !a->cmd_stream) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (state_dir) {
		char *path = xasprintf("%s/journal", state_dir);
		if (!path) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		int rc = journal_open(&a->journal, path, replay, a, err, errlen);
		free(path);
		if (rc < 0)
			goto fail;
		if (journal_torn_bytes(a->journal))
			log_warn("journal: dropped a torn last record (%llu bytes) left by a crash",
				 (unsigned long long)journal_torn_bytes(a->journal));
		if (compact(a, err, errlen) < 0)
			goto fail;
		log_info("state %s: %zu command ids, %zu fenced objects, %zu actors, policy version %lld", state_dir,
			 a->ring_n, a->fences.n, a->actors.n, a->policy_version);
	}
	/* Start again what the journal says it ran (its disk came back with it). */
	size_t pos = 0;
	struct actor_rec *r;
	while ((r = hmap_next(&a->actors, &pos))) {
		struct driver_actor s = spec_of(r);
		struct driver_snapshot snap = {r->snap_version, r->snap_data};
		char e[256];
		if (drv->ops->start(drv, &s, r->snap_data ? &snap : NULL, now, e, sizeof(e)) < 0) {
			log_warn("actor %s/%lld: cannot start it again: %s", r->actor_id, r->instance, e);
			note_error(a, now);
		} else {
			log_info("actor %s/%lld: started again (from state_version %lld)", r->actor_id, r->instance,
				 r->snap_data ? r->snap_version : 0);
		}
	}
	*out = a;
	return 0;
fail:
	agent_close(a);
	return -1;
}

void agent_close(struct agent *a)
{
	if (!a)
		return;
	if (a->drv)
		a->drv->ops->destroy(a->drv);
	journal_close(a->journal);
	for (size_t i = 0; i < a->ring_n; i++)
		outcome_free(a->ring[(a->ring_head + i) % a->ring_cap]);
	free(a->ring);
	hmap_release(&a->outcomes);
	size_t pos = 0;
	struct fence *f;
	while ((f = hmap_next(&a->fences, &pos))) {
		free(f->obj);
		free(f);
	}
	hmap_release(&a->fences);
	pos = 0;
	struct actor_rec *r;
	while ((r = hmap_next(&a->actors, &pos)))
		actor_rec_free(r);
	hmap_release(&a->actors);
	json_decref(a->labels);
	free(a->lattice);
	free(a->node_id);
	free(a->region);
	free(a->agent_version);
	free(a->agent_instance);
	free(a->subj_hb);
	free(a->subj_cmd);
	free(a->subj_ack);
	free(a->subj_snap);
	free(a->consumer);
	free(a->cmd_stream);
	free(a);
}

/* ---- commands ------------------------------------------------------------- */

struct cmd {
	const char *id, *type, *target;
	long long term, gen;
	json_t *payload;
	const char *actor_id; /* actor commands */
};

/* What applying a command did: its outcome and the journal records that make
 * it durable (the effects; the fence and outcome records are added after). */
struct applied {
	int ok;
	char error[MAX_ERROR_CHARS + 1];
	long long version;
	json_t *records; /* array */
	int retry;       /* could not apply now: do not record, leave for redelivery */
};

__attribute__((format(printf, 2, 3))) static void set_error(struct applied *ap, const char *fmt, ...)
{
	va_list va;
	va_start(va, fmt);
	vsnprintf(ap->error, sizeof(ap->error), fmt, va);
	va_end(va);
	ap->ok = 0;
}

static void reply_ack(struct agent *a, struct agent_reply *r, int ok, const char *error, long long version,
		      int64_t now)
{
	char at[40];
	agent_format_time(a->io.wall_ms(a->io.ctx), at, sizeof(at));
	char trimmed[MAX_ERROR_CHARS + 1];
	if (error) {
		snprintf(trimmed, sizeof(trimmed), "%s", error);
		error = trimmed;
	}
	/* "s?": a NULL error is JSON null */
	json_t *j = json_pack("{s:s, s:s, s:s, s:s?, s:I, s:s}", "command_id", r->command_id, "node_id", a->node_id,
			      "status", ok ? "ok" : "error", "error", error, "applied_version", (json_int_t)version,
			      "at", at);
	r->ack = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	r->ack_msg_id = xasprintf("ack-%s", r->command_id);
	if (!r->ack || !r->ack_msg_id) { /* out of memory: try again later */
		free(r->ack);
		free(r->ack_msg_id);
		r->ack = r->ack_msg_id = NULL;
		r->verdict = AGENT_RETRY;
		r->error = strdup("out of memory");
		return;
	}
	r->verdict = AGENT_ACK;
	r->ok = ok;
	if (!ok)
		r->error = xstrdup(error);
}

/* A refusal: an error ack that applies and records nothing. */
__attribute__((format(printf, 4, 5))) static void refuse(struct agent *a, struct agent_reply *r, int64_t now,
							  const char *fmt, ...)
{
	char msg[MAX_ERROR_CHARS + 1];
	va_list va;
	va_start(va, fmt);
	vsnprintf(msg, sizeof(msg), fmt, va);
	va_end(va);
	note_error(a, now);
	log_warn("command %s refused: %s", r->command_id, msg);
	reply_ack(a, r, 0, msg, 0, now);
}

/* Reads an optional integer ≥ 0 member; returns -1 when present and not one. */
static int get_count(json_t *obj, const char *key, long long dflt, long long *out)
{
	json_t *v = json_object_get(obj, key);
	if (!v || json_is_null(v)) {
		*out = dflt;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	*out = json_integer_value(v);
	return 0;
}

static int publish_snapshot(struct agent *a, const char *actor_id, long long version, const char *data,
			    const char *migration_id)
{
	char at[40];
	agent_format_time(a->io.wall_ms(a->io.ctx), at, sizeof(at));
	json_t *j = json_pack("{s:s, s:s, s:I, s:s, s:s, s:o}", "actor_id", actor_id, "node_id", a->node_id,
			      "state_version", (json_int_t)version, "data", data, "taken_at", at, "migration_id",
			      migration_id ? json_string(migration_id) : json_null());
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	char *id = xasprintf("snap-%s-%lld", actor_id, version);
	int rc = -1;
	if (s && id)
		rc = a->io.publish_snapshot(a->io.ctx, a->subj_snap, id, s, strlen(s));
	free(s);
	free(id);
	return rc;
}

static void apply_start(struct agent *a, const struct cmd *c, int64_t now, struct applied *ap)
{
	json_t *p = c->payload;
	long long inst, cpu, mem;
	const char *module = json_string_value(json_object_get(p, "module"));
	json_t *cfg = json_object_get(p, "config");
	json_t *snap = json_object_get(p, "snapshot");
	if (get_count(p, "instance", 0, &inst) < 0)
		return set_error(ap, "malformed command: payload.instance must be an integer >= 0");
	if (!module)
		return set_error(ap, "malformed command: payload.module must be a string");
	if (get_count(p, "cpu_required", 0, &cpu) < 0 || get_count(p, "memory_required_mb", 0, &mem) < 0)
		return set_error(ap, "malformed command: payload.cpu_required and memory_required_mb must be integers >= 0");
	if (cfg && !json_is_null(cfg) && !json_is_object(cfg))
		return set_error(ap, "malformed command: payload.config must be an object");
	struct driver_snapshot ds = {0, ""};
	if (snap && !json_is_null(snap)) {
		const char *data = json_string_value(json_object_get(snap, "data"));
		if (!json_is_object(snap) || get_count(snap, "state_version", 0, &ds.state_version) < 0 || !data)
			return set_error(ap, "malformed command: payload.snapshot must be null or {state_version, data}");
		ds.data = data;
	}
	if (a->policy_max_mem >= 0 && mem > a->policy_max_mem)
		return set_error(ap, "capability denied: memory");

	struct driver_status st;
	if (a->drv->ops->find(a->drv, c->actor_id, inst, &st) == 0 && st.state != DRIVER_STOPPING) {
		ap->ok = 1; /* already runs it: the outcome the controller wants */
		ap->version = st.state_version;
		return;
	}
	char *cfg_s = json_dumps(cfg && json_is_object(cfg) ? cfg : json_object(), JSON_COMPACT);
	if (!cfg_s)
		return set_error(ap, "out of memory");
	struct driver_actor spec = {c->actor_id, inst, module, cpu, mem, cfg_s};
	int has_snap = snap && !json_is_null(snap);
	if (a->drv->ops->start(a->drv, &spec, has_snap ? &ds : NULL, now, ap->error, sizeof(ap->error)) < 0) {
		free(cfg_s);
		ap->ok = 0;
		return;
	}
	if (actor_put(a, c->actor_id, inst, module, cpu, mem, cfg_s) == 0) {
		struct actor_rec *r = actor_get(a, c->actor_id, inst);
		json_array_append_new(ap->records, rec_run(r));
		if (has_snap && actor_snap(a, c->actor_id, inst, ds.state_version, ds.data) == 0)
			json_array_append_new(ap->records, rec_snap(c->actor_id, inst, ds.state_version, ds.data));
	}
	free(cfg_s);
	ap->ok = 1;
	ap->version = has_snap ? ds.state_version : 0;
}

/* The instances of actor_id the agent runs (from its records), ascending. */
static size_t instances_of(struct agent *a, const char *actor_id, long long *out, size_t max)
{
	size_t n = 0, pos = 0;
	struct actor_rec *r;
	while ((r = hmap_next(&a->actors, &pos)))
		if (strcmp(r->actor_id, actor_id) == 0 && n < max)
			out[n++] = r->instance;
	for (size_t i = 1; i < n; i++) /* insertion sort: a handful at most */
		for (size_t k = i; k > 0 && out[k - 1] > out[k]; k--) {
			long long t = out[k];
			out[k] = out[k - 1];
			out[k - 1] = t;
		}
	return n;
}

#define MAX_INSTANCES 256

static void apply_stop(struct agent *a, const struct cmd *c, int64_t now, struct applied *ap)
{
	long long insts[MAX_INSTANCES];
	size_t n;
	json_t *iv = json_object_get(c->payload, "instance");
	if (iv && !json_is_null(iv)) {
		if (get_count(c->payload, "instance", 0, &insts[0]) < 0)
			return set_error(ap, "malformed command: payload.instance must be an integer >= 0");
		n = 1;
	} else {
		n = instances_of(a, c->actor_id, insts, MAX_INSTANCES);
	}
	for (size_t i = 0; i < n; i++) {
		a->drv->ops->stop(a->drv, c->actor_id, insts[i], now); /* not running: fine */
		if (actor_get(a, c->actor_id, insts[i])) {
			actor_drop(a, c->actor_id, insts[i]);
			json_array_append_new(ap->records, json_pack("{s:s, s:s, s:I}", "k", "gone", "actor_id",
								     c->actor_id, "instance", (json_int_t)insts[i]));
		}
	}
	ap->ok = 1;
}

static void apply_migrate(struct agent *a, const struct cmd *c, int64_t now, struct applied *ap)
{
	const char *mig = json_string_value(json_object_get(c->payload, "migration_id"));
	if (!mig)
		return set_error(ap, "malformed command: payload.migration_id must be a string");
	long long inst;
	json_t *iv = json_object_get(c->payload, "instance");
	if (iv && !json_is_null(iv)) {
		if (get_count(c->payload, "instance", 0, &inst) < 0)
			return set_error(ap, "malformed command: payload.instance must be an integer >= 0");
	} else if (instances_of(a, c->actor_id, &inst, 1) == 0) {
		inst = 0;
	}
	long long version;
	char *data;
	if (a->drv->ops->checkpoint(a->drv, c->actor_id, inst, 1, now, &version, &data) < 0)
		return set_error(ap, "actor %s instance %lld is not running here", c->actor_id, inst);
	if (publish_snapshot(a, c->actor_id, version, data, mig) < 0) {
		free(data);
		ap->retry = 1;
		snprintf(ap->error, sizeof(ap->error), "cannot publish the snapshot of %s on %s", c->actor_id,
			 a->subj_snap);
		return;
	}
	if (actor_snap(a, c->actor_id, inst, version, data) == 0 && actor_get(a, c->actor_id, inst))
		json_array_append_new(ap->records, rec_snap(c->actor_id, inst, version, data));
	free(data);
	ap->ok = 1;
	ap->version = version;
}

static void apply_config(struct agent *a, const struct cmd *c, int64_t now, struct applied *ap)
{
	json_t *cfg = json_object_get(c->payload, "config");
	if (!json_is_object(cfg))
		return set_error(ap, "malformed command: payload.config must be an object");
	char *cfg_s = json_dumps(cfg, JSON_COMPACT);
	if (!cfg_s)
		return set_error(ap, "out of memory");
	long long insts[MAX_INSTANCES];
	size_t n = instances_of(a, c->actor_id, insts, MAX_INSTANCES);
	for (size_t i = 0; i < n; i++) {
		struct actor_rec *r = actor_get(a, c->actor_id, insts[i]);
		char *old = r->config;
		r->config = strdup(cfg_s);
		if (!r->config) {
			r->config = old;
			continue;
		}
		free(old);
		struct driver_actor spec = spec_of(r);
		a->drv->ops->config(a->drv, &spec, now);
		json_array_append_new(ap->records, rec_run(r));
	}
	free(cfg_s);
	ap->ok = 1; /* not running it: the config is the controller's; nothing to keep */
}

static void apply_policy(struct agent *a, const struct cmd *c, int64_t now, struct applied *ap)
{
	long long version, max;
	if (get_count(c->payload, "version", -1, &version) < 0 || version < 0)
		return set_error(ap, "malformed command: payload.version must be an integer >= 0");
	if (get_count(c->payload, "max_actor_memory_mb", -1, &max) < 0)
		return set_error(ap, "malformed command: payload.max_actor_memory_mb must be null or an integer >= 0");
	a->policy_version = version;
	a->policy_max_mem = max;
	json_array_append_new(ap->records, rec_policy(a));
	ap->ok = 1;
	ap->version = version;
}

/* Writes the effects, the fence and the outcome, and fsyncs unless defer (then
 * agent_sync does, before any ack goes out): after the fsync the command counts
 * as applied across a crash. */
static int record(struct agent *a, const struct cmd *c, const char *obj, struct applied *ap, int defer, char *err,
		  size_t errlen)
{
	struct outcome o = {(char *)c->id, ap->ok, ap->ok ? NULL : ap->error, ap->version};
	struct fence f = {(char *)obj, c->term, c->gen};
	if (a->journal) {
		size_t i;
		json_t *rec;
		json_array_foreach(ap->records, i, rec)
		{
			if (jappend(a, json_incref(rec), 0, err, errlen) < 0)
				return -1;
		}
		if (jappend(a, rec_fence(&f), 0, err, errlen) < 0 || jappend(a, rec_cmd(&o), 0, err, errlen) < 0)
			return -1;
		a->unsynced = 1;
		if (!defer && agent_sync(a, err, errlen) < 0)
			return -1;
	}
	if (fence_put(a, obj, c->term, c->gen) < 0 || outcome_put(a, c->id, o.ok, o.error, o.applied_version) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

int agent_sync(struct agent *a, char *err, size_t errlen)
{
	if (!a->journal || !a->unsynced)
		return 0;
	if (journal_sync(a->journal, err, errlen) < 0)
		return -1;
	a->unsynced = 0;
	return 0;
}

static void handle(struct agent *a, const char *data, size_t len, int64_t now, int defer, struct agent_reply *r)
{
	memset(r, 0, sizeof(*r));
	json_error_t je;
	json_t *j = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
	const char *cid = j ? json_string_value(json_object_get(j, "command_id")) : NULL;
	if (!cid || !valid_id(cid)) {
		r->verdict = AGENT_TERM;
		r->error = !j ? xasprintf("not JSON: %s (line %d column %d)", je.text, je.line, je.column)
			      : xasprintf("no readable command_id (a string of 1-%d printable characters)",
					  MAX_ID_CHARS);
		note_error(a, now);
		json_decref(j);
		return;
	}
	r->command_id = strdup(cid);
	if (!r->command_id) {
		r->verdict = AGENT_RETRY;
		json_decref(j);
		return;
	}
	struct cmd c = {.id = cid};
	json_t *term = json_object_get(j, "term"), *gen = json_object_get(j, "generation");
	c.type = json_string_value(json_object_get(j, "command_type"));
	c.target = json_string_value(json_object_get(j, "target_node"));
	c.payload = json_object_get(j, "payload");
	if (len > MAX_COMMAND_BYTES) {
		refuse(a, r, now, "malformed command: larger than %d bytes", MAX_COMMAND_BYTES);
		goto out;
	}
	if (!c.type || !c.target || !json_is_integer(term) || !json_is_integer(gen) || json_integer_value(term) < 0 ||
	    json_integer_value(gen) < 0 || !json_is_object(c.payload)) {
		refuse(a, r, now,
		       "malformed command: needs command_type and target_node (strings), term and generation "
		       "(integers >= 0) and payload (an object)");
		goto out;
	}
	c.term = json_integer_value(term);
	c.gen = json_integer_value(gen);
	/* 2. another node's command */
	if (strcmp(c.target, a->node_id) != 0) {
		refuse(a, r, now, "wrong node");
		goto out;
	}
	/* 3. applied before: the same ack again, nothing applied */
	struct outcome *o = hmap_get(&a->outcomes, cid);
	if (o) {
		log_info("command %s was applied before: acking again with its outcome (%s)", cid,
			 o->ok ? "ok" : o->error);
		reply_ack(a, r, o->ok, o->ok ? NULL : o->error, o->applied_version, now);
		goto out;
	}
	/* 4. fencing, per object */
	char obj[MAX_ID_CHARS + 16];
	if (strcmp(c.type, "security_policy") == 0) {
		snprintf(obj, sizeof(obj), "%s", POLICY_OBJECT);
	} else if (strcmp(c.type, "actor_start") == 0 || strcmp(c.type, "actor_stop") == 0 ||
		   strcmp(c.type, "actor_migrate") == 0 || strcmp(c.type, "config_update") == 0) {
		c.actor_id = json_string_value(json_object_get(c.payload, "actor_id"));
		if (!c.actor_id || !valid_id(c.actor_id)) {
			refuse(a, r, now, "malformed command: payload.actor_id must be a string of 1-%d printable "
					  "characters",
			       MAX_ID_CHARS);
			goto out;
		}
		snprintf(obj, sizeof(obj), "actor:%s", c.actor_id);
	} else {
		refuse(a, r, now, "unknown command_type '%.64s'", c.type);
		goto out;
	}
	struct fence *f = hmap_get(&a->fences, obj);
	if (f && (c.term < f->term || (c.term == f->term && c.gen < f->gen))) {
		refuse(a, r, now, "stale command: term %lld generation %lld is older than applied term %lld generation %lld",
		       c.term, c.gen, f->term, f->gen);
		goto out;
	}
	/* 5. apply, record durably, then the caller acks */
	struct applied ap = {.records = json_array()};
	if (!ap.records) {
		r->verdict = AGENT_RETRY;
		goto out;
	}
	if (strcmp(c.type, "actor_start") == 0)
		apply_start(a, &c, now, &ap);
	else if (strcmp(c.type, "actor_stop") == 0)
		apply_stop(a, &c, now, &ap);
	else if (strcmp(c.type, "actor_migrate") == 0)
		apply_migrate(a, &c, now, &ap);
	else if (strcmp(c.type, "config_update") == 0)
		apply_config(a, &c, now, &ap);
	else
		apply_policy(a, &c, now, &ap);
	if (ap.retry) {
		log_warn("command %s not applied now: %s; it comes back", cid, ap.error);
		r->verdict = AGENT_RETRY;
		r->error = strdup(ap.error);
		note_error(a, now);
		json_decref(ap.records);
		goto out;
	}
	if (!ap.ok && strncmp(ap.error, "malformed command:", 18) == 0) {
		/* a payload it cannot read: refused, not applied */
		json_decref(ap.records);
		refuse(a, r, now, "%s", ap.error);
		goto out;
	}
	char err[256];
	if (record(a, &c, obj, &ap, defer, err, sizeof(err)) < 0) {
		log_error("command %s applied but not recorded (%s): not acked, so it comes back", cid, err);
		r->verdict = AGENT_RETRY;
		r->error = strdup(err);
		note_error(a, now);
		json_decref(ap.records);
		goto out;
	}
	json_decref(ap.records);
	a->applied++;
	if (!ap.ok)
		note_error(a, now);
	r->applied = 1;
	if (ap.ok)
		log_info("applied command %s (%s %s, term %lld generation %lld): ok, applied_version %lld", cid,
			 c.type, c.actor_id ? c.actor_id : "policy", c.term, c.gen, ap.version);
	else
		log_warn("applied command %s (%s %s, term %lld generation %lld): error: %s", cid, c.type,
			 c.actor_id ? c.actor_id : "policy", c.term, c.gen, ap.error);
	reply_ack(a, r, ap.ok, ap.ok ? NULL : ap.error, ap.version, now);
	maybe_compact(a);
out:
	json_decref(j);
}

void agent_handle_command(struct agent *a, const char *data, size_t len, int64_t now, struct agent_reply *r)
{
	handle(a, data, len, now, 0, r);
}

void agent_handle_deferred(struct agent *a, const char *data, size_t len, int64_t now, struct agent_reply *r)
{
	handle(a, data, len, now, 1, r);
}

void agent_reply_release(struct agent_reply *r)
{
	free(r->command_id);
	free(r->ack);
	free(r->ack_msg_id);
	free(r->error);
	memset(r, 0, sizeof(*r));
}

/* ---- heartbeats and housekeeping ------------------------------------------ */

struct hb_ctx {
	json_t *actors;
	long long cpu, mem;
	size_t n;
};

static void hb_actor(void *ctx, const struct driver_status *st)
{
	struct hb_ctx *h = ctx;
	if (st->state == DRIVER_RUNNING || st->state == DRIVER_STARTING) {
		h->cpu += st->cpu_required;
		h->mem += st->memory_required_mb;
	}
	if (h->n++ >= 10000) /* the protocol's limit */
		return;
	json_array_append_new(h->actors, json_pack("{s:s, s:I, s:s, s:I}", "actor_id", st->actor_id, "instance",
						   (json_int_t)st->instance, "state", driver_state_name(st->state),
						   "state_version", (json_int_t)st->state_version));
}

char *agent_heartbeat(struct agent *a, int64_t now, long long cpu_measured, long long memory_measured_mb)
{
	struct hb_ctx h = {.actors = json_array()};
	if (!h.actors)
		return NULL;
	a->drv->ops->list(a->drv, hb_actor, &h);
	if (a->usage_from_requests) {
		cpu_measured = h.cpu;
		memory_measured_mb = h.mem;
	}
	char at[40];
	agent_format_time(a->io.wall_ms(a->io.ctx), at, sizeof(at));
	a->seq++;
	json_t *j = json_pack("{s:s, s:s, s:O, s:I, s:I, s:I, s:I, s:o, s:i, s:I, s:s, s:s, s:I, s:s}", "node_id",
			      a->node_id, "region", a->region, "labels", a->labels, "cpu_capacity",
			      (json_int_t)a->cpu_capacity, "memory_mb", (json_int_t)a->memory_mb, "cpu_measured",
			      (json_int_t)(cpu_measured < 0 ? 0 : cpu_measured), "memory_measured_mb",
			      (json_int_t)(memory_measured_mb < 0 ? 0 : memory_measured_mb), "actors", h.actors,
			      "error_count", agent_error_count(a, now), "policy_version",
			      (json_int_t)a->policy_version, "agent_version", a->agent_version, "agent_instance",
			      a->agent_instance, "seq", (json_int_t)a->seq, "sent_at", at);
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	return s;
}

struct snap_ctx {
	char **ids;
	long long *insts;
	size_t n, cap;
};

static void collect(void *ctx, const struct driver_status *st)
{
	struct snap_ctx *s = ctx;
	if (st->state != DRIVER_RUNNING)
		return;
	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 16;
		char **ni = realloc(s->ids, nc * sizeof(*ni));
		if (!ni)
			return;
		s->ids = ni;
		long long *nn = realloc(s->insts, nc * sizeof(*nn));
		if (!nn)
			return;
		s->insts = nn;
		s->cap = nc;
	}
	char *id = strdup(st->actor_id);
	if (!id)
		return;
	s->ids[s->n] = id;
	s->insts[s->n++] = st->instance;
}

void agent_tick(struct agent *a, int64_t now)
{
	int crashes = a->drv->ops->poll(a->drv, now);
	for (int i = 0; i < crashes; i++)
		note_error(a, now);
	if (a->snapshot_interval_ms <= 0 || now < a->next_snapshot)
		return;
	a->next_snapshot = now + a->snapshot_interval_ms;
	struct snap_ctx s = {0};
	a->drv->ops->list(a->drv, collect, &s);
	for (size_t i = 0; i < s.n; i++) {
		long long version;
		char *data;
		if (a->drv->ops->checkpoint(a->drv, s.ids[i], s.insts[i], 0, now, &version, &data) == 0) {
			if (publish_snapshot(a, s.ids[i], version, data, NULL) < 0)
				log_debug("snapshot of %s (state_version %lld) not published", s.ids[i], version);
			/* Kept either way: a restart of this agent resumes from it. */
			if (actor_snap(a, s.ids[i], s.insts[i], version, data) == 0 && a->journal &&
			    actor_get(a, s.ids[i], s.insts[i])) {
				/* Not synced: it rides on the next command's fsync. */
				char err[256];
				if (jappend(a, rec_snap(s.ids[i], s.insts[i], version, data), 0, err, sizeof(err)) < 0)
					log_warn("%s", err);
			}
			free(data);
		}
		free(s.ids[i]);
	}
	free(s.ids);
	free(s.insts);
	maybe_compact(a);
}
