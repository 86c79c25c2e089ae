#include "entry.h"

#include <raft.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jw.h"

static const char *const entry_names[] = {
	[ENTRY_NODE_PUT] = "node_put",
	[ENTRY_NODE_FLAGS] = "node_flags",
	[ENTRY_NODE_DRAIN] = "node_drain",
	[ENTRY_NODE_DELETE] = "node_delete",
	[ENTRY_ACTOR_CREATE] = "actor_create",
	[ENTRY_ACTOR_UPDATE] = "actor_update",
	[ENTRY_ACTOR_DELETE] = "actor_delete",
	[ENTRY_PROVIDER_CREATE] = "provider_create",
	[ENTRY_PROVIDER_DELETE] = "provider_delete",
	[ENTRY_LINK_CREATE] = "link_create",
	[ENTRY_LINK_DELETE] = "link_delete",
	[ENTRY_POLICY_PUT] = "policy_put",
	[ENTRY_MEMBER_PUT] = "member_put",
	[ENTRY_MEMBER_DELETE] = "member_delete",
};
#define ENTRY_NOPS (sizeof(entry_names) / sizeof(entry_names[0]))

const char *entry_op_name(enum entry_op op)
{
	if ((size_t)op < ENTRY_NOPS && entry_names[op])
		return entry_names[op];
	return "unknown";
}

/* key: the tree j (stolen; NULL = out of memory). */
static void put_tree(struct jw *w, const char *key, json_t *j)
{
	jw_key(w, key);
	jw_tree_new(w, j);
}

/* A string the entry cannot do without: NULL makes it unrenderable. */
static void put_str(struct jw *w, const char *s)
{
	if (s == NULL)
		w->oom = true;
	else
		jw_str(w, s);
}

int entry_encode(const struct entry *e, void **buf, size_t *len)
{
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "v");
	jw_int(&w, ENTRY_VERSION);
	jw_key(&w, "op");
	jw_str(&w, entry_op_name(e->op));
	jw_key(&w, "at");
	jw_int(&w, e->at_ms);
	if (e->who) {
		jw_key(&w, "who");
		jw_str(&w, e->who);
	}
	if (e->target) {
		jw_key(&w, "target");
		jw_str(&w, e->target);
	}
	if (e->flag) {
		jw_key(&w, "flag");
		jw_int(&w, e->flag);
	}
	switch (e->op) {
	case ENTRY_NODE_PUT:
		put_tree(&w, "node", spec_node_to_json(&e->node));
		break;
	case ENTRY_ACTOR_CREATE: /* the hot path: written directly */
		jw_key(&w, "actor");
		spec_actor_write(&w, &e->actor);
		break;
	case ENTRY_ACTOR_UPDATE:
		put_tree(&w, "patch", spec_actor_patch_to_json(&e->patch));
		break;
	case ENTRY_PROVIDER_CREATE:
		put_tree(&w, "provider", spec_provider_to_json(&e->provider));
		break;
	case ENTRY_LINK_CREATE:
		put_tree(&w, "link", spec_link_to_json(&e->link));
		break;
	case ENTRY_POLICY_PUT:
		put_tree(&w, "policy", spec_policy_to_json(&e->policy));
		break;
	case ENTRY_MEMBER_PUT:
	case ENTRY_MEMBER_DELETE:
		jw_key(&w, "member");
		jw_obj(&w);
		jw_key(&w, "id");
		jw_uint(&w, e->member_id);
		if (e->op == ENTRY_MEMBER_PUT) {
			jw_key(&w, "api_url");
			put_str(&w, e->api_url);
		}
		jw_obj_end(&w);
		break;
	default:
		break;
	}
	if (e->nplacements) {
		jw_key(&w, "placements");
		jw_arr(&w);
		for (size_t i = 0; i < e->nplacements; i++)
			put_str(&w, e->placements[i]);
		jw_arr_end(&w);
	}
	if (e->rr_cursor) {
		jw_key(&w, "rr_cursor");
		jw_str(&w, e->rr_cursor);
	}
	if (e->nmoves) {
		jw_key(&w, "moves");
		jw_arr(&w);
		for (size_t i = 0; i < e->nmoves; i++) {
			jw_obj(&w);
			jw_key(&w, "actor_id");
			put_str(&w, e->moves[i].actor_id);
			jw_key(&w, "instance");
			jw_int(&w, e->moves[i].instance);
			jw_key(&w, "to_node");
			put_str(&w, e->moves[i].to_node);
			jw_obj_end(&w);
		}
		jw_arr_end(&w);
	}
	jw_obj_end(&w);
	size_t n;
	char *s = jw_take(&w, &n);
	if (s == NULL)
		return -1;
	/* raft 0.15's segment writer requires entry lengths that are multiples of 8
	 * (it asserts it only in debug builds and otherwise writes a segment it
	 * cannot read back): pad with spaces, which JSON ignores. */
	size_t padded = (n + 7) & ~(size_t)7;
	char *b = raft_malloc(padded);
	if (b == NULL) {
		free(s);
		return -1;
	}
	memcpy(b, s, n);
	memset(b + n, ' ', padded - n);
	free(s);
	*buf = b;
	*len = padded;
	return 0;
}

static char *dup_str(const json_t *o, const char *k)
{
	const json_t *v = json_object_get(o, k);
	return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

int entry_decode(const void *buf, size_t len, struct entry *out, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (o == NULL || !json_is_object(o)) {
		snprintf(err, errlen, "entry is not a JSON object: %s", o ? "wrong type" : jerr.text);
		json_decref(o);
		return -1;
	}
	struct entry e;
	memset(&e, 0, sizeof(e));
	struct spec_err serr = {{0}, {0}};
	int rc = -1;
	json_int_t v = json_integer_value(json_object_get(o, "v"));
	if (v < 1 || v > ENTRY_VERSION) {
		snprintf(err, errlen, "entry format version %lld not supported (this build reads 1..%d)",
			 (long long)v, ENTRY_VERSION);
		goto out;
	}
	const char *op = json_string_value(json_object_get(o, "op"));
	for (size_t i = 1; op && i < ENTRY_NOPS; i++)
		if (entry_names[i] && strcmp(entry_names[i], op) == 0)
			e.op = (enum entry_op)i;
	if (e.op == 0) {
		snprintf(err, errlen, "unknown entry op '%s'", op ? op : "(none)");
		goto out;
	}
	e.at_ms = json_integer_value(json_object_get(o, "at"));
	e.flag = json_integer_value(json_object_get(o, "flag"));
	e.who = dup_str(o, "who");
	e.target = dup_str(o, "target");
	e.rr_cursor = dup_str(o, "rr_cursor");
	const json_t *pl = json_object_get(o, "placements");
	if (pl != NULL && !json_is_array(pl)) {
		snprintf(err, errlen, "entry placements: not an array");
		goto out;
	}
	if (json_array_size(pl) > 0) {
		e.placements = calloc(json_array_size(pl), sizeof(char *));
		if (e.placements == NULL)
			goto nomem;
		for (size_t i = 0; i < json_array_size(pl); i++) {
			const char *s = json_string_value(json_array_get(pl, i));
			if (s == NULL) {
				snprintf(err, errlen, "entry placements[%zu]: not a node id", i);
				goto out;
			}
			if ((e.placements[i] = strdup(s)) == NULL)
				goto nomem;
			e.nplacements++;
		}
	}
	const json_t *mv = json_object_get(o, "moves");
	if (mv != NULL && !json_is_array(mv)) {
		snprintf(err, errlen, "entry moves: not an array");
		goto out;
	}
	if (json_array_size(mv) > 0) {
		e.moves = calloc(json_array_size(mv), sizeof(*e.moves));
		if (e.moves == NULL)
			goto nomem;
		for (size_t i = 0; i < json_array_size(mv); i++) {
			const json_t *m = json_array_get(mv, i);
			const json_t *inst = json_object_get(m, "instance");
			if (!json_is_object(m) || !json_is_string(json_object_get(m, "actor_id")) ||
			    !json_is_string(json_object_get(m, "to_node")) || !json_is_integer(inst)) {
				snprintf(err, errlen, "entry moves[%zu]: needs actor_id, instance and to_node", i);
				goto out;
			}
			struct entry_move *d = &e.moves[e.nmoves++];
			d->actor_id = dup_str(m, "actor_id");
			d->to_node = dup_str(m, "to_node");
			d->instance = json_integer_value(inst);
			if (d->actor_id == NULL || d->to_node == NULL)
				goto nomem;
		}
	}
	const char *what = NULL;
	int src = 0;
	switch (e.op) {
	case ENTRY_NODE_PUT:
		what = "node";
		src = spec_node_from_json(json_object_get(o, "node"), &e.node, &serr);
		break;
	case ENTRY_ACTOR_CREATE:
		what = "actor";
		src = spec_actor_from_json(json_object_get(o, "actor"), &e.actor, &serr);
		break;
	case ENTRY_ACTOR_UPDATE:
		what = "patch";
		src = spec_actor_patch_from_json(json_object_get(o, "patch"), &e.patch, &serr);
		break;
	case ENTRY_PROVIDER_CREATE:
		what = "provider";
		src = spec_provider_from_json(json_object_get(o, "provider"), &e.provider, &serr);
		break;
	case ENTRY_LINK_CREATE:
		what = "link";
		src = spec_link_from_json(json_object_get(o, "link"), &e.link, &serr);
		break;
	case ENTRY_POLICY_PUT:
		what = "policy";
		src = spec_policy_from_json(json_object_get(o, "policy"), &e.policy, &serr);
		break;
	case ENTRY_MEMBER_PUT:
	case ENTRY_MEMBER_DELETE: {
		const json_t *mb = json_object_get(o, "member");
		const json_t *id = json_object_get(mb, "id");
		const json_t *url = json_object_get(mb, "api_url");
		if (!json_is_integer(id) || json_integer_value(id) < 1 ||
		    (e.op == ENTRY_MEMBER_PUT && !json_is_string(url))) {
			snprintf(err, errlen, "entry member: needs a positive id%s",
				 e.op == ENTRY_MEMBER_PUT ? " and an api_url" : "");
			goto out;
		}
		e.member_id = (uint64_t)json_integer_value(id);
		if (e.op == ENTRY_MEMBER_PUT && (e.api_url = strdup(json_string_value(url))) == NULL)
			goto nomem;
		break;
	}
	default:
		break;
	}
	if (src != 0) {
		snprintf(err, errlen, "entry %s: %s", what, serr.message);
		goto out;
	}
	*out = e;
	memset(&e, 0, sizeof(e));
	rc = 0;
	goto out;
nomem:
	snprintf(err, errlen, "out of memory decoding entry");
out:
	entry_release(&e);
	json_decref(o);
	return rc;
}

void entry_release(struct entry *e)
{
	free(e->who);
	free(e->target);
	free(e->rr_cursor);
	for (size_t i = 0; i < e->nplacements; i++)
		free(e->placements[i]);
	free(e->placements);
	for (size_t i = 0; i < e->nmoves; i++) {
		free(e->moves[i].actor_id);
		free(e->moves[i].to_node);
	}
	free(e->moves);
	spec_node_free(&e->node);
	spec_actor_free(&e->actor);
	spec_provider_free(&e->provider);
	spec_link_free(&e->link);
	spec_policy_free(&e->policy);
	free(e->api_url);
	memset(e, 0, sizeof(*e));
}
