#include "render.h"

#include <stdio.h>
#include <time.h>

void render_time(int64_t ms, char *buf, size_t len)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&s, &tm);
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03dZ", (int)(ms % 1000));
}

static json_t *time_or_null(int64_t ms)
{
	if (ms <= 0)
		return json_null();
	char buf[40];
	render_time(ms, buf, sizeof(buf));
	return json_string(buf);
}

static json_t *int_or_null(int64_t v)
{
	return v < 0 ? json_null() : json_integer((json_int_t)v);
}

json_t *render_node(const struct model_node *n)
{
	return json_pack("{s:s,s:s,s:o,s:I,s:I,s:I,s:I,s:I,s:{s:I,s:I,s:I},s:o,s:o,s:s,s:b,s:b,s:I,s:o,s:I,"
			 "s:s?,s:I,s:o,s:o}",
			 "id", n->spec.id, "region", n->spec.region, "labels", kvlist_to_json(&n->spec.labels),
			 "cpu_capacity", (json_int_t)n->spec.cpu_capacity, "memory_mb",
			 (json_int_t)n->spec.memory_mb, "cpu_used", (json_int_t)n->cpu_used, "memory_used_mb",
			 (json_int_t)n->memory_used_mb, "actor_count", (json_int_t)n->actor_count, "base",
			 "cpu_used", (json_int_t)n->spec.cpu_used, "memory_used_mb",
			 (json_int_t)n->spec.memory_used_mb, "actor_count", (json_int_t)n->spec.actor_count,
			 "cpu_measured", int_or_null(n->cpu_measured), "memory_measured_mb",
			 int_or_null(n->memory_measured_mb), "status", model_node_status_name(n->status),
			 "cordoned", n->cordoned, "draining", n->draining, "error_count",
			 (json_int_t)n->error_count, "last_heartbeat", time_or_null(n->last_heartbeat_ms),
			 "policy_version", (json_int_t)n->policy_version, "agent_version", n->agent_version,
			 "generation", (json_int_t)n->generation, "created_at", time_or_null(n->created_ms),
			 "updated_at", time_or_null(n->updated_ms));
}

json_t *render_actor(const struct model_actor *a)
{
	json_t *pl = json_array();
	for (size_t i = 0; pl && i < a->nplacements; i++)
		json_array_append_new(pl, json_pack("{s:I,s:s,s:s,s:I}", "instance", (json_int_t)i, "node_id",
						    a->placements[i].node->spec.id, "state",
						    model_placement_state_name(a->placements[i].state),
						    "state_version", (json_int_t)a->placements[i].state_version));
	return json_pack("{s:s,s:s,s:s,s:I,s:I,s:s,s:o,s:I,s:I,s:I,s:s,s:o,s:o,s:I,s:o,s:o}", "id", a->spec.id,
			 "name", a->spec.name ? a->spec.name : a->spec.id, "module", a->spec.module, "cpu_required",
			 (json_int_t)a->spec.cpu_required, "memory_required_mb",
			 (json_int_t)a->spec.memory_required_mb, "preferred_region",
			 a->spec.preferred_region ? a->spec.preferred_region : "", "constraints",
			 kvlist_to_json(&a->spec.constraints), "priority", (json_int_t)a->spec.priority,
			 "max_latency_ms", (json_int_t)a->spec.max_latency_ms, "replicas",
			 (json_int_t)a->spec.replicas, "strategy", spec_strategy_name(a->spec.strategy),
			 "contracts", strlist_to_json(&a->spec.contracts), "placements", pl, "generation",
			 (json_int_t)a->generation, "created_at", time_or_null(a->created_ms), "updated_at",
			 time_or_null(a->updated_ms));
}

json_t *render_provider(const struct model_provider *p)
{
	return json_pack("{s:s,s:s,s:s,s:o,s:o}", "id", p->spec.id, "contract_id", p->spec.contract_id, "image",
			 p->spec.image, "nodes", strlist_to_json(&p->spec.nodes), "created_at",
			 time_or_null(p->created_ms));
}

json_t *render_link(const struct model_link *l)
{
	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:I,s:I,s:I,s:o}", "id", l->spec.id, "actor_id",
			 l->spec.actor_id, "provider_id", l->spec.provider_id, "contract_id", l->spec.contract_id,
			 "link_name", l->spec.link_name, "values", kvlist_to_json(&l->spec.values), "timeout_ms",
			 (json_int_t)l->spec.timeout_ms, "retry_count", (json_int_t)l->spec.retry_count,
			 "retry_delay_ms", (json_int_t)l->spec.retry_delay_ms, "created_at",
			 time_or_null(l->created_ms));
}

json_t *render_policy(const struct model_policy *p)
{
	return json_pack("{s:s,s:I,s:o,s:o,s:I,s:o,s:{s:o,s:o},s:o}", "policy_id", p->spec.policy_id, "version",
			 (json_int_t)p->version, "allowed_contracts", strlist_to_json(&p->spec.allowed_contracts),
			 "denied_contracts", strlist_to_json(&p->spec.denied_contracts), "max_actor_memory_mb",
			 (json_int_t)p->spec.max_actor_memory_mb, "network_restrictions",
			 strlist_to_json(&p->spec.network_restrictions), "selector", "regions",
			 strlist_to_json(&p->spec.sel_regions), "labels", kvlist_to_json(&p->spec.sel_labels),
			 "created_at", time_or_null(p->updated_ms > 0 ? p->updated_ms : p->created_ms));
}
