-- 007_reader — lattice_reader, a role for dashboards and reports: it reads the state
-- tables and the api_* views and writes nothing (docs/database.md, "A read-only
-- role"). Left out: link values (api_links, links."values") and snapshots'
-- state_data, which hold application data and may hold secrets.
--
-- Roles belong to the PostgreSQL cluster, not to one database: the role is made by
-- the first database's migration (another replica migrating beside it in the same
-- cluster may make it first), and every database grants it its own objects. It
-- cannot log in: give each dashboard a login role IN ROLE lattice_reader. Making
-- it needs CREATEROLE; latticed's user without it, the migration says so (a WARNING, in latticed's log)
-- and goes on: an operator creates the role and runs the grants below.
--
-- Forward-only: never edit this file once it has landed.

DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'lattice_reader') THEN
		BEGIN
			CREATE ROLE lattice_reader NOLOGIN;
		EXCEPTION
			WHEN duplicate_object OR unique_violation THEN
				NULL; -- made meanwhile by another database's migration
			WHEN insufficient_privilege THEN
				RAISE WARNING 'lattice_reader not created: % lacks CREATEROLE; create it and grant it as docs/database.md says',
					current_user;
				RETURN;
		END;
	END IF;
	-- PUBLIC has both by default; said again for clusters that revoked them,
	-- where latticed's user may not own the database or the schema.
	BEGIN
		EXECUTE format('GRANT CONNECT ON DATABASE %I TO lattice_reader', current_database());
		GRANT USAGE ON SCHEMA public TO lattice_reader;
	EXCEPTION
		WHEN insufficient_privilege THEN
			RAISE WARNING 'lattice_reader: % may not grant CONNECT on the database or USAGE on schema public; grant them if PUBLIC lacks them',
				current_user;
	END;
	GRANT SELECT ON lattice_state, nodes, actors, placements, providers, policies, commands, failovers, events,
		api_nodes, api_actors, api_providers, api_policy_versions, api_policies, api_events, api_commands,
		api_failovers
		TO lattice_reader;
	GRANT SELECT (id, actor_id, provider_id, contract_id, link_name, timeout_ms, retry_count, retry_delay_ms,
		created_at) ON links TO lattice_reader;
	GRANT SELECT (actor_id, state_version, source_node, checkpoint_at) ON snapshots TO lattice_reader;
END
$$;
