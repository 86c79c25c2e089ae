/* test_fixture — lattice's real FSM (controller/fsm.c around a struct model)
 * replicated by canonical raft's in-memory fixture (<raft/fixture.h>), which
 * drives time, disks and the network deterministically.
 *
 * Each scenario runs 3 or 5 fixture servers, proposes a seeded random workload
 * (workload.h) of real entries (entry_encode of node puts, actor creates planned with
 * sched_place on the leader's model, updates, deletes, drains, providers,
 * links, policies) through raft_apply on the leader, and ends by checking that
 * every member's model is the same, byte for byte (model_fixture's canonical
 * dump), and that it equals a replay of the committed log on a plain model:
 *   elections     leader killed, a new one elected, the old one revived; a
 *                 leader deposed; all caught up
 *   snapshots     low threshold/trailing: snapshots (forked, fsm version 3
 *                 async) taken on every server during the run
 *   lagging       a follower cut off while the log moves past what the leader
 *                 keeps: caught up by InstallSnapshot (fsm restores > 0)
 *   partition     (5 servers) the leader cut off; the majority elects another
 *                 and goes on; the old one steps down, its proposals fail and
 *                 never reach any FSM, and it ends identical after the heal
 *   membership    a 4th and 5th server added and promoted, a follower removed,
 *                 while entries flow; the new servers start from InstallSnapshot
 *   replay        the elections log replayed on fresh fixtures (other times,
 *                 latencies, snapshot settings) gives the same model: apply
 *                 reads neither the clock nor randomness
 *
 * Every snapshot a server restores is checked against the log replayed up to
 * its index. Snapshots are forked (fsm version 3, as latticed takes them)
 * except in membership and replay, which take many: there fsm.snapshot_inline
 * serialises them in place (a fork per snapshot is slow under ASan on a busy
 * machine; the bytes are the same).
 *
 * The seed is printed; LATTICE_TEST_SEED=N repeats a run. A failure names the
 * seed and the first server whose model differs. */
#include <raft.h>
#include <raft/fixture.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "entry.h"
#include "fsm.h"
#include "log.h"
#include "model.h"
#include "model_fixture.h"
#include "tap.h"
#include "workload.h"

#define NSCEN_CHECKS 7        /* oks of one check_cluster */
#define AT_BASE 1800000000000LL /* entries' "at": this plus the fixture's clock */
#define WAIT_MS 120000          /* simulated time allowed to settle (hang guard) */

static uint64_t seed;

static void bail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void bail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("Bail out! ");
	vprintf(fmt, ap);
	printf(" (seed %llu)\n", (unsigned long long)seed);
	va_end(ap);
	fflush(stdout);
	exit(1);
}

/* ---- the cluster ------------------------------------------------------------ */

struct cluster;

struct srv {
	struct model model;
	struct fsm fsm;
	struct raft_fsm rf;
	int (*apply)(struct raft_fsm *, const struct raft_buffer *, void **); /* fsm.c's */
	int (*restore)(struct raft_fsm *, struct raft_buffer *);             /* fsm.c's */
	struct cluster *c;
	unsigned i;
	bool member; /* in the configuration: compared at the end */
	bool restored; /* restored a snapshot since check_restored last looked */
};

/* What some FSM applied at a log index (first copy seen). */
struct logent {
	void *buf;
	size_t len;
	unsigned server;
};

/* One raft_apply of ours. */
struct prop {
	struct raft_apply req;
	struct cluster *c;
	unsigned server;
	uint64_t index;
	void *copy;
	size_t len;
	bool done;
	int status;
	enum apply_code code;
};

/* A barrier or a configuration change in flight (outlives the call that made it). */
struct req {
	union {
		struct raft_barrier barrier;
		struct raft_change change;
	} u;
	bool done;
	int status;
	struct req *next;
};

struct cluster {
	const char *name;
	struct raft_fixture f;
	struct srv s[RAFT_FIXTURE_MAX_SERVERS];
	struct workload wl;
	unsigned threshold, trailing; /* 0: raft's defaults */
	bool inline_snap;             /* fsm.snapshot_inline: no forked child */
	struct logent *log;           /* by index */
	size_t logcap;
	uint64_t diverged; /* first index two FSMs applied differently (0: none) */
	unsigned diverged_a, diverged_b;
	unsigned restores_checked, restores_bad; /* see wrapped_restore */
	char *restore_diff;                        /* the first bad one, told */
	struct prop **props;
	size_t nprops, capprops;
	struct req *reqs;
	unsigned inflight[RAFT_FIXTURE_MAX_SERVERS]; /* proposals awaiting their callback */
	/* Called after every proposal's steps (membership changes ride on it). */
	void (*tick)(struct cluster *c);
	void *tick_arg;
};

static struct srv *srv_of(struct raft_fsm *rf)
{
	struct fsm *f = rf->data;
	return (struct srv *)((char *)f - offsetof(struct srv, fsm));
}

static char *replay_to(struct cluster *c, uint64_t upto);
static void check_restored(struct srv *s);

/* fsm.c's apply, after noting what this server applied at which index, so the
 * test can tell that every FSM saw the same entry at the same index (State
 * Machine Safety) and replay the committed log by itself. */
static int wrapped_apply(struct raft_fsm *rf, const struct raft_buffer *buf, void **result)
{
	struct srv *s = srv_of(rf);
	struct cluster *c = s->c;
	check_restored(s);
	uint64_t index = raft_last_applied(raft_fixture_get(&c->f, s->i)) + 1;
	if (index >= c->logcap) {
		size_t cap = c->logcap ? c->logcap : 256;
		while (cap <= index)
			cap *= 2;
		c->log = realloc(c->log, cap * sizeof(*c->log));
		if (c->log == NULL)
			bail("out of memory");
		memset(c->log + c->logcap, 0, (cap - c->logcap) * sizeof(*c->log));
		c->logcap = cap;
	}
	struct logent *le = &c->log[index];
	if (le->buf == NULL) {
		le->buf = malloc(buf->len ? buf->len : 1);
		if (le->buf == NULL)
			bail("out of memory");
		memcpy(le->buf, buf->base, buf->len);
		le->len = buf->len;
		le->server = s->i;
	} else if ((le->len != buf->len || memcmp(le->buf, buf->base, buf->len) != 0) && c->diverged == 0) {
		c->diverged = index;
		c->diverged_a = le->server;
		c->diverged_b = s->i;
	}
	return s->apply(rf, buf, result);
}

/* The model of a server that restored a snapshot must be the one the log
 * gives at the snapshot's index: a field a snapshot forgets shows here, before
 * later entries happen to overwrite it. Raft sets the applied index only once
 * restore returned, so the look comes after: before the server's next apply,
 * and after every fixture step (hook). */
static void check_restored(struct srv *s)
{
	struct cluster *c = s->c;
	if (!s->restored)
		return;
	s->restored = false;
	uint64_t index = raft_last_applied(raft_fixture_get(&c->f, s->i));
	char *want = replay_to(c, index), *got = dump(&s->model);
	c->restores_checked++;
	if (strcmp(want, got) != 0 && c->restores_bad++ == 0) {
		size_t i = 0;
		while (want[i] && want[i] == got[i])
			i++;
		size_t from = i > 80 ? i - 80 : 0;
		char *t = malloc(1024);
		if (t != NULL)
			snprintf(t, 1024,
				 "server %u restored index %llu; first difference at byte %zu\n"
				 "#   log:      ...%.200s\n#   restored: ...%.200s",
				 s->i, (unsigned long long)index, i, want + from, got + from);
		c->restore_diff = t;
	}
	free(want);
	free(got);
}

static int wrapped_restore(struct raft_fsm *rf, struct raft_buffer *buf)
{
	struct srv *s = srv_of(rf);
	int rv = s->restore(rf, buf);
	if (rv == 0)
		s->restored = true;
	return rv;
}

static void step_hook(struct raft_fixture *f, struct raft_fixture_event *ev)
{
	(void)ev;
	struct cluster *c = (struct cluster *)((char *)f - offsetof(struct cluster, f));
	for (unsigned i = 0; i < f->n; i++)
		check_restored(&c->s[i]);
}

/* Adds fixture server i (the next one) with its own model and FSM. */
static void server_add(struct cluster *c, unsigned i)
{
	struct srv *s = &c->s[i];
	if (i != c->f.n || i >= RAFT_FIXTURE_MAX_SERVERS)
		bail("server_add(%u) with %u servers", i, c->f.n);
	memset(s, 0, sizeof(*s));
	s->c = c;
	s->i = i;
	model_init(&s->model);
	s->fsm.model = &s->model; /* store and disk NULL: no projection, no disk checks */
	s->fsm.snapshot_inline = c->inline_snap;
	fsm_init(&s->rf, &s->fsm);
	s->apply = s->rf.apply;
	s->rf.apply = wrapped_apply;
	s->restore = s->rf.restore;
	s->rf.restore = wrapped_restore;
	/* raft 0.15.0's fixture implements async_work but leaves io.version at 0,
	 * and raft_init refuses a version-3 FSM (snapshot_async) on an io older
	 * than 2; the io struct is ours until grow fills it, version aside. */
	c->f.servers[i].io.version = 2;
	if (raft_fixture_grow(&c->f, &s->rf) != 0)
		bail("raft_fixture_grow");
	struct raft *r = raft_fixture_get(&c->f, i);
	s->fsm.raft = r;
	raft_set_pre_vote(r, true); /* as loop.c runs it */
	if (c->threshold) {
		raft_set_snapshot_threshold(r, c->threshold);
		raft_set_snapshot_trailing(r, c->trailing);
	}
}

static void cluster_init(struct cluster *c, const char *name, unsigned n, unsigned threshold, unsigned trailing,
			 bool inline_snap, uint64_t salt)
{
	memset(c, 0, sizeof(*c));
	c->name = name;
	c->inline_snap = inline_snap;
	workload_init(&c->wl, seed ^ (salt * 0x2545f4914f6cdd1dULL));
	c->threshold = threshold;
	c->trailing = trailing;
	raft_fixture_initialize(&c->f);
	c->f.n = 0; /* raft_fixture_initialize leaves it as it was (DEPS.md) */
	raft_fixture_hook(&c->f, step_hook);
	for (unsigned i = 0; i < n; i++)
		server_add(c, i);
	struct raft_configuration conf;
	if (raft_fixture_configuration(&c->f, n, &conf) != 0 || raft_fixture_bootstrap(&c->f, &conf) != 0 ||
	    raft_fixture_start(&c->f) != 0)
		bail("%s: fixture bootstrap", name);
	raft_configuration_close(&conf);
	for (unsigned i = 0; i < n; i++)
		c->s[i].member = true;
}

static void cluster_close(struct cluster *c)
{
	raft_fixture_close(&c->f); /* fails what is pending: props and reqs stay alive until here */
	for (unsigned i = 0; i < c->f.n; i++)
		model_release(&c->s[i].model);
	for (size_t i = 0; i < c->nprops; i++) {
		free(c->props[i]->copy);
		free(c->props[i]);
	}
	free(c->props);
	for (size_t i = 0; i < c->logcap; i++)
		free(c->log[i].buf);
	free(c->log);
	free(c->restore_diff);
	while (c->reqs) {
		struct req *q = c->reqs;
		c->reqs = q->next;
		free(q);
	}
}

static struct req *req_new(struct cluster *c)
{
	struct req *q = calloc(1, sizeof(*q));
	if (q == NULL)
		bail("out of memory");
	q->next = c->reqs;
	c->reqs = q;
	return q;
}

static void barrier_cb(struct raft_barrier *b, int status)
{
	struct req *q = b->data;
	q->done = true;
	q->status = status;
}

static void change_cb(struct raft_change *ch, int status)
{
	struct req *q = ch->data;
	q->done = true;
	q->status = status;
}

/* The fixture's stable leader, or c->f.n. */
static unsigned leader(struct cluster *c)
{
	return raft_fixture_leader_index(&c->f);
}

static struct raft *raft_of(struct cluster *c, unsigned i)
{
	return raft_fixture_get(&c->f, i);
}

static bool req_done(struct raft_fixture *f, void *arg)
{
	(void)f;
	return ((struct req *)arg)->done;
}

struct applied_arg {
	struct cluster *c;
	uint64_t index;
};

/* Every live member applied up to index. */
static bool members_applied(struct raft_fixture *f, void *arg)
{
	struct applied_arg *a = arg;
	for (unsigned i = 0; i < f->n; i++)
		if (a->c->s[i].member && raft_fixture_alive(f, i) && raft_last_applied(raft_fixture_get(f, i)) < a->index)
			return false;
	return true;
}

static const char *state_name(int st)
{
	return st == RAFT_LEADER ? "leader" : st == RAFT_CANDIDATE ? "candidate" : st == RAFT_FOLLOWER ? "follower"
										     : "unavailable";
}

static const char *role_name(int role)
{
	return role == RAFT_VOTER ? "voter" : role == RAFT_STANDBY ? "standby" : "spare";
}

/* Where each server stands, for a run that stalls. */
static void diag_raft(struct cluster *c)
{
	for (unsigned i = 0; i < c->f.n; i++) {
		struct raft *r = raft_of(c, i);
		char conf[160] = "";
		size_t n = 0;
		for (unsigned k = 0; k < r->configuration.n && n < sizeof(conf); k++)
			n += (size_t)snprintf(conf + n, sizeof(conf) - n, " %llu:%s",
					      (unsigned long long)r->configuration.servers[k].id,
					      role_name(r->configuration.servers[k].role));
		tap_diag("  server %u%s: %s, term %llu, last %llu, commit %llu, applied %llu, configuration%s%s", i,
			 raft_fixture_alive(&c->f, i) ? "" : " (dead)", state_name(raft_state(r)),
			 (unsigned long long)r->current_term, (unsigned long long)raft_last_index(r),
			 (unsigned long long)r->commit_index, (unsigned long long)raft_last_applied(r), conf,
			 r->configuration_uncommitted_index ? " (uncommitted)" : "");
	}
}

/* A barrier on the leader, then every live member applies up to it: entries of
 * earlier terms are committed and applied everywhere. Returns the index. */
static uint64_t settle(struct cluster *c)
{
	for (int attempt = 0; attempt < 20; attempt++) {
		if (!raft_fixture_step_until_has_leader(&c->f, WAIT_MS)) {
			diag_raft(c);
			bail("%s: no leader within %d ms", c->name, WAIT_MS);
		}
		unsigned l = leader(c);
		struct req *q = req_new(c);
		q->u.barrier.data = q;
		if (raft_barrier(raft_of(c, l), &q->u.barrier, barrier_cb) != 0) {
			raft_fixture_step(&c->f);
			continue;
		}
		if (!raft_fixture_step_until(&c->f, req_done, q, WAIT_MS))
			bail("%s: barrier never completed", c->name);
		if (q->status != 0)
			continue;
		struct applied_arg a = {c, q->u.barrier.index};
		if (!raft_fixture_step_until(&c->f, members_applied, &a, WAIT_MS)) {
			diag_raft(c);
			bail("%s: members did not apply index %llu", c->name, (unsigned long long)a.index);
		}
		return a.index;
	}
	bail("%s: could not settle", c->name);
}

/* ---- proposals ---------------------------------------------------------------- */

static void prop_cb(struct raft_apply *req, int status, void *result)
{
	struct prop *p = req->data;
	p->c->inflight[p->server]--;
	p->done = true;
	p->status = status;
	if (status == 0)
		p->code = ((const struct apply_result *)result)->code;
}

/* Proposes buf (raft_malloc'd, len bytes; ours until raft takes it) on server
 * l. Returns the proposal, or NULL when raft refused it (not leader). */
static struct prop *propose_buf(struct cluster *c, unsigned l, void *buf, size_t len)
{
	struct prop *p = calloc(1, sizeof(*p));
	if (p == NULL || (p->copy = malloc(len)) == NULL)
		bail("out of memory");
	memcpy(p->copy, buf, len);
	p->len = len;
	p->c = c;
	p->server = l;
	p->req.data = p;
	struct raft_buffer rb = {.base = buf, .len = len};
	if (raft_apply(raft_of(c, l), &p->req, &rb, 1, prop_cb) != 0) {
		raft_free(buf);
		free(p->copy);
		free(p);
		return NULL;
	}
	p->index = p->req.index;
	c->inflight[l]++;
	if (c->nprops == c->capprops) {
		c->capprops = c->capprops ? c->capprops * 2 : 64;
		c->props = realloc(c->props, c->capprops * sizeof(*c->props));
		if (c->props == NULL)
			bail("out of memory");
	}
	c->props[c->nprops++] = p;
	return p;
}

/* Encodes e and proposes it on server l (see propose_buf). */
static struct prop *propose(struct cluster *c, unsigned l, const struct entry *e)
{
	void *buf;
	size_t len;
	if (entry_encode(e, &buf, &len) != 0)
		bail("entry_encode");
	return propose_buf(c, l, buf, len);
}

/* What the leader adds to an entry when it proposes it: its clock (the
 * fixture's, so runs repeat) and who asked. */
static void stamp(struct cluster *c, struct entry *e)
{
	e->at_ms = AT_BASE + (int64_t)raft_fixture_time(&c->f);
	if ((e->who = strdup("fixture")) == NULL)
		bail("out of memory");
}

/* Proposes one random entry on server l. */
static struct prop *propose_random(struct cluster *c, unsigned l)
{
	struct entry e;
	workload_entry(&c->wl, &c->s[l].model, &e);
	stamp(c, &e);
	struct prop *p = propose(c, l, &e);
	entry_release(&e);
	return p;
}

/* Proposes count entries on whichever server leads, a few fixture steps apart
 * and up to 1..6 awaiting their callback at once, as clients would pipeline
 * them; the leader plans each on what it has applied so far. */
static void run(struct cluster *c, unsigned count)
{
	unsigned done = 0, window = 1;
	raft_time start = raft_fixture_time(&c->f);
	while (done < count) {
		if (raft_fixture_time(&c->f) - start > (raft_time)WAIT_MS * 10) {
			diag_raft(c);
			bail("%s: %u of %u entries proposed in %d ms", c->name, done, count, WAIT_MS * 10);
		}
		unsigned l = leader(c), steps = 1;
		if (l < c->f.n && c->inflight[l] < window) {
			if (propose_random(c, l) != NULL)
				done++;
			window = 1 + workload_below(&c->wl, 6);
			steps = workload_below(&c->wl, 4);
		}
		while (steps-- > 0)
			raft_fixture_step(&c->f);
		if (c->tick)
			c->tick(c);
	}
}

/* ---- checks ------------------------------------------------------------------ */

/* Server i's model, canonical (sorted, with the accounting snapshots leave out). */
static char *dump_of(struct cluster *c, unsigned i)
{
	return dump(&c->s[i].model);
}

static void show_diff(const char *what_a, const char *a, const char *what_b, const char *b)
{
	size_t i = 0;
	while (a[i] && a[i] == b[i])
		i++;
	size_t from = i > 80 ? i - 80 : 0;
	tap_diag("  first difference at byte %zu", i);
	tap_diag("  %s: ...%.200s", what_a, a + from);
	tap_diag("  %s: ...%.200s", what_b, b + from);
}

/* The committed log (every entry some FSM applied) replayed on a plain model.
 * codes[index] gets each entry's result. Returns the model's dump. */
static char *replay_plain(struct cluster *c, uint64_t upto, enum apply_code *codes, uint64_t *nentries)
{
	unsigned mix[ENTRY_POLICY_PUT + 1][2] = {{0}}; /* per op: refused, accepted */
	struct model m;
	model_init(&m);
	*nentries = 0;
	for (uint64_t i = 1; i <= upto && i < c->logcap; i++) {
		struct logent *le = &c->log[i];
		if (le->buf == NULL)
			continue;
		struct entry e;
		struct apply_result res;
		char err[256];
		(*nentries)++;
		if (entry_decode(le->buf, le->len, &e, err, sizeof(err)) != 0) {
			codes[i] = APPLY_INVALID;
			continue;
		}
		enum entry_op op = e.op;
		model_apply(&m, &e, i, NULL, &res);
		codes[i] = res.code;
		entry_release(&e);
		if ((size_t)op < sizeof(mix) / sizeof(mix[0]))
			mix[op][res.code == APPLY_OK]++;
	}
	/* What the workload exercised, for whoever reads the log. */
	char line[512];
	size_t n = 0;
	for (int op = ENTRY_NODE_PUT; op <= ENTRY_POLICY_PUT; op++)
		n += (size_t)snprintf(line + n, sizeof(line) - n, " %s %u/%u", entry_op_name((enum entry_op)op),
				      mix[op][1], mix[op][0] + mix[op][1]);
	tap_diag("  %s: accepted/applied:%s", c->name, line);
	char *d = dump(&m);
	model_release(&m);
	return d;
}

/* The model the committed log gives at index upto, dumped. */
static char *replay_to(struct cluster *c, uint64_t upto)
{
	struct model m;
	model_init(&m);
	for (uint64_t i = 1; i <= upto && i < c->logcap; i++) {
		struct entry e;
		struct apply_result res;
		char err[256];
		if (c->log[i].buf == NULL || entry_decode(c->log[i].buf, c->log[i].len, &e, err, sizeof(err)) != 0)
			continue;
		model_apply(&m, &e, i, NULL, &res);
		entry_release(&e);
	}
	char *d = dump(&m);
	model_release(&m);
	return d;
}

/* Settles the cluster and checks it (NSCEN_CHECKS oks). ghosts_must_fail: no
 * proposal whose callback failed may have reached an FSM (partition). */
static void check_cluster(struct cluster *c, bool ghosts_must_fail)
{
	uint64_t idx = settle(c);
	unsigned first = c->f.n;
	for (unsigned i = 0; i < c->f.n && first == c->f.n; i++)
		if (c->s[i].member && raft_fixture_alive(&c->f, i))
			first = i;
	uint64_t applied = raft_last_applied(raft_of(c, first));

	/* 1. every member applied the same index */
	bool same_index = applied >= idx;
	for (unsigned i = 0; i < c->f.n; i++)
		if (c->s[i].member && raft_last_applied(raft_of(c, i)) != applied) {
			if (same_index)
				tap_diag("  server %u applied %llu, server %u %llu", i,
					 (unsigned long long)raft_last_applied(raft_of(c, i)), first,
					 (unsigned long long)applied);
			same_index = false;
		}
	ok(same_index, "%s: every member applied up to index %llu", c->name, (unsigned long long)applied);

	/* 2. models identical, byte for byte */
	char *want = dump_of(c, first);
	bool same = true;
	for (unsigned i = first + 1; i < c->f.n && same; i++) {
		if (!c->s[i].member)
			continue;
		char *got = dump_of(c, i);
		if (strcmp(want, got) != 0) {
			same = false;
			tap_diag("  seed %llu: server %u's model differs from server %u's", (unsigned long long)seed,
				 i, first);
			char wa[32], wb[32];
			snprintf(wa, sizeof(wa), "server %u", first);
			snprintf(wb, sizeof(wb), "server %u", i);
			show_diff(wa, want, wb, got);
		}
		free(got);
	}
	ok(same, "%s: every member's model is the same (%zu nodes, %zu actors, %zu links, event %llu)", c->name,
	   c->s[first].model.nodes.n, c->s[first].model.actors.n, c->s[first].model.links.n,
	   (unsigned long long)c->s[first].model.event_seq);

	/* 3. state machine safety */
	if (!ok(c->diverged == 0, "%s: every FSM applied the same entry at each index", c->name))
		tap_diag("  seed %llu: index %llu differs between servers %u and %u", (unsigned long long)seed,
			 (unsigned long long)c->diverged, c->diverged_a, c->diverged_b);

	/* 4. the committed log replayed on a plain model gives the same model */
	enum apply_code *codes = calloc(c->logcap + 1, sizeof(*codes));
	uint64_t nlog = 0;
	char *ref = replay_plain(c, applied, codes, &nlog);
	if (!ok(strcmp(ref, want) == 0, "%s: replaying the %llu committed entries on a plain model gives it",
		c->name, (unsigned long long)nlog)) {
		tap_diag("  seed %llu", (unsigned long long)seed);
		show_diff("replay", ref, "servers", want);
	}

	/* 5. acknowledged proposals sit at their index with the result the leader
	 * reported; entries applied = those acknowledged plus any whose leader lost
	 * office after replicating them (their callback failed, they committed) */
	size_t acked = 0, ghosts = 0, ghosts_committed = 0, bad = 0;
	for (size_t k = 0; k < c->nprops; k++) {
		struct prop *p = c->props[k];
		struct logent *le = p->index < c->logcap ? &c->log[p->index] : NULL;
		bool there = le && le->buf && le->len == p->len && memcmp(le->buf, p->copy, p->len) == 0;
		if (p->done && p->status == 0) {
			acked++;
			if (!there || codes[p->index] != p->code) {
				if (bad++ == 0)
					tap_diag("  proposal at %llu: %s, result %d, replay %d", (unsigned long long)p->index,
						 there ? "committed" : "NOT committed", (int)p->code,
						 (int)codes[p->index]);
			}
		} else {
			ghosts++;
			ghosts_committed += there;
		}
	}
	if (ghosts_must_fail && ghosts_committed > 0) {
		tap_diag("  %zu proposals whose callback failed were applied anyway", ghosts_committed);
		bad++;
	}
	if (acked + ghosts_committed != nlog) {
		tap_diag("  %llu entries applied, %zu acknowledged + %zu committed after their leader lost office",
			 (unsigned long long)nlog, acked, ghosts_committed);
		bad++;
	}
	ok(bad == 0, "%s: %zu proposals acknowledged with the result the replay gives, %zu failed (%zu of them "
		     "committed anyway)",
	   c->name, acked, ghosts, ghosts_committed);

	/* 6. a server that never restored a snapshot applied every entry once */
	bool counts = true;
	uint64_t okcount = 0;
	for (uint64_t i = 1; i <= applied && i < c->logcap; i++)
		okcount += c->log[i].buf && codes[i] == APPLY_OK;
	for (unsigned i = 0; i < c->f.n; i++) {
		struct fsm *f = &c->s[i].fsm;
		if (!c->s[i].member || f->restores > 0)
			continue;
		if (f->applied + f->rejected + f->undecodable != nlog || f->applied != okcount) {
			tap_diag("  server %u: %llu applied + %llu rejected + %llu undecodable; the log has %llu "
				 "(%llu applied)",
				 i, (unsigned long long)f->applied, (unsigned long long)f->rejected,
				 (unsigned long long)f->undecodable, (unsigned long long)nlog,
				 (unsigned long long)okcount);
			counts = false;
		}
	}
	char why[512];
	if (!invariants(&c->s[first].model, why, sizeof(why))) {
		tap_diag("  invariants: %s", why);
		counts = false;
	}
	ok(counts, "%s: %llu entries applied once each (%llu accepted) on every member that never restored",
	   c->name, (unsigned long long)nlog, (unsigned long long)okcount);

	/* 7. every snapshot restored made the model the log gives at its index */
	if (!ok(c->restores_bad == 0, "%s: each of the %u snapshots restored gave the model of the log at its index",
		c->name, c->restores_checked))
		tap_diag("  seed %llu: %u bad; %s", (unsigned long long)seed, c->restores_bad,
			 c->restore_diff ? c->restore_diff : "");
	free(ref);
	free(codes);
	free(want);
}

static void diag_servers(struct cluster *c)
{
	for (unsigned i = 0; i < c->f.n; i++) {
		struct fsm *f = &c->s[i].fsm;
		tap_diag("  server %u%s%s: applied index %llu, %llu snapshots, %llu restores", i,
			 c->s[i].member ? "" : " (removed)", raft_fixture_alive(&c->f, i) ? "" : " (dead)",
			 (unsigned long long)raft_last_applied(raft_of(c, i)), (unsigned long long)f->snapshots,
			 (unsigned long long)f->restores);
	}
}

/* ---- scenarios -------------------------------------------------------------- */

static bool wait_leader(struct cluster *c)
{
	return raft_fixture_step_until_has_leader(&c->f, WAIT_MS);
}

/* The fixture reports a killed or cut-off leader until its next step. */
static bool leader_other_than(struct raft_fixture *f, void *arg)
{
	unsigned old = *(unsigned *)arg;
	return f->leader_id != 0 && f->leader_id != (raft_id)old + 1;
}

static bool wait_new_leader(struct cluster *c, unsigned old)
{
	return raft_fixture_step_until(&c->f, leader_other_than, &old, WAIT_MS);
}

/* Copies of the elections log for the replay scenario. */
static struct logent *kept_log;
static size_t kept_cap;
static char *kept_dump;

/* elections: a leader elected, entries applied everywhere; the leader killed
 * with entries in flight; a new one; the old one revived; then the leader
 * deposed. 3 + 2 * NSCEN_CHECKS oks. */
static void scenario_elections(void)
{
	struct cluster c;
	cluster_init(&c, "elections", 3, 0, 0, false, 1);
	ok(wait_leader(&c), "elections: a leader is elected");
	run(&c, 40);
	check_cluster(&c, false); /* applied on every server */
	unsigned l1 = leader(&c);
	run(&c, 10);
	/* Entries in flight when the leader dies: some may commit under the next. */
	raft_fixture_kill(&c.f, l1);
	bool elected = wait_new_leader(&c, l1);
	ok(elected, "elections: a new leader (server %u) after server %u is killed", leader(&c), l1);
	run(&c, 40);
	raft_fixture_revive(&c.f, l1);
	run(&c, 20);
	wait_leader(&c); /* raft_fixture_depose asserts there is one */
	unsigned l2 = leader(&c);
	raft_fixture_depose(&c.f);
	elected = wait_leader(&c);
	ok(elected, "elections: a leader (server %u) after server %u is deposed", leader(&c), l2);
	run(&c, 40);
	check_cluster(&c, false);
	diag_servers(&c);
	/* Keep the log for the replay scenario. */
	kept_cap = c.logcap;
	kept_log = c.log;
	c.log = NULL;
	c.logcap = 0;
	kept_dump = dump_of(&c, leader(&c));
	cluster_close(&c);
}

/* snapshots: threshold 16, trailing 4: every server takes several during the
 * run. 1 + NSCEN_CHECKS oks. */
static void scenario_snapshots(void)
{
	struct cluster c;
	cluster_init(&c, "snapshots", 3, 16, 4, false, 2);
	wait_leader(&c);
	run(&c, 150);
	check_cluster(&c, false);
	bool all = true;
	for (unsigned i = 0; i < c.f.n; i++)
		all = all && c.s[i].fsm.snapshots >= 3;
	ok(all, "snapshots: every server took at least 3 snapshots");
	diag_servers(&c);
	cluster_close(&c);
}

/* lagging: a follower cut off while the leader's log moves past what it keeps;
 * back, it is sent the snapshot. 2 + NSCEN_CHECKS oks. */
static void scenario_lagging(void)
{
	struct cluster c;
	cluster_init(&c, "lagging", 3, 16, 8, false, 3);
	wait_leader(&c);
	run(&c, 20);
	settle(&c);
	unsigned l = leader(&c), lag = (l + 1) % 3;
	for (unsigned j = 0; j < 3; j++)
		if (j != lag) {
			raft_fixture_saturate(&c.f, lag, j);
			raft_fixture_saturate(&c.f, j, lag);
		}
	uint64_t behind = raft_last_applied(raft_of(&c, lag));
	run(&c, 80); /* > threshold + trailing */
	ok(raft_last_applied(raft_of(&c, lag)) == behind && c.s[leader(&c)].fsm.snapshots > 0,
	   "lagging: server %u stayed at index %llu while the leader took %llu snapshots", lag,
	   (unsigned long long)behind, (unsigned long long)c.s[leader(&c)].fsm.snapshots);
	unsigned before = raft_fixture_n_recv(&c.f, lag, RAFT_IO_INSTALL_SNAPSHOT);
	for (unsigned j = 0; j < 3; j++)
		if (j != lag) {
			raft_fixture_desaturate(&c.f, lag, j);
			raft_fixture_desaturate(&c.f, j, lag);
		}
	run(&c, 10);
	check_cluster(&c, false);
	ok(raft_fixture_n_recv(&c.f, lag, RAFT_IO_INSTALL_SNAPSHOT) > before && c.s[lag].fsm.restores > 0,
	   "lagging: server %u was caught up by InstallSnapshot (%u received, %llu restores)", lag,
	   raft_fixture_n_recv(&c.f, lag, RAFT_IO_INSTALL_SNAPSHOT), (unsigned long long)c.s[lag].fsm.restores);
	diag_servers(&c);
	cluster_close(&c);
}

static bool not_leader(struct raft_fixture *f, void *arg)
{
	return raft_state(raft_fixture_get(f, *(unsigned *)arg)) != RAFT_LEADER;
}

/* partition (5 servers): the leader cut off proposes 5 entries that never
 * commit; the other 4 elect a leader and go on; the old one steps down and its
 * callbacks fail; after the heal it ends identical. 4 + NSCEN_CHECKS oks. */
static void scenario_partition(void)
{
	struct cluster c;
	cluster_init(&c, "partition", 5, 32, 8, false, 4);
	wait_leader(&c);
	run(&c, 30);
	settle(&c);
	unsigned old = leader(&c);
	for (unsigned j = 0; j < 5; j++)
		if (j != old) {
			raft_fixture_saturate(&c.f, old, j);
			raft_fixture_saturate(&c.f, j, old);
		}
	size_t first_ghost = c.nprops;
	struct entry e;
	for (int k = 0; k < 5; k++) {
		char id[32];
		snprintf(id, sizeof(id), "ghost%d", k);
		workload_node(&c.wl, &e, id, 0);
		stamp(&c, &e);
		if (propose(&c, old, &e) == NULL)
			bail("partition: the cut-off leader refused a proposal");
		entry_release(&e);
	}
	size_t nghosts = c.nprops - first_ghost;
	bool elected = wait_new_leader(&c, old);
	ok(elected, "partition: the majority elects server %u while server %u is cut off", leader(&c), old);
	run(&c, 40);
	ok(raft_fixture_step_until(&c.f, not_leader, &old, WAIT_MS), "partition: server %u steps down", old);
	bool failed = true;
	for (size_t k = first_ghost; k < first_ghost + nghosts; k++) {
		struct prop *p = c.props[k];
		if (!p->done || p->status != RAFT_LEADERSHIPLOST) {
			tap_diag("  entry at %llu: %s, status %d", (unsigned long long)p->index,
				 p->done ? "done" : "pending", p->status);
			failed = false;
		}
	}
	ok(failed, "partition: the %zu entries it took while cut off fail with RAFT_LEADERSHIPLOST", nghosts);
	for (unsigned j = 0; j < 5; j++)
		if (j != old) {
			raft_fixture_desaturate(&c.f, old, j);
			raft_fixture_desaturate(&c.f, j, old);
		}
	run(&c, 20);
	check_cluster(&c, true);
	bool absent = true;
	for (unsigned i = 0; i < 5; i++)
		for (int k = 0; k < 5; k++) {
			char id[32];
			snprintf(id, sizeof(id), "ghost%d", k);
			absent = absent && model_node_get(&c.s[i].model, id) == NULL;
		}
	ok(absent, "partition: no server holds what the cut-off leader took");
	diag_servers(&c);
	cluster_close(&c);
}

/* membership: while entries flow, servers 4 and 5 join (raft_add, then
 * raft_assign to voter) and a follower is removed. The steps follow the
 * leader's configuration, so a change lost with a leader is made again. */
struct members {
	unsigned victim; /* fixture index to remove */
	struct req *q;   /* change in flight */
	bool done;
	size_t props_first, props_last; /* proposals made when the changes began and ended */
};

static const struct raft_server *conf_get(const struct raft *r, raft_id id)
{
	for (unsigned i = 0; i < r->configuration.n; i++)
		if (r->configuration.servers[i].id == id)
			return &r->configuration.servers[i];
	return NULL;
}

static void members_tick(struct cluster *c)
{
	struct members *ms = c->tick_arg;
	unsigned l = leader(c);
	if (ms->done || l == c->f.n || (ms->q && !ms->q->done))
		return;
	struct raft *r = raft_of(c, l);
	if (r->configuration_uncommitted_index != 0)
		return; /* the last change is not committed yet */
	if (ms->props_first == 0)
		ms->props_first = c->nprops;
	ms->q = req_new(c);
	ms->q->u.change.data = ms->q;
	int rv = 0;
	for (raft_id id = 4; id <= 5; id++) {
		const struct raft_server *s = conf_get(r, id);
		if (s != NULL && s->role == RAFT_VOTER)
			continue;
		if (c->f.n < id) {
			server_add(c, (unsigned)id - 1);
			if (raft_start(raft_of(c, (unsigned)id - 1)) != 0)
				bail("membership: raft_start of server %llu", (unsigned long long)id);
		}
		c->s[id - 1].member = true;
		char addr[16];
		snprintf(addr, sizeof(addr), "%llu", (unsigned long long)id);
		rv = s == NULL ? raft_add(r, &ms->q->u.change, id, addr, change_cb)
			       : raft_assign(r, &ms->q->u.change, id, RAFT_VOTER, change_cb);
		goto issued;
	}
	if (conf_get(r, ms->victim + 1) != NULL) {
		if (l == ms->victim)
			bail("membership: the server to remove became leader");
		rv = raft_remove(r, &ms->q->u.change, ms->victim + 1, change_cb);
		goto issued;
	}
	/* Removed and committed: shut it down, as an operator would. Left running,
	 * it never hears of its removal, times out and stands for election, and
	 * the fixture sees no stable leader while it does. */
	c->s[ms->victim].member = false;
	raft_fixture_kill(&c->f, ms->victim);
	ms->props_last = c->nprops;
	ms->done = true;
	ms->q->done = true;
	return;
issued:
	if (rv != 0)
		ms->q->done = true; /* tried again on the next tick */
}

static bool members_done(struct raft_fixture *f, void *arg)
{
	struct cluster *c = arg;
	(void)f;
	members_tick(c);
	return ((struct members *)c->tick_arg)->done;
}

/* 3 + NSCEN_CHECKS oks. */
static void scenario_membership(void)
{
	struct cluster c;
	struct members ms = {0};
	cluster_init(&c, "membership", 3, 32, 8, true, 5);
	wait_leader(&c);
	run(&c, 60); /* past a snapshot: the new servers need InstallSnapshot */
	ms.victim = (leader(&c) + 2) % 3;
	c.tick = members_tick;
	c.tick_arg = &ms;
	run(&c, 120);
	bool changed = raft_fixture_step_until(&c.f, members_done, &c, WAIT_MS);
	ok(changed && ms.props_last >= ms.props_first + 20,
	   "membership: servers 4 and 5 joined and server %u left while %zu entries were proposed", ms.victim + 1,
	   ms.props_last - ms.props_first);
	c.tick = NULL;
	struct raft *r = raft_of(&c, leader(&c));
	unsigned voters = 0;
	for (unsigned i = 0; i < r->configuration.n; i++)
		voters += r->configuration.servers[i].role == RAFT_VOTER;
	ok(voters == 4 && r->configuration.n == 4 && conf_get(r, ms.victim + 1) == NULL,
	   "membership: the leader's configuration has 4 voters, without server %u", ms.victim + 1);
	run(&c, 30);
	check_cluster(&c, false);
	ok(c.s[3].fsm.restores > 0 && c.s[4].fsm.restores > 0,
	   "membership: servers 4 and 5 started from InstallSnapshot (%llu, %llu restores)",
	   (unsigned long long)c.s[3].fsm.restores, (unsigned long long)c.s[4].fsm.restores);
	diag_servers(&c);
	cluster_close(&c);
}

/* replay: the elections log proposed again, entry by entry, on fresh fixtures
 * whose clocks, latencies and snapshot settings differ. 2 oks. */
static void replay_on(const char *name, unsigned n, unsigned threshold, unsigned latency, unsigned skip_ms,
		      uint64_t salt)
{
	struct cluster c;
	cluster_init(&c, name, n, threshold, threshold ? 2 : 0, true, salt);
	for (unsigned i = 0; i < n; i++) {
		raft_fixture_set_network_latency(&c.f, i, latency + i);
		raft_fixture_set_disk_latency(&c.f, i, latency / 2 + 1);
	}
	raft_fixture_step_until_elapsed(&c.f, skip_ms);
	if (!wait_leader(&c))
		bail("%s: no leader", name);
	srand((unsigned)(seed + salt)); /* randomness in apply would show */
	for (size_t i = 1; i < kept_cap; i++) {
		if (kept_log[i].buf == NULL)
			continue;
		void *buf = raft_malloc(kept_log[i].len);
		if (buf == NULL)
			bail("out of memory");
		memcpy(buf, kept_log[i].buf, kept_log[i].len);
		/* One at a time: the same order whatever the latencies. */
		struct prop *p = propose_buf(&c, leader(&c), buf, kept_log[i].len);
		if (p == NULL)
			bail("%s: raft_apply refused", name);
		struct applied_arg a = {&c, p->index};
		if (!raft_fixture_step_until(&c.f, members_applied, &a, WAIT_MS))
			bail("%s: entry %zu not applied", name, i);
	}
	settle(&c);
	bool same = true;
	for (unsigned i = 0; i < n && same; i++) {
		char *d = dump_of(&c, i);
		if (strcmp(d, kept_dump) != 0) {
			same = false;
			tap_diag("  seed %llu: %s server %u differs from the elections cluster", (unsigned long long)seed,
				 name, i);
			show_diff("replay", d, "original", kept_dump);
		}
		free(d);
	}
	ok(same, "%s: the elections log replayed on %u fresh server%s (%u ms later, latency %u ms, snapshot "
		 "threshold %u) gives the same model",
	   name, n, n > 1 ? "s" : "", skip_ms, latency, threshold);
	cluster_close(&c);
}

int main(void)
{
	const char *env = getenv("LATTICE_TEST_SEED");
	seed = env && *env ? strtoull(env, NULL, 10) : 20261207;
	log_set_level(LOG_WARN);
	tap_plan(3 + 1 + 2 + 4 + 3 + 6 * NSCEN_CHECKS + 2);
	tap_diag("seed %llu (LATTICE_TEST_SEED=%llu repeats this run)", (unsigned long long)seed,
		 (unsigned long long)seed);
	scenario_elections();
	scenario_snapshots();
	scenario_lagging();
	scenario_partition();
	scenario_membership();
	replay_on("replay-1", 1, 0, 15, 0, 6);
	replay_on("replay-3", 3, 4, 40, 7777, 7);
	for (size_t i = 0; i < kept_cap; i++)
		free(kept_log[i].buf);
	free(kept_log);
	free(kept_dump);
	return tap_done();
}
