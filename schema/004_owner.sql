-- 004_owner — whose database this is. Each replica projects into a database of its
-- own; lattice_state now records the lattice group and the replica id that project
-- into it, next to the data dir's instance id (001). latticed refuses to open a
-- database recorded for another group or another replica id unless it is started
-- with --pg-reset, and empties one recorded for an earlier data dir of the same
-- replica (controller/migrate.c, migrate_claim; docs/operations.md).
--
-- Forward-only: never edit this file once it has landed.

ALTER TABLE lattice_state
	ADD COLUMN group_id text,
	ADD COLUMN replica_id bigint CHECK (replica_id >= 1);

-- Empties everything, history included (lattice_wipe of 001), and records the new
-- owner whole.
CREATE FUNCTION lattice_wipe(new_group text, new_replica bigint, new_instance text) RETURNS void
	LANGUAGE sql
	AS $$
	SELECT lattice_wipe(new_instance);
	UPDATE lattice_state SET group_id = new_group, replica_id = new_replica;
	$$;
