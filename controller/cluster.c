#include "cluster.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "loop.h"
#include "leader.h"
#include "ops.h"
#include "render.h"
#include "store.h"

#define CLUSTER_JOIN_RETRY_MS 1000
#define CLUSTER_JOIN_TIMEOUT_MS 60000 /* the leader answers once this replica caught up */
#define CLUSTER_ANNOUNCE_RETRY_MS 1000
#define CLUSTER_LOG_EVERY_MS 10000
#define CLUSTER_FORWARD_GRACE_MS 2000

static const struct raft_server *conf_server(const struct raft_configuration *c, raft_id id)
{
	for (unsigned i = 0; i < c->n; i++)
		if (c->servers[i].id == id)
			return &c->servers[i];
	return NULL;
}

static unsigned conf_voters(const struct raft_configuration *c)
{
	unsigned n = 0;
	for (unsigned i = 0; i < c->n; i++)
		n += c->servers[i].role == RAFT_VOTER;
	return n;
}

/* The leader's id and REST URL as this replica knows them; 0 when none. */
static raft_id leader_url(struct loop *l, const char **url)
{
	raft_id id = 0;
	const char *addr = NULL;
	raft_leader(&l->raft, &id, &addr);
	*url = id ? model_member_url(&l->model, id) : NULL;
	return id;
}

/* The "error":{"code"} of a JSON answer into code ("" when none). */
static void answer_code(const char *body, char *code, size_t len)
{
	code[0] = '\0';
	json_t *j = body ? json_loads(body, 0, NULL) : NULL;
	const char *c = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
	if (c)
		snprintf(code, len, "%s", c);
	json_decref(j);
}

/* ---- sending requests on to the leader ------------------------------------------ */

static void forwarded_cb(struct fwd_req *r)
{
	struct op *op = r->data;
	struct loop *l = op->loop;
	raft_id lid = 0;
	const char *url = NULL;
	lid = leader_url(l, &url);
	if (r->outcome == FWD_NOT_SENT) {
		/* Nothing reached it (the leader may have just died): wait for the next. */
		log_debug("sending %s %s to the leader: %s; waiting for a leader", op->raw.method, op->raw.target,
			  r->err);
		fwd_req_release(r);
		leader_park(l, op);
		return;
	}
	if (r->outcome == FWD_NO_ANSWER) {
		if (op->kind == OP_READ_BARRIER)
			op_fail(op, 503, "no_leader", "the leader did not confirm the read (%s); retry", r->err);
		else
			op_fail(op, 503, "unavailable",
				"the leader did not answer (%s); the write may or may not have been applied — read "
				"it back before retrying",
				r->err);
		snprintf(op->retry_after, sizeof(op->retry_after), "1");
		fwd_req_release(r);
		loop_finish(l, op);
		return;
	}
	char code[40];
	if (r->status == 503) {
		answer_code(r->body_out, code, sizeof(code));
		/* It stopped being the leader before it could take it. */
		if (strcmp(code, "not_leader") == 0 || strcmp(code, "no_leader") == 0) {
			fwd_req_release(r);
			leader_park(l, op);
			return;
		}
	}
	if (op->kind == OP_READ_BARRIER) {
		if (r->status != 200) {
			answer_code(r->body_out, code, sizeof(code));
			op_fail(op, r->status >= 500 ? r->status : 503, code[0] ? code : "no_leader",
				"the leader (replica %llu) could not confirm a consistent read: HTTP %d",
				(unsigned long long)lid, r->status);
			fwd_req_release(r);
			loop_finish(l, op);
			return;
		}
		json_t *j = json_loads(r->body_out ? r->body_out : "", 0, NULL);
		json_int_t idx = json_integer_value(json_object_get(j, "index"));
		json_decref(j);
		fwd_req_release(r);
		if ((uint64_t)idx > op->index)
			op->index = (uint64_t)idx;
		loop_wait_projection(l, op);
		return;
	}
	op->relayed = true;
	op->relay_status = r->status;
	op->relay_index = r->index;
	snprintf(op->relay_type, sizeof(op->relay_type), "%s", r->content_type_out);
	snprintf(op->relay_location, sizeof(op->relay_location), "%s", r->location);
	snprintf(op->retry_after, sizeof(op->retry_after), "%s", r->retry_after);
	free(op->object_text);
	op->object_text = r->body_out;
	r->body_out = NULL;
	loop_finish(l, op);
}

bool cluster_forward(struct loop *l, struct op *op)
{
	const char *url = NULL;
	raft_id lid = leader_url(l, &url);
	if (lid == 0 || lid == l->raft.id || url == NULL)
		return false;
	struct fwd_req *r = &op->fwd;
	memset(r, 0, sizeof(*r));
	if (op->kind == OP_READ_BARRIER) {
		r->method = "POST";
		r->target = "/v1/cluster/read-index";
	} else {
		r->method = op->raw.method;
		r->target = op->raw.target;
		r->body = op->raw.body;
		r->body_len = op->raw.body_len;
		r->content_type = op->raw.content_type;
	}
	r->extra_headers = l->fwd_header;
	if (op->raw.idem_key) {
		snprintf(op->fwd_headers, sizeof(op->fwd_headers), "%sIdempotency-Key: %s\r\n", l->fwd_header,
			 op->raw.idem_key);
		r->extra_headers = op->fwd_headers;
	}
	/* The leader answers by the same deadline (503 commit_timeout or
	 * projection_lagging, with the write's index): wait a little longer, so its
	 * answer, not our timeout, is what the client gets. */
	int64_t left = op->deadline_ms - loop_now_ms();
	r->timeout_ms = (left > 100 ? left : 100) + CLUSTER_FORWARD_GRACE_MS;
	r->cb = forwarded_cb;
	r->data = op;
	leader_to(op, OP_FORWARDED);
	fwd_send(&l->fwd, url, r);
	return true;
}

/* ---- membership changes on the leader -------------------------------------------- */

static void member_step(struct loop *l, struct op *op);

static void change_failed(struct loop *l, struct op *op, int status, const char *what)
{
	if (status == RAFT_CANTCHANGE || status == RAFT_NOTLEADER || status == RAFT_LEADERSHIPLOST) {
		/* Another change in progress, or an election: try again shortly. */
		leader_park(l, op);
		return;
	}
	op_fail(op, 503, "unavailable", "%s server %llu: raft: %s", what, (unsigned long long)op->entry.member_id,
		raft_strerror(status));
	loop_finish(l, op);
}

static void change_cb(struct raft_change *req, int status)
{
	struct op *op = req->data;
	struct loop *l = op->loop;
	if (status != 0) {
		change_failed(l, op, status,
			      op->kind == OP_MEMBER_REMOVE ? "removing" : "adding");
		return;
	}
	member_step(l, op);
}

/* Answers a membership op with the cluster as it is now. */
static void answer_cluster(struct loop *l, struct op *op)
{
	free(op->object_text);
	op->object_text = cluster_render(l);
	if (op->object_text == NULL)
		op_fail(op, 503, "out_of_memory", "out of memory");
	op->index = raft_last_applied(&l->raft);
	loop_wait_projection(l, op);
}

/* One step toward what OP_MEMBER_ADD / OP_MEMBER_REMOVE asks; called again
 * after each raft change, so it reads from the configuration where it is. */
static void member_step(struct loop *l, struct op *op)
{
	const struct raft_configuration *conf = &l->raft.configuration;
	raft_id id = op->entry.member_id;
	const struct raft_server *s = conf_server(conf, id);
	int rv;
	op->change.data = op;
	if (op->kind == OP_MEMBER_REMOVE) {
		if (s != NULL) {
			if (s->role == RAFT_VOTER && conf_voters(conf) == 1) {
				op_fail(op, 409, "conflict", "server %llu is the group's only voter", (unsigned long long)id);
				loop_finish(l, op);
				return;
			}
			leader_to(op, OP_CHANGING);
			if ((rv = raft_remove(&l->raft, &op->change, id, change_cb)) != 0)
				change_failed(l, op, rv, "removing");
			return;
		}
		if (model_member_url(&l->model, id) != NULL && raft_state(&l->raft) == RAFT_LEADER) {
			op->entry.op = ENTRY_MEMBER_DELETE;
			leader_propose(l, op);
			return;
		}
		answer_cluster(l, op);
		return;
	}
	if (s == NULL) {
		for (unsigned i = 0; i < conf->n; i++)
			if (strcmp(conf->servers[i].address, op->raft_address) == 0) {
				op_fail(op, 409, "conflict", "server %llu already has the Raft address %s",
					(unsigned long long)conf->servers[i].id, op->raft_address);
				loop_finish(l, op);
				return;
			}
		leader_to(op, OP_CHANGING);
		if ((rv = raft_add(&l->raft, &op->change, id, op->raft_address, change_cb)) != 0) {
			change_failed(l, op, rv, "adding");
			return;
		}
		op->entry.flag = 1; /* answered 201: a new member */
		log_info("adding server %llu at %s (%s) as a spare", (unsigned long long)id, op->raft_address,
			 op->entry.api_url);
		return;
	}
	if (strcmp(s->address, op->raft_address) != 0) {
		op_fail(op, 409, "conflict",
			"server %llu is a member at %s, not %s; remove it first to change its address",
			(unsigned long long)id, s->address, op->raft_address);
		loop_finish(l, op);
		return;
	}
	if (s->role != RAFT_VOTER) {
		/* raft catches it up before the configuration making it a voter. */
		leader_to(op, OP_CHANGING);
		if ((rv = raft_assign(&l->raft, &op->change, id, RAFT_VOTER, change_cb)) != 0) {
			change_failed(l, op, rv, "promoting");
			return;
		}
		log_info("promoting server %llu to voter (once it has caught up)", (unsigned long long)id);
		return;
	}
	const char *have = model_member_url(&l->model, id);
	if (have == NULL || strcmp(have, op->entry.api_url) != 0) {
		op->entry.op = ENTRY_MEMBER_PUT;
		leader_propose(l, op);
		return;
	}
	answer_cluster(l, op);
}

static void transfer_cb(struct raft_transfer *req)
{
	struct op *op = req->data;
	struct loop *l = op->loop;
	raft_id lid = 0;
	const char *addr = NULL;
	raft_leader(&l->raft, &lid, &addr);
	if (lid == l->raft.id) {
		op_fail(op, 503, "unavailable", "leadership was not handed over in time; this replica is still the leader");
		loop_finish(l, op);
		return;
	}
	log_info("leadership handed over to server %llu", (unsigned long long)lid);
	free(op->object_text);
	op->object_text = cluster_render(l);
	if (op->object_text == NULL)
		op_fail(op, 503, "out_of_memory", "out of memory");
	loop_finish(l, op);
}

void cluster_execute(struct loop *l, struct op *op)
{
	op->loop = l;
	const struct raft_configuration *conf = &l->raft.configuration;
	switch (op->kind) {
	case OP_READ_INDEX:
		leader_read_barrier(l, op);
		return;
	case OP_MEMBER_ADD:
	case OP_MEMBER_REMOVE:
		member_step(l, op);
		return;
	case OP_TRANSFER: {
		raft_id to = op->transfer_to;
		if (to != 0) {
			const struct raft_server *s = conf_server(conf, to);
			if (s == NULL) {
				op_fail(op, 404, "not_found", "server %llu is not a member", (unsigned long long)to);
				loop_finish(l, op);
				return;
			}
			if (s->role != RAFT_VOTER) {
				op_fail(op, 409, "conflict", "server %llu is not a voter", (unsigned long long)to);
				loop_finish(l, op);
				return;
			}
			if (to == l->raft.id) { /* it leads already: nothing to hand over */
				free(op->object_text);
				op->object_text = cluster_render(l);
				if (op->object_text == NULL)
					op_fail(op, 503, "out_of_memory", "out of memory");
				loop_finish(l, op);
				return;
			}
		} else if (conf_voters(conf) < 2) {
			op_fail(op, 409, "conflict", "there is no other voter to hand leadership to");
			loop_finish(l, op);
			return;
		}
		op->transfer.data = op;
		leader_to(op, OP_CHANGING);
		int rv = raft_transfer(&l->raft, &op->transfer, to, transfer_cb);
		if (rv != 0) {
			op_fail(op, 503, "unavailable", "cannot hand leadership over: raft: %s", raft_strerror(rv));
			loop_finish(l, op);
		}
		return;
	}
	default:
		return;
	}
}

/* ---- this replica's own requests: joining, recording its URL --------------------- */

static void call_cb(struct fwd_req *r)
{
	struct cluster_call *c = r->data;
	struct loop *l = c->loop;
	int64_t now = loop_now_ms();
	c->inflight = false;
	bool is_join = c == &l->cluster.join;
	if (r->outcome == FWD_OK && (r->status == 200 || r->status == 201)) {
		if (is_join)
			log_info("joined the group through %s", l->cfg->join);
		c->next_ms = now + (is_join ? CLUSTER_JOIN_RETRY_MS : CLUSTER_ANNOUNCE_RETRY_MS);
	} else {
		if (now - c->last_log_ms >= CLUSTER_LOG_EVERY_MS) {
			c->last_log_ms = now;
			if (r->outcome != FWD_OK)
				log_warn("%s: %s; retrying", is_join ? "joining the group" : "recording this replica's URL",
					 r->err);
			else
				log_warn("%s: HTTP %d %.300s; retrying",
					 is_join ? "joining the group" : "recording this replica's URL", r->status,
					 r->body_out ? r->body_out : "");
		}
		c->next_ms = now + (is_join ? CLUSTER_JOIN_RETRY_MS : CLUSTER_ANNOUNCE_RETRY_MS);
	}
	fwd_req_release(r);
}

static void send_call(struct loop *l, struct cluster_call *c, const char *url, bool forwarded, int64_t timeout)
{
	snprintf(c->body, sizeof(c->body), "{\"id\":%llu,\"raft_address\":\"%s\",\"api_url\":\"%s\"}",
		 (unsigned long long)l->raft.id, l->cfg->raft_address, l->api_url);
	memset(&c->req, 0, sizeof(c->req));
	c->loop = l;
	c->req.method = "POST";
	c->req.target = "/v1/cluster/members";
	c->req.body = c->body;
	c->req.body_len = strlen(c->body);
	c->req.content_type = "application/json";
	c->req.extra_headers = forwarded ? l->fwd_header : NULL;
	c->req.timeout_ms = timeout;
	c->req.cb = call_cb;
	c->req.data = c;
	c->inflight = true;
	fwd_send(&l->fwd, url, &c->req);
}

static void self_done(struct op *op)
{
	struct loop *l = op->done_arg;
	l->cluster.self_put_inflight = false;
	if (op->http_status)
		log_warn("recording this replica's URL: %s", op->message);
	op_release(op);
	free(op);
}

/* ---- the leader's view of its members ------------------------------------------------- */

static void poll_cb(struct fwd_req *r)
{
	struct cluster_peer *p = r->data;
	p->inflight = false;
	if (r->outcome == FWD_OK && r->status == 200) {
		json_t *j = json_loads(r->body_out ? r->body_out : "", 0, NULL);
		/* Raft indices are printed as exact unsigned numbers (render.h). */
		json_t *ja = json_object_get(j, "applied_index"), *jp = json_object_get(j, "projected_index");
		if (json_is_integer(ja) && json_is_integer(jp)) {
			p->pg_ok = json_is_true(json_object_get(json_object_get(j, "self"), "postgresql_ok"));
			p->applied = (uint64_t)json_integer_value(ja);
			p->projected = (uint64_t)json_integer_value(jp);
			p->last_ok_ms = loop_now_ms();
			p->ever = true;
			p->err[0] = '\0';
		}
		json_decref(j);
	} else {
		snprintf(p->err, sizeof(p->err), "%s", r->outcome != FWD_OK ? r->err : "not HTTP 200");
	}
	fwd_req_release(r);
}

static void poll_members(struct loop *l, int64_t now)
{
	struct cluster *c = &l->cluster;
	const struct raft_configuration *conf = &l->raft.configuration;
	/* Forget peers that left. */
	for (size_t i = 0; i < MEMBERS_MAX; i++)
		if (c->peers[i].used && !c->peers[i].inflight && conf_server(conf, c->peers[i].id) == NULL)
			c->peers[i].used = false;
	for (unsigned i = 0; i < conf->n; i++) {
		raft_id id = conf->servers[i].id;
		if (id == l->raft.id)
			continue;
		const char *url = model_member_url(&l->model, id);
		struct cluster_peer *p = NULL, *free_slot = NULL;
		for (size_t k = 0; k < MEMBERS_MAX; k++) {
			if (c->peers[k].used && c->peers[k].id == id)
				p = &c->peers[k];
			else if (!c->peers[k].used && free_slot == NULL)
				free_slot = &c->peers[k];
		}
		if (p == NULL) {
			if (free_slot == NULL)
				continue;
			p = free_slot;
			memset(p, 0, sizeof(*p));
			p->used = true;
			p->id = id;
			p->loop = l;
		}
		if (p->inflight || url == NULL)
			continue;
		memset(&p->req, 0, sizeof(p->req));
		p->req.method = "GET";
		p->req.target = "/v1/cluster";
		p->req.timeout_ms = CLUSTER_POLL_MS;
		p->req.cb = poll_cb;
		p->req.data = p;
		p->inflight = true;
		fwd_send(&l->fwd, url, &p->req);
	}
	c->next_poll_ms = now + CLUSTER_POLL_MS;
}

/* ---- a replica that missed a membership change ------------------------------ */

static void learn_cb(struct fwd_req *r)
{
	struct cluster_call *c = r->data;
	struct loop *l = c->loop;
	c->inflight = false;
	c->next_ms = loop_now_ms() + CLUSTER_JOIN_RETRY_MS;
	json_t *j = r->outcome == FWD_OK && r->status == 200 ? json_loads(r->body_out, 0, NULL) : NULL;
	fwd_req_release(r);
	json_t *ms = json_object_get(j, "members");
	struct raft_configuration conf;
	raft_configuration_init(&conf);
	size_t i;
	json_t *m;
	int rv = json_is_array(ms) && json_array_size(ms) > 0 ? 0 : -1;
	json_array_foreach(ms, i, m)
	{
		json_int_t id = json_integer_value(json_object_get(m, "id"));
		const char *addr = json_string_value(json_object_get(m, "address"));
		const char *role = json_string_value(json_object_get(m, "role"));
		if (rv != 0 || id < 1 || addr == NULL || members_address_valid(addr) != 0 || role == NULL) {
			rv = -1;
			break;
		}
		int r2 = strcmp(role, "voter") == 0 ? RAFT_VOTER : strcmp(role, "standby") == 0 ? RAFT_STANDBY : RAFT_SPARE;
		rv = raft_configuration_add(&conf, (raft_id)id, addr, r2);
	}
	json_decref(j);
	if (rv == 0 && raftnet_learn(&l->net, &conf) == 0)
		log_info("learned the group's configuration (%u servers) from a member's API", conf.n);
	raft_configuration_close(&conf);
}

/* Asks a member's API (the leader's, else any other) for the configuration. */
static void learn_configuration(struct loop *l, int64_t now)
{
	struct cluster_call *c = &l->cluster.learn;
	if (c->inflight || now < c->next_ms)
		return;
	const char *url = NULL;
	leader_url(l, &url);
	for (size_t i = 0; url == NULL && i < l->model.nmembers; i++)
		if (l->model.members[i].id != l->raft.id)
			url = l->model.members[i].api_url;
	if (url == NULL)
		return;
	memset(&c->req, 0, sizeof(c->req));
	c->loop = l;
	c->req.method = "GET";
	c->req.target = "/v1/cluster";
	c->req.timeout_ms = CLUSTER_POLL_MS;
	c->req.cb = learn_cb;
	c->req.data = c;
	c->inflight = true;
	c->next_ms = now + CLUSTER_JOIN_RETRY_MS;
	fwd_send(&l->fwd, url, &c->req);
}

/* ---- the leader steps aside when it cannot do its job ---------------------------- */

static void handoff_cb(struct raft_transfer *req)
{
	struct loop *l = req->data;
	l->cluster.handoff_inflight = false;
	raft_id lid = 0;
	const char *addr = NULL;
	raft_leader(&l->raft, &lid, &addr);
	if (lid != l->raft.id)
		log_warn("handed leadership to server %llu", (unsigned long long)lid);
}

static void maybe_handoff(struct loop *l, int64_t now)
{
	struct cluster *c = &l->cluster;
	const char *why = NULL;
	if (l->store && !store_healthy(l->store))
		why = "this replica cannot reach its PostgreSQL";
	else if (!disk_writable(&l->disk))
		why = l->disk.reason;
	if (why == NULL) {
		c->unhealthy_since_ms = 0;
		return;
	}
	if (c->unhealthy_since_ms == 0)
		c->unhealthy_since_ms = now;
	if (c->handoff_inflight || now - c->unhealthy_since_ms < CLUSTER_HANDOFF_AFTER_MS || now < c->next_handoff_ms)
		return;
	c->next_handoff_ms = now + CLUSTER_HANDOFF_RETRY_MS;
	/* The most up-to-date voter that answered lately and can reach its PostgreSQL. */
	const struct cluster_peer *best = NULL;
	for (size_t k = 0; k < MEMBERS_MAX; k++) {
		const struct cluster_peer *p = &c->peers[k];
		const struct raft_server *s = p->used ? conf_server(&l->raft.configuration, p->id) : NULL;
		if (s == NULL || s->role != RAFT_VOTER || !p->ever || !p->pg_ok ||
		    now - p->last_ok_ms > CLUSTER_REACHABLE_MS)
			continue;
		if (best == NULL || p->applied > best->applied)
			best = p;
	}
	if (best == NULL) {
		log_warn("leader unhealthy (%s), and no other voter is reachable and healthy to take over", why);
		return;
	}
	log_warn("leader unhealthy (%s): handing leadership to server %llu", why, (unsigned long long)best->id);
	c->handoff.data = l;
	if (raft_transfer(&l->raft, &c->handoff, best->id, handoff_cb) == 0)
		c->handoff_inflight = true;
}

void cluster_tick(struct loop *l, int64_t now)
{
	struct cluster *c = &l->cluster;
	if (l->closing)
		return;
	const struct raft_configuration *conf = &l->raft.configuration;
	bool member = conf_server(conf, l->raft.id) != NULL;
	/* --join: until a leader has added this replica, once. A replica that was a
	 * member (or started on a data dir that holds a group) and is not any more
	 * was removed: it does not ask to come back by itself. */
	if (member || conf->n > 0)
		c->joined = true;
	if (l->cfg->join[0] && !c->joined && !c->join.inflight && now >= c->join.next_ms)
		send_call(l, &c->join, l->cfg->join, false, CLUSTER_JOIN_TIMEOUT_MS);
	const char *mine = model_member_url(&l->model, l->raft.id);
	bool recorded = mine != NULL && strcmp(mine, l->api_url) == 0;
	if (l->net.want_learn)
		learn_configuration(l, now);
	if (raft_state(&l->raft) == RAFT_LEADER) {
		maybe_handoff(l, now);
		if (l->status.writable && !recorded && member && !c->self_put_inflight) {
			struct op *op = calloc(1, sizeof(*op));
			if (op != NULL) {
				op_init(op, OP_MEMBER_ADD);
				op->entry.member_id = l->raft.id;
				snprintf(op->raft_address, sizeof(op->raft_address), "%s", l->cfg->raft_address);
				op->entry.api_url = strdup(l->api_url);
				op->done = self_done;
				op->done_arg = l;
				op->deadline_ms = now + l->cfg->write_timeout_ms;
				c->self_put_inflight = true;
				loop_submit(l, op);
			}
		}
		if (now >= c->next_poll_ms)
			poll_members(l, now);
		return;
	}
	const char *url = NULL;
	raft_id lid = leader_url(l, &url);
	if (member && !recorded && lid != 0 && url != NULL && !c->announce.inflight && now >= c->announce.next_ms)
		send_call(l, &c->announce, url, true, l->cfg->write_timeout_ms);
}

void cluster_close(struct loop *l)
{
	(void)l; /* fwd_close fails what is in flight */
}

char *cluster_render(struct loop *l)
{
	struct cluster *c = &l->cluster;
	raft_id lid = 0;
	const char *laddr = NULL;
	raft_leader(&l->raft, &lid, &laddr);
	const struct raft_configuration *conf = &l->raft.configuration;
	struct render_member ms[MEMBERS_MAX + 1];
	size_t n = 0;
	bool leader = raft_state(&l->raft) == RAFT_LEADER;
	int64_t now = loop_now_ms();
	uint64_t applied = 0, projected = 0;
	loop_indices(l, &applied, &projected);
	for (unsigned i = 0; i < conf->n && n < MEMBERS_MAX + 1; i++) {
		raft_id id = conf->servers[i].id;
		struct render_member *m = &ms[n++];
		memset(m, 0, sizeof(*m));
		m->id = id;
		m->api_url = model_member_url(&l->model, id);
		m->reachable = -1;
		if (id == l->raft.id) {
			m->reachable = 1;
			m->indices = true;
			m->applied_index = raft_last_applied(&l->raft);
			m->projected_index = projected;
			continue;
		}
		if (!leader)
			continue;
		m->reachable = 0;
		for (size_t k = 0; k < MEMBERS_MAX; k++) {
			const struct cluster_peer *p = &c->peers[k];
			if (!p->used || p->id != id || !p->ever)
				continue;
			m->reachable = now - p->last_ok_ms <= CLUSTER_REACHABLE_MS;
			m->indices = true;
			m->applied_index = p->applied;
			m->projected_index = p->projected;
		}
	}
	struct render_cluster rc = {
		.leader_id = lid,
		.leader_address = laddr,
		.self_id = l->raft.id,
		.state = raft_state(&l->raft),
		.api_url = l->api_url,
		.term = l->raft.current_term,
		.commit_index = l->raft.commit_index,
		.applied_index = raft_last_applied(&l->raft),
		.projected_index = projected,
		.conf = conf,
		.members = ms,
		.nmembers = n,
		.self_pg_ok = l->store ? store_healthy(l->store) : -1,
	};
	return render_cluster(&rc);
}
