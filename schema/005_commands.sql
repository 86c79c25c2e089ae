-- 005_commands — the command outbox, failovers and actors' state snapshots (docs/protocol.md, controller/model_cmd.c).
-- Commands are written by apply in the same Raft entry as the change that causes
-- them and projected like every other row; this adds what a command carries on
-- the wire (actor, instance, the Raft term and the object's generation for the
-- agents' fencing) and when it was published and acked, a view for
-- GET /v1/commands, and lattice_project() with one parameter more, p_commands,
-- after p_policies.
--
-- Forward-only: never edit this file once it has landed.

ALTER TABLE commands
	ADD COLUMN actor_id text COLLATE "C",
	ADD COLUMN instance bigint CHECK (instance >= 0),
	ADD COLUMN term bigint NOT NULL DEFAULT 0 CHECK (term >= 0),
	ADD COLUMN generation bigint NOT NULL DEFAULT 0 CHECK (generation >= 0),
	ADD COLUMN published_at timestamptz,
	ADD COLUMN acked_at timestamptz,
	ADD COLUMN applied_version bigint NOT NULL DEFAULT 0 CHECK (applied_version >= 0);
CREATE INDEX commands_created_idx ON commands (created_at, command_id);

-- lattice_from_ms(NULL) is NULL (strict), which published_at and acked_at need.

-- Security policy sync: the version a node should apply (the index of the last
-- change of the policies covering it) beside the one its agent applied.
ALTER TABLE nodes ADD COLUMN policy_target bigint NOT NULL DEFAULT 0 CHECK (policy_target >= 0);
DROP VIEW api_nodes;
CREATE VIEW api_nodes AS
SELECT n.id, n.region, n.status, n.labels,
	n.base_cpu_used + u.cpu AS cpu_used,
	n.base_memory_used_mb + u.memory AS memory_used_mb,
	n.base_actor_count + u.placements AS actor_count,
	jsonb_build_object(
		'id', n.id,
		'region', n.region,
		'labels', n.labels,
		'cpu_capacity', n.cpu_capacity,
		'memory_mb', n.memory_mb,
		'cpu_used', n.base_cpu_used + u.cpu,
		'memory_used_mb', n.base_memory_used_mb + u.memory,
		'actor_count', n.base_actor_count + u.placements,
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
		'policy_target', n.policy_target,
		'agent_version', n.agent_version,
		'generation', n.generation,
		'created_at', lattice_rfc3339(n.created_at),
		'updated_at', lattice_rfc3339(n.updated_at)) AS doc
FROM nodes n
CROSS JOIN LATERAL (
	SELECT coalesce(sum(a.cpu_required), 0)::bigint AS cpu,
		coalesce(sum(a.memory_required_mb), 0)::bigint AS memory,
		count(*) AS placements
	FROM placements p JOIN actors a ON a.id = p.actor_id
	WHERE p.node_id = n.id) u;


-- A policy as the API shows it, with its drift: the nodes it covers (its
-- selector as policy.c reads it: no regions or none listed covers every region;
-- every label pair must match) and those whose applied version is behind.
DROP VIEW api_policies;
CREATE VIEW api_policies AS
SELECT v.policy_id, v.version, v.doc || jsonb_build_object('drift', jsonb_build_object(
		'nodes_covered', coalesce(d.covered, 0),
		'nodes_behind', coalesce(d.behind, '[]'::jsonb))) AS doc
FROM (SELECT DISTINCT ON (policy_id) policy_id, version, doc, selector
	FROM api_policy_versions JOIN policies USING (policy_id, version)
	ORDER BY policy_id, version DESC) v
LEFT JOIN LATERAL (
	SELECT count(*) AS covered,
		jsonb_agg(jsonb_build_object('node_id', n.id, 'policy_version', n.policy_version,
			'policy_target', n.policy_target) ORDER BY n.id)
			FILTER (WHERE n.policy_version < n.policy_target) AS behind
	FROM nodes n
	WHERE (coalesce(jsonb_array_length(v.selector -> 'regions'), 0) = 0
		OR v.selector -> 'regions' ? n.region)
	AND (v.selector -> 'labels' IS NULL OR n.labels @> (v.selector -> 'labels'))) d ON true;

-- Failovers (controller/model_fo.c): when the node was found unhealthy, and the
-- states 001 left open.
ALTER TABLE failovers
	ADD COLUMN detected_at timestamptz,
	ADD CONSTRAINT failovers_status_check CHECK (status IN ('in_progress', 'completed', 'failed'));
CREATE INDEX failovers_started_idx ON failovers (started_at, id);

CREATE VIEW api_failovers AS
SELECT f.id, f.failed_node, f.status,
	jsonb_build_object(
		'id', f.id,
		'node_id', f.failed_node,
		'status', f.status,
		'assignments', f.assignments,
		'detected_at', lattice_rfc3339(f.detected_at),
		'started_at', lattice_rfc3339(f.started_at),
		'finished_at', lattice_rfc3339(f.finished_at),
		'downtime_ms', f.downtime_ms,
		'error', f.error) AS doc
FROM failovers f;

CREATE VIEW api_commands AS
SELECT c.command_id, c.target_node, c.status,
	jsonb_build_object(
		'command_id', c.command_id,
		'command_type', c.command_type,
		'target_node', c.target_node,
		'actor_id', c.actor_id,
		'instance', c.instance,
		'term', c.term,
		'generation', c.generation,
		'config_version', c.config_version,
		'payload', c.payload,
		'status', c.status,
		'attempts', c.attempts,
		'created_at', lattice_rfc3339(c.created_at),
		'updated_at', lattice_rfc3339(c.updated_at),
		'published_at', lattice_rfc3339(c.published_at),
		'acked_at', lattice_rfc3339(c.acked_at),
		'applied_version', c.applied_version,
		'error', c.error) AS doc
FROM commands c;

DROP FUNCTION lattice_project(bigint, boolean, text[], text[], text[], text[], jsonb, jsonb,
	jsonb, jsonb, jsonb, jsonb, jsonb, jsonb, jsonb);

CREATE FUNCTION lattice_project(
	p_to bigint,
	p_reset boolean,
	p_links_delete text[],
	p_actors_delete text[],
	p_providers_delete text[],
	p_nodes_delete text[],
	p_nodes jsonb,
	p_actors jsonb,
	p_actors_new jsonb,
	p_providers jsonb,
	p_placements jsonb,
	p_placements_new jsonb,
	p_links jsonb,
	p_policies jsonb,
	p_commands jsonb,
	p_failovers jsonb,
	p_snapshots jsonb,
	p_events jsonb,
	OUT wal_insert_lsn bigint,
	OUT wal_flush_lsn bigint)
	LANGUAGE plpgsql
	AS $$
BEGIN
	-- proj_reset
	IF p_reset THEN
		PERFORM lattice_reset();
	END IF;

	-- Every delete before every upsert, so that an ON DELETE CASCADE can never
	-- remove a row written in the same segment.
	-- proj_links_delete
	IF p_links_delete IS NOT NULL THEN
		DELETE FROM links WHERE id = ANY (p_links_delete);
	END IF;
	-- proj_actors_delete (cascades to placements, links, snapshots)
	IF p_actors_delete IS NOT NULL THEN
		DELETE FROM actors WHERE id = ANY (p_actors_delete);
	END IF;
	-- proj_providers_delete
	IF p_providers_delete IS NOT NULL THEN
		DELETE FROM providers WHERE id = ANY (p_providers_delete);
	END IF;
	-- proj_nodes_delete
	IF p_nodes_delete IS NOT NULL THEN
		DELETE FROM nodes WHERE id = ANY (p_nodes_delete);
	END IF;

	-- proj_nodes_upsert
	IF p_nodes IS NOT NULL THEN
		INSERT INTO nodes (id, region, labels, cpu_capacity, memory_mb, base_cpu_used,
			base_memory_used_mb, base_actor_count, cpu_measured, memory_measured_mb,
			status, cordoned, draining, error_count, last_heartbeat, policy_version,
			policy_target, agent_version, generation, created_at, updated_at)
		SELECT id, region, labels, cpu_capacity, memory_mb, base_cpu_used,
			base_memory_used_mb, base_actor_count, cpu_measured, memory_measured_mb,
			status, cordoned, draining, error_count, lattice_from_ms(last_heartbeat_ms),
			policy_version, policy_target, agent_version, generation,
			lattice_from_ms(created_ms), lattice_from_ms(updated_ms)
		FROM jsonb_to_recordset(p_nodes) AS r(id text, region text, labels jsonb,
			cpu_capacity bigint, memory_mb bigint, base_cpu_used bigint,
			base_memory_used_mb bigint, base_actor_count bigint, cpu_measured bigint,
			memory_measured_mb bigint, status text, cordoned boolean, draining boolean,
			error_count bigint, last_heartbeat_ms bigint, policy_version bigint,
			policy_target bigint, agent_version text, generation bigint, created_ms bigint,
			updated_ms bigint)
		ON CONFLICT (id) DO UPDATE SET region = EXCLUDED.region, labels = EXCLUDED.labels,
			cpu_capacity = EXCLUDED.cpu_capacity, memory_mb = EXCLUDED.memory_mb,
			base_cpu_used = EXCLUDED.base_cpu_used,
			base_memory_used_mb = EXCLUDED.base_memory_used_mb,
			base_actor_count = EXCLUDED.base_actor_count,
			cpu_measured = EXCLUDED.cpu_measured,
			memory_measured_mb = EXCLUDED.memory_measured_mb, status = EXCLUDED.status,
			cordoned = EXCLUDED.cordoned, draining = EXCLUDED.draining,
			error_count = EXCLUDED.error_count, last_heartbeat = EXCLUDED.last_heartbeat,
			policy_version = EXCLUDED.policy_version, policy_target = EXCLUDED.policy_target,
			agent_version = EXCLUDED.agent_version,
			generation = EXCLUDED.generation, created_at = EXCLUDED.created_at,
			updated_at = EXCLUDED.updated_at;
	END IF;

	-- proj_actors_upsert
	IF p_actors IS NOT NULL THEN
		INSERT INTO actors (id, name, module, cpu_required, memory_required_mb,
			preferred_region, constraints, priority, max_latency_ms, replicas, strategy,
			contracts, generation, created_at, updated_at)
		SELECT id, name, module, cpu_required, memory_required_mb, preferred_region,
			constraints, priority, max_latency_ms, replicas, strategy, contracts, generation,
			lattice_from_ms(created_ms), lattice_from_ms(updated_ms)
		FROM jsonb_to_recordset(p_actors) AS r(id text, name text, module text,
			cpu_required bigint, memory_required_mb bigint, preferred_region text,
			constraints jsonb, priority integer, max_latency_ms bigint, replicas bigint,
			strategy text, contracts jsonb, generation bigint, created_ms bigint,
			updated_ms bigint)
		ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, module = EXCLUDED.module,
			cpu_required = EXCLUDED.cpu_required,
			memory_required_mb = EXCLUDED.memory_required_mb,
			preferred_region = EXCLUDED.preferred_region, constraints = EXCLUDED.constraints,
			priority = EXCLUDED.priority, max_latency_ms = EXCLUDED.max_latency_ms,
			replicas = EXCLUDED.replicas, strategy = EXCLUDED.strategy,
			contracts = EXCLUDED.contracts, generation = EXCLUDED.generation,
			created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at;
	END IF;

	-- proj_actors_insert: actors the segment creates (the database has no row yet)
	IF p_actors_new IS NOT NULL THEN
		INSERT INTO actors AS fresh (id, name, module, cpu_required, memory_required_mb,
			preferred_region, constraints, priority, max_latency_ms, replicas, strategy,
			contracts, generation, created_at, updated_at)
		SELECT id, name, module, cpu_required, memory_required_mb, preferred_region,
			constraints, priority, max_latency_ms, replicas, strategy, contracts, generation,
			lattice_from_ms(created_ms), lattice_from_ms(updated_ms)
		FROM jsonb_to_recordset(p_actors_new) AS r(id text, name text, module text,
			cpu_required bigint, memory_required_mb bigint, preferred_region text,
			constraints jsonb, priority integer, max_latency_ms bigint, replicas bigint,
			strategy text, contracts jsonb, generation bigint, created_ms bigint,
			updated_ms bigint);
	END IF;

	-- proj_providers_upsert
	IF p_providers IS NOT NULL THEN
		INSERT INTO providers (id, contract_id, image, nodes, created_at)
		SELECT id, contract_id, image, nodes, lattice_from_ms(created_ms)
		FROM jsonb_to_recordset(p_providers) AS r(id text, contract_id text, image text,
			nodes jsonb, created_ms bigint)
		ON CONFLICT (id) DO UPDATE SET contract_id = EXCLUDED.contract_id,
			image = EXCLUDED.image, nodes = EXCLUDED.nodes, created_at = EXCLUDED.created_at;
	END IF;

	-- proj_placements_set: rows {"actor_id", "placements": [{"instance", "node_id",
	-- "state", "state_version"}]}; each listed actor's placements become exactly
	-- its list. The DELETE and the upsert touch disjoint rows (instances gone /
	-- instances kept), as data-modifying CTEs must; unchanged rows are not
	-- rewritten. The DELETE takes its actors as an array so that even the generic
	-- plan looks them up in the primary key instead of joining the whole table.
	IF p_placements IS NOT NULL THEN
		WITH a AS (SELECT * FROM jsonb_to_recordset(p_placements)
			AS r(actor_id text, placements jsonb)),
		p AS (SELECT a.actor_id, x.instance, x.node_id, x.state,
			coalesce(x.state_version, 0) AS state_version FROM a,
			jsonb_to_recordset(a.placements)
			AS x(instance integer, node_id text, state text, state_version bigint)),
		gone AS (DELETE FROM placements d
			WHERE d.actor_id = ANY (ARRAY(SELECT actor_id FROM a))
			AND NOT EXISTS (SELECT FROM p WHERE p.actor_id = d.actor_id
			AND p.instance = d.instance))
		INSERT INTO placements (actor_id, instance, node_id, state, state_version)
		SELECT actor_id, instance, node_id, state, state_version FROM p
		ON CONFLICT (actor_id, instance) DO UPDATE SET node_id = EXCLUDED.node_id,
			state = EXCLUDED.state, state_version = EXCLUDED.state_version
		WHERE (placements.node_id, placements.state, placements.state_version)
			IS DISTINCT FROM (EXCLUDED.node_id, EXCLUDED.state, EXCLUDED.state_version);
	END IF;

	-- proj_placements_insert: the placements of actors the segment creates, rows
	-- as for proj_placements_set
	IF p_placements_new IS NOT NULL THEN
		INSERT INTO placements AS fresh (actor_id, instance, node_id, state, state_version)
		SELECT a.actor_id, x.instance, x.node_id, x.state, coalesce(x.state_version, 0)
		FROM jsonb_to_recordset(p_placements_new) AS a(actor_id text, placements jsonb),
			jsonb_to_recordset(a.placements)
			AS x(instance integer, node_id text, state text, state_version bigint);
	END IF;

	-- proj_links_upsert
	IF p_links IS NOT NULL THEN
		INSERT INTO links (id, actor_id, provider_id, contract_id, link_name, "values",
			timeout_ms, retry_count, retry_delay_ms, created_at)
		SELECT id, actor_id, provider_id, contract_id, link_name, "values", timeout_ms,
			retry_count, retry_delay_ms, lattice_from_ms(created_ms)
		FROM jsonb_to_recordset(p_links) AS r(id text, actor_id text, provider_id text,
			contract_id text, link_name text, "values" jsonb, timeout_ms bigint,
			retry_count bigint, retry_delay_ms bigint, created_ms bigint)
		ON CONFLICT (id) DO UPDATE SET actor_id = EXCLUDED.actor_id,
			provider_id = EXCLUDED.provider_id, contract_id = EXCLUDED.contract_id,
			link_name = EXCLUDED.link_name, "values" = EXCLUDED."values",
			timeout_ms = EXCLUDED.timeout_ms, retry_count = EXCLUDED.retry_count,
			retry_delay_ms = EXCLUDED.retry_delay_ms, created_at = EXCLUDED.created_at;
	END IF;

	-- proj_policies_upsert: an upsert although versions are immutable: a rebuild
	-- re-inserts the current version of each policy.
	IF p_policies IS NOT NULL THEN
		INSERT INTO policies (policy_id, version, allowed_contracts, denied_contracts,
			max_actor_memory_mb, network_restrictions, selector, created_at)
		SELECT policy_id, version, allowed_contracts, denied_contracts,
			max_actor_memory_mb, network_restrictions, selector, lattice_from_ms(created_ms)
		FROM jsonb_to_recordset(p_policies) AS r(policy_id text, version bigint,
			allowed_contracts jsonb, denied_contracts jsonb, max_actor_memory_mb bigint,
			network_restrictions jsonb, selector jsonb, created_ms bigint)
		ON CONFLICT (policy_id, version) DO UPDATE SET
			allowed_contracts = EXCLUDED.allowed_contracts,
			denied_contracts = EXCLUDED.denied_contracts,
			max_actor_memory_mb = EXCLUDED.max_actor_memory_mb,
			network_restrictions = EXCLUDED.network_restrictions,
			selector = EXCLUDED.selector, created_at = EXCLUDED.created_at;
	END IF;

	-- proj_commands_upsert: the outbox (model_cmd.c); a command's row changes as
	-- the leader publishes it and its agent acks it
	IF p_commands IS NOT NULL THEN
		INSERT INTO commands (command_id, command_type, target_node, actor_id, instance,
			term, generation, config_version, payload, status, attempts, created_at,
			updated_at, published_at, acked_at, applied_version, error)
		SELECT command_id, command_type, target_node, actor_id, instance, term,
			generation, config_version, payload, status, attempts,
			lattice_from_ms(created_ms), lattice_from_ms(updated_ms),
			lattice_from_ms(published_ms), lattice_from_ms(acked_ms), applied_version, error
		FROM jsonb_to_recordset(p_commands) AS r(command_id text, command_type text,
			target_node text, actor_id text, instance bigint, term bigint,
			generation bigint, config_version bigint, payload jsonb, status text,
			attempts integer, created_ms bigint, updated_ms bigint, published_ms bigint,
			acked_ms bigint, applied_version bigint, error text)
		ON CONFLICT (command_id) DO UPDATE SET status = EXCLUDED.status,
			attempts = EXCLUDED.attempts, updated_at = EXCLUDED.updated_at,
			published_at = EXCLUDED.published_at, acked_at = EXCLUDED.acked_at,
			applied_version = EXCLUDED.applied_version, error = EXCLUDED.error;
	END IF;

	-- proj_failovers_upsert: a failover's row changes as its starts are acked
	IF p_failovers IS NOT NULL THEN
		INSERT INTO failovers (id, failed_node, assignments, actor_ids, detected_at,
			started_at, finished_at, downtime_ms, status, error)
		SELECT id, failed_node, assignments, actor_ids, lattice_from_ms(detected_ms),
			lattice_from_ms(started_ms), lattice_from_ms(finished_ms), downtime_ms, status,
			error
		FROM jsonb_to_recordset(p_failovers) AS r(id text, failed_node text,
			assignments jsonb, actor_ids jsonb, detected_ms bigint, started_ms bigint,
			finished_ms bigint, downtime_ms bigint, status text, error text)
		ON CONFLICT (id) DO UPDATE SET assignments = EXCLUDED.assignments,
			finished_at = EXCLUDED.finished_at, downtime_ms = EXCLUDED.downtime_ms,
			status = EXCLUDED.status, error = EXCLUDED.error;
	END IF;

	-- proj_snapshots_put: an actor's latest state snapshot replaces the ones it had
	-- (the model keeps the latest per actor; data arrives as base64)
	IF p_snapshots IS NOT NULL THEN
		WITH s AS (SELECT * FROM jsonb_to_recordset(p_snapshots) AS r(actor_id text,
			state_version bigint, data text, source_node text, checkpoint_ms bigint)),
		gone AS (DELETE FROM snapshots d USING s
			WHERE d.actor_id = s.actor_id AND d.state_version <> s.state_version)
		INSERT INTO snapshots (actor_id, state_version, state_data, source_node, checkpoint_at)
		SELECT actor_id, state_version, decode(data, 'base64'), source_node,
			lattice_from_ms(checkpoint_ms) FROM s
		ON CONFLICT (actor_id, state_version) DO UPDATE SET state_data = EXCLUDED.state_data,
			source_node = EXCLUDED.source_node, checkpoint_at = EXCLUDED.checkpoint_at;
	END IF;

	-- proj_events_insert: a plain INSERT on purpose: an event written twice is a
	-- duplicate key.
	IF p_events IS NOT NULL THEN
		INSERT INTO events (seq, raft_index, at, who, kind, object_type, object_id, data)
		SELECT seq, raft_index, lattice_from_ms(at_ms), who, kind, object_type, object_id,
			data FROM jsonb_to_recordset(p_events) AS r(seq bigint, raft_index bigint,
			at_ms bigint, who text, kind text, object_type text, object_id text, data jsonb);
	END IF;

	IF p_to IS NOT NULL THEN
		-- lattice_advance: as lattice_advance(p_to), inline
		UPDATE lattice_state SET applied_index = p_to, updated_at = now()
		WHERE applied_index < p_to;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'lattice_state.applied_index is already at or past %', p_to
				USING HINT = 'Is another latticed writing to this database?';
		END IF;
		-- deferred constraints: checked here, not at the implicit COMMIT
		SET CONSTRAINTS ALL IMMEDIATE;
	END IF;

	wal_insert_lsn := (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint;
	wal_flush_lsn := (pg_current_wal_flush_lsn() - '0/0'::pg_lsn)::bigint;
END
$$;
