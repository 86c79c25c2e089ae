/* test_spec — the JSON edge: valid bodies, defaults, round trips and every kind of
 * bad input, each with the error code (and for many, the message) a user would see. */
#include "spec.h"
#include "tap.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum kind { K_NODE, K_ACTOR, K_PATCH, K_PROVIDER, K_LINK, K_POLICY };

static const char *kind_name[] = {"node", "actor", "patch", "provider", "link", "policy"};

/* Decodes body as kind, frees the result, and reports the error (rc -1) or success. */
static int decode(enum kind k, const char *body, size_t len, struct spec_err *err)
{
	json_t *j = NULL;
	if (spec_parse_body(body, len, &j, err) != 0)
		return -1;
	int rc = -1;
	switch (k) {
	case K_NODE: {
		struct node_spec s;
		if ((rc = spec_node_from_json(j, &s, err)) == 0)
			spec_node_free(&s);
		break;
	}
	case K_ACTOR: {
		struct actor_spec s;
		if ((rc = spec_actor_from_json(j, &s, err)) == 0)
			spec_actor_free(&s);
		break;
	}
	case K_PATCH: {
		struct actor_patch p;
		rc = spec_actor_patch_from_json(j, &p, err);
		break;
	}
	case K_PROVIDER: {
		struct provider_spec s;
		if ((rc = spec_provider_from_json(j, &s, err)) == 0)
			spec_provider_free(&s);
		break;
	}
	case K_LINK: {
		struct link_spec s;
		if ((rc = spec_link_from_json(j, &s, err)) == 0)
			spec_link_free(&s);
		break;
	}
	case K_POLICY: {
		struct policy_spec s;
		if ((rc = spec_policy_from_json(j, &s, err)) == 0)
			spec_policy_free(&s);
		break;
	}
	}
	json_decref(j);
	return rc;
}

/* to_json of the decoded value, or NULL on a decode error. */
static json_t *encode(enum kind k, const json_t *j, struct spec_err *err)
{
	json_t *out = NULL;
	switch (k) {
	case K_NODE: {
		struct node_spec s;
		if (spec_node_from_json(j, &s, err) == 0) {
			out = spec_node_to_json(&s);
			spec_node_free(&s);
		}
		break;
	}
	case K_ACTOR: {
		struct actor_spec s;
		if (spec_actor_from_json(j, &s, err) == 0) {
			out = spec_actor_to_json(&s);
			spec_actor_free(&s);
		}
		break;
	}
	case K_PATCH: {
		struct actor_patch p;
		if (spec_actor_patch_from_json(j, &p, err) == 0)
			out = spec_actor_patch_to_json(&p);
		break;
	}
	case K_PROVIDER: {
		struct provider_spec s;
		if (spec_provider_from_json(j, &s, err) == 0) {
			out = spec_provider_to_json(&s);
			spec_provider_free(&s);
		}
		break;
	}
	case K_LINK: {
		struct link_spec s;
		if (spec_link_from_json(j, &s, err) == 0) {
			out = spec_link_to_json(&s);
			spec_link_free(&s);
		}
		break;
	}
	case K_POLICY: {
		struct policy_spec s;
		if (spec_policy_from_json(j, &s, err) == 0) {
			out = spec_policy_to_json(&s);
			spec_policy_free(&s);
		}
		break;
	}
	}
	return out;
}

static json_t *parse(const char *body)
{
	struct spec_err err;
	json_t *j = NULL;
	if (spec_parse_body(body, strlen(body), &j, &err) != 0)
		tap_diag("parse failed: %s: %s", err.code, err.message);
	return j;
}

/* 2 tests: the body decodes, and to_json → from_json → to_json is a fixed point with
 * n_fields fields. */
static void roundtrip(enum kind k, const char *body, size_t n_fields, const char *name)
{
	struct spec_err err = {"", ""};
	json_t *j = parse(body);
	json_t *a = j ? encode(k, j, &err) : NULL;
	if (!ok(a != NULL, "%s: %s decodes", kind_name[k], name))
		tap_diag("  %s: %s", err.code, err.message);
	json_t *b = a ? encode(k, a, &err) : NULL;
	int same = a && b && json_equal(a, b) && json_object_size(a) == n_fields;
	if (!ok(same, "%s: %s round trips", kind_name[k], name)) {
		char *sa = a ? json_dumps(a, JSON_SORT_KEYS) : NULL;
		char *sb = b ? json_dumps(b, JSON_SORT_KEYS) : NULL;
		tap_diag("  first  %s", sa ? sa : "(null)");
		tap_diag("  second %s (%s %s)", sb ? sb : "(null)", err.code, err.message);
		free(sa);
		free(sb);
	}
	json_decref(j);
	json_decref(a);
	json_decref(b);
}

/* ---- bad input rows --------------------------------------------------------- */

struct row {
	enum kind k;
	const char *body;
	const char *code;
	const char *msg; /* substring of the message, or NULL */
};

#define NODE(extra) "{\"id\":\"n1\",\"region\":\"eu\"" extra "}"
#define ACTOR(extra) "{\"module\":\"m\",\"cpu_required\":1,\"memory_required_mb\":1" extra "}"
#define PROV(extra) "{\"contract_id\":\"wasmcloud:keyvalue\",\"image\":\"img\"" extra "}"
#define LINK(extra)                                                                       \
	"{\"actor_id\":\"a\",\"provider_id\":\"p\",\"contract_id\":\"wasmcloud:keyvalue\"" \
	extra "}"
#define POL(extra) "{\"policy_id\":\"p\"" extra "}"

#define E_JSON SPEC_E_INVALID_JSON
#define E_FIELD SPEC_E_INVALID_FIELD
#define E_MISSING SPEC_E_MISSING_FIELD
#define E_UNKNOWN SPEC_E_UNKNOWN_FIELD

static const struct row rows[] = {
	/* body shape */
	{K_NODE, "", E_JSON, "invalid JSON at line 1"},
	{K_NODE, "{\"id\":", E_JSON, "invalid JSON at line 1, column"},
	{K_NODE, "{\"id\":\"n1\",}", E_JSON, "invalid JSON"},
	{K_NODE, "{'id':'n1'}", E_JSON, "invalid JSON"},
	{K_NODE, "[1,2]", E_JSON, "must be a JSON object"},
	{K_NODE, "\"n1\"", E_JSON, "must be a JSON object"},
	{K_NODE, "42", E_JSON, "must be a JSON object"},
	{K_NODE, "null", E_JSON, "must be a JSON object"},
	{K_NODE, "{\"id\":\"a\",\"id\":\"b\",\"region\":\"eu\"}", E_JSON, "duplicate"},
	{K_NODE, NODE("") " x", E_JSON, "invalid JSON"},
	{K_NODE, NODE("") " {}", E_JSON, "invalid JSON"},
	{K_NODE, "{\"id\":\"n\\u0000x\",\"region\":\"eu\"}", E_JSON,
	 "NUL characters (\\u0000) are not allowed"},
	{K_NODE, "{\"id\":\"n1\",\"region\":\"e\xff\"}", E_JSON, "invalid JSON"},
	{K_NODE, "{\"id\":\"n1\",\"region\":\"eu\", \"labels\":{\"a\":\"1\",\"a\":\"2\"}}", E_JSON,
	 "duplicate"},

	/* node */
	{K_NODE, NODE(",\"foo\":1"), E_UNKNOWN, "unknown field 'foo'"},
	{K_NODE, NODE(",\"Id\":\"x\""), E_UNKNOWN, "unknown field 'Id'"},
	{K_NODE, NODE(",\"a\\u0001b\":1"), E_UNKNOWN, "unknown field 'a?b'"},
	{K_NODE, "{\"region\":\"eu\"}", E_MISSING, "field 'id' is required"},
	{K_NODE, "{\"id\":\"n1\"}", E_MISSING, "field 'region' is required"},
	{K_NODE, "{}", E_MISSING, "field 'id' is required"},
	{K_NODE, "{\"id\":5,\"region\":\"eu\"}", E_FIELD, "field 'id' must be a string"},
	{K_NODE, "{\"id\":null,\"region\":\"eu\"}", E_FIELD, "field 'id' must be a string"},
	{K_NODE, "{\"id\":\"\",\"region\":\"eu\"}", E_FIELD, "field 'id' must be 1 to 64"},
	{K_NODE, "{\"id\":\"edge.1\",\"region\":\"eu\"}", E_FIELD, "a NATS subject token: no '.'"},
	{K_NODE, "{\"id\":\"edge*\",\"region\":\"eu\"}", E_FIELD, "field 'id' must be 1 to 64"},
	{K_NODE, "{\"id\":\"edge>\",\"region\":\"eu\"}", E_FIELD, "field 'id' must be 1 to 64"},
	{K_NODE, "{\"id\":\"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz\",\"region\":\"eu\"}", E_FIELD,
	 "field 'id' must be 1 to 64"},
	{K_NODE, "{\"id\":\".\",\"region\":\"eu\"}", E_FIELD, "field 'id'"},
	{K_NODE, "{\"id\":\"..\",\"region\":\"eu\"}", E_FIELD, "field 'id'"},
	{K_NODE, "{\"id\":\"a/b\",\"region\":\"eu\"}", E_FIELD, "field 'id'"},
	{K_NODE, "{\"id\":\"a b\",\"region\":\"eu\"}", E_FIELD, "field 'id'"},
	{K_NODE, "{\"id\":\"\xc3\xa4\",\"region\":\"eu\"}", E_FIELD, "field 'id'"},
	{K_NODE, "{\"id\":\"a\\nb\",\"region\":\"eu\"}", E_FIELD, "field 'id'"},
	{K_NODE, "{\"id\":\"n1\",\"region\":\"\"}", E_FIELD, "field 'region' must be"},
	{K_NODE, "{\"id\":\"n1\",\"region\":\"eu west\"}", E_FIELD, "field 'region'"},
	{K_NODE, "{\"id\":\"n1\",\"region\":[\"eu\"]}", E_FIELD, "field 'region' must be a string"},
	{K_NODE, NODE(",\"cpu_capacity\":\"1\""), E_FIELD, "field 'cpu_capacity' must be an integer"},
	{K_NODE, NODE(",\"cpu_capacity\":1.5"), E_FIELD, "must be an integer"},
	{K_NODE, NODE(",\"cpu_capacity\":1.0"), E_FIELD, "must be an integer"},
	{K_NODE, NODE(",\"cpu_capacity\":true"), E_FIELD, "must be an integer"},
	{K_NODE, NODE(",\"cpu_capacity\":null"), E_FIELD, "must be an integer"},
	{K_NODE, NODE(",\"cpu_capacity\":{}"), E_FIELD, "must be an integer"},
	{K_NODE, NODE(",\"cpu_capacity\":-1"), E_FIELD,
	 "field 'cpu_capacity' must be between 0 and 100000000"},
	{K_NODE, NODE(",\"cpu_capacity\":100000001"), E_FIELD, "between 0 and 100000000"},
	{K_NODE, NODE(",\"cpu_capacity\":1e30"), E_FIELD, "must be an integer"},
	{K_NODE, NODE(",\"cpu_capacity\":9223372036854775807"), E_FIELD, "between"},
	{K_NODE, NODE(",\"cpu_capacity\":-9223372036854775808"), E_FIELD, "between"},
	{K_NODE, NODE(",\"cpu_capacity\":9223372036854775808"), E_JSON, "invalid JSON"},
	{K_NODE, NODE(",\"memory_mb\":-5"), E_FIELD, "field 'memory_mb' must be between 0 and"},
	{K_NODE, NODE(",\"memory_mb\":1073741825"), E_FIELD, "field 'memory_mb'"},
	{K_NODE, NODE(",\"cpu_used\":-1"), E_FIELD, "field 'cpu_used'"},
	{K_NODE, NODE(",\"memory_used_mb\":\"2\""), E_FIELD, "field 'memory_used_mb'"},
	{K_NODE, NODE(",\"actor_count\":1000001"), E_FIELD,
	 "field 'actor_count' must be between 0 and 1000000"},
	{K_NODE, NODE(",\"cpu_capacity\":1000,\"cpu_used\":1001"), E_FIELD,
	 "field 'cpu_used' must not exceed cpu_capacity (1000)"},
	{K_NODE, NODE(",\"memory_mb\":512,\"memory_used_mb\":513"), E_FIELD,
	 "must not exceed memory_mb"},
	{K_NODE, NODE(",\"labels\":[]"), E_FIELD, "field 'labels' must be an object"},
	{K_NODE, NODE(",\"labels\":\"a=b\""), E_FIELD, "field 'labels' must be an object"},
	{K_NODE, NODE(",\"labels\":null"), E_FIELD, "field 'labels' must be an object"},
	{K_NODE, NODE(",\"labels\":{\"k\":1}"), E_FIELD, "value of 'k' must be a string"},
	{K_NODE, NODE(",\"labels\":{\"k\":null}"), E_FIELD, "must be a string"},
	{K_NODE, NODE(",\"labels\":{\"k\":[\"v\"]}"), E_FIELD, "must be a string"},
	{K_NODE, NODE(",\"labels\":{\"a b\":\"v\"}"), E_FIELD, "key 'a b' is invalid"},
	{K_NODE, NODE(",\"labels\":{\"\":\"v\"}"), E_FIELD, "key '' is invalid"},
	{K_NODE, NODE(",\"labels\":{\"k\":\"v\\tw\"}"), E_FIELD, "value of 'k' must be at most 255"},
	{K_NODE, NODE(",\"labels\":{\"k\":\"\\u007f\"}"), E_FIELD, "value of 'k'"},

	/* actor */
	{K_ACTOR, ACTOR(",\"foo\":1"), E_UNKNOWN, "unknown field 'foo'"},
	{K_ACTOR, ACTOR(",\"placements\":[]"), E_UNKNOWN, "unknown field 'placements'"},
	{K_ACTOR, "{\"cpu_required\":1,\"memory_required_mb\":1}", E_MISSING,
	 "field 'module' is required"},
	{K_ACTOR, "{\"module\":\"m\",\"memory_required_mb\":1}", E_MISSING,
	 "field 'cpu_required' is required"},
	{K_ACTOR, "{\"module\":\"m\",\"cpu_required\":1}", E_MISSING,
	 "field 'memory_required_mb' is required"},
	{K_ACTOR, "{\"module\":\"m\",\"cpu_required\":\"1\",\"memory_required_mb\":1}", E_FIELD,
	 "field 'cpu_required' must be an integer"},
	{K_ACTOR, "{\"module\":\"m\",\"cpu_required\":-1,\"memory_required_mb\":1}", E_FIELD,
	 "field 'cpu_required' must be between 0 and 100000000"},
	{K_ACTOR, "{\"module\":\"m\",\"cpu_required\":1e30,\"memory_required_mb\":1}", E_FIELD,
	 "field 'cpu_required' must be an integer"},
	{K_ACTOR, "{\"module\":\"m\",\"cpu_required\":1,\"memory_required_mb\":false}", E_FIELD,
	 "field 'memory_required_mb' must be an integer"},
	{K_ACTOR, "{\"module\":\"m\",\"cpu_required\":1,\"memory_required_mb\":-1}", E_FIELD,
	 "field 'memory_required_mb' must be between 0 and 1073741824"},
	{K_ACTOR, "{\"module\":\"\",\"cpu_required\":1,\"memory_required_mb\":1}", E_FIELD,
	 "field 'module' must be"},
	{K_ACTOR, "{\"module\":\"a b\",\"cpu_required\":1,\"memory_required_mb\":1}", E_FIELD,
	 "field 'module'"},
	{K_ACTOR, "{\"module\":\"a\\tb\",\"cpu_required\":1,\"memory_required_mb\":1}", E_FIELD,
	 "field 'module'"},
	{K_ACTOR, "{\"module\":7,\"cpu_required\":1,\"memory_required_mb\":1}", E_FIELD,
	 "field 'module' must be a string"},
	{K_ACTOR, ACTOR(",\"id\":\"a/b\""), E_FIELD, "field 'id'"},
	{K_ACTOR, ACTOR(",\"id\":\"\""), E_FIELD, "field 'id'"},
	{K_ACTOR, ACTOR(",\"name\":\"\""), E_FIELD, "field 'name' must be 1 to 256"},
	{K_ACTOR, ACTOR(",\"name\":\"a\\u0001\""), E_FIELD, "field 'name'"},
	{K_ACTOR, ACTOR(",\"name\":\"a\\nb\""), E_FIELD, "field 'name'"},
	{K_ACTOR, ACTOR(",\"name\":null"), E_FIELD, "field 'name' must be a string"},
	{K_ACTOR, ACTOR(",\"preferred_region\":\"a b\""), E_FIELD, "field 'preferred_region'"},
	{K_ACTOR, ACTOR(",\"preferred_region\":1"), E_FIELD,
	 "field 'preferred_region' must be a string"},
	{K_ACTOR, ACTOR(",\"priority\":256"), E_FIELD, "field 'priority' must be between 0 and 255"},
	{K_ACTOR, ACTOR(",\"priority\":-1"), E_FIELD, "field 'priority'"},
	{K_ACTOR, ACTOR(",\"priority\":2.5"), E_FIELD, "field 'priority' must be an integer"},
	{K_ACTOR, ACTOR(",\"max_latency_ms\":3600001"), E_FIELD, "field 'max_latency_ms'"},
	{K_ACTOR, ACTOR(",\"replicas\":0"), E_FIELD, "field 'replicas' must be between 1 and 10000"},
	{K_ACTOR, ACTOR(",\"replicas\":10001"), E_FIELD, "field 'replicas'"},
	{K_ACTOR, ACTOR(",\"replicas\":\"3\""), E_FIELD, "field 'replicas' must be an integer"},
	{K_ACTOR, ACTOR(",\"strategy\":\"fast\""), E_FIELD,
	 "field 'strategy' must be \"resources\" or \"round_robin\""},
	{K_ACTOR, ACTOR(",\"strategy\":1"), E_FIELD, "field 'strategy'"},
	{K_ACTOR, ACTOR(",\"constraints\":[\"a\"]"), E_FIELD, "field 'constraints' must be an object"},
	{K_ACTOR, ACTOR(",\"constraints\":{\"k\":true}"), E_FIELD, "field 'constraints' value of 'k'"},
	{K_ACTOR, ACTOR(",\"contracts\":\"wasmcloud:keyvalue\""), E_FIELD,
	 "field 'contracts' must be an array of strings"},
	{K_ACTOR, ACTOR(",\"contracts\":{}"), E_FIELD, "must be an array of strings"},
	{K_ACTOR, ACTOR(",\"contracts\":[1]"), E_FIELD, "must be an array of strings"},
	{K_ACTOR, ACTOR(",\"contracts\":[null]"), E_FIELD, "must be an array of strings"},
	{K_ACTOR, ACTOR(",\"contracts\":[\"a:b\",\"c:d\",\"a:b\"]"), E_FIELD,
	 "field 'contracts' lists 'a:b' more than once"},
	{K_ACTOR, ACTOR(",\"contracts\":[\"Wasmcloud:keyvalue\"]"), E_FIELD,
	 "entry 'Wasmcloud:keyvalue' is invalid"},
	{K_ACTOR, ACTOR(",\"contracts\":[\"keyvalue\"]"), E_FIELD, "namespace:name"},
	{K_ACTOR, ACTOR(",\"contracts\":[\":kv\"]"), E_FIELD, "field 'contracts'"},
	{K_ACTOR, ACTOR(",\"contracts\":[\"wasmcloud:\"]"), E_FIELD, "field 'contracts'"},
	{K_ACTOR, ACTOR(",\"contracts\":[\"a:b:c\"]"), E_FIELD, "field 'contracts'"},
	{K_ACTOR, ACTOR(",\"contracts\":[\"a :b\"]"), E_FIELD, "field 'contracts'"},
	{K_ACTOR, ACTOR(",\"contracts\":[\"\"]"), E_FIELD, "field 'contracts'"},

	/* actor patch */
	{K_PATCH, "{}", E_MISSING,
	 "nothing to change: give replicas, cpu_required or memory_required_mb"},
	{K_PATCH, "{\"replicas\":0}", E_FIELD, "field 'replicas' must be between 1 and 10000"},
	{K_PATCH, "{\"replicas\":null}", E_FIELD, "field 'replicas' must be an integer"},
	{K_PATCH, "{\"cpu_required\":\"5\"}", E_FIELD, "field 'cpu_required' must be an integer"},
	{K_PATCH, "{\"memory_required_mb\":-1}", E_FIELD, "field 'memory_required_mb'"},
	{K_PATCH, "{\"replicas\":2,\"module\":\"m\"}", E_UNKNOWN, "unknown field 'module'"},
	{K_PATCH, "[]", E_JSON, "must be a JSON object"},

	/* provider */
	{K_PROVIDER, PROV(",\"foo\":1"), E_UNKNOWN, "unknown field 'foo'"},
	{K_PROVIDER, "{\"image\":\"img\"}", E_MISSING, "field 'contract_id' is required"},
	{K_PROVIDER, "{\"contract_id\":\"a:b\"}", E_MISSING, "field 'image' is required"},
	{K_PROVIDER, "{\"contract_id\":\"keyvalue\",\"image\":\"i\"}", E_FIELD,
	 "field 'contract_id' must be a contract"},
	{K_PROVIDER, "{\"contract_id\":\"A:b\",\"image\":\"i\"}", E_FIELD, "field 'contract_id'"},
	{K_PROVIDER, "{\"contract_id\":\"a:b\",\"image\":\"i j\"}", E_FIELD, "field 'image'"},
	{K_PROVIDER, "{\"contract_id\":\"a:b\",\"image\":\"\"}", E_FIELD, "field 'image'"},
	{K_PROVIDER, PROV(",\"nodes\":[\"n1\",\"n1\"]"), E_FIELD,
	 "field 'nodes' lists 'n1' more than once"},
	{K_PROVIDER, PROV(",\"nodes\":[\"a/b\"]"), E_FIELD, "field 'nodes' entry 'a/b' is invalid"},
	{K_PROVIDER, PROV(",\"nodes\":[\"..\"]"), E_FIELD, "field 'nodes'"},
	{K_PROVIDER, PROV(",\"nodes\":\"n1\""), E_FIELD, "field 'nodes' must be an array"},
	{K_PROVIDER, PROV(",\"id\":\".\""), E_FIELD, "field 'id'"},

	/* link */
	{K_LINK, LINK(",\"foo\":1"), E_UNKNOWN, "unknown field 'foo'"},
	{K_LINK, "{\"provider_id\":\"p\",\"contract_id\":\"a:b\"}", E_MISSING,
	 "field 'actor_id' is required"},
	{K_LINK, "{\"actor_id\":\"a\",\"contract_id\":\"a:b\"}", E_MISSING,
	 "field 'provider_id' is required"},
	{K_LINK, "{\"actor_id\":\"a\",\"provider_id\":\"p\"}", E_MISSING,
	 "field 'contract_id' is required"},
	{K_LINK, "{\"actor_id\":\"a b\",\"provider_id\":\"p\",\"contract_id\":\"a:b\"}", E_FIELD,
	 "field 'actor_id'"},
	{K_LINK, "{\"actor_id\":\"a\",\"provider_id\":\"p\",\"contract_id\":\"ab\"}", E_FIELD,
	 "field 'contract_id'"},
	{K_LINK, LINK(",\"link_name\":\"\""), E_FIELD, "field 'link_name'"},
	{K_LINK, LINK(",\"link_name\":\"a b\""), E_FIELD, "field 'link_name'"},
	{K_LINK, LINK(",\"values\":[]"), E_FIELD, "field 'values' must be an object"},
	{K_LINK, LINK(",\"values\":{\"k\":1}"), E_FIELD, "field 'values' value of 'k' must be a string"},
	{K_LINK, LINK(",\"values\":{\"a/b\":\"v\"}"), E_FIELD, "field 'values' key 'a/b' is invalid"},
	{K_LINK, LINK(",\"values\":{\"k\":\"a\\u0000b\"}"), E_JSON, "invalid JSON"},
	{K_LINK, LINK(",\"values\":{\"k\":\"line\\nbreak\"}"), E_FIELD, "value of 'k'"},
	{K_LINK, LINK(",\"timeout_ms\":-1"), E_FIELD, "field 'timeout_ms' must be between 0 and"},
	{K_LINK, LINK(",\"timeout_ms\":3600001"), E_FIELD, "field 'timeout_ms'"},
	{K_LINK, LINK(",\"retry_count\":1001"), E_FIELD, "field 'retry_count' must be between 0 and 1000"},
	{K_LINK, LINK(",\"retry_count\":1.5"), E_FIELD, "field 'retry_count' must be an integer"},
	{K_LINK, LINK(",\"retry_delay_ms\":true"), E_FIELD, "field 'retry_delay_ms'"},

	/* policy */
	{K_POLICY, POL(",\"foo\":1"), E_UNKNOWN, "unknown field 'foo'"},
	{K_POLICY, POL(",\"version\":2"), E_UNKNOWN, "unknown field 'version'"},
	{K_POLICY, "{\"policy_id\":\"..\"}", E_FIELD, "field 'policy_id'"},
	{K_POLICY, "{\"policy_id\":3}", E_FIELD, "field 'policy_id' must be a string"},
	{K_POLICY, POL(",\"allowed_contracts\":[\"a:b\"],\"denied_contracts\":[\"c:d\",\"a:b\"]"),
	 E_FIELD, "contract 'a:b' is in both allowed_contracts and denied_contracts"},
	{K_POLICY, POL(",\"allowed_contracts\":[\"a:b\",\"a:b\"]"), E_FIELD,
	 "field 'allowed_contracts' lists 'a:b' more than once"},
	{K_POLICY, POL(",\"denied_contracts\":[\"nope\"]"), E_FIELD, "field 'denied_contracts'"},
	{K_POLICY, POL(",\"allowed_contracts\":\"a:b\""), E_FIELD,
	 "field 'allowed_contracts' must be an array of strings"},
	{K_POLICY, POL(",\"max_actor_memory_mb\":-1"), E_FIELD,
	 "field 'max_actor_memory_mb' must be between 0 and"},
	{K_POLICY, POL(",\"max_actor_memory_mb\":\"1\""), E_FIELD, "must be an integer"},
	{K_POLICY, POL(",\"network_restrictions\":[\"\"]"), E_FIELD, "field 'network_restrictions'"},
	{K_POLICY, POL(",\"network_restrictions\":[\"a\\u0007\"]"), E_FIELD,
	 "field 'network_restrictions' entry 'a?' is invalid"},
	{K_POLICY, POL(",\"network_restrictions\":[\"x\",\"x\"]"), E_FIELD, "more than once"},
	{K_POLICY, POL(",\"selector\":[]"), E_FIELD, "field 'selector' must be an object"},
	{K_POLICY, POL(",\"selector\":null"), E_FIELD, "field 'selector' must be an object"},
	{K_POLICY, POL(",\"selector\":{\"zones\":[]}"), E_UNKNOWN, "unknown field 'selector.zones'"},
	{K_POLICY, POL(",\"selector\":{\"regions\":[\"eu\",\"eu\"]}"), E_FIELD,
	 "field 'selector.regions' lists 'eu' more than once"},
	{K_POLICY, POL(",\"selector\":{\"regions\":[\"e u\"]}"), E_FIELD, "field 'selector.regions'"},
	{K_POLICY, POL(",\"selector\":{\"regions\":\"eu\"}"), E_FIELD,
	 "field 'selector.regions' must be an array"},
	{K_POLICY, POL(",\"selector\":{\"labels\":[]}"), E_FIELD, "field 'selector.labels' must be"},
	{K_POLICY, POL(",\"selector\":{\"labels\":{\"k\":2}}"), E_FIELD, "field 'selector.labels'"},
};

#define N_ROWS (sizeof(rows) / sizeof(rows[0]))

/* Generated rows (long strings, many entries) own their bodies. */
struct grow {
	enum kind k;
	char *body;
	const char *code;
	const char *msg;
	const char *name;
};

static struct grow grows[32];
static size_t n_grows;

static char *rep(char c, size_t n)
{
	char *s = malloc(n + 1);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

__attribute__((format(printf, 1, 2))) static char *fmt(const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	int n = vsnprintf(NULL, 0, f, ap);
	va_end(ap);
	char *s = malloc((size_t)n + 1);
	va_start(ap, f);
	vsnprintf(s, (size_t)n + 1, f, ap);
	va_end(ap);
	return s;
}

static void add(enum kind k, char *body, const char *code, const char *msg, const char *name)
{
	grows[n_grows++] = (struct grow){k, body, code, msg, name};
}

/* A JSON object text with n pairs "<prefix><i>": "v". */
static char *pairs(const char *prefix, size_t n)
{
	size_t cap = 16 + n * (strlen(prefix) + 16), o = 0;
	char *s = malloc(cap);
	o += (size_t)snprintf(s + o, cap - o, "{");
	for (size_t i = 0; i < n; i++)
		o += (size_t)snprintf(s + o, cap - o, "%s\"%s%zu\":\"v\"", i ? "," : "", prefix, i);
	snprintf(s + o, cap - o, "}");
	return s;
}

/* A JSON array text with n strings "<prefix><i>". */
static char *items(const char *prefix, size_t n)
{
	size_t cap = 16 + n * (strlen(prefix) + 16), o = 0;
	char *s = malloc(cap);
	o += (size_t)snprintf(s + o, cap - o, "[");
	for (size_t i = 0; i < n; i++)
		o += (size_t)snprintf(s + o, cap - o, "%s\"%s%zu\"", i ? "," : "", prefix, i);
	snprintf(s + o, cap - o, "]");
	return s;
}

static void make_grows(void)
{
	char *a129 = rep('a', 129), *a65 = rep('a', 65), *a257 = rep('x', 257);
	char *a1025 = rep('m', 1025), *k64 = rep('k', 64), *v256 = rep('v', 256);
	char *v4097 = rep('v', 4097), *r129 = rep('r', 129);
	char *l65 = pairs("k", SPEC_LABELS_MAX + 1), *c257 = items("ns:c", SPEC_LIST_MAX + 1);
	char *ct = fmt("ns:%s", a129), *r257 = items("r", SPEC_LIST_MAX + 1);

	add(K_NODE, fmt("{\"id\":\"%s\",\"region\":\"eu\"}", a129), E_FIELD, "field 'id'",
	    "id of 129 characters");
	add(K_NODE, fmt("{\"id\":\"n\",\"region\":\"%s\"}", a65), E_FIELD, "field 'region'",
	    "region of 65 characters");
	add(K_NODE, fmt(NODE(",\"labels\":%s"), l65), E_FIELD,
	    "field 'labels' must have at most 64 entries", "65 labels");
	add(K_NODE, fmt(NODE(",\"labels\":{\"%s\":\"v\"}"), k64), E_FIELD, "field 'labels' key",
	    "label key of 64 characters");
	add(K_NODE, fmt(NODE(",\"labels\":{\"k\":\"%s\"}"), v256), E_FIELD, "value of 'k'",
	    "label value of 256 characters");
	add(K_ACTOR, fmt(ACTOR(",\"name\":\"%s\""), a257), E_FIELD, "field 'name'",
	    "name of 257 characters");
	add(K_ACTOR, fmt("{\"module\":\"%s\",\"cpu_required\":1,\"memory_required_mb\":1}", a1025),
	    E_FIELD, "field 'module'", "module of 1025 characters");
	add(K_ACTOR, fmt(ACTOR(",\"contracts\":%s"), c257), E_FIELD,
	    "field 'contracts' must have at most 256 entries", "257 contracts");
	add(K_ACTOR, fmt(ACTOR(",\"contracts\":[\"%s\"]"), ct), E_FIELD, "field 'contracts' entry",
	    "contract of 132 characters");
	add(K_ACTOR, fmt(ACTOR(",\"constraints\":%s"), l65), E_FIELD, "field 'constraints'",
	    "65 constraints");
	add(K_LINK, fmt(LINK(",\"values\":{\"k\":\"%s\"}"), v4097), E_FIELD, "value of 'k'",
	    "link value of 4097 characters");
	add(K_LINK, fmt(LINK(",\"values\":%s"), l65), E_FIELD,
	    "field 'values' must have at most 64 entries", "65 link values");
	add(K_LINK, fmt(LINK(",\"values\":{\"%s\":\"v\"}"), a129), E_FIELD, "field 'values' key",
	    "link value key of 129 characters");
	add(K_LINK, fmt(LINK(",\"link_name\":\"%s\""), a129), E_FIELD, "field 'link_name'",
	    "link_name of 129 characters");
	add(K_PROVIDER, fmt(PROV(",\"nodes\":[\"%s\"]"), a129), E_FIELD, "field 'nodes'",
	    "node id of 129 characters");
	add(K_POLICY, fmt(POL(",\"network_restrictions\":[\"%s\"]"), r129), E_FIELD,
	    "field 'network_restrictions'", "restriction of 129 characters");
	add(K_POLICY, fmt(POL(",\"selector\":{\"labels\":%s}"), l65), E_FIELD,
	    "field 'selector.labels' must have at most 64", "65 selector labels");
	add(K_POLICY, fmt(POL(",\"selector\":{\"regions\":%s}"), r257), E_FIELD,
	    "at most 256", "257 selector regions");

	free(a129), free(a65), free(a257), free(a1025), free(k64), free(v256), free(v4097);
	free(r129), free(l65), free(c257), free(ct), free(r257);
}

static void check_row(enum kind k, const char *body, size_t len, const char *code,
		      const char *msg, const char *name)
{
	struct spec_err err = {"", ""};
	int rc = decode(k, body, len, &err);
	/* The API returns the message inside JSON: it must be a valid JSON string. */
	json_t *m = json_string(err.message);
	int good = rc == -1 && strcmp(err.code, code) == 0 && (!msg || strstr(err.message, msg)) &&
		   m != NULL;
	if (!ok(good, "%s: %s → %s", kind_name[k], name, code))
		tap_diag("  rc %d code '%s' message '%s' (want '%s')", rc, err.code, err.message,
			 msg ? msg : "");
	json_decref(m);
}

/* ---- valid bodies ------------------------------------------------------------ */

static void test_node(void)
{
	struct spec_err err;
	json_t *j = parse("{\"id\":\"n1\",\"region\":\"eu-west\"}");
	struct node_spec s;
	is_int(spec_node_from_json(j, &s, &err), 0, "node: minimal body decodes");
	is_str(s.id, "n1", "node: id");
	is_str(s.region, "eu-west", "node: region");
	ok(s.labels.n == 0 && s.cpu_capacity == 0 && s.memory_mb == 0 && s.cpu_used == 0 &&
		   s.memory_used_mb == 0 && s.actor_count == 0,
	   "node: defaults are zero and no labels");
	json_t *o = spec_node_to_json(&s);
	ok(json_object_size(o) == 8 && json_is_object(json_object_get(o, "labels")) &&
		   json_integer_value(json_object_get(o, "cpu_capacity")) == 0,
	   "node: to_json emits every field, defaults included");
	json_decref(o);
	spec_node_free(&s);
	ok(s.id == NULL && s.region == NULL, "node: free zeroes the struct");
	spec_node_free(&s); /* twice is harmless */
	json_decref(j);

	j = parse("{\"id\":\"n-2_x_Y\",\"region\":\"us\",\"labels\":{\"zone\":\"b\","
		  "\"gpu\":\"\",\"k8s.io/arch\":\"arm64\"},\"cpu_capacity\":4000,"
		  "\"memory_mb\":8192,\"cpu_used\":4000,\"memory_used_mb\":100,\"actor_count\":3}");
	is_int(spec_node_from_json(j, &s, &err), 0, "node: full body decodes");
	ok(s.labels.n == 3 && strcmp(s.labels.items[0].key, "gpu") == 0 &&
		   strcmp(s.labels.items[1].key, "k8s.io/arch") == 0 &&
		   strcmp(s.labels.items[2].key, "zone") == 0,
	   "node: labels sorted by key");
	is_str(kvlist_get(&s.labels, "zone"), "b", "node: kvlist_get finds a label");
	ok(kvlist_get(&s.labels, "nope") == NULL, "node: kvlist_get misses an absent label");
	ok(s.cpu_capacity == 4000 && s.memory_mb == 8192 && s.cpu_used == 4000 &&
		   s.memory_used_mb == 100 && s.actor_count == 3,
	   "node: numbers kept (used may equal capacity)");
	spec_node_free(&s);
	json_decref(j);

	j = parse("{\"id\":\"n\",\"region\":\"r\",\"cpu_used\":500,\"memory_used_mb\":64}");
	is_int(spec_node_from_json(j, &s, &err), 0, "node: base load with unknown capacity is fine");
	spec_node_free(&s);
	json_decref(j);

	char id64[65];
	memset(id64, 'z', 64);
	id64[64] = '\0';
	char *b = fmt("{\"id\":\"%s\",\"region\":\"r\"}", id64);
	j = parse(b);
	is_int(spec_node_from_json(j, &s, &err), 0, "node: id of 64 characters (a subject token's most) is fine");
	spec_node_free(&s);
	json_decref(j);
	free(b);

	/* failure leaves *out untouched */
	memset(&s, 0xab, sizeof(s));
	struct node_spec before = s;
	j = parse("{\"id\":\"n\",\"region\":\"r\",\"cpu_capacity\":-3}");
	ok(spec_node_from_json(j, &s, &err) == -1 && memcmp(&s, &before, sizeof(s)) == 0,
	   "node: failed decode leaves *out untouched");
	json_decref(j);

	roundtrip(K_NODE, "{\"id\":\"n1\",\"region\":\"eu\"}", 8, "minimal");
	roundtrip(K_NODE,
		  "{\"id\":\"n1\",\"region\":\"eu\",\"labels\":{\"b\":\"2\",\"a\":\"1\"},"
		  "\"cpu_capacity\":4000,\"memory_mb\":8192,\"cpu_used\":1,\"memory_used_mb\":2,"
		  "\"actor_count\":3}",
		  8, "full");
}

static void test_actor(void)
{
	struct spec_err err;
	json_t *j = parse("{\"module\":\"ghcr.io/acme/echo:1.0\",\"cpu_required\":250,"
			  "\"memory_required_mb\":64}");
	struct actor_spec s;
	is_int(spec_actor_from_json(j, &s, &err), 0, "actor: minimal body decodes");
	ok(s.id == NULL && s.name == NULL, "actor: no id, no name: both stay NULL");
	is_str(s.preferred_region, "", "actor: preferred_region defaults to \"\"");
	ok(s.replicas == 1 && s.priority == 0 && s.max_latency_ms == 0 &&
		   s.strategy == STRATEGY_RESOURCES && s.contracts.n == 0 &&
		   s.constraints.n == 0,
	   "actor: defaults");
	json_t *o = spec_actor_to_json(&s);
	ok(json_object_get(o, "id") == NULL && json_object_get(o, "name") == NULL &&
		   json_object_size(o) == 10,
	   "actor: to_json omits a NULL id and name");
	is_str(json_string_value(json_object_get(o, "strategy")), "resources",
	       "actor: strategy emitted by name");
	json_decref(o);
	spec_actor_free(&s);
	json_decref(j);

	j = parse("{\"id\":\"echo\",\"module\":\"m@sha256:abc\",\"cpu_required\":0,"
		  "\"memory_required_mb\":0,\"preferred_region\":\"\"}");
	is_int(spec_actor_from_json(j, &s, &err), 0, "actor: id without name decodes");
	is_str(s.name, "echo", "actor: name defaults to the id");
	spec_actor_free(&s);
	json_decref(j);

	const char *full =
		"{\"id\":\"echo\",\"name\":\"Echo service \xc3\xa4\",\"module\":\"m:1\","
		"\"cpu_required\":100000000,\"memory_required_mb\":1073741824,"
		"\"preferred_region\":\"eu\",\"constraints\":{\"gpu\":\"yes\"},\"priority\":255,"
		"\"max_latency_ms\":50,\"replicas\":10000,\"strategy\":\"round_robin\","
		"\"contracts\":[\"wasmcloud:keyvalue\",\"wasmcloud:httpserver\",\"a.b-c_d:x\"]}";
	j = parse(full);
	is_int(spec_actor_from_json(j, &s, &err), 0, "actor: full body with maximum values decodes");
	ok(s.contracts.n == 3 && strcmp(s.contracts.items[0], "a.b-c_d:x") == 0 &&
		   strcmp(s.contracts.items[1], "wasmcloud:httpserver") == 0 &&
		   strcmp(s.contracts.items[2], "wasmcloud:keyvalue") == 0,
	   "actor: contracts sorted");
	ok(strlist_has(&s.contracts, "wasmcloud:keyvalue") && !strlist_has(&s.contracts, "x:y"),
	   "actor: strlist_has");
	ok(s.strategy == STRATEGY_ROUND_ROBIN && s.priority == 255 && s.replicas == 10000,
	   "actor: strategy, priority, replicas kept");
	is_str(spec_strategy_name(s.strategy), "round_robin", "actor: spec_strategy_name");

	/* deep copies used by the model */
	struct strlist sl;
	struct kvlist kl;
	ok(strlist_copy(&sl, &s.contracts) == 0 && sl.n == 3 &&
		   sl.items[0] != s.contracts.items[0] && strcmp(sl.items[0], "a.b-c_d:x") == 0,
	   "strlist_copy is deep");
	ok(kvlist_copy(&kl, &s.constraints) == 0 && kl.n == 1 &&
		   strcmp(kvlist_get(&kl, "gpu"), "yes") == 0 &&
		   kl.items[0].key != s.constraints.items[0].key,
	   "kvlist_copy is deep");
	strlist_free(&sl);
	kvlist_free(&kl);
	ok(sl.items == NULL && sl.n == 0 && kl.items == NULL && kl.n == 0,
	   "list free zeroes the list");
	struct strlist empty_s = {0};
	struct kvlist empty_k = {0};
	ok(strlist_copy(&sl, &empty_s) == 0 && sl.n == 0 && kvlist_copy(&kl, &empty_k) == 0 &&
		   kl.n == 0,
	   "copying empty lists");
	json_t *ea = strlist_to_json(&empty_s), *eo = kvlist_to_json(&empty_k);
	ok(json_is_array(ea) && json_array_size(ea) == 0 && json_is_object(eo) &&
		   json_object_size(eo) == 0,
	   "empty lists encode as [] and {}");
	json_decref(ea);
	json_decref(eo);
	spec_actor_free(&s);
	json_decref(j);

	roundtrip(K_ACTOR, "{\"module\":\"m\",\"cpu_required\":1,\"memory_required_mb\":2}", 10,
		  "minimal (no id)");
	roundtrip(K_ACTOR, full, 12, "full");
}

static void test_patch(void)
{
	struct spec_err err;
	struct actor_patch p;
	json_t *j = parse("{\"replicas\":3}");
	is_int(spec_actor_patch_from_json(j, &p, &err), 0, "patch: replicas only decodes");
	ok(p.has_replicas && p.replicas == 3 && !p.has_cpu_required && !p.has_memory_required_mb,
	   "patch: only replicas is present");
	json_t *o = spec_actor_patch_to_json(&p);
	ok(json_object_size(o) == 1 && json_integer_value(json_object_get(o, "replicas")) == 3,
	   "patch: to_json emits only present fields");
	json_decref(o);
	json_decref(j);

	j = parse("{\"cpu_required\":0,\"memory_required_mb\":0}");
	is_int(spec_actor_patch_from_json(j, &p, &err), 0, "patch: zero resources decode");
	ok(!p.has_replicas && p.has_cpu_required && p.has_memory_required_mb,
	   "patch: presence flags");
	json_decref(j);

	roundtrip(K_PATCH, "{\"replicas\":2,\"cpu_required\":5,\"memory_required_mb\":6}", 3,
		  "all fields");
}

static void test_provider(void)
{
	struct spec_err err;
	struct provider_spec s;
	json_t *j = parse("{\"contract_id\":\"wasmcloud:keyvalue\",\"image\":\"ghcr.io/kv:1\"}");
	is_int(spec_provider_from_json(j, &s, &err), 0, "provider: minimal body decodes");
	ok(s.id == NULL && s.nodes.n == 0, "provider: no id, no nodes");
	spec_provider_free(&s);
	json_decref(j);

	j = parse("{\"id\":\"kv\",\"contract_id\":\"wasmcloud:keyvalue\",\"image\":\"i\","
		  "\"nodes\":[\"n2\",\"n1\"]}");
	is_int(spec_provider_from_json(j, &s, &err), 0, "provider: full body decodes");
	ok(s.nodes.n == 2 && strcmp(s.nodes.items[0], "n1") == 0, "provider: nodes sorted");
	spec_provider_free(&s);
	json_decref(j);

	roundtrip(K_PROVIDER, "{\"contract_id\":\"a:b\",\"image\":\"i\"}", 3, "minimal");
	roundtrip(K_PROVIDER,
		  "{\"id\":\"kv\",\"contract_id\":\"a:b\",\"image\":\"i\",\"nodes\":[\"b\",\"a\"]}",
		  4, "full");
}

static void test_link(void)
{
	struct spec_err err;
	struct link_spec s;
	json_t *j = parse(LINK(""));
	is_int(spec_link_from_json(j, &s, &err), 0, "link: minimal body decodes");
	is_str(s.link_name, "default", "link: link_name defaults to \"default\"");
	ok(s.id == NULL && s.timeout_ms == 5000 && s.retry_count == 3 && s.retry_delay_ms == 1000 &&
		   s.values.n == 0,
	   "link: defaults 5000 / 3 / 1000");
	spec_link_free(&s);
	json_decref(j);

	const char *full = LINK(",\"id\":\"l1\",\"link_name\":\"backup\",\"values\":{\"URL\":"
				"\"redis://x:6379/0\",\"a.b_c-d\":\"\"},\"timeout_ms\":0,"
				"\"retry_count\":0,\"retry_delay_ms\":3600000");
	j = parse(full);
	is_int(spec_link_from_json(j, &s, &err), 0, "link: full body decodes");
	ok(s.values.n == 2 && strcmp(s.values.items[0].key, "URL") == 0 && s.timeout_ms == 0 &&
		   s.retry_count == 0 && s.retry_delay_ms == 3600000,
	   "link: values sorted, zero timeouts kept");
	spec_link_free(&s);
	json_decref(j);

	roundtrip(K_LINK, LINK(""), 8, "minimal");
	roundtrip(K_LINK, full, 9, "full");
}

static void test_policy(void)
{
	struct spec_err err;
	struct policy_spec s;
	json_t *j = parse("{}");
	is_int(spec_policy_from_json(j, &s, &err), 0, "policy: empty body decodes");
	ok(s.policy_id == NULL && s.allowed_contracts.n == 0 && s.denied_contracts.n == 0 &&
		   s.max_actor_memory_mb == 0 && s.network_restrictions.n == 0 &&
		   s.sel_regions.n == 0 && s.sel_labels.n == 0,
	   "policy: everything empty");
	json_t *o = spec_policy_to_json(&s);
	json_t *sel = json_object_get(o, "selector");
	ok(json_is_object(sel) && json_is_array(json_object_get(sel, "regions")) &&
		   json_is_object(json_object_get(sel, "labels")),
	   "policy: selector emitted as {regions, labels}");
	json_decref(o);
	spec_policy_free(&s);
	json_decref(j);

	const char *full =
		"{\"policy_id\":\"edge-eu\",\"allowed_contracts\":[\"wasmcloud:keyvalue\","
		"\"wasmcloud:httpserver\"],\"denied_contracts\":[\"wasmcloud:blobstore\"],"
		"\"max_actor_memory_mb\":512,\"network_restrictions\":[\"deny 10.0.0.0/8\","
		"\"allow *.example.com\"],\"selector\":{\"regions\":[\"eu-west\",\"eu-central\"],"
		"\"labels\":{\"tier\":\"edge\"}}}";
	j = parse(full);
	is_int(spec_policy_from_json(j, &s, &err), 0, "policy: full body decodes");
	ok(s.sel_regions.n == 2 && strcmp(s.sel_regions.items[0], "eu-central") == 0 &&
		   strcmp(kvlist_get(&s.sel_labels, "tier"), "edge") == 0 &&
		   s.max_actor_memory_mb == 512,
	   "policy: selector and cap kept");
	spec_policy_free(&s);
	json_decref(j);

	j = parse("{\"selector\":{}}");
	is_int(spec_policy_from_json(j, &s, &err), 0, "policy: empty selector decodes");
	spec_policy_free(&s);
	json_decref(j);

	roundtrip(K_POLICY, "{}", 5, "empty");
	roundtrip(K_POLICY, full, 6, "full");
}

/* ---- the rest ---------------------------------------------------------------- */

static void test_validators(void)
{
	ok(spec_id_valid("a") && spec_id_valid("A.b_c-9") && spec_id_valid("..."),
	   "spec_id_valid accepts the alphabet (and '...')");
	ok(!spec_id_valid("") && !spec_id_valid(".") && !spec_id_valid("..") &&
		   !spec_id_valid("a/b") && !spec_id_valid("a b") && !spec_id_valid("\xc3\xa4") &&
		   !spec_id_valid(NULL),
	   "spec_id_valid rejects empty, dots, odd characters, NULL");
	char s129[130];
	memset(s129, 'a', 129);
	s129[129] = '\0';
	ok(!spec_id_valid(s129) && (s129[128] = '\0', spec_id_valid(s129)),
	   "spec_id_valid: 128 yes, 129 no");
	ok(spec_region_valid(s129 + 64) && !spec_region_valid(s129 + 63),
	   "spec_region_valid: 64 yes, 65 no");
	ok(spec_contract_valid("a:b") && spec_contract_valid("wasmcloud:keyvalue") &&
		   spec_contract_valid("x-y.z_1:http_server.v2"),
	   "spec_contract_valid accepts namespace:name");
	ok(!spec_contract_valid("ab") && !spec_contract_valid(":b") && !spec_contract_valid("a:") &&
		   !spec_contract_valid("a:b:c") && !spec_contract_valid("A:b") &&
		   !spec_contract_valid("a:B") && !spec_contract_valid("a b:c") &&
		   !spec_contract_valid(NULL),
	   "spec_contract_valid rejects the rest");
}

static void test_body(void)
{
	struct spec_err err = {"", ""};
	json_t *j = NULL;
	int rc = spec_parse_body("{\"a\":1} x", 9, &j, &err);
	is_int(rc, -1, "body: trailing data rejected");
	ok(strncmp(err.message, "invalid JSON at line 1, column ", 31) == 0,
	   "body: message gives line and column (%s)", err.message);

	/* A raw NUL byte inside a string is not JSON. */
	static const char nul[] = "{\"id\":\"a\0b\",\"region\":\"r\"}";
	check_row(K_NODE, nul, sizeof(nul) - 1, E_JSON, "invalid JSON", "raw NUL byte in a string");

	/* Size is checked before parsing. */
	char *big = malloc(SPEC_BODY_MAX + 1);
	memset(big, ' ', SPEC_BODY_MAX + 1);
	memcpy(big, "{}", 2);
	check_row(K_POLICY, big, SPEC_BODY_MAX + 1, E_JSON, "larger than 1048576 bytes",
		  "body over SPEC_BODY_MAX");
	rc = spec_parse_body(big, SPEC_BODY_MAX, &j, &err);
	ok(rc == 0 && json_is_object(j), "body: exactly SPEC_BODY_MAX bytes is fine");
	json_decref(j);
	free(big);

	/* Objects not built by spec_parse_body: a NUL inside a string, a bare scalar. */
	json_t *o = json_pack("{s:s, s:s}", "region", "r", "id", "n1");
	json_object_set_new(o, "id", json_stringn("n\0x", 3));
	struct node_spec ns;
	ok(spec_node_from_json(o, &ns, &err) == -1 &&
		   strcmp(err.code, SPEC_E_INVALID_FIELD) == 0,
	   "node: hand-built string with a NUL rejected");
	json_object_set_new(o, "id", json_string("n1"));
	json_object_setn_new(o, "id\0x", 4, json_integer(1));
	ok(spec_node_from_json(o, &ns, &err) == -1 &&
		   strcmp(err.code, SPEC_E_UNKNOWN_FIELD) == 0,
	   "node: hand-built key with a NUL is unknown");
	json_decref(o);
	o = json_integer(3);
	ok(spec_actor_from_json(o, &(struct actor_spec){0}, &err) == -1 &&
		   strcmp(err.code, SPEC_E_INVALID_JSON) == 0,
	   "actor: a non-object is refused");
	json_decref(o);
	o = json_real(9223372036854775808.0);
	j = json_pack("{s:s, s:s, s:O}", "id", "n", "region", "r", "cpu_capacity", o);
	ok(spec_node_from_json(j, &ns, &err) == -1 && strstr(err.message, "must be an integer"),
	   "node: 2^63 as a real is not an integer");
	json_decref(o);
	json_decref(j);

	/* Zeroed structs free cleanly. */
	struct node_spec zn = {0};
	struct actor_spec za = {0};
	struct provider_spec zp = {0};
	struct link_spec zl = {0};
	struct policy_spec zy = {0};
	spec_node_free(&zn);
	spec_actor_free(&za);
	spec_provider_free(&zp);
	spec_link_free(&zl);
	spec_policy_free(&zy);
	ok(1, "free functions tolerate zeroed structs");

	/* Long junk in a message stays bounded and valid UTF-8 when echoed. */
	char *body = fmt("{\"%s\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\":1}", "x");
	char *longkey = rep('q', 300);
	char *b2 = fmt("{\"%s\xc3\xa4\":1,\"id\":\"n\",\"region\":\"r\"}", longkey);
	check_row(K_NODE, body, strlen(body), E_UNKNOWN, "unknown field 'x\xc3\xa4", "unicode key echoed");
	check_row(K_NODE, b2, strlen(b2), E_UNKNOWN, "...'", "300-character key is cut short");
	free(body);
	free(b2);
	free(longkey);
}

#define N_FIXED 92

int main(void)
{
	make_grows();
	tap_plan((int)(N_FIXED + N_ROWS + n_grows));
	test_validators();
	test_body();
	test_node();
	test_actor();
	test_patch();
	test_provider();
	test_link();
	test_policy();
	for (size_t i = 0; i < N_ROWS; i++)
		check_row(rows[i].k, rows[i].body, strlen(rows[i].body), rows[i].code, rows[i].msg,
			  rows[i].body);
	for (size_t i = 0; i < n_grows; i++) {
		check_row(grows[i].k, grows[i].body, strlen(grows[i].body), grows[i].code,
			  grows[i].msg, grows[i].name);
		free(grows[i].body);
	}
	return tap_done();
}
