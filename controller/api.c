/* api — routing, reads and the replica's own answers (health, metrics, the
 * dashboard's files); writes are in api_write.c. */
#include "api_call.h"
#include "chaosrep.h"
#include "ui.h"

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "log.h"
#include "loop.h"
#include "ops.h"
#include "query.h"
#include "spec.h"
#include "sse.h"
#include "store.h"
#include "view.h"

/* ---- small helpers --------------------------------------------------------------- */

static void call_free(void *p)
{
	struct api_call *c = p;
	if (c == NULL)
		return;
	op_release(&c->op);
	json_decref(c->pg_resp.body);
	free(c->pg_resp.text);
	json_decref(c->pg_json);
	free(c);
}

static void call_done(struct op *op)
{
	struct api_call *c = op->done_arg;
	atomic_store(&c->done, true);
	/* After this the request may be freed by another thread: touch nothing. */
	http_resume(c->req);
}

/* What this replica's PostgreSQL shows (rowless entries counted): the index
 * a read at least reflects. */
uint64_t api_projected(struct api *a)
{
	return loop_projected_index(a->loop);
}

void api_resp_json(struct api *a, struct http_resp *resp, int status, json_t *body)
{
	resp->status = status;
	resp->body = body;
	resp->index = api_projected(a);
}

/* The leader's answer to a request this replica sent on, as it came. */
enum http_next api_relay(struct http_resp *resp, struct op *op)
{
	resp->status = op->relay_status;
	resp->text = op->object_text;
	op->object_text = NULL;
	resp->content_type = op->relay_type[0] ? op->relay_type : NULL;
	snprintf(resp->location, sizeof(resp->location), "%s", op->relay_location);
	snprintf(resp->retry_after, sizeof(resp->retry_after), "%s", op->retry_after);
	resp->index = op->relay_index;
	return HTTP_RESPOND;
}

/* An op's error as the answer. */
void api_op_error(struct http_resp *resp, const struct op *op)
{
	http_error(resp, op->http_status, op->code, "%s", op->message);
	snprintf(resp->retry_after, sizeof(resp->retry_after), "%s", op->retry_after);
}

void api_err_spec(struct http_resp *resp, const struct spec_err *e)
{
	int status = strcmp(e->code, "out_of_memory") == 0 ? 503 : 400;
	http_error(resp, status, e->code, "%s", e->message);
}

static void err_query(struct http_resp *resp, int rc, const char *msg)
{
	if (rc == QUERY_UNAVAILABLE)
		http_error(resp, 503, "database_unavailable", "this replica cannot reach its PostgreSQL: %s", msg);
	else if (rc == QUERY_TIMEOUT)
		http_error(resp, 503, "database_unavailable",
			   "this replica's PostgreSQL did not answer the read in time (--pg-read-timeout-ms): %s", msg);
	else
		http_error(resp, 500, "internal", "query failed: %s", msg);
}

/* Hands the op to the loop and suspends the request until it is done. The
 * request as sent goes with it, in case the loop sends it on to the leader. */
enum http_next api_submit(struct api *a, struct http_req *req, struct api_call *call, int64_t timeout_ms)
{
	struct op_raw *raw = &call->op.raw;
	raw->method = req->method;
	raw->target = req->path ? req->path : req->url;
	raw->body = req->body;
	raw->body_len = req->body_len;
	raw->content_type = http_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
	raw->forwarded = http_header(req, API_FORWARDED_HEADER) != NULL;
	raw->idem_key = call->op.entry.idem_key;
	call->submitted = true;
	call->req = req;
	call->op.done = call_done;
	call->op.done_arg = call;
	call->op.deadline_ms = loop_now_ms() + timeout_ms;
	http_suspend(req);
	loop_submit(a->loop, &call->op);
	return HTTP_SUSPEND;
}

/* On a read thread: the read, then the request goes on. */
static void pg_job(struct workq_job *j)
{
	struct api_call *call = (struct api_call *)(void *)((char *)j - offsetof(struct api_call, job));
	call->pg(call->api, call);
	call->pg_done = true;
	/* After this the request may be freed by another thread: touch nothing. */
	http_resume(call->req);
}

enum http_next api_pg_defer(struct api *a, struct http_req *req, struct api_call *call, struct http_resp *resp,
			    api_pg_fn pg)
{
	call->api = a;
	call->req = req;
	call->pg = pg;
	call->pg_done = false;
	call->job.fn = pg_job;
	if (a->reads == NULL) { /* no read threads: here */
		pg(a, call);
		call->pg_done = true;
		return call->route->fn(a, req, call, resp);
	}
	http_suspend(req);
	if (workq_submit(a->reads, &call->job) != 0) {
		/* Both forms of a result: handlers that go on with pg_rc (events,
		 * a write's read-back) and those that move pg_resp. */
		http_error(&call->pg_resp, 503, "shutting_down", "this replica is shutting down; retry on another");
		call->pg_rc = QUERY_UNAVAILABLE;
		snprintf(call->pg_err, sizeof(call->pg_err), "this replica is shutting down; retry on another");
		call->pg_done = true;
		http_resume(req);
	}
	return HTTP_SUSPEND;
}

/* The answer a read thread built, moved into resp. */
static enum http_next pg_answer(struct api_call *call, struct http_resp *resp)
{
	*resp = call->pg_resp;
	memset(&call->pg_resp, 0, sizeof(call->pg_resp));
	call->pg_done = false;
	return HTTP_RESPOND;
}

/* "application/json", optionally followed by parameters ("; charset=utf-8"). */
static bool is_json_type(const char *ct)
{
	static const char want[] = "application/json";
	if (strncasecmp(ct, want, sizeof(want) - 1) != 0)
		return false;
	const char *rest = ct + sizeof(want) - 1;
	while (*rest == ' ' || *rest == '\t')
		rest++;
	return *rest == '\0' || *rest == ';';
}

/* A filter value must be valid UTF-8 without control characters (it goes to
 * PostgreSQL as text). */
static bool text_ok(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return false;
	json_t *j = json_string(s); /* jansson refuses invalid UTF-8 */
	json_decref(j);
	return j != NULL;
}

/* ---- query-string parsing ---------------------------------------------------------- */

struct qcheck {
	const char *allowed;
	unsigned seen;        /* bit i: the i-th allowed parameter was given */
	char bad[128];        /* the first parameter no route takes */
	char repeated[128];   /* the first one given twice */
	char novalue[128];    /* the first one without "=value" */
};

/* Walks the query parameters: each must be one the route takes, given once
 * (a second one would be ignored, so which one wins is refused instead), with
 * a value ("?consistent" alone would read as absent). */
static enum MHD_Result check_param(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct qcheck *q = cls;
	(void)kind;
	size_t kl = strlen(key);
	unsigned i = 0;
	for (const char *p = q->allowed; p && *p; i++) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == kl && strncmp(p, key, n) == 0) {
			if (i < 32 && (q->seen & (1u << i)) && q->repeated[0] == '\0')
				snprintf(q->repeated, sizeof(q->repeated), "%.100s", key);
			if (i < 32)
				q->seen |= 1u << i;
			if (value == NULL && q->novalue[0] == '\0')
				snprintf(q->novalue, sizeof(q->novalue), "%.100s", key);
			return MHD_YES;
		}
		p = e ? e + 1 : NULL;
	}
	if (q->bad[0] == '\0')
		snprintf(q->bad, sizeof(q->bad), "%.100s", key);
	return MHD_YES;
}

int api_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	if (s == NULL || *s == '\0' || *s == '-' || *s == '+')
		return -1;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end != '\0' || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Handles ?min_index=N and ?consistent=true for reads: returns true when the
 * read may go ahead now; false when resp is filled or the request suspended. */
static bool read_barrier(struct api *a, struct http_req *req, struct api_call *call, struct http_resp *resp,
			 enum http_next *next)
{
	*next = HTTP_RESPOND;
	if (call->submitted) {
		if (call->op.http_status) {
			api_op_error(resp, &call->op);
			resp->index = api_projected(a);
			return false;
		}
		return true;
	}
	uint64_t want = 0;
	const char *mi = http_query(req, "min_index");
	if (mi && api_parse_u64(mi, UINT64_MAX / 2, &want) != 0) {
		http_error(resp, 400, "invalid_query", "min_index must be a non-negative integer");
		return false;
	}
	const char *cons = http_query(req, "consistent");
	if (cons && strcmp(cons, "true") != 0 && strcmp(cons, "false") != 0) {
		http_error(resp, 400, "invalid_query", "consistent must be true or false");
		return false;
	}
	if (cons && strcmp(cons, "true") == 0) {
		/* Linearizable: the loop confirms leadership with a barrier appended
		 * after this read arrived, then waits for PostgreSQL to show it. */
		op_init(&call->op, OP_READ_BARRIER);
		call->op.index = want;
		*next = api_submit(a, req, call, a->cfg->read_wait_max_ms);
		return false;
	}
	if (want == 0 || api_projected(a) >= want)
		return true;
	op_init(&call->op, OP_WAIT);
	call->op.index = want;
	*next = api_submit(a, req, call, a->cfg->read_wait_max_ms);
	return false;
}

static int parse_page(struct http_req *req, struct query_filter *f, struct http_resp *resp)
{
	uint64_t limit = API_LIMIT_DEFAULT;
	const char *ls = http_query(req, "limit");
	if (ls && (api_parse_u64(ls, API_LIMIT_MAX, &limit) != 0 || limit == 0)) {
		http_error(resp, 400, "invalid_query", "limit must be an integer between 1 and %d", API_LIMIT_MAX);
		return -1;
	}
	f->limit = (int64_t)limit;
	f->after = http_query(req, "after");
	if (f->after && !spec_id_valid(f->after)) {
		http_error(resp, 400, "invalid_query", "after must be an id returned as 'next'");
		return -1;
	}
	return 0;
}

/* ---- handlers: local ----------------------------------------------------------------- */

static enum http_next h_healthz(struct api *a, struct http_req *req, struct api_call *call, struct http_resp *resp)
{
	(void)req;
	(void)call;
	api_resp_json(a, resp, 200, json_pack("{s:s}", "status", "ok"));
	return HTTP_RESPOND;
}

/* Appends "; reason" to buf. */
static void add_reason(char *buf, size_t len, const char *reason)
{
	size_t n = strlen(buf);
	if (n + 2 < len)
		snprintf(buf + n, len - n, "%s%s", n ? "; " : "", reason);
}

/* /readyz is not ready at once when a PostgreSQL read has waited this long
 * for a read thread. */
#define API_READS_STUCK_MS 1000

/* Ready: this replica can serve what it is for. Its PostgreSQL answers on the
 * connection reads use (not only the writer's), a leader is known, and a
 * leader has applied its log and has room on disk to take writes. */
static void pg_readyz(struct api *a, struct api_call *call)
{
	struct http_resp *resp = &call->pg_resp;
	struct loop_status st;
	loop_status(a->loop, &st);
	char why[1536] = "";
	if (a->store && !store_healthy(a->store)) {
		add_reason(why, sizeof(why), "this replica's projection writer cannot reach its PostgreSQL");
	} else if (a->store) {
		PGconn *c = store_conn(a->store);
		uint64_t dbidx = 0;
		char err[256] = "no connection";
		if (c == NULL || query_applied_index(c, &dbidx, err, sizeof(err)) != QUERY_OK) {
			char msg[400];
			snprintf(msg, sizeof(msg), "this replica cannot read from its PostgreSQL: %s", err);
			add_reason(why, sizeof(why), msg);
		}
	}
	if (st.leader_id == 0)
		add_reason(why, sizeof(why), "no Raft leader is known");
	if (!st.disk_ok)
		add_reason(why, sizeof(why), st.disk_reason);
	else if (st.state == RAFT_LEADER && !st.writable)
		add_reason(why, sizeof(why), "leader, still applying its log before it takes writes");
	uint64_t applied, proj;
	loop_indices(a->loop, &applied, &proj);
	if (why[0]) {
		http_error(resp, 503, "not_ready", "%s", why);
	} else {
		resp->status = 200;
		resp->body = json_pack("{s:s,s:b,s:I,s:I}", "status", "ready", "leader", st.state == RAFT_LEADER,
				       "applied_index", (json_int_t)applied, "projected_index", (json_int_t)proj);
	}
	resp->index = proj;
}

/* On a read thread too: a PostgreSQL that does not answer holds the probe,
 * not an HTTP worker. */
static enum http_next h_readyz(struct api *a, struct http_req *req, struct api_call *call, struct http_resp *resp)
{
	if (call->pg_done)
		return pg_answer(call, resp);
	struct workq_stats ws;
	if (a->reads && (workq_get_stats(a->reads, &ws), ws.oldest_wait_ms >= API_READS_STUCK_MS)) {
		/* The probe would wait behind them: say why now. */
		http_error(resp, 503, "not_ready",
			   "this replica's PostgreSQL reads are backed up: %llu waiting for a read thread (the oldest "
			   "for %.1f s), %llu running (--pg-read-threads %lld, --pg-read-timeout-ms %lld)",
			   (unsigned long long)ws.waiting, (double)ws.oldest_wait_ms / 1000,
			   (unsigned long long)ws.running, (long long)a->cfg->pg_read_threads,
			   (long long)a->cfg->pg_read_timeout_ms);
		return HTTP_RESPOND;
	}
	return api_pg_defer(a, req, call, resp, pg_readyz);
}

static enum http_next h_metrics(struct api *a, struct http_req *req, struct api_call *call, struct http_resp *resp)
{
	(void)req;
	(void)call;
	struct loop_status st;
	loop_status(a->loop, &st);
	struct metrics_gauges g;
	memset(&g, 0, sizeof(g));
	g.term = st.term;
	g.commit_index = st.commit_index;
	g.applied_index = st.applied_index;
	g.last_index = st.last_index;
	g.is_leader = st.state == RAFT_LEADER;
	g.writable = st.writable;
	g.nodes = st.nodes;
	g.actors = st.actors;
	g.providers = st.providers;
	g.links = st.links;
	g.policies = st.policies;
	g.commands_open = st.commands_open;
	g.commands_acked = st.commands_acked;
	g.commands_failed = st.commands_failed;
	g.commands_superseded = st.commands_superseded;
	g.failovers_open = st.failovers_open;
	g.fsm_applied = st.fsm_applied;
	g.fsm_rejected = st.fsm_rejected;
	g.fsm_undecodable = st.fsm_undecodable;
	g.snapshots = st.snapshots;
	g.raft_refused_not_member = raftnet_refused(&a->loop->net, RAFTNET_NOT_MEMBER);
	g.raft_refused_wrong_address = raftnet_refused(&a->loop->net, RAFTNET_WRONG_ADDRESS);
	g.raft_refused_self = raftnet_refused(&a->loop->net, RAFTNET_SELF);
	g.raft_refused_no_peer = raftnet_refused(&a->loop->net, RAFTNET_NO_PEER);
	g.leader_changes = st.leader_changes;
	g.placed = st.placed;
	g.place_refused = st.place_refused;
	g.failovers_completed = st.failovers_completed;
	g.failovers_failed = st.failovers_failed;
	g.place = &st.place;
	g.failover = &st.failover;
	g.command_rtt = &st.command_rtt;
	g.heartbeat_gap = &st.heartbeat_gap;
	g.heartbeat_age_max_ms = st.heartbeat_age_max_ms;
	g.bus = a->loop->bus.enabled ? &a->loop->bus.stats : NULL;
	struct sse_stats es;
	if (a->sse) {
		sse_get_stats(a->sse, &es);
		g.sse = &es;
	}
	struct workq_stats ws;
	if (a->reads) {
		workq_get_stats(a->reads, &ws);
		g.reads = &ws;
	}
	if (a->store) {
		struct store_stats ss;
		store_stats(a->store, &ss);
		g.projected_index = api_projected(a);
		g.backlog = store_backlog(a->store);
		g.pg_up = store_healthy(a->store);
		g.pg_transactions = ss.transactions;
		g.pg_batches = ss.batches;
		g.pg_changes = ss.changes;
		g.pg_errors = ss.errors;
		g.pg_reconnects = ss.reconnects;
		g.queue_bytes = ss.queue_bytes;
		g.spool_bytes = ss.spool_bytes;
		g.spooled = ss.spooled;
	}
	resp->text = metrics_render(&a->metrics, &g);
	if (resp->text == NULL) {
		http_error(resp, 503, "out_of_memory", "out of memory");
		return HTTP_RESPOND;
	}
	resp->status = 200;
	resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
	resp->index = api_projected(a);
	return HTTP_RESPOND;
}

/* ---- handlers: loop queries ------------------------------------------------------------- */

/* The answer of an op that computed a JSON result on the loop. */
enum http_next api_answer_result(struct api *a, struct api_call *call, struct http_resp *resp)
{
	if (call->op.relayed)
		return api_relay(resp, &call->op);
	if (call->op.http_status) {
		api_op_error(resp, &call->op);
		return HTTP_RESPOND;
	}
	if (call->op.object_text) { /* rendered as text (cluster: exact unsigned values) */
		api_resp_json(a, resp, 200, NULL);
		resp->text = call->op.object_text;
		resp->content_type = "application/json";
		call->op.object_text = NULL;
		return HTTP_RESPOND;
	}
	api_resp_json(a, resp, 200, call->op.result);
	call->op.result = NULL;
	return HTTP_RESPOND;
}

static enum http_next h_cluster(struct api *a, struct http_req *req, struct api_call *call, struct http_resp *resp)
{
	if (!call->submitted) {
		op_init(&call->op, OP_CLUSTER);
		return api_submit(a, req, call, 5000);
	}
	return api_answer_result(a, call, resp);
}

/* ?nodes=true[&limit=N][&after=ID]: a page of the per-node list besides the
 * summary. Returns 0 or fills resp. */
static int parse_plan_query(struct http_req *req, struct sched_explain_opts *o, struct http_resp *resp)
{
	const char *nodes = http_query(req, "nodes");
	if (nodes && strcmp(nodes, "true") != 0 && strcmp(nodes, "false") != 0) {
		http_error(resp, 400, "invalid_query", "nodes must be true or false");
		return -1;
	}
	o->nodes = nodes && strcmp(nodes, "true") == 0;
	if (!o->nodes) {
		if (http_query(req, "limit") || http_query(req, "after")) {
			http_error(resp, 400, "invalid_query", "limit and after page the node list: add nodes=true");
			return -1;
		}
		return 0;
	}
	struct query_filter f;
	memset(&f, 0, sizeof(f));
	if (parse_page(req, &f, resp) != 0)
		return -1;
	o->limit = (size_t)f.limit;
	snprintf(o->after, sizeof(o->after), "%s", f.after ? f.after : "");
	return 0;
}

/* The answer the loop wrote as JSON text for a dry run or a model read. */
static enum http_next loop_answer(struct api *a, struct api_call *call, struct http_resp *resp)
{
	if (call->op.http_status) {
		http_error(resp, call->op.http_status, call->op.code, "%s", call->op.message);
		return HTTP_RESPOND;
	}
	resp->status = 200;
	resp->text = call->op.object_text;
	resp->content_type = "application/json";
	call->op.object_text = NULL;
	resp->index = api_projected(a);
	return HTTP_RESPOND;
}

static enum http_next h_plan(struct api *a, struct http_req *req, struct api_call *call, struct http_resp *resp)
{
	if (!call->submitted) {
		struct spec_err e;
		json_t *body;
		op_init(&call->op, OP_PLAN);
		if (parse_plan_query(req, &call->op.plan, resp) != 0)
			return HTTP_RESPOND;
		if (spec_parse_body(req->body, req->body_len, &body, &e) != 0) {
			api_err_spec(resp, &e);
			return HTTP_RESPOND;
		}
		int rc = spec_actor_from_json(body, &call->op.entry.actor, &e);
		json_decref(body);
		if (rc != 0) {
			api_err_spec(resp, &e);
			return HTTP_RESPOND;
		}
		return api_submit(a, req, call, 5000);
	}
	return loop_answer(a, call, resp); /* the loop wrote it as text */
}

/* POST /v1/nodes/{id}/failover-plan: where each actor of the node would go if
 * it died now, and which would find no home (a dry run on the loop). */
static enum http_next h_failover_plan(struct api *a, struct http_req *req, struct api_call *call,
				      struct http_resp *resp)
{
	if (!call->submitted) {
		op_init(&call->op, OP_FAILOVER_PLAN);
		snprintf(call->op.target, sizeof(call->op.target), "%s", call->id);
		return api_submit(a, req, call, 5000);
	}
	return loop_answer(a, call, resp);
}

/* GET /v1/policies/{id}/violations: what runs against the policy's current
 * version (violations.h), from the model of this replica. */
static enum http_next h_violations(struct api *a, struct http_req *req, struct api_call *call,
				   struct http_resp *resp)
{
	if (!call->submitted) {
		uint64_t limit = API_LIMIT_DEFAULT;
		const char *ls = http_query(req, "limit");
		if (ls && (api_parse_u64(ls, API_LIMIT_MAX, &limit) != 0 || limit == 0)) {
			http_error(resp, 400, "invalid_query", "limit must be an integer between 1 and %d",
				   API_LIMIT_MAX);
			return HTTP_RESPOND;
		}
		op_init(&call->op, OP_POLICY_VIOLATIONS);
		snprintf(call->op.target, sizeof(call->op.target), "%s", call->id);
		call->op.plan.limit = (size_t)limit;
		return api_submit(a, req, call, 5000);
	}
	return loop_answer(a, call, resp);
}

/* ---- handlers: reads ------------------------------------------------------------------------ */

/* This (read) thread's PostgreSQL connection and the index the read will at
 * least reflect (taken before the query); NULL with resp filled when
 * unreachable. */
static PGconn *reader(struct api *a, struct http_resp *resp, uint64_t *idx)
{
	*idx = api_projected(a);
	PGconn *c = a->store ? store_conn(a->store) : NULL;
	if (c == NULL) {
		err_query(resp, QUERY_UNAVAILABLE, "no connection");
		resp->index = *idx;
	}
	return c;
}

static void pg_get(struct api *a, struct api_call *call)
{
	struct http_resp *resp = &call->pg_resp;
	uint64_t idx;
	PGconn *c = reader(a, resp, &idx);
	if (c == NULL)
		return;
	json_t *obj = NULL;
	char err[256] = "";
	int rc = query_get(c, (enum query_obj)call->route->arg, call->id, &obj, err, sizeof(err));
	if (rc == QUERY_NOT_FOUND) {
		static const char *names[] = {"node", "actor", "provider", "link", "policy", "command", "failover"};
		http_error(resp, 404, "not_found", "%s '%s' not found", names[call->route->arg], call->id);
	} else if (rc != QUERY_OK) {
		err_query(resp, rc, err);
	} else {
		api_resp_json(a, resp, 200, obj);
	}
	resp->index = idx;
}

/* Nodes and actors come from the applied model's view when it is ready
 * (view.h): its index is at least the projection's, so min_index and
 * read-your-writes hold as they do for PostgreSQL. */
static enum view_kind view_kind_of(enum query_obj o)
{
	return o == QUERY_NODES ? VIEW_NODES : o == QUERY_ACTORS ? VIEW_ACTORS : VIEW_KINDS;
}

static enum http_next h_get(struct api *a, struct http_req *req, struct api_call *call, struct http_resp *resp)
{
	if (call->pg_done)
		return pg_answer(call, resp);
	enum http_next next;
	if (!read_barrier(a, req, call, resp, &next))
		return next;
	enum view_kind vk = view_kind_of((enum query_obj)call->route->arg);
	if (vk != VIEW_KINDS && view_ready(a->loop->view, api_projected(a))) {
		char *text = NULL;
		uint64_t vidx = 0;
		int vrc = view_get(a->loop->view, vk, call->id, &text, &vidx);
		if (vrc == 0) {
			resp->status = 200;
			resp->text = text;
			resp->content_type = "application/json";
			resp->index = vidx;
			return HTTP_RESPOND;
		}
		if (vrc == -1) {
			http_error(resp, 404, "not_found", "%s '%s' not found", vk == VIEW_NODES ? "node" : "actor",
				   call->id);
			resp->index = vidx ? vidx : api_projected(a);
			return HTTP_RESPOND;
		}
	}
	return api_pg_defer(a, req, call, resp, pg_get);
}

static void pg_list(struct api *a, struct api_call *call)
{
	struct http_resp *resp = &call->pg_resp;
	uint64_t idx;
	PGconn *c = reader(a, resp, &idx);
	if (c == NULL)
		return;
	json_t *items = NULL;
	char *nxt = NULL;
	char err[256] = "";
	int rc = query_list(c, (enum query_obj)call->route->arg, &call->f, &items, &nxt, err, sizeof(err));
	if (rc != QUERY_OK) {
		err_query(resp, rc, err);
	} else {
		api_resp_json(a, resp, 200,
			      json_pack("{s:o,s:o}", "items", items, "next", nxt ? json_string(nxt) : json_null()));
	}
	free(nxt);
	resp->index = idx;
}

static enum http_next h_list(struct api *a, struct http_req *req, struct api_call *call, struct http_resp *resp)
{
	if (call->pg_done)
		return pg_answer(call, resp);
	enum http_next next;
	if (!read_barrier(a, req, call, resp, &next))
		return next;
	/* Kept in the call: a read thread may run the query. */
	struct query_filter *f = &call->f;
	memset(f, 0, sizeof(*f));
	if (parse_page(req, f, resp) != 0)
		return HTTP_RESPOND;
	enum query_obj o = (enum query_obj)call->route->arg;
	char *label_key = call->label_key;
	if (o == QUERY_NODES) {
		f->region = http_query(req, "region");
		if (f->region && !spec_region_valid(f->region)) {
			http_error(resp, 400, "invalid_query", "region must be 1-64 characters of A-Z a-z 0-9 . _ -");
			return HTTP_RESPOND;
		}
		f->status = http_query(req, "status");
		if (f->status && strcmp(f->status, "healthy") && strcmp(f->status, "degraded") &&
		    strcmp(f->status, "unhealthy")) {
			http_error(resp, 400, "invalid_query", "status must be healthy, degraded or unhealthy");
			return HTTP_RESPOND;
		}
		const char *label = http_query(req, "label");
		if (label) {
			/* KEY=VALUE: the label has that value; KEY alone: the node has it. */
			const char *eq = strchr(label, '=');
			size_t kl = eq ? (size_t)(eq - label) : strlen(label);
			if (kl == 0 || kl >= sizeof(call->label_key)) {
				http_error(resp, 400, "invalid_query", "label must be KEY or KEY=VALUE");
				return HTTP_RESPOND;
			}
			memcpy(label_key, label, kl);
			label_key[kl] = '\0';
			f->label_key = label_key;
			f->label_value = eq ? eq + 1 : NULL;
			if (!text_ok(label_key) || (f->label_value && !text_ok(f->label_value))) {
				http_error(resp, 400, "invalid_query",
					   "label must be valid UTF-8 without control characters");
				return HTTP_RESPOND;
			}
		}
	} else if (o == QUERY_ACTORS) {
		f->node_id = http_query(req, "node");
	} else if (o == QUERY_FAILOVERS) {
		f->node_id = http_query(req, "node");
		f->status = http_query(req, "status");
		if (f->status && strcmp(f->status, "in_progress") && strcmp(f->status, "completed") &&
		    strcmp(f->status, "failed")) {
			http_error(resp, 400, "invalid_query", "status must be in_progress, completed or failed");
			return HTTP_RESPOND;
		}
	} else if (o == QUERY_COMMANDS) {
		f->node_id = http_query(req, "node");
		f->status = http_query(req, "status");
		if (f->status && strcmp(f->status, "pending") && strcmp(f->status, "published") &&
		    strcmp(f->status, "acked") && strcmp(f->status, "failed") && strcmp(f->status, "superseded")) {
			http_error(resp, 400, "invalid_query",
				   "status must be pending, published, acked, failed or superseded");
			return HTTP_RESPOND;
		}
	} else if (o == QUERY_PROVIDERS) {
		f->contract_id = http_query(req, "contract_id");
	} else if (o == QUERY_LINKS) {
		f->actor_id = http_query(req, "actor_id");
		f->provider_id = http_query(req, "provider_id");
		f->contract_id = http_query(req, "contract_id");
	}
	const char *ids[] = {f->node_id, f->actor_id, f->provider_id};
	for (size_t i = 0; i < 3; i++) {
		if (ids[i] && !spec_id_valid(ids[i])) {
			http_error(resp, 400, "invalid_query",
				   "ids are 1-128 characters of A-Z a-z 0-9 . _ - (not '.' or '..')");
			return HTTP_RESPOND;
		}
	}
	if (f->contract_id && !spec_contract_valid(f->contract_id)) {
		http_error(resp, 400, "invalid_query", "contract_id must look like namespace:name (lowercase)");
		return HTTP_RESPOND;
	}
	enum view_kind vk = view_kind_of(o);
	if (vk != VIEW_KINDS && view_ready(a->loop->view, api_projected(a))) {
		char *text = NULL;
		uint64_t vidx = 0;
		if (view_list(a->loop->view, vk, f, &text, &vidx) == 0) {
			resp->status = 200;
			resp->text = text;
			resp->content_type = "application/json";
			resp->index = vidx;
			return HTTP_RESPOND;
		}
	}
	return api_pg_defer(a, req, call, resp, pg_list);
}

static void pg_policy_versions(struct api *a, struct api_call *call)
{
	struct http_resp *resp = &call->pg_resp;
	uint64_t idx;
	PGconn *c = reader(a, resp, &idx);
	if (c == NULL)
		return;
	json_t *items = NULL;
	char err[256] = "";
	int rc = query_policy_versions(c, call->id, &items, err, sizeof(err));
	if (rc == QUERY_NOT_FOUND)
		http_error(resp, 404, "not_found", "policy '%s' not found", call->id);
	else if (rc != QUERY_OK)
		err_query(resp, rc, err);
	else
		api_resp_json(a, resp, 200, json_pack("{s:o,s:n}", "items", items, "next"));
	resp->index = idx;
}

static enum http_next h_policy_versions(struct api *a, struct http_req *req, struct api_call *call,
					struct http_resp *resp)
{
	if (call->pg_done)
		return pg_answer(call, resp);
	enum http_next next;
	if (!read_barrier(a, req, call, resp, &next))
		return next;
	return api_pg_defer(a, req, call, resp, pg_policy_versions);
}

/* Accept names text/event-stream (an EventSource sends just that). */
static bool wants_event_stream(struct http_req *req)
{
	const char *acc = http_header(req, "Accept");
	static const char want[] = "text/event-stream";
	for (const char *p = acc; p && *p; p++)
		if (strncasecmp(p, want, sizeof(want) - 1) == 0)
			return true;
	return false;
}

/* GET /v1/events?since=N[&wait=S]: with wait, an empty answer is held until an
 * entry is applied (or S seconds pass), so dashboards can long-poll. Events this
 * replica does not hold right after N (its database was rebuilt from a snapshot)
 * are 410 events_compacted with the next seq it holds, as etcd answers a
 * compacted revision; without since, the list starts at the oldest held. */
/* On a read thread: the events asked for (or, for a live stream without a
 * place to start, the newest seq). */
static void pg_events(struct api *a, struct api_call *call)
{
	call->ev_idx = api_projected(a);
	call->pg_json = NULL;
	call->ev_last = call->ev_since;
	call->ev_first = 0;
	call->pg_err[0] = '\0';
	PGconn *c = a->store ? store_conn(a->store) : NULL;
	if (c == NULL) {
		call->pg_rc = QUERY_UNAVAILABLE;
		snprintf(call->pg_err, sizeof(call->pg_err), "no connection");
	} else if (call->ev_stream && call->ev_head) {
		call->pg_rc = query_events_head(c, &call->ev_since, call->pg_err, sizeof(call->pg_err));
	} else {
		call->pg_rc = query_events(c, call->ev_since, call->ev_head, call->ev_stream ? 1 : (int64_t)call->ev_limit,
					   &call->pg_json, &call->ev_last, &call->ev_first, call->pg_err,
					   sizeof(call->pg_err));
	}
}

/* Back on the HTTP thread with what pg_events found: the page, a stream, or
 * a long poll (which reads again once something new is projected). */
static enum http_next events_answer(struct api *a, struct http_req *req, struct api_call *call,
				    struct http_resp *resp)
{
	call->pg_done = false;
	json_t *items = call->pg_json;
	call->pg_json = NULL;
	uint64_t since = call->ev_since, first = call->ev_first, idx = call->ev_idx;
	resp->index = idx; /* http_error keeps it; api_resp_json below does not */
	if (call->pg_rc == QUERY_GONE) {
		json_decref(items);
		http_error(resp, 410, "events_compacted",
			   "this replica does not hold events %llu to %llu (its database was rebuilt from a Raft "
			   "snapshot, which keeps no event history); the first it holds after since=%llu is %llu: "
			   "continue with since=%llu, or read the older events from a replica that has them",
			   (unsigned long long)since + 1, (unsigned long long)first - 1, (unsigned long long)since,
			   (unsigned long long)first, (unsigned long long)first - 1);
		json_t *e = json_object_get(resp->body, "error");
		if (e)
			json_object_set_new(e, "first_seq", json_integer((json_int_t)first));
		return HTTP_RESPOND;
	}
	if (call->pg_rc != QUERY_OK) {
		json_decref(items);
		err_query(resp, call->pg_rc, call->pg_err);
		return HTTP_RESPOND;
	}
	if (call->ev_stream) {
		json_decref(items);
		if (a->sse == NULL) {
			http_error(resp, 500, "internal", "this replica has no event stream service");
			return HTTP_RESPOND;
		}
		sse_open(a->sse, req, since, call->ev_head, resp);
		return HTTP_RESPOND;
	}
	if (json_array_size(items) == 0 && call->ev_wait > 0 && !call->long_polled) {
		json_decref(items);
		call->long_polled = true;
		op_release(&call->op);
		op_init(&call->op, OP_WAIT);
		call->op.index = idx + 1; /* the next entry this replica projects */
		return api_submit(a, req, call, (int64_t)call->ev_wait * 1000);
	}
	api_resp_json(a, resp, 200, json_pack("{s:o,s:I}", "items", items, "next", (json_int_t)call->ev_last));
	resp->index = idx;
	return HTTP_RESPOND;
}

/* GET /v1/events?since=N[&wait=S]: with wait, an empty answer is held until an
 * entry is applied (or S seconds pass), so dashboards can long-poll. Events this
 * replica does not hold right after N (its database was rebuilt from a snapshot)
 * are 410 events_compacted with the next seq it holds, as etcd answers a
 * compacted revision; without since, the list starts at the oldest held. */
static enum http_next h_events(struct api *a, struct http_req *req, struct api_call *call, struct http_resp *resp)
{
	if (call->pg_done)
		return events_answer(a, req, call, resp);
	enum http_next next;
	if (!call->long_polled && !read_barrier(a, req, call, resp, &next))
		return next;
	uint64_t since = 0, limit = API_LIMIT_DEFAULT, wait = 0;
	const char *s = http_query(req, "since"), *ls = http_query(req, "limit"), *ws = http_query(req, "wait");
	if (s && api_parse_u64(s, UINT64_MAX / 2, &since) != 0) {
		http_error(resp, 400, "invalid_query", "since must be a non-negative integer");
		return HTTP_RESPOND;
	}
	if (ls && (api_parse_u64(ls, API_LIMIT_MAX, &limit) != 0 || limit == 0)) {
		http_error(resp, 400, "invalid_query", "limit must be an integer between 1 and %d", API_LIMIT_MAX);
		return HTTP_RESPOND;
	}
	if (ws && api_parse_u64(ws, 60, &wait) != 0) {
		http_error(resp, 400, "invalid_query", "wait must be a number of seconds between 0 and 60");
		return HTTP_RESPOND;
	}
	const char *lei = http_header(req, "Last-Event-ID");
	bool stream = wants_event_stream(req);
	if (stream && lei) {
		if (api_parse_u64(lei, UINT64_MAX / 2, &since) != 0) {
			http_error(resp, 400, "invalid_header",
				   "Last-Event-ID must be the seq of an event this stream sent (a non-negative integer)");
			return HTTP_RESPOND;
		}
		s = lei;
	}
	call->ev_since = since;
	call->ev_limit = limit;
	call->ev_wait = wait;
	call->ev_stream = stream;
	call->ev_head = s == NULL;
	return api_pg_defer(a, req, call, resp, pg_events);
}

/* ---- handlers: writes ------------------------------------------------------------------------ */


/* GET /v1/chaos/report[/timeline.svg]: the newest chaos run's report under
 * --chaos-reports (files read on this thread: small, and only asked by a
 * dashboard now and then). */
static enum http_next h_chaos(struct api *a, struct http_req *req, struct api_call *call, struct http_resp *resp)
{
	(void)req;
	const char *dir = a->cfg->chaos_reports;
	if (!dir || !*dir) {
		http_error(resp, 404, "not_found",
			   "no chaos reports are served: start latticed with --chaos-reports DIR (docs/chaos.md)");
		return HTTP_RESPOND;
	}
	int svg = call->route->arg == 1;
	char *buf = NULL, run[256], err[512];
	size_t len = 0;
	int rc = chaosrep_read(dir, svg ? "timeline.svg" : "report.json", &buf, &len, run, err, sizeof(err));
	if (rc < 0) {
		http_error(resp, rc == -1 ? 404 : 500, rc == -1 ? "not_found" : "internal", "%s", err);
		return HTTP_RESPOND;
	}
	if (svg) {
		resp->status = 200;
		resp->text = buf;
		resp->content_type = "image/svg+xml";
		return HTTP_RESPOND;
	}
	json_error_t je;
	json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	free(buf);
	if (!json_is_object(j)) {
		json_decref(j);
		http_error(resp, 500, "internal", "chaos report %s: report.json is not a JSON object", run);
		return HTTP_RESPOND;
	}
	json_object_set_new(j, "run_dir", json_string(run));
	resp->status = 200;
	resp->body = j;
	return HTTP_RESPOND;
}

/* GET /v1/summary: counts for dashboards, so they never list everything. */
static void pg_summary(struct api *a, struct api_call *call)
{
	struct http_resp *resp = &call->pg_resp;
	uint64_t idx;
	PGconn *c = reader(a, resp, &idx);
	if (c == NULL)
		return;
	json_t *sum = NULL;
	char err[256] = "";
	int rc = query_summary(c, &sum, err, sizeof(err));
	if (rc != QUERY_OK) {
		err_query(resp, rc, err);
	} else {
		json_object_set_new(sum, "index", json_integer((json_int_t)idx));
		json_object_set_new(sum, "chaos_report", json_boolean(a->cfg->chaos_reports[0] != '\0'));
		api_resp_json(a, resp, 200, sum);
	}
	resp->index = idx;
}

static enum http_next h_summary(struct api *a, struct http_req *req, struct api_call *call, struct http_resp *resp)
{
	if (call->pg_done)
		return pg_answer(call, resp);
	enum http_next next;
	if (!read_barrier(a, req, call, resp, &next))
		return next;
	return api_pg_defer(a, req, call, resp, pg_summary);
}

/* The dashboard (docs/ui.md): GET /ui redirects to /ui/, which is index.html;
 * GET /ui/NAME is a file of --ui-dir. Its pages may load only from here. */
static enum http_next h_ui(struct api *a, struct http_req *req, struct api_call *call, struct http_resp *resp)
{
	(void)req;
	if (call->route->arg == 0) {
		resp->status = 301;
		resp->text = strdup("the dashboard is at /ui/\n");
		snprintf(resp->location, sizeof(resp->location), "/ui/");
		return HTTP_RESPOND;
	}
	const char *name = call->route->arg == 1 ? "index.html" : call->id;
	char *buf = NULL, err[512];
	size_t len = 0;
	int rc = ui_read(a->cfg->ui_dir, name, &buf, &len, err, sizeof(err));
	if (rc < 0) {
		if (rc == -1 && call->route->arg == 1)
			http_error(resp, 404, "not_found",
				   "the dashboard's files are not installed in %s (make install puts them there; "
				   "--ui-dir names another directory)",
				   a->cfg->ui_dir);
		else
			http_error(resp, rc == -1 ? 404 : 500, rc == -1 ? "not_found" : "internal", "%s", err);
		return HTTP_RESPOND;
	}
	resp->status = 200;
	resp->text = buf;
	resp->text_len = len;
	if (len == 0) { /* an empty file: send it as such, not as strlen's guess */
		free(buf);
		resp->text = strdup("");
	}
	resp->content_type = ui_content_type(name);
	resp->cache_control = "no-cache";
	static const char csp[] = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
				  "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
				  "form-action 'self'";
	static const char *const hdrs[] = {
		"Content-Security-Policy", csp,
		"X-Content-Type-Options", "nosniff",
		"Referrer-Policy", "no-referrer",
	};
	for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++)
		resp->headers[i] = hdrs[i];
	return HTTP_RESPOND;
}

/* ---- route table ----------------------------------------------------------------------------- */

#define READ_PARAMS "min_index,consistent"
#define LIST_PARAMS "limit,after,min_index,consistent"

static const struct route routes[] = {
	{"GET", "/healthz", h_healthz, 0, ""},
	{"GET", "/readyz", h_readyz, 0, ""},
	{"GET", "/metrics", h_metrics, 0, ""},
	{"GET", "/v1/cluster", h_cluster, 0, ""},
	{"GET", "/v1/chaos/report", h_chaos, 0, ""},
	{"GET", "/v1/chaos/report/timeline.svg", h_chaos, 1, ""},
	{"POST", "/v1/cluster/members", api_cluster_write, OP_MEMBER_ADD, ""},
	{"DELETE", "/v1/cluster/members/{id}", api_cluster_write, OP_MEMBER_REMOVE, ""},
	{"POST", "/v1/cluster/transfer", api_cluster_write, OP_TRANSFER, ""},
	{"POST", "/v1/cluster/read-index", api_cluster_write, OP_READ_INDEX, ""},
	{"POST", "/v1/nodes", api_write, OP_NODE_CREATE, ""},
	{"GET", "/v1/nodes", h_list, QUERY_NODES, LIST_PARAMS ",region,status,label"},
	{"GET", "/v1/nodes/{id}", h_get, QUERY_NODES, READ_PARAMS},
	{"DELETE", "/v1/nodes/{id}", api_write, OP_NODE_DELETE, ""},
	{"POST", "/v1/nodes/{id}/cordon", api_write, OP_NODE_CORDON, ""},
	{"POST", "/v1/nodes/{id}/uncordon", api_write, OP_NODE_UNCORDON, ""},
	{"POST", "/v1/nodes/{id}/drain", api_write, OP_NODE_DRAIN, ""},
	{"POST", "/v1/actors", api_write, OP_ACTOR_CREATE, ""},
	{"GET", "/v1/actors", h_list, QUERY_ACTORS, LIST_PARAMS ",node"},
	{"GET", "/v1/actors/{id}", h_get, QUERY_ACTORS, READ_PARAMS},
	{"PATCH", "/v1/actors/{id}", api_write, OP_ACTOR_PATCH, ""},
	{"DELETE", "/v1/actors/{id}", api_write, OP_ACTOR_DELETE, ""},
	{"POST", "/v1/actors/{id}/migrate", api_write, OP_ACTOR_MIGRATE, ""},
	{"POST", "/v1/providers", api_write, OP_PROVIDER_CREATE, ""},
	{"GET", "/v1/providers", h_list, QUERY_PROVIDERS, LIST_PARAMS ",contract_id"},
	{"GET", "/v1/providers/{id}", h_get, QUERY_PROVIDERS, READ_PARAMS},
	{"DELETE", "/v1/providers/{id}", api_write, OP_PROVIDER_DELETE, ""},
	{"POST", "/v1/links", api_write, OP_LINK_CREATE, ""},
	{"GET", "/v1/links", h_list, QUERY_LINKS, LIST_PARAMS ",actor_id,provider_id,contract_id"},
	{"GET", "/v1/links/{id}", h_get, QUERY_LINKS, READ_PARAMS},
	{"DELETE", "/v1/links/{id}", api_write, OP_LINK_DELETE, ""},
	{"POST", "/v1/policies", api_write, OP_POLICY_CREATE, ""},
	{"GET", "/v1/policies", h_list, QUERY_POLICIES, LIST_PARAMS},
	{"GET", "/v1/policies/{id}", h_get, QUERY_POLICIES, READ_PARAMS},
	{"PUT", "/v1/policies/{id}", api_write, OP_POLICY_UPDATE, ""},
	{"GET", "/v1/policies/{id}/versions", h_policy_versions, 0, READ_PARAMS},
	{"GET", "/v1/policies/{id}/violations", h_violations, 0, "limit"},
	{"POST", "/v1/schedule/plan", h_plan, 0, "nodes,limit,after"},
	{"GET", "/v1/commands", h_list, QUERY_COMMANDS, LIST_PARAMS ",node,status"},
	{"GET", "/v1/commands/{id}", h_get, QUERY_COMMANDS, READ_PARAMS},
	{"GET", "/v1/failovers", h_list, QUERY_FAILOVERS, LIST_PARAMS ",node,status"},
	{"GET", "/v1/failovers/{id}", h_get, QUERY_FAILOVERS, READ_PARAMS},
	{"POST", "/v1/nodes/{id}/failover-plan", h_failover_plan, 0, ""},
	{"GET", "/v1/events", h_events, 0, "since,limit,wait,min_index,consistent"},
	{"GET", "/v1/summary", h_summary, 0, READ_PARAMS},
	{"GET", "/ui", h_ui, 0, ""},
	{"GET", "/ui/", h_ui, 1, ""},
	{"GET", "/ui/{id}", h_ui, 2, ""},
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

/* Percent-decodes the n bytes of one path segment into out (NUL-terminated);
 * a '%' not followed by two hex digits stays as it is. Returns the decoded
 * length, or -1 when it does not fit. A decoded NUL or '/' stays in the
 * result, where no id or static segment accepts it. */
static long seg_decode(const char *s, size_t n, char *out, size_t outlen)
{
	size_t w = 0;
	for (size_t r = 0; r < n; w++) {
		int hi, lo;
		if (w + 1 >= outlen)
			return -1;
		if (s[r] == '%' && r + 2 < n && (hi = http_hexval(s[r + 1])) >= 0 && (lo = http_hexval(s[r + 2])) >= 0) {
			out[w] = (char)(hi * 16 + lo);
			r += 3;
		} else {
			out[w] = s[r++];
		}
	}
	out[w] = '\0';
	return (long)w;
}

/* The request path split at '/' and each segment percent-decoded once, for
 * every route to compare against. n < 0: the path cannot match any route
 * (no leading '/', or more segments than any pattern has). */
#define PATH_SEGS_MAX 6
struct path_segs {
	int n;
	struct {
		long len; /* decoded length; -1: longer than any id */
		char text[SPEC_ID_MAX + 2];
	} seg[PATH_SEGS_MAX];
};

static void path_split(const char *path, struct path_segs *ps)
{
	ps->n = 0;
	if (*path != '/') {
		ps->n = -1;
		return;
	}
	while (*path == '/') {
		if (ps->n == PATH_SEGS_MAX) {
			ps->n = -1;
			return;
		}
		path++;
		const char *se = strchr(path, '/');
		size_t sl = se ? (size_t)(se - path) : strlen(path);
		ps->seg[ps->n].len = seg_decode(path, sl, ps->seg[ps->n].text, sizeof(ps->seg[ps->n].text));
		ps->n++;
		path += sl;
	}
}

/* Matches the path as sent (percent-encoded, split by path_split) against
 * pattern, each segment decoded on its own: "/v1/nodes/a%2Fb" is the node
 * "a/b" (an invalid id), not the path "/v1/nodes/a/b". Copies the decoded
 * {id}. */
static bool match(const char *pattern, const struct path_segs *ps, char *id, size_t idlen, bool *id_bad)
{
	int k = 0;
	while (*pattern == '/') {
		if (k >= ps->n)
			return false;
		pattern++;
		const char *pe = strchr(pattern, '/');
		size_t pl = pe ? (size_t)(pe - pattern) : strlen(pattern);
		long dl = ps->seg[k].len;
		const char *seg = ps->seg[k].text;
		if (pl == 4 && strncmp(pattern, "{id}", 4) == 0) {
			if (dl == 0)
				return false;
			if (dl < 0 || (size_t)dl >= idlen || strlen(seg) != (size_t)dl) {
				*id_bad = true; /* too long, or a decoded NUL */
			} else {
				memcpy(id, seg, (size_t)dl + 1);
				if (!spec_id_valid(id))
					*id_bad = true;
			}
		} else if (dl < 0 || (size_t)dl != pl || memcmp(pattern, seg, pl) != 0) {
			return false;
		}
		pattern += pl;
		k++;
	}
	return *pattern == '\0' && k == ps->n;
}

void api_init(struct api *a, struct loop *loop, struct store *store, const struct config *cfg)
{
	memset(a, 0, sizeof(*a));
	a->loop = loop;
	a->store = store;
	a->cfg = cfg;
	const char *methods[NROUTES], *patterns[NROUTES];
	for (size_t i = 0; i < NROUTES; i++) {
		methods[i] = routes[i].method;
		patterns[i] = routes[i].pattern;
	}
	if (metrics_init(&a->metrics, NROUTES, methods, patterns) != 0)
		log_warn("out of memory: HTTP requests will not be counted in /metrics");
}

enum http_next api_handle(void *arg, struct http_req *req, struct http_resp *resp)
{
	struct api *a = arg;
	struct api_call *call = req->state;
	resp->index = api_projected(a); /* handlers that know better override it */
	if (call != NULL)
		return call->route->fn(a, req, call, resp);

	char id[SPEC_ID_MAX + 1] = "";
	const struct route *found = NULL;
	bool path_known = false, id_bad = false;
	char allow[64] = "";
	struct path_segs ps;
	path_split(req->path ? req->path : req->url, &ps);
	for (size_t i = 0; i < NROUTES; i++) {
		bool bad = false;
		char tmp[SPEC_ID_MAX + 1] = "";
		if (!match(routes[i].pattern, &ps, tmp, sizeof(tmp), &bad))
			continue;
		path_known = true;
		if (strlen(allow) + strlen(routes[i].method) + 3 < sizeof(allow))
			snprintf(allow + strlen(allow), sizeof(allow) - strlen(allow), "%s%s", allow[0] ? ", " : "",
				 routes[i].method);
		if (strcmp(routes[i].method, req->method) == 0) {
			found = &routes[i];
			id_bad = bad;
			memcpy(id, tmp, sizeof(id));
		}
	}
	resp->index = api_projected(a);
	if (found == NULL) {
		if (path_known) {
			http_error(resp, 405, "method_not_allowed", "%s is not allowed on %s (allowed: %s)", req->method,
				   req->url, allow);
			snprintf(resp->allow, sizeof(resp->allow), "%s", allow);
		} else {
			http_error(resp, 404, "not_found", "no route for %s %.200s", req->method, req->url);
		}
		return HTTP_RESPOND;
	}
	if (id_bad) {
		http_error(resp, 400, "invalid_id",
			   "ids are 1-128 characters of A-Z a-z 0-9 . _ - (not '.' or '..')");
		return HTTP_RESPOND;
	}
	const char *ct = http_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
	if (ct && req->body_len > 0 && !is_json_type(ct)) {
		http_error(resp, 415, "unsupported_media_type", "Content-Type must be application/json, not '%.60s'",
			   ct);
		return HTTP_RESPOND;
	}
	struct qcheck q = {.allowed = found->params};
	MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, check_param, &q);
	if (q.bad[0]) {
		http_error(resp, 400, "invalid_query", "unknown query parameter '%s'", q.bad);
		return HTTP_RESPOND;
	}
	if (q.repeated[0]) {
		http_error(resp, 400, "invalid_query", "query parameter '%s' is given more than once", q.repeated);
		return HTTP_RESPOND;
	}
	if (q.novalue[0]) {
		http_error(resp, 400, "invalid_query", "query parameter '%s' has no value (%s=...)", q.novalue,
			   q.novalue);
		return HTTP_RESPOND;
	}
	call = calloc(1, sizeof(*call));
	if (call == NULL) {
		http_error(resp, 503, "out_of_memory", "out of memory");
		return HTTP_RESPOND;
	}
	call->route = found;
	memcpy(call->id, id, sizeof(id));
	req->state = call;
	req->state_free = call_free;
	return found->fn(a, req, call, resp);
}

uint64_t api_index(void *arg)
{
	return api_projected(arg);
}

void api_observe(void *arg, const struct http_req *req, int status, double seconds)
{
	struct api *a = arg;
	const struct api_call *call = req->state;
	metrics_observe_http(&a->metrics, call ? (size_t)(call->route - routes) : NROUTES, status, seconds);
	if (status >= 500)
		log_warn("%s %s -> %d", req->method, req->url, status);
	else
		log_debug("%s %s -> %d (%.1f ms)", req->method, req->url, status, seconds * 1000);
}

void api_routes_print(FILE *out)
{
	for (size_t i = 0; i < NROUTES; i++)
		fprintf(out, "%-7s %s\n", routes[i].method, routes[i].pattern);
}
