/* spec — typed objects users send (nodes, actors, providers, links, policies), their
 * validation and their JSON codec.
 *
 * *_from_json are the API's validators: they enforce today's rules for request
 * bodies. Raft entries are not read with them (entry.h has the log's own codec),
 * so tightening a rule here never makes an old log unreadable. No json_t leaves
 * this module except through *_to_json, whose result the caller owns.
 *
 * Every struct owns its strings; *_free releases them (and zeroes the struct) but
 * not the struct itself. *_from_json writes *out only on success; on failure it
 * fills err and leaves *out untouched. */
#ifndef LATTICE_SPEC_H
#define LATTICE_SPEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct jw;

#define SPEC_ID_MAX 128
#define SPEC_BODY_MAX (1024 * 1024)

/* Limits that make "absurd" input an error rather than an overflow later. */
#define SPEC_CPU_MAX 100000000LL       /* millicores: 100,000 cores */
#define SPEC_MEMORY_MAX 1073741824LL   /* MiB: 1 EiB */
#define SPEC_ACTOR_COUNT_MAX 1000000LL
#define SPEC_REPLICAS_MAX 10000LL
#define SPEC_LATENCY_MAX 3600000LL     /* ms */
#define SPEC_LABELS_MAX 64
#define SPEC_LIST_MAX 256              /* contracts, nodes, restrictions, regions */
#define SPEC_TIMEOUT_MAX 3600000LL     /* ms */
#define SPEC_RETRY_MAX 1000LL

/* error codes used in spec_err.code */
#define SPEC_E_INVALID_JSON "invalid_json"
#define SPEC_E_INVALID_FIELD "invalid_field"
#define SPEC_E_MISSING_FIELD "missing_field"
#define SPEC_E_UNKNOWN_FIELD "unknown_field"

struct spec_err {
	char code[32];     /* one of SPEC_E_* */
	char message[256]; /* names the field and what it must be */
};

struct kv {
	char *key;
	char *value;
};

/* Sorted by key; keys unique. */
struct kvlist {
	struct kv *items;
	size_t n;
};

/* Sorted; entries unique. */
struct strlist {
	char **items;
	size_t n;
};

enum actor_strategy { STRATEGY_RESOURCES = 0, STRATEGY_ROUND_ROBIN = 1 };

struct node_spec {
	char *id;     /* required */
	char *region; /* required */
	struct kvlist labels;
	int64_t cpu_capacity; /* millicores; 0 = unknown */
	int64_t memory_mb;    /* 0 = unknown */
	/* Base load outside the lattice (optional, default 0). */
	int64_t cpu_used;
	int64_t memory_used_mb;
	int64_t actor_count;
};

struct actor_spec {
	char *id; /* NULL: the server generates one */
	char *name;   /* default: the id */
	char *module; /* required: OCI/wasm reference, optionally @sha256:digest */
	int64_t cpu_required;       /* millicores, required */
	int64_t memory_required_mb; /* required */
	char *preferred_region;     /* "" = none (never NULL after decode) */
	struct kvlist constraints;  /* label selector: every pair must match */
	int64_t priority;           /* 0..255, default 0 */
	int64_t max_latency_ms;     /* default 0 = none */
	int64_t replicas;           /* 1..SPEC_REPLICAS_MAX, default 1 */
	enum actor_strategy strategy;
	struct strlist contracts; /* contracts it needs */
};

/* PATCH /v1/actors/{id}: only the fields present change. */
struct actor_patch {
	bool has_replicas, has_cpu_required, has_memory_required_mb;
	int64_t replicas, cpu_required, memory_required_mb;
};

struct provider_spec {
	char *id; /* NULL: generated */
	char *contract_id;
	char *image;
	struct strlist nodes; /* node ids it runs on */
};

struct link_spec {
	char *id; /* NULL: generated */
	char *actor_id;
	char *provider_id;
	char *contract_id;
	char *link_name; /* default "default" */
	struct kvlist values;
	int64_t timeout_ms;     /* default 5000 */
	int64_t retry_count;    /* default 3 */
	int64_t retry_delay_ms; /* default 1000 */
};

struct policy_spec {
	char *policy_id; /* POST: required or generated; PUT: taken from the URL */
	struct strlist allowed_contracts;
	struct strlist denied_contracts;
	int64_t max_actor_memory_mb; /* 0 = no cap */
	struct strlist network_restrictions;
	struct strlist sel_regions; /* selector.regions */
	struct kvlist sel_labels;   /* selector.labels */
};

/* Parses a request body: must be one JSON object, duplicate keys rejected, at most
 * SPEC_BODY_MAX bytes. On success *out is a new reference the caller owns. */
int spec_parse_body(const char *buf, size_t len, json_t **out, struct spec_err *err);

/* 1..128 chars of [A-Za-z0-9._-], not "." or "..". */
bool spec_id_valid(const char *s);
/* A node id: a NATS subject token, 1..SPEC_TOKEN_MAX chars of [A-Za-z0-9_-]
 * (docs/protocol.md). Also the rule for the lattice name. */
#define SPEC_TOKEN_MAX 64
bool spec_node_id_valid(const char *s);
/* Like spec_id_valid, for region names (1..64 chars). */
bool spec_region_valid(const char *s);
/* "namespace:name", lowercase [a-z0-9_.-] on both sides, 3..128 chars. */
bool spec_contract_valid(const char *s);

int spec_node_from_json(const json_t *j, struct node_spec *out, struct spec_err *err);
json_t *spec_node_to_json(const struct node_spec *s);
void spec_node_free(struct node_spec *s);

int spec_actor_from_json(const json_t *j, struct actor_spec *out, struct spec_err *err);
json_t *spec_actor_to_json(const struct actor_spec *s);
/* The actor as JSON text (the log, the snapshot); a spec without a module marks
 * w unusable (oom). spec_actor_to_json is that text as a tree (NULL: no module
 * or out of memory). */
void spec_actor_write(struct jw *w, const struct actor_spec *s);
/* Its members only, into an object the caller opened (the API's answer adds its own). */
void spec_actor_fields(struct jw *w, const struct actor_spec *s);
void spec_actor_free(struct actor_spec *s);
const char *spec_strategy_name(enum actor_strategy s);

int spec_actor_patch_from_json(const json_t *j, struct actor_patch *out, struct spec_err *err);
json_t *spec_actor_patch_to_json(const struct actor_patch *p);

int spec_provider_from_json(const json_t *j, struct provider_spec *out, struct spec_err *err);
json_t *spec_provider_to_json(const struct provider_spec *s);
void spec_provider_free(struct provider_spec *s);

int spec_link_from_json(const json_t *j, struct link_spec *out, struct spec_err *err);
json_t *spec_link_to_json(const struct link_spec *s);
void spec_link_free(struct link_spec *s);

int spec_policy_from_json(const json_t *j, struct policy_spec *out, struct spec_err *err);
json_t *spec_policy_to_json(const struct policy_spec *s);
void spec_policy_free(struct policy_spec *s);

/* Helpers shared with the model (deep copies; 0 or -1 on out of memory). */
int kvlist_copy(struct kvlist *dst, const struct kvlist *src);
void kvlist_free(struct kvlist *l);
const char *kvlist_get(const struct kvlist *l, const char *key);
int strlist_copy(struct strlist *dst, const struct strlist *src);
void strlist_free(struct strlist *l);
bool strlist_has(const struct strlist *l, const char *s);
json_t *kvlist_to_json(const struct kvlist *l);
json_t *strlist_to_json(const struct strlist *l);
/* The same as text: an object of strings, an array of strings. */
void kvlist_write(struct jw *w, const struct kvlist *l);
void strlist_write(struct jw *w, const struct strlist *l);

#endif
