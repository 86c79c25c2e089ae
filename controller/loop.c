#include "loop.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "aiodefer.h"
#include "jw.h"
#include "proj.h"
#include "proto.h"
#include "render.h"
#include "leader.h"
#include "digest.h"
#include "log.h"
#include "members.h"
#include "ops.h"
#include "store.h"
#include "view.h"

#define LOOP_TICK_MS 20
/* raft_uv's default open segment size, set explicitly because disk.c's
 * arithmetic depends on it. */
#define LOOP_SEGMENT_SIZE (8u * 1024 * 1024)
#define LOOP_SHUTDOWN_GRACE_MS 5000 /* for requests in flight; part of main.c's shutdown bound */

int64_t loop_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t loop_wallclock_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- data dir ---------------------------------------------------------------- */

static int mkdir_p(const char *path)
{
	char buf[4096];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, 0700) != 0 && errno != EEXIST)
		return -1;
	return 0;
}

int loop_lock_dir(const char *dir, char *err, size_t errlen)
{
	if (mkdir_p(dir) != 0) {
		snprintf(err, errlen, "cannot create data dir %s: %s", dir, strerror(errno));
		return -1;
	}
	char path[4200];
	snprintf(path, sizeof(path), "%s/LOCK", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		char pid[32] = "";
		ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		snprintf(err, errlen,
			 "data dir %s is in use by another latticed (pid %s): two replicas on one Raft log "
			 "would corrupt it",
			 dir, pid[0] ? pid : "unknown");
		close(fd);
		return -1;
	}
	/* The lock, not the pid, is what counts (it dies with the process); the
	 * pid only makes the message above useful. */
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)n, 0) != n)
		log_warn("cannot write the pid into %s: %s", path, strerror(errno));
	return fd;
}

void loop_group_id(const struct config *cfg, char *out, size_t len)
{
	/* A group bootstrapped from --members: the lattice name and the member list
	 * (parsed, so sorted by id), the same on every replica of it. Otherwise the
	 * lattice name and this replica's raft address (a one-voter bootstrap, or a
	 * replica that joins: it records its own). NULs keep ("ab","c") and
	 * ("a","bc") apart. */
	char in[2048];
	int n = snprintf(in, sizeof(in), "%s%c", cfg->lattice, '\0');
	struct members ms;
	char err[160];
	if (cfg->bootstrap && cfg->members[0] && members_parse(cfg->members, &ms, err, sizeof(err)) == 0) {
		for (size_t i = 0; i < ms.n && n > 0 && (size_t)n < sizeof(in); i++)
			n += snprintf(in + n, sizeof(in) - (size_t)n, "%llu=%s%c", (unsigned long long)ms.m[i].id,
				      ms.m[i].address, '\0');
	} else {
		n += snprintf(in + n, sizeof(in) - (size_t)n, "%s", cfg->raft_address);
	}
	uint8_t d[DIGEST_SHA256_LEN];
	digest_sha256(in, n > 0 && (size_t)n < sizeof(in) ? (size_t)n : sizeof(in) - 1, d);
	char hex[2 * DIGEST_SHA256_LEN + 1];
	digest_hex(d, LOOP_GROUP_ID_LEN / 2, hex);
	snprintf(out, len, "%s", hex);
}

int loop_prepare_dir(const struct config *cfg, char *instance_id, size_t len, char *group_id, size_t glen,
		     char *err, size_t errlen)
{
	if (mkdir_p(cfg->data_dir) != 0) {
		snprintf(err, errlen, "cannot create data dir %s: %s", cfg->data_dir, strerror(errno));
		return -1;
	}
	char path[4200];
	snprintf(path, sizeof(path), "%s/replica.json", cfg->data_dir);
	json_error_t jerr;
	json_t *meta = json_load_file(path, 0, &jerr);
	if (meta != NULL) {
		json_int_t id = json_integer_value(json_object_get(meta, "id"));
		const char *inst = json_string_value(json_object_get(meta, "instance_id"));
		if (id != cfg->id || inst == NULL) {
			snprintf(err, errlen,
				 "data dir %s belongs to replica id %lld, not --id %lld; use that id or another "
				 "data dir",
				 cfg->data_dir, (long long)id, (long long)cfg->id);
			json_decref(meta);
			return -1;
		}
		snprintf(instance_id, len, "%s", inst);
		const char *group = json_string_value(json_object_get(meta, "group_id"));
		if (group != NULL) {
			snprintf(group_id, glen, "%s", group);
			json_decref(meta);
			return 0;
		}
		/* A data dir from before group ids: computed now, and kept from now on
		 * (a later change of the derivation must not move an existing replica). */
		loop_group_id(cfg, group_id, glen);
		if (json_object_set_new(meta, "group_id", json_string(group_id)) != 0) {
			json_decref(meta);
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	} else {
		if (access(path, F_OK) == 0) {
			snprintf(err, errlen, "%s is unreadable: %s", path, jerr.text);
			return -1;
		}
		unsigned char rnd[16];
		if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
			snprintf(err, errlen, "getrandom failed: %s", strerror(errno));
			return -1;
		}
		char hex[33];
		for (int i = 0; i < 16; i++)
			snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
		loop_group_id(cfg, group_id, glen);
		meta = json_pack("{s:I,s:s,s:s,s:s}", "id", (json_int_t)cfg->id, "raft_address", cfg->raft_address,
				 "instance_id", hex, "group_id", group_id);
		snprintf(instance_id, len, "%s", hex);
	}
	char tmp[4300];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int rc = meta ? json_dump_file(meta, tmp, JSON_INDENT(2)) : -1;
	json_decref(meta);
	if (rc != 0 || rename(tmp, path) != 0) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- op plumbing ---------------------------------------------------------------- */

void loop_finish(struct loop *l, struct op *op)
{
	leader_to(op, OP_DONE);
	pthread_mutex_lock(&l->lock);
	l->inflight--;
	pthread_mutex_unlock(&l->lock);
	op->done(op);
}

void loop_submit(struct loop *l, struct op *op)
{
	pthread_mutex_lock(&l->lock);
	l->inflight++;
	if (l->closing) {
		pthread_mutex_unlock(&l->lock);
		op_fail(op, 503, "shutting_down", "this replica is shutting down; retry on another");
		loop_finish(l, op);
		return;
	}
	op->next = NULL;
	if (l->inbox_tail)
		l->inbox_tail->next = op;
	else
		l->inbox_head = op;
	l->inbox_tail = op;
	pthread_mutex_unlock(&l->lock);
	uv_async_send(&l->wake);
}

/* Effective projected index from a published pair. */
static uint64_t projected_of(struct loop *l, uint64_t applied, uint64_t rows)
{
	if (l->store == NULL)
		return applied;
	uint64_t p = store_projected(l->store);
	return p >= rows && applied > p ? applied : p;
}

/* Effective projected index; caller holds l->lock. */
static uint64_t projected_locked(struct loop *l)
{
	return projected_of(l, l->pub_applied, l->pub_rows);
}

/* The published pair, consistent, without the lock (see loop.h). */
static void pub_read(struct loop *l, uint64_t *applied, uint64_t *rows)
{
	for (;;) {
		uint64_t s = atomic_load(&l->pub_seq);
		if (s & 1) {
			sched_yield(); /* the loop is between its two stores */
			continue;
		}
		*applied = atomic_load(&l->pub_applied);
		*rows = atomic_load(&l->pub_rows);
		if (atomic_load(&l->pub_seq) == s)
			return;
	}
}

/* Loop thread, under l->lock. */
static void pub_write(struct loop *l, uint64_t applied, uint64_t rows)
{
	atomic_fetch_add(&l->pub_seq, 1);
	atomic_store(&l->pub_applied, applied);
	atomic_store(&l->pub_rows, rows);
	atomic_fetch_add(&l->pub_seq, 1);
}

uint64_t loop_projected_index(struct loop *l)
{
	uint64_t a, r;
	pub_read(l, &a, &r);
	return projected_of(l, a, r);
}

void loop_indices(struct loop *l, uint64_t *applied, uint64_t *projected)
{
	uint64_t r;
	pub_read(l, applied, &r);
	uint64_t p = projected_of(l, *applied, r);
	/* Only while raft replays its log at start-up can PostgreSQL be ahead of
	 * the model; what a reader can rely on then is the applied index. */
	*projected = p < *applied ? p : *applied;
}

void loop_wait_projection(struct loop *l, struct op *op)
{
	leader_to(op, OP_PROJECTING);
	pthread_mutex_lock(&l->lock);
	if (projected_locked(l) >= op->index) {
		pthread_mutex_unlock(&l->lock);
		loop_finish(l, op);
		return;
	}
	struct op **pp = &l->wait_head;
	while (*pp && (*pp)->index <= op->index)
		pp = &(*pp)->next;
	op->next = *pp;
	*pp = op;
	pthread_mutex_unlock(&l->lock);
}

/* Finishes the waiters PostgreSQL has caught up with. Any thread. */
static void wake_waiters(struct loop *l)
{
	pthread_mutex_lock(&l->lock);
	uint64_t index = projected_locked(l);
	struct op *ready = l->wait_head, *last = NULL;
	while (l->wait_head && l->wait_head->index <= index) {
		last = l->wait_head;
		l->wait_head = l->wait_head->next;
	}
	if (last)
		last->next = NULL;
	else
		ready = NULL;
	pthread_mutex_unlock(&l->lock);
	while (ready) {
		struct op *next = ready->next;
		loop_finish(l, ready);
		ready = next;
	}
}

void loop_projected(struct loop *l, uint64_t index)
{
	(void)index; /* what counts is projected_locked's view, rowless entries included */
	wake_waiters(l);
}

static void expire_waiters(struct loop *l, int64_t now, bool all)
{
	struct op *expired = NULL;
	pthread_mutex_lock(&l->lock);
	for (struct op **pp = &l->wait_head; *pp;) {
		struct op *op = *pp;
		if (all || op->deadline_ms <= now) {
			*pp = op->next;
			op->next = expired;
			expired = op;
		} else {
			pp = &op->next;
		}
	}
	pthread_mutex_unlock(&l->lock);
	while (expired) {
		struct op *next = expired->next;
		if (expired->kind == OP_WAIT)
			op_fail(expired, 503, "projection_lagging",
				"this replica's PostgreSQL has not reached index %llu yet; retry, or read "
				"without min_index",
				(unsigned long long)expired->index);
		else if (expired->kind == OP_READ_BARRIER)
			op_fail(expired, 503, "projection_lagging",
				"this replica's PostgreSQL has not reached the committed index %llu yet; retry, "
				"or read without consistent=true",
				(unsigned long long)expired->index);
		else
			op_fail(expired, 503, "projection_lagging",
				"the write was committed at index %llu but this replica's PostgreSQL does "
				"not show it yet; it will",
				(unsigned long long)expired->index);
		loop_finish(l, expired);
		expired = next;
	}
}

/* ---- loop callbacks ------------------------------------------------------------------ */

void loop_publish_status(struct loop *l)
{
	struct loop_status s;
	memset(&s, 0, sizeof(s));
	s.term = l->raft.current_term;
	s.commit_index = l->raft.commit_index;
	s.applied_index = raft_last_applied(&l->raft);
	s.last_index = raft_last_index(&l->raft);
	s.state = raft_state(&l->raft);
	raft_id lid = 0;
	const char *laddr = NULL;
	raft_leader(&l->raft, &lid, &laddr);
	s.leader_id = lid;
	snprintf(s.leader_address, sizeof(s.leader_address), "%s", laddr ? laddr : "");
	s.disk_ok = disk_writable(&l->disk);
	snprintf(s.disk_reason, sizeof(s.disk_reason), "%s", l->disk.reason);
	s.writable = leader_writable(l);
	s.nodes = l->model.nodes.n;
	s.actors = l->model.actors.n;
	s.providers = l->model.providers.n;
	s.links = l->model.links.n;
	s.policies = l->model.policies.n;
	s.commands_open = l->model.cmd_open.n;
	s.commands_acked = l->model.cmd_finished[CMD_ACKED];
	s.commands_failed = l->model.cmd_finished[CMD_FAILED];
	s.commands_superseded = l->model.cmd_finished[CMD_SUPERSEDED];
	s.failovers_open = l->model.failovers.n - l->model.nfo_done;
	s.fsm_applied = l->fsm.applied;
	s.fsm_rejected = l->fsm.rejected;
	s.fsm_undecodable = l->fsm.undecodable;
	s.snapshots = l->fsm.snapshots;
	if (lid != 0 && lid != l->stats.last_leader) {
		if (l->stats.last_leader != 0)
			l->stats.leader_changes++;
		l->stats.last_leader = lid;
	}
	s.leader_changes = l->stats.leader_changes;
	s.placed = l->stats.placed;
	s.place_refused = l->stats.place_refused;
	s.place = l->stats.place;
	s.failovers_completed = l->model.fo_finished[FO_COMPLETED];
	s.failovers_failed = l->model.fo_finished[FO_FAILED];
	s.failover = l->model.fo_duration;
	s.command_rtt = l->model.cmd_rtt;
	s.heartbeat_gap = l->edge.hb_gap;
	s.heartbeat_age_max_ms = (uint64_t)l->edge.hb_age_max_ms;
	pthread_mutex_lock(&l->lock);
	l->status = s;
	pthread_mutex_unlock(&l->lock);
}

/* After each loop iteration: publish the indices loop_projected_index reads,
 * then hand the iteration's batches to the store (in that order, so PostgreSQL
 * never shows an index above the published applied one), then release the
 * readers and writers that rowless entries alone kept waiting. */
static void flush_cb(uv_check_t *c)
{
	struct loop *l = c->data;
	leader_flush(l); /* what this iteration's callbacks proposed */
	pthread_mutex_lock(&l->lock);
	pub_write(l, raft_last_applied(&l->raft), l->fsm.rows_index);
	bool waiting = l->wait_head != NULL;
	pthread_mutex_unlock(&l->lock);
	fsm_flush(&l->fsm);
	if (l->view) {
		if (l->fsm.restores != l->view_restores) { /* a snapshot replaced the model */
			l->view_restores = l->fsm.restores;
			view_invalidate(l->view);
		}
		uint64_t applied = raft_last_applied(&l->raft);
		view_publish(l->view, &l->model, applied, applied < l->fsm.store_applied);
	}
	if (waiting)
		wake_waiters(l);
}

/* Before the loop polls: what timers proposed (flush_cb takes what I/O
 * callbacks proposed), so no proposal waits through a poll. */
static void propose_cb(uv_prepare_t *p)
{
	leader_flush(p->data);
}

static void close_cb(struct raft *r)
{
	struct loop *l = r->data;
	fsm_flush(&l->fsm);
	uv_close((uv_handle_t *)&l->flush, NULL);
	uv_close((uv_handle_t *)&l->propose, NULL);
	/* raft_uv_close and raftnet_close free memory raft_uv's own late
	 * callbacks still read: loop_close calls them once the loop has stopped. */
	raftio_close(&l->io);
	uv_close((uv_handle_t *)&l->wake, NULL);
	uv_close((uv_handle_t *)&l->tick, NULL);
}

static void begin_close(struct loop *l)
{
	fwd_close(&l->fwd); /* fails what was sent on and not answered (or parks it) */
	leader_close(l);
	/* After the leader's ops are failed (their JetStream messages go back
	 * unacked), before the connection goes. */
	outbox_release(&l->outbox);
	bus_close(&l->bus);
	expire_waiters(l, 0, true);
	uv_timer_stop(&l->tick);
	log_info("closing Raft");
	raft_close(&l->raft, close_cb);
}

static void on_heartbeat(void *arg, struct proto_hb *hb, int64_t now_ms)
{
	struct loop *l = arg;
	edge_heartbeat(&l->edge, hb, now_ms);
}

/* The leader publishes each applied event on lattice.L.evt.<kind> (core NATS,
 * best effort: docs/protocol.md "Events"); GET /v1/events has them all. */
static void publish_events(void *arg, const struct proj_batch *chain)
{
	struct loop *l = arg;
	if (l->view)
		view_note(l->view, chain);
	if (!l->bus.enabled || !l->edge.leading || !atomic_load(&l->bus.stats.connected))
		return;
	size_t n = 0, cap = 0;
	char **subjects = NULL, **bodies = NULL;
	for (const struct proj_batch *b = chain; b; b = b->next)
		for (const struct proj_change *c = b->head; c; c = c->next) {
			if (c->kind != PROJ_EVENT_INSERT || c->nparams < 8)
				continue;
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 16;
				char **s2 = realloc(subjects, nc * sizeof(*s2)), **b2 = s2 ? realloc(bodies, nc * sizeof(*b2)) : NULL;
				if (s2)
					subjects = s2;
				if (b2 == NULL)
					goto out;
				bodies = b2;
				cap = nc;
			}
			/* seq, raft_index, at_ms, who, kind, object_type, object_id, data */
			const char *const *p = (const char *const *)c->params;
			char token[80], at[40], subject[160];
			snprintf(token, sizeof(token), "%s", p[4] ? p[4] : "event");
			for (char *t = token; *t; t++)
				if (*t == '.')
					*t = '_';
			render_time(strtoll(p[2] ? p[2] : "0", NULL, 10), at, sizeof(at));
			proto_subject(subject, sizeof(subject), l->cfg->lattice, "evt", token);
			struct jw w;
			jw_init(&w);
			jw_obj(&w);
			jw_key(&w, "seq");
			jw_json(&w, p[0], strlen(p[0]));
			jw_key(&w, "index");
			jw_json(&w, p[1], strlen(p[1]));
			jw_key(&w, "at");
			jw_str(&w, at);
			jw_key(&w, "who");
			if (p[3])
				jw_str(&w, p[3]);
			else
				jw_null(&w);
			jw_key(&w, "kind");
			jw_str(&w, p[4]);
			jw_key(&w, "object_type");
			if (p[5])
				jw_str(&w, p[5]);
			else
				jw_null(&w);
			jw_key(&w, "object_id");
			if (p[6])
				jw_str(&w, p[6]);
			else
				jw_null(&w);
			jw_key(&w, "data");
			jw_json(&w, p[7] ? p[7] : "{}", p[7] ? strlen(p[7]) : 2);
			jw_obj_end(&w);
			bodies[n] = jw_take(&w, NULL);
			subjects[n] = strdup(subject);
			if (bodies[n] == NULL || subjects[n] == NULL) {
				free(bodies[n]);
				free(subjects[n]);
				goto out;
			}
			n++;
		}
out:
	if (n > 0) {
		bus_publish_core(&l->bus, subjects, bodies, n);
	} else {
		free(subjects);
		free(bodies);
	}
}

static void on_published(void *arg, const char *id, bool ok, const char *err)
{
	struct loop *l = arg;
	outbox_published(&l->outbox, id, ok, err);
}

static void on_snapshot(void *arg, struct proto_snap *snap, void *msg)
{
	struct loop *l = arg;
	edge_snapshot(&l->edge, snap, msg);
}

static void on_ack(void *arg, struct proto_ack *ack, void *msg)
{
	struct loop *l = arg;
	outbox_ack(&l->outbox, ack, msg);
}

static void tick_cb(uv_timer_t *t)
{
	struct loop *l = t->data;
	int64_t now = loop_now_ms();
	if (disk_check(&l->disk)) {
		if (disk_writable(&l->disk))
			log_info("the data dir %s has room again (%.1f MiB free): writes resume", l->cfg->data_dir,
				 (double)l->disk.last.free / (1024.0 * 1024.0));
		else
			log_error("%s", l->disk.reason);
	}
	loop_publish_status(l);
	expire_waiters(l, now, false);
	cluster_tick(l, now);
	leader_tick(l, now);
	edge_tick(&l->edge, now);
	outbox_tick(&l->outbox, now);
	failover_tick(&l->failover, now);
	if (l->closing) {
		pthread_mutex_lock(&l->lock);
		int inflight = l->inflight;
		pthread_mutex_unlock(&l->lock);
		if (inflight == 0 || now - l->close_started_ms > LOOP_SHUTDOWN_GRACE_MS)
			begin_close(l);
	}
}

static void wake_cb(uv_async_t *a)
{
	struct loop *l = a->data;
	pthread_mutex_lock(&l->lock);
	struct op *op = l->inbox_head;
	l->inbox_head = l->inbox_tail = NULL;
	bool closing = l->closing;
	pthread_mutex_unlock(&l->lock);
	while (op) {
		struct op *next = op->next;
		if (closing) {
			op_fail(op, 503, "shutting_down", "this replica is shutting down; retry on another");
			loop_finish(l, op);
		} else {
			leader_execute(l, op);
		}
		op = next;
	}
}

/* raftio: raft could not write its log. A full disk (RAFT_NOSPACE) is retried
 * once there is room again; anything else leaves raft's segment state unknown,
 * so writes stay refused until a restart re-reads the log. */
static void on_log_error(void *arg, int status, const char *message)
{
	struct loop *l = arg;
	log_error("raft could not write its log in %s: %s (%s)", l->cfg->data_dir, message, raft_strerror(status));
	disk_log_failed(&l->disk, message, status == RAFT_NOSPACE);
	if (!disk_writable(&l->disk))
		log_error("%s", l->disk.reason);
	loop_publish_status(l);
}

static void on_snapshot_error(void *arg, int status, size_t len)
{
	struct loop *l = arg;
	log_error("raft could not write a snapshot of %zu bytes in %s: %s", len, l->cfg->data_dir,
		  raft_strerror(status));
	/* Do not let raft retry it after every entry; wait for room for it. */
	if (!disk_snapshot_fits(&l->disk, len))
		log_error("%s", l->disk.reason);
	loop_publish_status(l);
}

static void on_snapshot_written(void *arg, size_t len)
{
	struct loop *l = arg;
	const struct fsm_snap *sn = &l->fsm.snap;
	if (sn->started.tv_sec == 0 && sn->started.tv_nsec == 0) {
		/* Not one of ours: the leader's, received by InstallSnapshot. */
		log_info("raft snapshot from the leader written: %zu bytes", len);
		return;
	}
	/* The pause is what writes waited for; the rest ran beside them. */
	log_info("raft snapshot taken at index %llu: %zu bytes (the loop paused %.1f ms; serialised in %.1f ms, "
		 "written in %.1f ms)",
		 (unsigned long long)sn->index, len, sn->pause_ms, sn->serialised_ms,
		 fsm_snap_elapsed_ms(sn) - sn->serialised_ms);
}

static bool snapshot_fits(void *arg, size_t len)
{
	struct loop *l = arg;
	if (disk_snapshot_fits(&l->disk, len))
		return true;
	log_error("raft snapshot at index %llu (%zu bytes) skipped: %s", (unsigned long long)l->fsm.snap.index,
		  len, l->disk.reason);
	loop_publish_status(l);
	return false;
}

/* ---- lifecycle ------------------------------------------------------------------------- */

int loop_init(struct loop *l, const struct config *cfg, struct store *store, char *err, size_t errlen)
{
	memset(l, 0, sizeof(*l));
	l->cfg = cfg;
	l->store = store;
	pthread_mutex_init(&l->lock, NULL);
	model_init(&l->model);
	l->view = view_new(); /* NULL (out of memory): reads stay on PostgreSQL */
	l->model.count_since_ms = loop_wallclock_ms(); /* metrics count what happens from now on */
	durhist_init(&l->stats.place, DURHIST_FAST);
	char host[256];
	int port;
	config_split_hostport(cfg->listen, host, sizeof(host), &port);
	if (cfg->api_url[0])
		snprintf(l->api_url, sizeof(l->api_url), "%s", cfg->api_url);
	else
		snprintf(l->api_url, sizeof(l->api_url), "http://%s", cfg->listen);
	snprintf(l->fwd_header, sizeof(l->fwd_header), "X-Lattice-Forwarded: %lld\r\n", (long long)cfg->id);
	int rv = uv_loop_init(&l->uv);
	if (rv != 0) {
		snprintf(err, errlen, "uv_loop_init: %s", uv_strerror(rv));
		return -1;
	}
	if ((rv = fwd_init(&l->fwd, &l->uv)) != 0) {
		snprintf(err, errlen, "fwd_init: %s", uv_strerror(rv));
		return -1;
	}
	l->fsm.raft = &l->raft;
	l->fsm.model = &l->model;
	l->fsm.store = store;
	l->fsm.store_applied = store ? store_applied_index(store) : 0;
	l->fsm.rows_index = l->fsm.store_applied;
	pub_write(l, 0, l->fsm.rows_index);
	l->fsm.proposed = leader_proposed;
	l->fsm.proposed_applied = leader_applied;
	l->fsm.proposed_arg = l;
	fsm_init(&l->rfsm, &l->fsm);
	if ((rv = raftnet_init(&l->net, &l->uv, &l->raft)) != 0) {
		snprintf(err, errlen, "raft transport: %s", raft_strerror(rv));
		return -1;
	}
	if ((rv = raft_uv_init(&l->io.io, &l->uv, cfg->data_dir, &l->net.transport)) != 0) {
		snprintf(err, errlen, "raft storage in %s: %s", cfg->data_dir, raft_strerror(rv));
		return -1;
	}
	raft_uv_set_segment_size(&l->io.io, LOOP_SEGMENT_SIZE);
	/* raft_uv's io_destroy blocks the loop 30-40 ms per closed segment. */
	if (aiodefer_enable() != 0)
		log_warn("cannot start the AIO reaper thread: closing a Raft log segment will pause writes");
	if ((rv = raftio_init(&l->io, &l->uv, &l->raft)) != 0) {
		snprintf(err, errlen, "raft storage: %s", uv_strerror(rv));
		return -1;
	}
	l->io.on_log_error = on_log_error;
	l->io.on_snapshot_error = on_snapshot_error;
	l->io.snapshot_fits = snapshot_fits;
	l->io.on_snapshot_written = on_snapshot_written;
	l->io.arg = l;
	disk_init(&l->disk, cfg->data_dir, LOOP_SEGMENT_SIZE, (uint64_t)cfg->disk_reserve_mb * 1024 * 1024);
	l->fsm.disk = &l->disk;
	if (disk_check(&l->disk))
		log_error("%s", l->disk.reason);
	/* A corrupt segment must stop the replica, not be renamed away with the
	 * committed entries in it (raft's default "auto recovery"). */
	raft_uv_set_auto_recovery(&l->io.io, false);
	/* Snapshots are taken on this thread; LZ4 over tens of MB stalls every write
	 * behind it, and disk is cheaper than that latency. */
	raft_uv_set_snapshot_compression(&l->io.io, false);
	if ((rv = raft_init(&l->raft, &l->io.io, &l->rfsm, (raft_id)cfg->id, cfg->raft_address)) != 0) {
		snprintf(err, errlen, "raft_init: %s", raft_errmsg(&l->raft));
		return -1;
	}
	l->raft.data = l;
	raft_set_election_timeout(&l->raft, 500);
	raft_set_heartbeat_timeout(&l->raft, 50);
	raft_set_snapshot_threshold(&l->raft, (unsigned)cfg->snapshot_threshold);
	/* raft 0.15 takes a snapshot put with 0 trailing entries for an installed
	 * one: raft_uv moves the log's next index back to the snapshot's index + 1
	 * while entries past it are already written, and a restart then lost the
	 * newest acknowledged writes (tests/integration/trailing.sh). Keep one. */
	raft_set_snapshot_trailing(&l->raft, cfg->snapshot_trailing > 0 ? (unsigned)cfg->snapshot_trailing : 1);
	raft_set_pre_vote(&l->raft, true);
	if (cfg->bootstrap) {
		/* Every replica bootstraps the same configuration (the same --members
		 * list), so they all start from the same first entry. */
		struct raft_configuration conf;
		struct members ms = {.n = 0};
		raft_configuration_init(&conf);
		rv = 0;
		if (cfg->members[0] && members_parse(cfg->members, &ms, err, errlen) != 0)
			return -1;
		if (ms.n == 0)
			rv = raft_configuration_add(&conf, (raft_id)cfg->id, cfg->raft_address, RAFT_VOTER);
		else
			for (size_t i = 0; rv == 0 && i < ms.n; i++)
				rv = raft_configuration_add(&conf, ms.m[i].id, ms.m[i].address, RAFT_VOTER);
		if (rv == 0)
			rv = raft_bootstrap(&l->raft, &conf);
		raft_configuration_close(&conf);
		if (rv == 0 && ms.n > 1)
			log_info("bootstrapped a new group of %zu voters (--members %s)", ms.n, cfg->members);
		else if (rv == 0)
			log_info("bootstrapped a new group with replica %lld (%s) as its only voter",
				 (long long)cfg->id, cfg->raft_address);
		else if (rv == RAFT_CANTBOOTSTRAP)
			log_info("data dir %s already holds a group: resuming it", cfg->data_dir);
		else {
			snprintf(err, errlen, "raft_bootstrap: %s", raft_strerror(rv));
			return -1;
		}
	}
	uv_async_init(&l->uv, &l->wake, wake_cb);
	l->wake.data = l;
	uv_timer_init(&l->uv, &l->tick);
	l->tick.data = l;
	uv_check_init(&l->uv, &l->flush);
	l->flush.data = l;
	uv_check_start(&l->flush, flush_cb);
	uv_prepare_init(&l->uv, &l->propose);
	l->propose.data = l;
	uv_prepare_start(&l->propose, propose_cb);
	edge_init(&l->edge, l, cfg->nats[0] != '\0');
	l->fsm.flushing = publish_events;
	l->fsm.flushing_arg = l;
	outbox_init(&l->outbox, l, cfg->nats[0] != '\0');
	failover_init(&l->failover, l);
	struct bus_cbs cbs = {.arg = l, .heartbeat = on_heartbeat, .published = on_published, .ack = on_ack,
				.snapshot = on_snapshot};
	if (bus_init(&l->bus, cfg, &l->uv, &cbs, err, errlen) != 0)
		return -1;
	if ((rv = raft_start(&l->raft)) != 0) {
		snprintf(err, errlen, "raft_start: %s (%s)", raft_strerror(rv), raft_errmsg(&l->raft));
		return -1;
	}
	uv_timer_start(&l->tick, tick_cb, LOOP_TICK_MS, LOOP_TICK_MS);
	loop_publish_status(l);
	log_info("raft started: id %lld at %s, log up to index %llu", (long long)cfg->id, cfg->raft_address,
		 (unsigned long long)raft_last_index(&l->raft));
	return 0;
}

int loop_run(struct loop *l)
{
	return uv_run(&l->uv, UV_RUN_DEFAULT);
}

void loop_stop(struct loop *l)
{
	pthread_mutex_lock(&l->lock);
	bool was = l->closing;
	l->closing = true;
	pthread_mutex_unlock(&l->lock);
	if (!was) {
		l->close_started_ms = loop_now_ms();
		uv_async_send(&l->wake);
	}
}

void loop_close(struct loop *l)
{
	raft_uv_close(&l->io.io);
	raftnet_close(&l->net);
	uv_loop_close(&l->uv);
	edge_release(&l->edge);
	outbox_release(&l->outbox);
	failover_release(&l->failover);
	model_release(&l->model);
	view_free(l->view);
	l->view = NULL;
	pthread_mutex_destroy(&l->lock);
}

void loop_status(struct loop *l, struct loop_status *out)
{
	pthread_mutex_lock(&l->lock);
	*out = l->status;
	pthread_mutex_unlock(&l->lock);
}
