-- 001_init — the projection of the replicated state, plus the store's bookkeeping.
--
-- Forward-only: never edit this file once it has landed; change the schema with a
-- new NNN_name.sql. The store runs each file once, in one transaction, under an
-- advisory lock, and records it in schema_migrations (which it creates itself).
--
-- Every state row is written by latticed's projection writer (controller/store.c),
-- from the in-memory model, in Raft log order. Nothing else may write these tables;
-- dashboards read them (or the api_* views below) through a read-only role.
--
-- Ids are COLLATE "C": they are ASCII, and byte order is the order the model uses
-- (placement ties, round robin) and the order keyset pagination walks.
--
-- Foreign keys are DEFERRABLE INITIALLY DEFERRED: one transaction carries many log
-- entries, and the order of statements within it must never trip a check; the
-- state at COMMIT is what has to be consistent.

-- ms since the epoch (the unit of every timestamp parameter) -> timestamptz.
CREATE FUNCTION lattice_from_ms(bigint) RETURNS timestamptz
	LANGUAGE sql IMMUTABLE STRICT
	AS $$ SELECT to_timestamp($1 / 1000.0) $$;

-- timestamptz -> RFC 3339 UTC with milliseconds, the API's timestamp format.
CREATE FUNCTION lattice_rfc3339(timestamptz) RETURNS text
	LANGUAGE sql STABLE STRICT
	AS $$ SELECT to_char($1 AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;

-- Single row: how far the projection has got, and which data dir it belongs to.
CREATE TABLE lattice_state (
	id boolean PRIMARY KEY DEFAULT true CHECK (id),
	applied_index bigint NOT NULL DEFAULT 0 CHECK (applied_index >= 0),
	instance_id text,
	updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO lattice_state (id) VALUES (true);

CREATE TABLE nodes (
	id text COLLATE "C" PRIMARY KEY,
	region text NOT NULL,
	labels jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(labels) = 'object'),
	cpu_capacity bigint NOT NULL CHECK (cpu_capacity >= 0),
	memory_mb bigint NOT NULL CHECK (memory_mb >= 0),
	-- registered base load (outside the lattice)
	base_cpu_used bigint NOT NULL DEFAULT 0 CHECK (base_cpu_used >= 0),
	base_memory_used_mb bigint NOT NULL DEFAULT 0 CHECK (base_memory_used_mb >= 0),
	base_actor_count bigint NOT NULL DEFAULT 0 CHECK (base_actor_count >= 0),
	-- accounted for placement: base + requests of the placements on the node
	cpu_used bigint NOT NULL CHECK (cpu_used >= 0),
	memory_used_mb bigint NOT NULL CHECK (memory_used_mb >= 0),
	actor_count bigint NOT NULL CHECK (actor_count >= 0),
	-- reported by heartbeats; NULL until known
	cpu_measured bigint CHECK (cpu_measured >= 0),
	memory_measured_mb bigint CHECK (memory_measured_mb >= 0),
	status text NOT NULL CHECK (status IN ('healthy', 'degraded', 'unhealthy')),
	cordoned boolean NOT NULL DEFAULT false,
	draining boolean NOT NULL DEFAULT false,
	error_count bigint NOT NULL DEFAULT 0 CHECK (error_count >= 0),
	last_heartbeat timestamptz,
	policy_version bigint NOT NULL DEFAULT 0 CHECK (policy_version >= 0),
	agent_version text,
	generation bigint NOT NULL DEFAULT 0,
	created_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL
);
CREATE INDEX nodes_region_idx ON nodes (region, id);
CREATE INDEX nodes_status_idx ON nodes (status, id);
CREATE INDEX nodes_labels_idx ON nodes USING gin (labels);

CREATE TABLE actors (
	id text COLLATE "C" PRIMARY KEY,
	name text NOT NULL,
	module text NOT NULL,
	cpu_required bigint NOT NULL CHECK (cpu_required >= 0),
	memory_required_mb bigint NOT NULL CHECK (memory_required_mb >= 0),
	preferred_region text NOT NULL DEFAULT '',
	constraints jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(constraints) = 'object'),
	priority integer NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 255),
	max_latency_ms bigint NOT NULL DEFAULT 0 CHECK (max_latency_ms >= 0),
	replicas bigint NOT NULL DEFAULT 1 CHECK (replicas >= 0),
	strategy text NOT NULL DEFAULT 'resources' CHECK (strategy IN ('resources', 'round_robin')),
	contracts jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(contracts) = 'array'),
	generation bigint NOT NULL DEFAULT 0,
	created_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL
);

-- One row per actor instance (replica). node_id is NULL while no node holds it.
CREATE TABLE placements (
	actor_id text COLLATE "C" NOT NULL
		REFERENCES actors (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
	instance integer NOT NULL CHECK (instance >= 0),
	node_id text COLLATE "C"
		REFERENCES nodes (id) DEFERRABLE INITIALLY DEFERRED,
	state text NOT NULL
		CHECK (state IN ('pending', 'starting', 'running', 'migrating', 'stopping', 'failed')),
	state_version bigint NOT NULL DEFAULT 0 CHECK (state_version >= 0),
	PRIMARY KEY (actor_id, instance)
);
CREATE INDEX placements_node_idx ON placements (node_id);

CREATE TABLE providers (
	id text COLLATE "C" PRIMARY KEY,
	contract_id text NOT NULL,
	image text NOT NULL,
	nodes jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(nodes) = 'array'), -- node ids
	created_at timestamptz NOT NULL
);
CREATE INDEX providers_contract_idx ON providers (contract_id, id);

CREATE TABLE links (
	id text COLLATE "C" PRIMARY KEY,
	actor_id text COLLATE "C" NOT NULL
		REFERENCES actors (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
	provider_id text COLLATE "C" NOT NULL
		REFERENCES providers (id) DEFERRABLE INITIALLY DEFERRED,
	contract_id text NOT NULL,
	link_name text NOT NULL DEFAULT 'default',
	"values" jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof("values") = 'object'),
	timeout_ms bigint NOT NULL CHECK (timeout_ms >= 0),
	retry_count bigint NOT NULL CHECK (retry_count >= 0),
	retry_delay_ms bigint NOT NULL CHECK (retry_delay_ms >= 0),
	created_at timestamptz NOT NULL
);
CREATE INDEX links_actor_idx ON links (actor_id, id);
CREATE INDEX links_provider_idx ON links (provider_id, id);
CREATE INDEX links_contract_idx ON links (contract_id, id);

-- One row per (policy_id, version); the current policy is the highest version.
CREATE TABLE policies (
	policy_id text COLLATE "C" NOT NULL,
	version bigint NOT NULL CHECK (version >= 1),
	allowed_contracts jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(allowed_contracts) = 'array'),
	denied_contracts jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(denied_contracts) = 'array'),
	max_actor_memory_mb bigint NOT NULL DEFAULT 0 CHECK (max_actor_memory_mb >= 0),
	network_restrictions jsonb NOT NULL DEFAULT '[]'
		CHECK (jsonb_typeof(network_restrictions) = 'array'),
	-- {"regions": [...], "labels": {...}}; empty covers every node
	selector jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(selector) = 'object'),
	created_at timestamptz NOT NULL, -- when this version was made
	PRIMARY KEY (policy_id, version)
);

-- Actor state checkpoints (hot migration, failover restarts).
CREATE TABLE snapshots (
	actor_id text COLLATE "C" NOT NULL
		REFERENCES actors (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
	state_version bigint NOT NULL CHECK (state_version >= 0),
	state_data bytea NOT NULL,
	source_node text COLLATE "C",
	checkpoint_at timestamptz NOT NULL,
	PRIMARY KEY (actor_id, state_version)
);

-- The command outbox. target_node has no foreign key: a stop command for a deleted
-- node is kept (fencing, history).
CREATE TABLE commands (
	command_id text COLLATE "C" PRIMARY KEY,
	command_type text NOT NULL CHECK (command_type IN
		('config_update', 'actor_start', 'actor_stop', 'actor_migrate', 'security_policy')),
	target_node text COLLATE "C" NOT NULL,
	config_version bigint NOT NULL DEFAULT 0 CHECK (config_version >= 0),
	payload jsonb NOT NULL DEFAULT '{}',
	status text NOT NULL CHECK (status IN ('pending', 'published', 'acked', 'failed')),
	attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
	created_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL,
	error text
);
CREATE INDEX commands_target_idx ON commands (target_node, command_id);
CREATE INDEX commands_status_idx ON commands (status, command_id);

-- One row per failover of a dead node. status is free text until the failover
-- issue fixes its states (a later migration adds the CHECK).
CREATE TABLE failovers (
	id text COLLATE "C" PRIMARY KEY,
	failed_node text COLLATE "C" NOT NULL,
	assignments jsonb NOT NULL DEFAULT '[]', -- [{"actor_id", "instance", "node_id"}]
	actor_ids jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(actor_ids) = 'array'),
	started_at timestamptz NOT NULL,
	finished_at timestamptz,
	downtime_ms bigint CHECK (downtime_ms >= 0),
	status text NOT NULL,
	error text
);
CREATE INDEX failovers_node_idx ON failovers (failed_node);

-- The audit/change log, numbered without gaps by the model.
CREATE TABLE events (
	seq bigint PRIMARY KEY CHECK (seq >= 1),
	raft_index bigint NOT NULL CHECK (raft_index >= 1),
	at timestamptz NOT NULL,
	who text,
	kind text NOT NULL,
	object_type text,
	object_id text COLLATE "C",
	data jsonb
);
CREATE INDEX events_object_idx ON events (object_type, object_id, seq);

-- Empties every table the model is the source of, before a rebuild from the model
-- (PROJ_RESET). Events stay: they are history, not state, and the model goes on
-- numbering after them. DELETE, not TRUNCATE: TRUNCATE's exclusive lock would block
-- readers, and until COMMIT they should go on seeing the old rows.
-- A migration that adds a state table must CREATE OR REPLACE this function.
CREATE FUNCTION lattice_reset() RETURNS void
	LANGUAGE sql
	AS $$
	DELETE FROM placements;
	DELETE FROM links;
	DELETE FROM snapshots;
	DELETE FROM actors;
	DELETE FROM providers;
	DELETE FROM nodes;
	DELETE FROM policies;
	DELETE FROM commands;
	DELETE FROM failovers;
	$$;

-- Empties everything, history included: the database belonged to another data dir
-- (another log), so none of it is ours.
CREATE FUNCTION lattice_wipe(new_instance text) RETURNS void
	LANGUAGE sql
	AS $$
	SELECT lattice_reset();
	DELETE FROM events;
	UPDATE lattice_state SET applied_index = 0, instance_id = new_instance, updated_at = now();
	$$;

-- Records that the projection now holds every entry up to new_index; the writer
-- calls it last in each transaction. It must move forward: anything else means a
-- second writer (or a restored backup) and the transaction must not commit.
CREATE FUNCTION lattice_advance(new_index bigint) RETURNS void
	LANGUAGE plpgsql
	AS $$
BEGIN
	UPDATE lattice_state SET applied_index = new_index, updated_at = now()
	WHERE applied_index < new_index;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'lattice_state.applied_index is already at or past %', new_index
			USING HINT = 'Is another latticed writing to this database?';
	END IF;
END
$$;

-- ---- views: each object as the REST API shows it (doc), plus filter columns ----

CREATE VIEW api_nodes AS
SELECT n.id, n.region, n.status, n.labels,
	jsonb_build_object(
		'id', n.id,
		'region', n.region,
		'labels', n.labels,
		'cpu_capacity', n.cpu_capacity,
		'memory_mb', n.memory_mb,
		'cpu_used', n.cpu_used,
		'memory_used_mb', n.memory_used_mb,
		'actor_count', n.actor_count,
		'base', jsonb_build_object(
			'cpu_used', n.base_cpu_used,
			'memory_used_mb', n.base_memory_used_mb,
			'actor_count', n.base_actor_count),
		'cpu_measured', n.cpu_measured,
		'memory_measured_mb', n.memory_measured_mb,
		'status', n.status,
		'cordoned', n.cordoned,
		'draining', n.draining,
		'error_count', n.error_count,
		'last_heartbeat', lattice_rfc3339(n.last_heartbeat),
		'policy_version', n.policy_version,
		'agent_version', n.agent_version,
		'generation', n.generation,
		'created_at', lattice_rfc3339(n.created_at),
		'updated_at', lattice_rfc3339(n.updated_at)) AS doc
FROM nodes n;

CREATE VIEW api_actors AS
SELECT a.id,
	jsonb_build_object(
		'id', a.id,
		'name', a.name,
		'module', a.module,
		'cpu_required', a.cpu_required,
		'memory_required_mb', a.memory_required_mb,
		'preferred_region', a.preferred_region,
		'constraints', a.constraints,
		'priority', a.priority,
		'max_latency_ms', a.max_latency_ms,
		'replicas', a.replicas,
		'strategy', a.strategy,
		'contracts', a.contracts,
		'placements', coalesce((
			SELECT jsonb_agg(jsonb_build_object(
					'instance', p.instance,
					'node_id', p.node_id,
					'state', p.state,
					'state_version', p.state_version) ORDER BY p.instance)
			FROM placements p WHERE p.actor_id = a.id), '[]'::jsonb),
		'generation', a.generation,
		'created_at', lattice_rfc3339(a.created_at),
		'updated_at', lattice_rfc3339(a.updated_at)) AS doc
FROM actors a;

CREATE VIEW api_providers AS
SELECT p.id, p.contract_id,
	jsonb_build_object(
		'id', p.id,
		'contract_id', p.contract_id,
		'image', p.image,
		'nodes', p.nodes,
		'created_at', lattice_rfc3339(p.created_at)) AS doc
FROM providers p;

CREATE VIEW api_links AS
SELECT l.id, l.actor_id, l.provider_id, l.contract_id,
	jsonb_build_object(
		'id', l.id,
		'actor_id', l.actor_id,
		'provider_id', l.provider_id,
		'contract_id', l.contract_id,
		'link_name', l.link_name,
		'values', l."values",
		'timeout_ms', l.timeout_ms,
		'retry_count', l.retry_count,
		'retry_delay_ms', l.retry_delay_ms,
		'created_at', lattice_rfc3339(l.created_at)) AS doc
FROM links l;

-- Every version of every policy.
CREATE VIEW api_policy_versions AS
SELECT p.policy_id, p.version,
	jsonb_build_object(
		'policy_id', p.policy_id,
		'version', p.version,
		'allowed_contracts', p.allowed_contracts,
		'denied_contracts', p.denied_contracts,
		'max_actor_memory_mb', p.max_actor_memory_mb,
		'network_restrictions', p.network_restrictions,
		'selector', jsonb_build_object(
			'regions', coalesce(p.selector -> 'regions', '[]'::jsonb),
			'labels', coalesce(p.selector -> 'labels', '{}'::jsonb)),
		'created_at', lattice_rfc3339(p.created_at)) AS doc
FROM policies p;

-- The current (highest) version of each policy.
CREATE VIEW api_policies AS
SELECT DISTINCT ON (policy_id) policy_id, version, doc
FROM api_policy_versions
ORDER BY policy_id, version DESC;

CREATE VIEW api_events AS
SELECT e.seq,
	jsonb_build_object(
		'seq', e.seq,
		'index', e.raft_index,
		'at', lattice_rfc3339(e.at),
		'who', e.who,
		'kind', e.kind,
		'object_type', e.object_type,
		'object_id', e.object_id,
		'data', e.data) AS doc
FROM events e;
