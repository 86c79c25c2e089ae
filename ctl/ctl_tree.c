/* ctl_tree — latticectl's commands and flags, as data (see ctl_cmd.h). The
 * man page (ctl/latticectl.1) and docs/latticectl.md describe the same tree;
 * tests/integration/latticectl.sh checks that every command here is in both. */
#include "ctl_cmd.h"
#include "ctl_ops.h"
#include "ctl_res.h"

#define END {0}
#define F_FILE                                                                                                  \
	{.name = "filename", .short_name = 'f', .value = true, .metavar = "FILE", .complete = "file",            \
	 .help = "the request body, a JSON object, from FILE ('-': standard input); flags override its fields"}
#define F_LIMIT                                                                                                 \
	{.name = "limit", .value = true, .metavar = "N",                                                        \
	 .help = "at most N items (default: every item, fetched a page of 500 at a time)"}
#define F_AFTER {.name = "after", .value = true, .metavar = "ID", .help = "start after this id (a page's last id)"}
#define F_CHUNK                                                                                                 \
	{.name = "chunk-size", .value = true, .metavar = "N", .help = "items per request, 1-1000 (default 500)"}
#define Q(flag, param, meta, compl, text)                                                                      \
	{.name = flag, .value = true, .metavar = meta, .complete = compl, .field = param, .ftype = 'q', .help = text}
#define S(flag, member, meta, compl, text)                                                                     \
	{.name = flag, .value = true, .metavar = meta, .complete = compl, .field = member, .ftype = 's', .help = text}
#define I(flag, member, meta, text)                                                                            \
	{.name = flag, .value = true, .metavar = meta, .field = member, .ftype = 'i', .help = text}
#define L(flag, member, meta, compl, text)                                                                     \
	{.name = flag, .value = true, .repeat = true, .metavar = meta, .complete = compl, .field = member,     \
	 .ftype = 'l', .help = text}
#define M(flag, member, text)                                                                                  \
	{.name = flag, .value = true, .repeat = true, .metavar = "KEY=VALUE", .field = member, .ftype = 'm',    \
	 .help = text}

const struct ctl_flag ctl_global_flags[] = {
	{.name = "server", .short_name = 's', .value = true, .repeat = true, .metavar = "URL",
	 .help = "a replica's REST API, http://HOST:PORT; repeat it or give a comma-separated list for several "
		 "(default: $LATTICE_SERVER, the config file, http://127.0.0.1:8080)"},
	{.name = "token", .value = true, .metavar = "TOKEN",
	 .help = "bearer token, sent as Authorization (default: $LATTICE_TOKEN, the config file)"},
	{.name = "config", .value = true, .metavar = "FILE", .complete = "file",
	 .help = "config file (default: $LATTICECTL_CONFIG, ~/.config/lattice/config)"},
	{.name = "output", .short_name = 'o', .value = true, .metavar = "FORMAT", .complete = "table wide json name",
	 .help = "table (the default), wide (more columns), json (the server's JSON) or name (kind/id)"},
	{.name = "no-headers", .help = "tables without their header line"},
	{.name = "timeout", .value = true, .metavar = "DURATION",
	 .help = "for each request: 30s, 500ms, 2m (default: $LATTICE_TIMEOUT, the config file, 30s)"},
	{.name = "idempotency-key", .value = true, .metavar = "KEY",
	 .help = "Idempotency-Key of a POST, to retry one safely (default: a new random key each time)"},
	{.name = "consistent", .help = "linearizable reads (consistent=true): see every write acknowledged before"},
	{.name = "verbose", .short_name = 'v', .help = "print each request and answer on stderr (the token hidden)"},
	{.name = "version", .help = "print latticectl's version and exit"},
	END,
};

/* ---- cluster ------------------------------------------------------------------------- */

static const struct ctl_flag f_add_member[] = {
	{.name = "raft-address", .value = true, .metavar = "HOST:PORT", .help = "its Raft address (IPv4)"},
	{.name = "api-url", .value = true, .metavar = "URL", .help = "its REST API, http://IP:PORT"},
	END,
};
static const struct ctl_flag f_transfer[] = {
	{.name = "to", .value = true, .metavar = "ID", .help = "the voter to hand leadership to (default: the most up-to-date)"},
	END,
};

static const struct ctl_cmd cluster_sub[] = {
	{.name = "status", .summary = "Show the Raft group: leader, term, indexes, this replica", .usage = "[flags]",
	 .run = ctl_run_cluster_status},
	{.name = "members", .summary = "List the replicas with their role, API URL and lag", .usage = "[flags]",
	 .run = ctl_run_cluster_members},
	{.name = "add-member", .summary = "Add a replica to the group (or record its API URL)",
	 .usage = "ID --raft-address HOST:PORT --api-url URL [flags]", .flags = f_add_member, .min_pos = 1,
	 .max_pos = 1, .run = ctl_run_cluster_add,
	 .help = "Adds server ID as a spare, lets the leader catch it up, then makes it a voter.\n"
		 "A replica started with --join does this itself. For a server that is already a\n"
		 "voter at that address it only records its API URL.\n\n"
		 "Example:\n  latticectl cluster add-member 4 --raft-address 10.0.0.4:7001 --api-url http://10.0.0.4:8080\n"},
	{.name = "remove-member", .summary = "Remove a replica from the group", .usage = "ID [flags]", .min_pos = 1,
	 .max_pos = 1, .run = ctl_run_cluster_remove,
	 .help = "Then stop it and delete its data dir and database. The group's only voter cannot\nbe removed.\n"},
	{.name = "transfer", .summary = "Hand leadership to another voter", .usage = "[--to ID] [flags]",
	 .flags = f_transfer, .run = ctl_run_cluster_transfer},
	{.name = "read-index", .summary = "The leader's commit index, leadership confirmed", .usage = "[flags]",
	 .run = ctl_run_cluster_read_index},
	END,
};

/* ---- nodes ---------------------------------------------------------------------------- */

static const struct ctl_flag f_nodes_list[] = {
	Q("region", "region", "REGION", NULL, "only nodes of this region"),
	Q("status", "status", "STATUS", "healthy degraded unhealthy", "only nodes with this status: healthy, degraded, unhealthy"),
	Q("label", "label", "KEY[=VALUE]", NULL, "only nodes with this label (KEY alone: any value)"),
	F_LIMIT,
	F_AFTER,
	F_CHUNK,
	END,
};
static const struct ctl_flag f_nodes_create[] = {
	F_FILE,
	S("region", "region", "REGION", NULL, "its region (required)"),
	M("label", "labels", "a label; repeat for more"),
	I("cpu-capacity", "cpu_capacity", "MILLICORES", "CPU capacity (0: unknown)"),
	I("memory-mb", "memory_mb", "MIB", "memory (0: unknown)"),
	I("cpu-used", "cpu_used", "MILLICORES", "base CPU load outside the lattice"),
	I("memory-used-mb", "memory_used_mb", "MIB", "base memory load outside the lattice"),
	I("actor-count", "actor_count", "N", "base actor count outside the lattice"),
	END,
};

static const struct ctl_cmd nodes_sub[] = {
	{.name = "list", .summary = "List nodes", .usage = "[--region R] [--status S] [--label K=V] [flags]",
	 .flags = f_nodes_list, .run = ctl_run_list, .data = &ctl_kind_nodes,
	 .help = "Columns: CPU and MEMORY are used/capacity as accounted for placement (base load +\n"
		 "requests of the actors placed there); POLICY is the security policy version the\n"
		 "node applied (\"3 of 5\": behind). -o wide adds labels, heartbeat, measured usage.\n"},
	{.name = "get", .summary = "Show nodes", .usage = "ID... [flags]", .min_pos = 1, .max_pos = -1,
	 .run = ctl_run_get, .data = &ctl_kind_nodes, .complete = "nodes"},
	{.name = "create", .summary = "Register or pre-provision a node", .usage = "[ID] (-f FILE | --region R ...) [flags]",
	 .flags = f_nodes_create, .max_pos = 1, .run = ctl_run_create, .data = &ctl_kind_nodes,
	 .help = "Examples:\n  latticectl nodes create edge-1 --region eu-west --cpu-capacity 4000 --memory-mb 8192 "
		 "--label gpu=false\n  latticectl nodes create -f edge-1.json\n"},
	{.name = "cordon", .summary = "Stop new placements on nodes", .usage = "ID... [flags]", .min_pos = 1,
	 .max_pos = -1, .run = ctl_run_node_cordon, .data = &ctl_kind_nodes, .complete = "nodes"},
	{.name = "uncordon", .summary = "Let nodes take new placements again", .usage = "ID... [flags]", .min_pos = 1,
	 .max_pos = -1, .run = ctl_run_node_cordon, .data = &ctl_kind_nodes, .complete = "nodes"},
	{.name = "drain", .summary = "Cordon nodes and move their actors away", .usage = "ID... [flags]",
	 .min_pos = 1, .max_pos = -1, .run = ctl_run_node_drain, .data = &ctl_kind_nodes, .complete = "nodes",
	 .help = "Each replica goes where placement chooses; replicas no other node can take stay\n"
		 "and are listed as unmoved.\n"},
	{.name = "delete", .summary = "Delete nodes that hold no placements", .usage = "ID... [flags]",
	 .min_pos = 1, .max_pos = -1, .run = ctl_run_delete, .data = &ctl_kind_nodes, .complete = "nodes",
	 .help = "A node that still holds placements is a conflict (exit 4): drain it first.\n"},
	{.name = "failover-plan", .summary = "Dry run: where a node's actors would go if it died now",
	 .usage = "ID [flags]", .min_pos = 1, .max_pos = 1, .run = ctl_run_failover_plan, .complete = "nodes"},
	END,
};

/* ---- actors ------------------------------------------------------------------------------ */

#define ACTOR_SPEC_FLAGS                                                                                        \
	{.name = "module", .alias = "image", .value = true, .metavar = "REF", .field = "module", .ftype = 's',  \
	 .help = "the OCI or wasm reference to run (also --image)"},                                           \
	S("name", "name", "NAME", NULL, "a display name (default: the id)"),                                   \
	I("cpu", "cpu_required", "MILLICORES", "CPU requested per replica"),                                   \
	I("memory", "memory_required_mb", "MIB", "memory requested per replica"),                              \
	S("region", "preferred_region", "REGION", NULL, "the region tried first"),                             \
	M("constraint", "constraints", "a label a node must carry; repeat for more"),                          \
	I("priority", "priority", "0-255", "higher moves first in a failover"),                                \
	I("max-latency-ms", "max_latency_ms", "MS", "0: none"),                                                \
	I("replicas", "replicas", "N", "how many instances (default 1)"),                                      \
	S("strategy", "strategy", "STRATEGY", "resources round_robin", "resources (the default) or round_robin"), \
	L("contract", "contracts", "CONTRACT", NULL, "a contract it needs (namespace:name); repeat for more")

static const struct ctl_flag f_actors_list[] = {
	Q("node", "node", "NODE", "nodes", "only actors with a replica on this node"),
	F_LIMIT,
	F_AFTER,
	F_CHUNK,
	END,
};
static const struct ctl_flag f_actors_create[] = {F_FILE, ACTOR_SPEC_FLAGS, END};
static const struct ctl_flag f_actors_scale[] = {
	I("replicas", "replicas", "N", "the number of replicas wanted (required)"),
	END,
};
static const struct ctl_flag f_actors_patch[] = {
	F_FILE,
	I("replicas", "replicas", "N", "the number of replicas"),
	I("cpu", "cpu_required", "MILLICORES", "CPU requested per replica"),
	I("memory", "memory_required_mb", "MIB", "memory requested per replica"),
	END,
};
static const struct ctl_flag f_actors_migrate[] = {
	S("to", "target_node", "NODE", "nodes", "the node to move to (default: the scheduler picks one)"),
	I("instance", "instance", "N", "which replica (default 0)"),
	END,
};

static const struct ctl_cmd actors_sub[] = {
	{.name = "list", .summary = "List actors", .usage = "[--node NODE] [flags]", .flags = f_actors_list,
	 .run = ctl_run_list, .data = &ctl_kind_actors,
	 .help = "READY is running replicas/replicas wanted; NODES the nodes holding them.\n"},
	{.name = "get", .summary = "Show actors and their placements", .usage = "ID... [flags]", .min_pos = 1,
	 .max_pos = -1, .run = ctl_run_get, .data = &ctl_kind_actors, .complete = "actors"},
	{.name = "create", .summary = "Deploy an actor", .usage = "[ID] (-f FILE | --module REF --cpu M --memory MIB ...) [flags]",
	 .flags = f_actors_create, .max_pos = 1, .run = ctl_run_create, .data = &ctl_kind_actors,
	 .help = "Places its replicas at once; no room for every replica is a conflict (exit 4,\n"
		 "insufficient_resources) and nothing is written. See `latticectl plan` for a dry run.\n\n"
		 "Examples:\n  latticectl actors create echo --module ghcr.io/acme/echo:1.2.0 --cpu 500 --memory 128 "
		 "--replicas 2\n  latticectl actors create -f echo.json --replicas 3\n"},
	{.name = "scale", .summary = "Change an actor's number of replicas", .usage = "ID --replicas N [flags]",
	 .flags = f_actors_scale, .min_pos = 1, .max_pos = 1, .run = ctl_run_actor_scale, .complete = "actors",
	 .help = "Scaling down drops the highest instances; scaling up places new ones as creation\ndoes.\n"},
	{.name = "patch", .summary = "Change an actor's replicas or resource requests",
	 .usage = "ID (-f FILE | --replicas N | --cpu M | --memory MIB) [flags]", .flags = f_actors_patch,
	 .min_pos = 1, .max_pos = 1, .run = ctl_run_actor_patch, .complete = "actors"},
	{.name = "migrate", .summary = "Move a running actor replica to another node",
	 .usage = "ID [--to NODE] [--instance N] [flags]", .flags = f_actors_migrate, .min_pos = 1, .max_pos = 1,
	 .run = ctl_run_actor_migrate, .complete = "actors",
	 .help = "Live migration: the source checkpoints, the target starts from the snapshot, then\n"
		 "the source stops. Returns once the migration is committed; watch it with\n"
		 "`latticectl events --watch` or `latticectl actors get ID`.\n"},
	{.name = "delete", .summary = "Delete actors (their links and snapshots go too)", .usage = "ID... [flags]",
	 .min_pos = 1, .max_pos = -1, .run = ctl_run_delete, .data = &ctl_kind_actors, .complete = "actors"},
	END,
};

static const struct ctl_flag f_plan[] = {
	F_FILE,
	ACTOR_SPEC_FLAGS,
	{.name = "limit", .value = true, .metavar = "N", .help = "list at most N nodes' reasons (default: every node)"},
	END,
};

/* ---- providers, links, policies --------------------------------------------------------------- */

static const struct ctl_flag f_providers_list[] = {
	Q("contract", "contract_id", "CONTRACT", NULL, "only providers of this contract"),
	F_LIMIT,
	F_AFTER,
	F_CHUNK,
	END,
};
static const struct ctl_flag f_providers_create[] = {
	F_FILE,
	S("contract", "contract_id", "CONTRACT", NULL, "the contract it serves, namespace:name (required)"),
	S("image", "image", "REF", NULL, "its image (required)"),
	L("node", "nodes", "NODE", "nodes", "a node it runs on; repeat for more"),
	END,
};
static const struct ctl_cmd providers_sub[] = {
	{.name = "list", .summary = "List capability providers", .usage = "[--contract C] [flags]",
	 .flags = f_providers_list, .run = ctl_run_list, .data = &ctl_kind_providers},
	{.name = "get", .summary = "Show providers", .usage = "ID... [flags]", .min_pos = 1, .max_pos = -1,
	 .run = ctl_run_get, .data = &ctl_kind_providers, .complete = "providers"},
	{.name = "create", .summary = "Register a capability provider",
	 .usage = "[ID] (-f FILE | --contract C --image REF [--node N]...) [flags]", .flags = f_providers_create,
	 .max_pos = 1, .run = ctl_run_create, .data = &ctl_kind_providers,
	 .help = "Example:\n  latticectl providers create kv-redis --contract wasmcloud:keyvalue "
		 "--image ghcr.io/acme/kv-redis:0.9 --node edge-1\n"},
	{.name = "delete", .summary = "Delete providers no link uses", .usage = "ID... [flags]", .min_pos = 1,
	 .max_pos = -1, .run = ctl_run_delete, .data = &ctl_kind_providers, .complete = "providers"},
	END,
};

static const struct ctl_flag f_links_list[] = {
	Q("actor", "actor_id", "ACTOR", "actors", "only links of this actor"),
	Q("provider", "provider_id", "PROVIDER", "providers", "only links to this provider"),
	Q("contract", "contract_id", "CONTRACT", NULL, "only links for this contract"),
	F_LIMIT,
	F_AFTER,
	F_CHUNK,
	END,
};
static const struct ctl_flag f_links_create[] = {
	F_FILE,
	S("actor", "actor_id", "ACTOR", "actors", "the actor that gets the capability (required)"),
	S("provider", "provider_id", "PROVIDER", "providers", "the provider (required)"),
	S("contract", "contract_id", "CONTRACT", NULL, "the contract, namespace:name (required)"),
	S("link-name", "link_name", "NAME", NULL, "the link's name (default \"default\")"),
	M("value", "values", "configuration for the provider; repeat for more"),
	I("timeout-ms", "timeout_ms", "MS", "default 5000"),
	I("retry-count", "retry_count", "N", "default 3"),
	I("retry-delay-ms", "retry_delay_ms", "MS", "default 1000"),
	END,
};
static const struct ctl_cmd links_sub[] = {
	{.name = "list", .summary = "List link definitions", .usage = "[--actor A] [--provider P] [--contract C] [flags]",
	 .flags = f_links_list, .run = ctl_run_list, .data = &ctl_kind_links},
	{.name = "get", .summary = "Show links", .usage = "ID... [flags]", .min_pos = 1, .max_pos = -1,
	 .run = ctl_run_get, .data = &ctl_kind_links, .complete = "links"},
	{.name = "create", .summary = "Link an actor to a provider (grant a capability)",
	 .usage = "[ID] (-f FILE | --actor A --provider P --contract C ...) [flags]", .flags = f_links_create,
	 .max_pos = 1, .run = ctl_run_create, .data = &ctl_kind_links,
	 .help = "A contract a security policy denies on a node the actor runs on is refused (exit 1,\n"
		 "capability_denied).\n\nExample:\n  latticectl links create --actor echo --provider kv-redis "
		 "--contract wasmcloud:keyvalue --value bucket=sessions\n"},
	{.name = "delete", .summary = "Delete links (the actor loses the capability)", .usage = "ID... [flags]",
	 .min_pos = 1, .max_pos = -1, .run = ctl_run_delete, .data = &ctl_kind_links, .complete = "links"},
	END,
};

static const struct ctl_flag f_policies_list[] = {F_LIMIT, F_AFTER, F_CHUNK, END};
static const struct ctl_flag f_policies_write[] = {
	F_FILE,
	L("allow", "allowed_contracts", "CONTRACT", NULL, "an allowed contract (none given: any not denied); repeat"),
	L("deny", "denied_contracts", "CONTRACT", NULL, "a denied contract; repeat"),
	I("max-memory", "max_actor_memory_mb", "MIB", "memory cap per actor (0: none)"),
	L("network", "network_restrictions", "RULE", NULL, "a network restriction; repeat"),
	L("region", "selector.regions", "REGION", NULL, "cover nodes of this region; repeat"),
	M("selector-label", "selector.labels", "cover nodes with this label; repeat"),
	END,
};
static const struct ctl_cmd policies_sub[] = {
	{.name = "list", .summary = "List security policies (current versions)", .usage = "[flags]",
	 .flags = f_policies_list, .run = ctl_run_list, .data = &ctl_kind_policies,
	 .help = "COVERS is how many nodes the current version covers; BEHIND how many of them\n"
		 "have not applied it yet.\n"},
	{.name = "get", .summary = "Show policies", .usage = "ID... [flags]", .min_pos = 1, .max_pos = -1,
	 .run = ctl_run_get, .data = &ctl_kind_policies, .complete = "policies"},
	{.name = "create", .summary = "Create a security policy (version 1)",
	 .usage = "[ID] (-f FILE | --allow C --deny C --max-memory MIB --region R ...) [flags]",
	 .flags = f_policies_write, .max_pos = 1, .run = ctl_run_create, .data = &ctl_kind_policies,
	 .help = "Example:\n  latticectl policies create eu-baseline --allow wasmcloud:keyvalue --max-memory 512 "
		 "--region eu-west\n"},
	{.name = "update", .summary = "Publish a new version of a policy (replaces it whole)",
	 .usage = "ID (-f FILE | --allow C ...) [flags]", .flags = f_policies_write, .min_pos = 1, .max_pos = 1,
	 .run = ctl_run_policy_update, .data = &ctl_kind_policies, .complete = "policies",
	 .help = "Fields not given take their defaults (an omitted selector covers every node). The\n"
		 "new version applies to future placements and links; running actors stay.\n"},
	{.name = "versions", .summary = "List every version of a policy", .usage = "ID [flags]", .min_pos = 1,
	 .max_pos = 1, .run = ctl_run_policy_versions, .complete = "policies"},
	{.name = "violations", .summary = "Placements and links that break a policy's current version",
	 .usage = "ID [flags]", .min_pos = 1, .max_pos = 1, .run = ctl_run_policy_violations, .complete = "policies",
	 .help = "GET /v1/policies/ID/violations. A latticed that does not serve it yet says so\n(exit 1).\n"},
	END,
};

/* ---- commands, failovers, events ---------------------------------------------------------------- */

static const struct ctl_flag f_commands_list[] = {
	Q("node", "node", "NODE", "nodes", "only commands for this node"),
	Q("status", "status", "STATUS", "pending published acked failed superseded",
	  "only commands with this status: pending, published, acked, failed, superseded"),
	F_LIMIT,
	F_AFTER,
	F_CHUNK,
	END,
};
static const struct ctl_cmd commands_sub[] = {
	{.name = "list", .summary = "List the commands sent to edge agents", .usage = "[--node N] [--status S] [flags]",
	 .flags = f_commands_list, .run = ctl_run_list, .data = &ctl_kind_commands},
	{.name = "get", .summary = "Show commands", .usage = "ID... [flags]", .min_pos = 1, .max_pos = -1,
	 .run = ctl_run_get, .data = &ctl_kind_commands, .complete = "commands"},
	END,
};

static const struct ctl_flag f_failovers_list[] = {
	Q("node", "node", "NODE", "nodes", "only failovers of this node"),
	Q("status", "status", "STATUS", "in_progress completed failed", "only failovers with this status: in_progress, completed, failed"),
	F_LIMIT,
	F_AFTER,
	F_CHUNK,
	END,
};
static const struct ctl_cmd failovers_sub[] = {
	{.name = "list", .summary = "List failovers of unhealthy nodes", .usage = "[--node N] [--status S] [flags]",
	 .flags = f_failovers_list, .run = ctl_run_list, .data = &ctl_kind_failovers},
	{.name = "get", .summary = "Show failovers", .usage = "ID... [flags]", .min_pos = 1, .max_pos = -1,
	 .run = ctl_run_get, .data = &ctl_kind_failovers, .complete = "failovers"},
	END,
};

static const struct ctl_flag f_events[] = {
	{.name = "since", .value = true, .metavar = "SEQ",
	 .help = "events numbered above SEQ (default: 0, or with --watch the newest: only new ones)"},
	{.name = "watch", .short_name = 'w', .help = "keep printing events as they come (long poll), until interrupted"},
	{.name = "limit", .value = true, .metavar = "N", .help = "stop after N events"},
	{.name = "wait", .value = true, .metavar = "SECONDS", .help = "with --watch: each long poll's wait, 1-60 (default 30)"},
	{.name = "chunk-size", .value = true, .metavar = "N", .help = "events per request, 1-1000 (default 1000)"},
	END,
};

/* ---- the rest ----------------------------------------------------------------------------------- */

static const struct ctl_cmd chaos_sub[] = {
	{.name = "report", .summary = "The newest chaos run's report (latticed --chaos-reports)", .usage = "[flags]",
	 .run = ctl_run_chaos_report},
	{.name = "timeline", .summary = "The newest chaos run's timeline picture (SVG, to stdout)", .usage = "[flags]",
	 .run = ctl_run_chaos_timeline},
	END,
};
static const struct ctl_cmd config_sub[] = {
	{.name = "view", .summary = "Show the servers, token and timeout in effect, and where each came from",
	 .usage = "[flags]", .run = ctl_run_config_view},
	END,
};

static const struct ctl_cmd root_sub[] = {
	{.name = "cluster", .summary = "The Raft group: status, members, leadership", .usage = "COMMAND [flags]",
	 .sub = cluster_sub, .dflt = "status"},
	{.name = "health", .summary = "Liveness and readiness of every server given", .usage = "[flags]",
	 .run = ctl_run_health,
	 .help = "Asks each server for /healthz and /readyz. Exit 0 when every one is ready, 5 when\n"
		 "any is not (a list with a dead replica is not healthy, though other commands work).\n"},
	{.name = "metrics", .summary = "A replica's Prometheus metrics (text)", .usage = "[flags]", .run = ctl_run_metrics},
	{.name = "summary", .summary = "The lattice at a glance: nodes by status and region, actors, commands, failovers",
	 .usage = "[flags]", .run = ctl_run_summary,
	 .help = "GET /v1/summary: counts, never a listing of everything, so it stays quick on a\n"
		 "large lattice. -o json prints the server's JSON.\n"},
	{.name = "nodes", .summary = "Edge nodes: list, create, cordon, drain, delete", .usage = "COMMAND [flags]",
	 .sub = nodes_sub, .dflt = "list"},
	{.name = "actors", .summary = "Actors: list, create, scale, migrate, delete", .usage = "COMMAND [flags]",
	 .sub = actors_sub, .dflt = "list"},
	{.name = "plan", .summary = "Dry run: where would this actor go, and why not elsewhere (per node)",
	 .usage = "(-f FILE | --module REF --cpu M --memory MIB ...) [flags]", .flags = f_plan, .run = ctl_run_plan,
	 .help = "Takes the same body and flags as `actors create` and writes nothing. Prints the\n"
		 "chosen nodes, the summary, and each node's reason. Exit 0 when every replica\n"
		 "fits, 4 when not (as `actors create` would fail).\n"},
	{.name = "providers", .summary = "Capability providers", .usage = "COMMAND [flags]", .sub = providers_sub,
	 .dflt = "list"},
	{.name = "links", .summary = "Link definitions (actor to provider)", .usage = "COMMAND [flags]", .sub = links_sub,
	 .dflt = "list"},
	{.name = "policies", .summary = "Security policies and their versions", .usage = "COMMAND [flags]",
	 .sub = policies_sub, .dflt = "list"},
	{.name = "commands", .summary = "The command outbox to edge agents", .usage = "COMMAND [flags]",
	 .sub = commands_sub, .dflt = "list"},
	{.name = "failovers", .summary = "Failovers of unhealthy nodes", .usage = "COMMAND [flags]", .sub = failovers_sub,
	 .dflt = "list"},
	{.name = "events", .summary = "The audit/change log; --watch follows it", .usage = "[--since SEQ] [--watch] [flags]",
	 .flags = f_events, .run = ctl_run_events,
	 .help = "Without --watch, prints the events above --since (default: all) and exits. With\n"
		 "--watch, prints new events as they come (long polls of GET /v1/events?wait=),\n"
		 "moving to another replica when one goes away. -o json prints one JSON object a\n"
		 "line. Events a replica no longer holds (its database was rebuilt from a\n"
		 "snapshot) are reported on stderr and skipped.\n\n"
		 "Examples:\n  latticectl events --since 120\n  latticectl events --watch -o json | jq .kind\n"},
	{.name = "chaos", .summary = "The newest chaos run's report", .usage = "COMMAND [flags]", .sub = chaos_sub},
	{.name = "config", .summary = "latticectl's own configuration", .usage = "COMMAND [flags]", .sub = config_sub,
	 .dflt = "view"},
	{.name = "completion", .summary = "Print a shell completion script (bash or zsh)", .usage = "SHELL",
	 .min_pos = 1, .max_pos = 1, .run = ctl_run_completion, .complete = "bash zsh",
	 .help = "Load it now:        source <(latticectl completion bash)\n"
		 "Or for every shell: latticectl completion bash > ~/.local/share/bash-completion/completions/latticectl\n"
		 "zsh:                source <(latticectl completion zsh)\n"},
	{.name = "version", .summary = "Print latticectl's version", .usage = "", .run = ctl_run_version},
	{.name = "help", .summary = "Help about a command", .usage = "[COMMAND...]", .max_pos = -1, .run = ctl_run_help},
	END,
};

const struct ctl_cmd ctl_root = {
	.name = "latticectl",
	.summary = "the command line of a lattice",
	.usage = "COMMAND [SUBCOMMAND] [ARGS] [flags]",
	.sub = root_sub,
	.help = "latticectl talks to the REST API of latticed replicas: any replica serves reads,\n"
		"and writes reach the leader from any of them. Give several with --server: when\n"
		"one cannot be reached, or answers that it cannot serve, the next is tried.\n",
};
