-- 003_node_usage — a node's used resources are derived from its placements.
--
-- Until 002 every placement rewrote its node's row (cpu_used, memory_used_mb,
-- actor_count, generation, updated_at): one more row, statement and foreign-key
-- target per actor written, for a figure that is a pure function of other rows.
-- Now the nodes table holds only what the node's own record says (base load,
-- capacity, status, flags, heartbeat), and the accounting SPEC defines —
-- used = base + the requests of the placements on the node, actor_count = base +
-- placements — is computed where it is read: api_nodes, below. A node's
-- generation and updated_at now move only when the node's own record changes
-- (registration, update, cordon, drain, heartbeat), not when an actor lands on it
-- or leaves it.
--
-- lattice_project() is replaced as a whole (forward-only: 002 stays as it landed):
--   - its node upsert no longer takes cpu_used, memory_used_mb and actor_count
--     (controller/proj.h lists the row keys the writer passes);
--   - two parameters more, p_actors_new after p_actors and p_placements_new after
--     p_placements: the actors a segment creates, and their placements, which the
--     database cannot hold yet, go in with plain INSERTs — no ON CONFLICT probe,
--     no replace-the-set statement — since creating actors is the hot path (the
--     writer decides which rows are new: "fresh" in controller/store_coalesce.c).
--     A row that exists after all is a duplicate key: an error, as for events.

-- ms since the epoch -> timestamptz with float division instead of numeric (exact
-- to the microsecond for every ms value of this era, and cheaper: three calls per
-- actor created).
CREATE OR REPLACE FUNCTION lattice_from_ms(bigint) RETURNS timestamptz
	LANGUAGE sql IMMUTABLE STRICT
	AS $$ SELECT to_timestamp($1::float8 / 1000) $$;

DROP VIEW api_nodes;
ALTER TABLE nodes DROP COLUMN cpu_used, DROP COLUMN memory_used_mb, DROP COLUMN actor_count;

-- Each node with its accounted usage: columns for dashboards' queries, and doc as
-- the API shows it. The lateral aggregate runs per node row that a query keeps,
-- through placements_node_idx and the actors' primary key.
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

DROP FUNCTION lattice_project(bigint, boolean, text[], text[], text[], text[], jsonb, jsonb,
	jsonb, jsonb, jsonb, jsonb, jsonb);

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
			agent_version, generation, created_at, updated_at)
		SELECT id, region, labels, cpu_capacity, memory_mb, base_cpu_used,
			base_memory_used_mb, base_actor_count, cpu_measured, memory_measured_mb,
			status, cordoned, draining, error_count, lattice_from_ms(last_heartbeat_ms),
			policy_version, agent_version, generation, lattice_from_ms(created_ms),
			lattice_from_ms(updated_ms)
		FROM jsonb_to_recordset(p_nodes) AS r(id text, region text, labels jsonb,
			cpu_capacity bigint, memory_mb bigint, base_cpu_used bigint,
			base_memory_used_mb bigint, base_actor_count bigint, cpu_measured bigint,
			memory_measured_mb bigint, status text, cordoned boolean, draining boolean,
			error_count bigint, last_heartbeat_ms bigint, policy_version bigint,
			agent_version text, generation bigint, created_ms bigint, updated_ms bigint)
		ON CONFLICT (id) DO UPDATE SET region = EXCLUDED.region, labels = EXCLUDED.labels,
			cpu_capacity = EXCLUDED.cpu_capacity, memory_mb = EXCLUDED.memory_mb,
			base_cpu_used = EXCLUDED.base_cpu_used,
			base_memory_used_mb = EXCLUDED.base_memory_used_mb,
			base_actor_count = EXCLUDED.base_actor_count,
			cpu_measured = EXCLUDED.cpu_measured,
			memory_measured_mb = EXCLUDED.memory_measured_mb, status = EXCLUDED.status,
			cordoned = EXCLUDED.cordoned, draining = EXCLUDED.draining,
			error_count = EXCLUDED.error_count, last_heartbeat = EXCLUDED.last_heartbeat,
			policy_version = EXCLUDED.policy_version, agent_version = EXCLUDED.agent_version,
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
