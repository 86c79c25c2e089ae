#include "proto.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const drop_names[PROTO_DROPS] = {"ok",	"malformed", "oversized",
						    "spoofed", "stale",	     "unknown", "overloaded"};

const char *proto_drop_name(enum proto_drop d)
{
	return (unsigned)d < PROTO_DROPS ? drop_names[d] : "unknown";
}

int proto_subject(char *out, size_t len, const char *lattice, const char *kind, const char *token)
{
	int n = snprintf(out, len, "lattice.%s.%s.%s", lattice, kind, token);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

__attribute__((format(printf, 3, 4))) static enum proto_drop fail(char *err, size_t errlen, const char *fmt,
								  ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return PROTO_MALFORMED;
}

/* An integer field in [min, max]; -1 when absent or out of range. */
static int get_int(const json_t *o, const char *key, int64_t min, int64_t max, int64_t *out)
{
	const json_t *v = json_object_get(o, key);
	if (!json_is_integer(v))
		return -1;
	json_int_t i = json_integer_value(v);
	if (i < min || i > max)
		return -1;
	*out = (int64_t)i;
	return 0;
}

/* A string field of 1..max bytes, printable ASCII; NULL when not. */
static const char *get_text(const json_t *o, const char *key, size_t max)
{
	const json_t *v = json_object_get(o, key);
	const char *s = json_string_value(v);
	if (s == NULL || json_string_length(v) == 0 || json_string_length(v) > max)
		return NULL;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			return NULL;
	if (strlen(s) != json_string_length(v)) /* an embedded NUL */
		return NULL;
	return s;
}

/* An RFC 3339 time as the protocol writes it: 2026-12-02T10:15:30.125Z, an
 * offset instead of Z, fractions optional. Shown, never trusted: only its form
 * is checked. */
static bool time_valid(const char *s)
{
	static const char form[] = "dddd-dd-ddTdd:dd:dd";
	size_t i = 0;
	for (; form[i]; i++) {
		char c = s[i];
		if (form[i] == 'd' ? !(c >= '0' && c <= '9') : c != form[i] && !(form[i] == 'T' && c == 't'))
			return false;
	}
	if (s[i] == '.') {
		size_t d = 0;
		for (i++; s[i] >= '0' && s[i] <= '9'; i++)
			d++;
		if (d == 0 || d > 9)
			return false;
	}
	if ((s[i] == 'Z' || s[i] == 'z') && s[i + 1] == '\0')
		return true;
	return (s[i] == '+' || s[i] == '-') && s[i + 1] >= '0' && s[i + 1] <= '9' && s[i + 2] >= '0' &&
	       s[i + 2] <= '9' && s[i + 3] == ':' && s[i + 4] >= '0' && s[i + 4] <= '9' && s[i + 5] >= '0' &&
	       s[i + 5] <= '9' && s[i + 6] == '\0';
}

static const char *const actor_states[] = {"starting", "running", "stopping", "failed"};

static int actor_cmp(const void *a, const void *b)
{
	const struct proto_hb_actor *x = a, *y = b;
	int c = strcmp(x->actor_id, y->actor_id);
	if (c != 0)
		return c;
	return x->instance < y->instance ? -1 : x->instance > y->instance;
}

void proto_hb_free(struct proto_hb *hb)
{
	if (hb == NULL)
		return;
	spec_node_free(&hb->profile);
	for (size_t i = 0; i < hb->nactors; i++)
		free(hb->actors[i].actor_id);
	free(hb->actors);
	memset(hb, 0, sizeof(*hb));
}

static enum proto_drop hb_actors(const json_t *arr, struct proto_hb *hb, char *err, size_t errlen)
{
	if (!json_is_array(arr))
		return fail(err, errlen, "field 'actors' must be an array");
	size_t n = json_array_size(arr);
	if (n > PROTO_HB_ACTORS_MAX)
		return fail(err, errlen, "field 'actors' lists %zu instances (at most %d)", n,
			    PROTO_HB_ACTORS_MAX);
	if (n == 0)
		return PROTO_OK;
	hb->actors = calloc(n, sizeof(*hb->actors));
	if (hb->actors == NULL)
		return fail(err, errlen, "out of memory");
	static const char *const known[] = {"actor_id", "instance", "state", "state_version"};
	for (size_t i = 0; i < n; i++) {
		const json_t *a = json_array_get(arr, i);
		struct proto_hb_actor *x = &hb->actors[i];
		if (!json_is_object(a))
			return fail(err, errlen, "actors[%zu] must be an object", i);
		const char *key;
		const json_t *v;
		json_object_foreach((json_t *)a, key, v) {
			size_t k = 0;
			while (k < 4 && strcmp(key, known[k]) != 0)
				k++;
			if (k == 4)
				return fail(err, errlen, "actors[%zu]: unknown field '%.64s'", i, key);
		}
		const char *id = json_string_value(json_object_get(a, "actor_id"));
		if (id == NULL || !spec_id_valid(id))
			return fail(err, errlen, "actors[%zu].actor_id must be an actor id", i);
		x->instance = 0;
		if (json_object_get(a, "instance") &&
		    get_int(a, "instance", 0, SPEC_REPLICAS_MAX - 1, &x->instance) != 0)
			return fail(err, errlen, "actors[%zu].instance must be an integer 0..%lld", i,
				    SPEC_REPLICAS_MAX - 1);
		const char *st = json_string_value(json_object_get(a, "state"));
		size_t s = 0;
		while (st && s < 4 && strcmp(st, actor_states[s]) != 0)
			s++;
		if (st == NULL || s == 4)
			return fail(err, errlen, "actors[%zu].state must be starting, running, stopping or failed",
				    i);
		x->state = (enum proto_actor_state)s;
		if (get_int(a, "state_version", 0, INT64_MAX, &x->state_version) != 0)
			return fail(err, errlen, "actors[%zu].state_version must be an integer >= 0", i);
		if ((x->actor_id = strdup(id)) == NULL)
			return fail(err, errlen, "out of memory");
		hb->nactors = i + 1;
	}
	qsort(hb->actors, hb->nactors, sizeof(*hb->actors), actor_cmp);
	for (size_t i = 1; i < hb->nactors; i++)
		if (actor_cmp(&hb->actors[i - 1], &hb->actors[i]) == 0)
			return fail(err, errlen, "actors lists '%s' instance %lld twice", hb->actors[i].actor_id,
				    (long long)hb->actors[i].instance);
	return PROTO_OK;
}

/* The node token of "lattice.<L>.<kind>.<token>", or NULL when the subject is
 * not of that form. */
static const char *subject_token(const char *subject, const char *lattice, const char *kind)
{
	size_t ll = strlen(lattice), kl = strlen(kind);
	if (strncmp(subject, "lattice.", 8) != 0 || strncmp(subject + 8, lattice, ll) != 0 ||
	    subject[8 + ll] != '.' || strncmp(subject + 9 + ll, kind, kl) != 0 || subject[9 + ll + kl] != '.')
		return NULL;
	const char *t = subject + 10 + ll + kl;
	return strchr(t, '.') ? NULL : t;
}

/* What every decoder checks first: the size, the subject (lattice.L.kind.<node>:
 * its node token into *token), one JSON object without duplicate keys, no field
 * outside known. PROTO_OK with *out (the caller's reference), or the drop. */
static enum proto_drop open_msg(const char *lattice, const char *subject, const char *kind, const void *body,
				size_t len, size_t max, const char *const *known, const char **token, json_t **out,
				char *err, size_t errlen)
{
	if (len > max) {
		snprintf(err, errlen, "%s message of %zu bytes (at most %zu)", kind, len, max);
		return PROTO_OVERSIZED;
	}
	const char *t = subject_token(subject, lattice, kind);
	if (t == NULL || !spec_node_id_valid(t))
		return fail(err, errlen, "subject '%.200s' is not lattice.%s.%s.<node id>", subject, lattice, kind);
	json_error_t jerr;
	json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL)
		return fail(err, errlen, "not JSON: %s (at byte %d)", jerr.text, jerr.position);
	if (!json_is_object(j)) {
		json_decref(j);
		return fail(err, errlen, "a %s message is a JSON object", kind);
	}
	const char *key;
	json_t *v;
	json_object_foreach(j, key, v) {
		size_t k = 0;
		while (known[k] && strcmp(key, known[k]) != 0)
			k++;
		if (known[k] == NULL) {
			fail(err, errlen, "unknown field '%.64s'", key);
			json_decref(j);
			return PROTO_MALFORMED;
		}
	}
	*token = t;
	*out = j;
	return PROTO_OK;
}

enum proto_drop proto_hb_decode(const char *lattice, const char *subject, const void *body, size_t len,
				struct proto_hb *out, char *err, size_t errlen)
{
	static const char *const known[] = {"node_id",	      "region",		 "labels",	   "cpu_capacity",
					    "memory_mb",      "cpu_measured",	 "memory_measured_mb",
					    "actors",	      "error_count",	 "policy_version", "agent_version",
					    "agent_instance", "seq",		 "sent_at",	   NULL};
	const char *token;
	json_t *j;
	enum proto_drop rc = open_msg(lattice, subject, "hb", body, len, PROTO_HB_MAX, known, &token, &j, err, errlen);
	if (rc != PROTO_OK)
		return rc;
	rc = PROTO_MALFORMED;
	struct proto_hb hb = {0};
	const char *node_id = json_string_value(json_object_get(j, "node_id"));
	if (node_id == NULL) {
		fail(err, errlen, "field 'node_id' is missing");
		goto out;
	}
	if (strcmp(node_id, token) != 0) {
		snprintf(err, errlen, "subject names node '%s', body '%.64s'", token, node_id);
		rc = PROTO_SPOOFED;
		goto out;
	}
	/* The profile is checked by the API's own rules for a registration. */
	json_t *reg = json_pack("{s:O,s:O?,s:O?,s:O?,s:O?}", "id", json_object_get(j, "node_id"), "region",
				json_object_get(j, "region"), "labels", json_object_get(j, "labels"),
				"cpu_capacity", json_object_get(j, "cpu_capacity"), "memory_mb",
				json_object_get(j, "memory_mb"));
	if (reg == NULL) {
		fail(err, errlen, "out of memory");
		goto out;
	}
	struct spec_err se;
	int src = spec_node_from_json(reg, &hb.profile, &se);
	json_decref(reg);
	if (src != 0) {
		fail(err, errlen, "%s", se.message);
		goto out;
	}
	if (hb.profile.region == NULL) {
		fail(err, errlen, "field 'region' is missing");
		goto out;
	}
	if (get_int(j, "cpu_measured", 0, SPEC_CPU_MAX, &hb.cpu_measured) != 0 ||
	    get_int(j, "memory_measured_mb", 0, SPEC_MEMORY_MAX, &hb.memory_measured_mb) != 0) {
		fail(err, errlen, "fields 'cpu_measured' and 'memory_measured_mb' must be integers >= 0");
		goto out;
	}
	if (get_int(j, "error_count", 0, INT32_MAX, &hb.error_count) != 0 ||
	    get_int(j, "policy_version", 0, INT64_MAX, &hb.policy_version) != 0 ||
	    get_int(j, "seq", 1, INT64_MAX, &hb.seq) != 0) {
		fail(err, errlen, "fields 'error_count', 'policy_version' (>= 0) and 'seq' (>= 1) must be integers");
		goto out;
	}
	const char *av = get_text(j, "agent_version", PROTO_AGENT_VERSION_MAX);
	const char *inst = get_text(j, "agent_instance", PROTO_INSTANCE_MAX);
	if (av == NULL || inst == NULL) {
		fail(err, errlen, "fields 'agent_version' (1-%d) and 'agent_instance' (1-%d printable characters) are required",
		     PROTO_AGENT_VERSION_MAX, PROTO_INSTANCE_MAX);
		goto out;
	}
	snprintf(hb.agent_version, sizeof(hb.agent_version), "%s", av);
	snprintf(hb.instance, sizeof(hb.instance), "%s", inst);
	const char *sent = json_string_value(json_object_get(j, "sent_at"));
	if (sent == NULL || !time_valid(sent)) {
		fail(err, errlen, "field 'sent_at' must be an RFC 3339 time");
		goto out;
	}
	if ((rc = hb_actors(json_object_get(j, "actors"), &hb, err, errlen)) != PROTO_OK)
		goto out;
	*out = hb;
	memset(&hb, 0, sizeof(hb));
	rc = PROTO_OK;
out:
	proto_hb_free(&hb);
	json_decref(j);
	return rc;
}

void proto_ack_free(struct proto_ack *a)
{
	if (a == NULL)
		return;
	free(a->error);
	a->error = NULL;
}

enum proto_drop proto_ack_decode(const char *lattice, const char *subject, const void *body, size_t len,
				 struct proto_ack *out, char *err, size_t errlen)
{
	static const char *const known[] = {"command_id", "node_id", "status", "error", "applied_version", "at", NULL};
	const char *token;
	json_t *j;
	enum proto_drop rc = open_msg(lattice, subject, "ack", body, len, PROTO_ACK_MAX, known, &token, &j, err, errlen);
	if (rc != PROTO_OK)
		return rc;
	rc = PROTO_MALFORMED;
	struct proto_ack a;
	memset(&a, 0, sizeof(a));
	const char *id = get_text(j, "command_id", PROTO_CMD_ID_MAX);
	const char *node = json_string_value(json_object_get(j, "node_id"));
	const char *status = json_string_value(json_object_get(j, "status"));
	const char *at = json_string_value(json_object_get(j, "at"));
	if (id == NULL) {
		fail(err, errlen, "field 'command_id' must be 1-%d printable characters", PROTO_CMD_ID_MAX);
		goto out;
	}
	if (node == NULL || !spec_node_id_valid(node)) {
		fail(err, errlen, "field 'node_id' must be a node id");
		goto out;
	}
	if (strcmp(node, token) != 0) {
		snprintf(err, errlen, "subject names node '%s', body '%s'", token, node);
		rc = PROTO_SPOOFED;
		goto out;
	}
	if (status == NULL || (strcmp(status, "ok") != 0 && strcmp(status, "error") != 0)) {
		fail(err, errlen, "field 'status' must be ok or error");
		goto out;
	}
	if (at == NULL || !time_valid(at)) {
		fail(err, errlen, "field 'at' must be an RFC 3339 time");
		goto out;
	}
	a.applied_version = 0;
	if (json_object_get(j, "applied_version") && !json_is_null(json_object_get(j, "applied_version")) &&
	    get_int(j, "applied_version", 0, INT64_MAX, &a.applied_version) != 0) {
		fail(err, errlen, "field 'applied_version' must be an integer >= 0");
		goto out;
	}
	const json_t *e = json_object_get(j, "error");
	if (e != NULL && !json_is_null(e)) {
		const char *es = json_string_value(e);
		if (es == NULL || json_string_length(e) > PROTO_ERROR_MAX || strlen(es) != json_string_length(e)) {
			fail(err, errlen, "field 'error' must be a string of at most %d characters, or null",
			     PROTO_ERROR_MAX);
			goto out;
		}
		if ((a.error = strdup(es)) == NULL) {
			fail(err, errlen, "out of memory");
			goto out;
		}
	}
	a.ok = strcmp(status, "ok") == 0;
	if (!a.ok && a.error == NULL && (a.error = strdup("the agent reported an error")) == NULL) {
		fail(err, errlen, "out of memory");
		goto out;
	}
	snprintf(a.command_id, sizeof(a.command_id), "%s", id);
	snprintf(a.node_id, sizeof(a.node_id), "%s", node);
	*out = a;
	memset(&a, 0, sizeof(a));
	rc = PROTO_OK;
out:
	proto_ack_free(&a);
	json_decref(j);
	return rc;
}

void proto_snap_free(struct proto_snap *s)
{
	if (s == NULL)
		return;
	free(s->data);
	free(s->migration_id);
	s->data = s->migration_id = NULL;
}

/* Decoded length of base64 text b (padded, standard alphabet), or -1 when it
 * is not base64. */
static long base64_len(const char *b, size_t n)
{
	if (n % 4 != 0)
		return -1;
	size_t pad = 0;
	for (size_t i = 0; i < n; i++) {
		char c = b[i];
		bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
			     c == '/';
		if (c == '=' && i >= n - 2)
			pad++;
		else if (!alpha || pad > 0)
			return -1;
	}
	return (long)(n / 4 * 3 - pad);
}

enum proto_drop proto_snap_decode(const char *lattice, const char *subject, const void *body, size_t len,
				  struct proto_snap *out, char *err, size_t errlen)
{
	static const char *const known[] = {"actor_id", "node_id", "state_version", "data", "taken_at", "migration_id",
					    NULL};
	const char *token;
	json_t *j;
	enum proto_drop rc = open_msg(lattice, subject, "snap", body, len, PROTO_SNAP_MAX, known, &token, &j, err, errlen);
	if (rc != PROTO_OK)
		return rc;
	rc = PROTO_MALFORMED;
	struct proto_snap sn;
	memset(&sn, 0, sizeof(sn));
	const char *actor = json_string_value(json_object_get(j, "actor_id"));
	const char *node = json_string_value(json_object_get(j, "node_id"));
	const json_t *data = json_object_get(j, "data");
	const char *taken = json_string_value(json_object_get(j, "taken_at"));
	const json_t *mig = json_object_get(j, "migration_id");
	if (actor == NULL || !spec_id_valid(actor)) {
		fail(err, errlen, "field 'actor_id' must be an actor id");
		goto out;
	}
	if (node == NULL || !spec_node_id_valid(node)) {
		fail(err, errlen, "field 'node_id' must be a node id");
		goto out;
	}
	if (strcmp(node, token) != 0) {
		snprintf(err, errlen, "subject names node '%s', body '%s'", token, node);
		rc = PROTO_SPOOFED;
		goto out;
	}
	if (get_int(j, "state_version", 0, INT64_MAX, &sn.state_version) != 0) {
		fail(err, errlen, "field 'state_version' must be an integer >= 0");
		goto out;
	}
	long dl = json_is_string(data) ? base64_len(json_string_value(data), json_string_length(data)) : -1;
	if (dl < 0 || dl > PROTO_SNAP_DATA_MAX) {
		fail(err, errlen, "field 'data' must be base64 of at most %d bytes", PROTO_SNAP_DATA_MAX);
		goto out;
	}
	if (taken == NULL || !time_valid(taken)) {
		fail(err, errlen, "field 'taken_at' must be an RFC 3339 time");
		goto out;
	}
	if (mig != NULL && !json_is_null(mig) && get_text(j, "migration_id", PROTO_CMD_ID_MAX) == NULL) {
		fail(err, errlen, "field 'migration_id' must be 1-%d printable characters, or null", PROTO_CMD_ID_MAX);
		goto out;
	}
	if ((sn.data = strdup(json_string_value(data))) == NULL ||
	    (mig && !json_is_null(mig) && (sn.migration_id = strdup(json_string_value(mig))) == NULL)) {
		fail(err, errlen, "out of memory");
		goto out;
	}
	snprintf(sn.actor_id, sizeof(sn.actor_id), "%s", actor);
	snprintf(sn.node_id, sizeof(sn.node_id), "%s", node);
	*out = sn;
	memset(&sn, 0, sizeof(sn));
	rc = PROTO_OK;
out:
	proto_snap_free(&sn);
	json_decref(j);
	return rc;
}
