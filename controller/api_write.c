/* api_write — the REST API's writes: each request's body becomes an op for
 * the loop (spec.c validates it), an Idempotency-Key its fingerprint, and the
 * loop's answer the HTTP answer (the object as the model rendered it). Cluster
 * membership changes and the read index go the same way. */
#include "api_call.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fwd.h"
#include "loop.h"
#include "members.h"
#include "ops.h"
#include "query.h"
#include "spec.h"
#include "store.h"

static const char *const obj_paths[] = {"nodes", "actors", "providers", "links", "policies"};

/* POST /v1/cluster/members {"id", "raft_address", "api_url"}: add a member (as a
 * spare, caught up, then a voter) or record its URL; DELETE .../{id}: remove
 * it; POST /v1/cluster/transfer {"to"}: hand leadership over; POST
 * /v1/cluster/read-index: the leader's commit index, leadership confirmed (a
 * follower's consistent read). All answered by the leader. */
enum http_next api_cluster_write(struct api *a, struct http_req *req, struct api_call *call,
				 struct http_resp *resp)
{
	enum op_kind kind = (enum op_kind)call->route->arg;
	if (call->submitted) {
		enum http_next n = api_answer_result(a, call, resp);
		if (!call->op.relayed && call->op.http_status == 0) {
			resp->index = call->op.index ? call->op.index : resp->index;
			if (kind == OP_MEMBER_ADD && call->op.entry.flag)
				resp->status = 201; /* it was not a member before */
		}
		return n;
	}
	op_init(&call->op, kind);
	json_t *body = NULL;
	struct spec_err e;
	if (kind == OP_MEMBER_REMOVE) {
		uint64_t id;
		if (api_parse_u64(call->id, INT32_MAX, &id) != 0 || id == 0) {
			http_error(resp, 400, "invalid_id", "a member id is a Raft server id (1 to %d)", INT32_MAX);
			return HTTP_RESPOND;
		}
		call->op.entry.member_id = id;
	}
	if (req->body_len > 0 && spec_parse_body(req->body, req->body_len, &body, &e) != 0) {
		api_err_spec(resp, &e);
		return HTTP_RESPOND;
	}
	const char *bad = NULL;
	const char *key;
	json_t *v;
	json_object_foreach(body, key, v)
	{
		bool known = (kind == OP_MEMBER_ADD && (strcmp(key, "id") == 0 || strcmp(key, "raft_address") == 0 ||
							 strcmp(key, "api_url") == 0)) ||
			     (kind == OP_TRANSFER && strcmp(key, "to") == 0);
		if (!known) {
			bad = key;
			break;
		}
	}
	if (bad) {
		http_error(resp, 400, "unknown_field", "unknown field '%.100s'", bad);
		json_decref(body);
		return HTTP_RESPOND;
	}
	if (kind == OP_MEMBER_ADD) {
		json_t *id = json_object_get(body, "id");
		const char *addr = json_string_value(json_object_get(body, "raft_address"));
		const char *url = json_string_value(json_object_get(body, "api_url"));
		char hp[64];
		bool ok = false;
		if (!json_is_integer(id) || json_integer_value(id) < 1 || json_integer_value(id) > INT32_MAX) {
			http_error(resp, 400, "invalid_field", "id must be a Raft server id (1 to %d)", INT32_MAX);
		} else if (addr == NULL || members_address_valid(addr) != 0) {
			http_error(resp, 400, "invalid_field", "raft_address must be an IPv4 address IP:PORT");
		} else if (url == NULL || strlen(url) > 200 || fwd_hostport(url, hp, sizeof(hp)) != 0) {
			http_error(resp, 400, "invalid_field", "api_url must be an http://IP:PORT URL");
		} else {
			call->op.entry.member_id = (uint64_t)json_integer_value(id);
			snprintf(call->op.raft_address, sizeof(call->op.raft_address), "%s", addr);
			call->op.entry.api_url = strdup(url);
			ok = true;
		}
		if (!ok) {
			json_decref(body);
			return HTTP_RESPOND;
		}
	} else if (kind == OP_TRANSFER) {
		json_t *to = json_object_get(body, "to");
		if (to != NULL && !json_is_null(to) &&
		    (!json_is_integer(to) || json_integer_value(to) < 1 || json_integer_value(to) > INT32_MAX)) {
			http_error(resp, 400, "invalid_field", "to must be a Raft server id (1 to %d)", INT32_MAX);
			json_decref(body);
			return HTTP_RESPOND;
		}
		call->op.transfer_to = json_is_integer(to) ? (uint64_t)json_integer_value(to) : 0;
	}
	json_decref(body);
	return api_submit(a, req, call, kind == OP_READ_INDEX ? a->cfg->read_wait_max_ms : a->cfg->write_timeout_ms);
}

/* Parses the body into the op's entry; returns 0 or fills resp. */
/* POST /v1/actors/{id}/migrate: {"target_node": id, "instance": n}, both
 * optional (no body at all is fine too). */
static int parse_migrate(struct http_req *req, struct op *op, struct http_resp *resp)
{
	if (req->body_len == 0)
		return 0;
	struct spec_err e;
	json_t *body = NULL;
	if (spec_parse_body(req->body, req->body_len, &body, &e) != 0) {
		api_err_spec(resp, &e);
		return -1;
	}
	const char *key;
	json_t *v;
	int rc = 0;
	json_object_foreach(body, key, v) {
		if (strcmp(key, "target_node") == 0) {
			const char *t = json_string_value(v);
			if (t == NULL || !spec_node_id_valid(t)) {
				http_error(resp, 400, "invalid_field",
					   "field 'target_node' must be a node id (1 to 64 characters of A-Z a-z 0-9 _ -)");
				rc = -1;
				break;
			}
			snprintf(op->migrate_to, sizeof(op->migrate_to), "%s", t);
		} else if (strcmp(key, "instance") == 0) {
			if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= SPEC_REPLICAS_MAX) {
				http_error(resp, 400, "invalid_field", "field 'instance' must be an integer from 0 to %lld",
					   SPEC_REPLICAS_MAX - 1);
				rc = -1;
				break;
			}
			op->migrate_instance = json_integer_value(v);
		} else {
			http_error(resp, 400, "unknown_field", "unknown field '%.64s' (target_node and instance are known)",
				   key);
			rc = -1;
			break;
		}
	}
	json_decref(body);
	return rc;
}

static int parse_write_body(struct api *a, struct http_req *req, struct api_call *call, struct http_resp *resp)
{
	(void)a;
	struct op *op = &call->op;
	struct spec_err e;
	json_t *body = NULL;
	bool needs_body = true;
	switch (op->kind) {
	case OP_NODE_CORDON:
	case OP_NODE_UNCORDON:
	case OP_NODE_DRAIN:
	case OP_NODE_DELETE:
	case OP_ACTOR_DELETE:
	case OP_PROVIDER_DELETE:
	case OP_LINK_DELETE:
		needs_body = false;
		break;
	case OP_ACTOR_MIGRATE:
		return parse_migrate(req, op, resp);
	default:
		break;
	}
	if (!needs_body) {
		/* Tolerate an empty object, refuse anything else: it would be ignored. */
		if (req->body_len > 0) {
			if (spec_parse_body(req->body, req->body_len, &body, &e) != 0) {
				api_err_spec(resp, &e);
				return -1;
			}
			size_t n = json_object_size(body);
			json_decref(body);
			if (n > 0) {
				http_error(resp, 400, "unknown_field", "this request takes no body");
				return -1;
			}
		}
		return 0;
	}
	if (spec_parse_body(req->body, req->body_len, &body, &e) != 0) {
		api_err_spec(resp, &e);
		return -1;
	}
	int rc = 0;
	switch (op->kind) {
	case OP_NODE_CREATE: rc = spec_node_from_json(body, &op->entry.node, &e); break;
	case OP_ACTOR_CREATE: rc = spec_actor_from_json(body, &op->entry.actor, &e); break;
	case OP_ACTOR_PATCH: rc = spec_actor_patch_from_json(body, &op->entry.patch, &e); break;
	case OP_PROVIDER_CREATE: rc = spec_provider_from_json(body, &op->entry.provider, &e); break;
	case OP_LINK_CREATE: rc = spec_link_from_json(body, &op->entry.link, &e); break;
	case OP_POLICY_CREATE:
	case OP_POLICY_UPDATE: rc = spec_policy_from_json(body, &op->entry.policy, &e); break;
	default: break;
	}
	json_decref(body);
	if (rc != 0) {
		api_err_spec(resp, &e);
		return -1;
	}
	if (op->kind == OP_POLICY_UPDATE && op->entry.policy.policy_id &&
	    strcmp(op->entry.policy.policy_id, call->id) != 0) {
		http_error(resp, 400, "invalid_field", "policy_id '%s' in the body does not match the URL's '%s'",
			   op->entry.policy.policy_id, call->id);
		return -1;
	}
	return 0;
}

static enum query_obj write_obj(enum op_kind k)
{
	switch (k) {
	case OP_ACTOR_CREATE:
	case OP_ACTOR_PATCH:
	case OP_ACTOR_DELETE:
	case OP_ACTOR_MIGRATE: return QUERY_ACTORS;
	case OP_PROVIDER_CREATE:
	case OP_PROVIDER_DELETE: return QUERY_PROVIDERS;
	case OP_LINK_CREATE:
	case OP_LINK_DELETE: return QUERY_LINKS;
	case OP_POLICY_CREATE:
	case OP_POLICY_UPDATE: return QUERY_POLICIES;
	default: return QUERY_NODES;
	}
}

/* Idempotency-Key on a POST: 1 to API_IDEM_KEY_MAX visible ASCII characters.
 * The request's fingerprint (method, path, body) tells a retry from a reuse of
 * the key for another request. Returns 0, or -1 with resp filled. */
static int idem_key(struct http_req *req, struct op *op, struct http_resp *resp)
{
	const char *k = http_header(req, API_IDEM_HEADER);
	if (k == NULL || strcmp(req->method, "POST") != 0)
		return 0;
	size_t n = strlen(k);
	bool ok = n >= 1 && n <= API_IDEM_KEY_MAX;
	for (size_t i = 0; ok && i < n; i++)
		ok = k[i] > 0x20 && k[i] < 0x7f;
	if (!ok) {
		http_error(resp, 400, "invalid_header",
			   "Idempotency-Key must be 1 to %d visible ASCII characters (a UUID, say)", API_IDEM_KEY_MAX);
		return -1;
	}
	/* FNV-1a over method, path and body, with separators. */
	uint64_t h = 1469598103934665603ULL;
	const char *parts[3] = {req->method, req->path ? req->path : req->url, req->body ? req->body : ""};
	size_t lens[3] = {strlen(parts[0]), strlen(parts[1]), req->body ? req->body_len : 0};
	for (int p = 0; p < 3; p++) {
		for (size_t i = 0; i < lens[p]; i++)
			h = (h ^ (unsigned char)parts[p][i]) * 1099511628211ULL;
		h = (h ^ 0xff) * 1099511628211ULL;
	}
	if ((op->entry.idem_key = strdup(k)) == NULL) {
		http_error(resp, 503, "out_of_memory", "out of memory");
		return -1;
	}
	op->entry.idem_fp = h;
	return 0;
}

/* On a read thread: the written object as PostgreSQL shows it. */
static void pg_read_back(struct api *a, struct api_call *call)
{
	PGconn *c = a->store ? store_conn(a->store) : NULL;
	call->pg_json = NULL;
	snprintf(call->pg_err, sizeof(call->pg_err), "no connection");
	call->pg_rc = c ? query_get(c, write_obj((enum op_kind)call->route->arg), call->op.id, &call->pg_json,
				    call->pg_err, sizeof(call->pg_err))
			: QUERY_UNAVAILABLE;
}

/* A committed write's answer: the object (obj taken, or the op's text) or why
 * it cannot be shown. */
static enum http_next write_answer(struct api_call *call, struct http_resp *resp, json_t *obj, int rc,
				   const char *err)
{
	struct op *op = &call->op;
	enum op_kind kind = (enum op_kind)call->route->arg;
	enum query_obj o = write_obj(kind);
	bool created = kind == OP_NODE_CREATE || kind == OP_ACTOR_CREATE || kind == OP_PROVIDER_CREATE ||
		       kind == OP_LINK_CREATE || kind == OP_POLICY_CREATE;
	resp->index = op->index;
	if (rc != QUERY_OK) {
		json_decref(obj);
		/* Committed, but we cannot show it: say so rather than pretend. */
		http_error(resp, 503, "database_unavailable",
			   "committed at index %llu, but reading it back from PostgreSQL failed: %s",
			   (unsigned long long)op->index, rc == QUERY_NOT_FOUND ? "not found" : err);
		return HTTP_RESPOND;
	}
	if (kind == OP_NODE_DRAIN && op->result) {
		json_object_set_new(op->result, "node", obj);
		obj = op->result;
		op->result = NULL;
	}
	resp->status = created ? 201 : kind == OP_ACTOR_MIGRATE ? 202 : 200;
	if (op->object_text) { /* rendered as text (actors) */
		resp->text = op->object_text;
		resp->content_type = "application/json";
		op->object_text = NULL;
	} else {
		resp->body = obj;
	}
	if (created)
		snprintf(resp->location, sizeof(resp->location), "/v1/%s/%s", obj_paths[o], op->id);
	return HTTP_RESPOND;
}

enum http_next api_write(struct api *a, struct http_req *req, struct api_call *call, struct http_resp *resp)
{
	enum op_kind kind = (enum op_kind)call->route->arg;
	if (!call->submitted) {
		op_init(&call->op, kind);
		snprintf(call->op.target, sizeof(call->op.target), "%s", call->id);
		if (idem_key(req, &call->op, resp) != 0 || parse_write_body(a, req, call, resp) != 0) {
			resp->index = api_projected(a);
			atomic_fetch_add(&a->metrics.writes_failed, 1);
			return HTTP_RESPOND;
		}
		return api_submit(a, req, call, a->cfg->write_timeout_ms);
	}
	struct op *op = &call->op;
	if (op->relayed) {
		atomic_fetch_add(op->relay_status < 300 ? &a->metrics.writes_ok : &a->metrics.writes_failed, 1);
		return api_relay(resp, op);
	}
	if (op->http_status) {
		atomic_fetch_add(&a->metrics.writes_failed, 1);
		api_op_error(resp, op);
		resp->index = op->index ? op->index : api_projected(a);
		return HTTP_RESPOND;
	}
	if (call->pg_done) { /* read back by pg_read_back (counted before) */
		call->pg_done = false;
		json_t *obj = call->pg_json;
		call->pg_json = NULL;
		return write_answer(call, resp, obj, call->pg_rc, call->pg_err);
	}
	atomic_fetch_add(&a->metrics.writes_ok, 1);
	resp->index = op->index;
	if (kind == OP_NODE_DELETE || kind == OP_ACTOR_DELETE || kind == OP_PROVIDER_DELETE || kind == OP_LINK_DELETE) {
		resp->status = 204;
		return HTTP_RESPOND;
	}
	/* PostgreSQL now shows the write; the loop rendered the object from the
	 * model in the same shape, which saves reading it back (it did not when
	 * the object was gone again by the time the loop answered). */
	json_t *obj = op->object;
	op->object = NULL;
	if (obj == NULL && op->object_text == NULL)
		return api_pg_defer(a, req, call, resp, pg_read_back);
	return write_answer(call, resp, obj, QUERY_OK, "");
}
