-- 006_superseded — a command status more: 'superseded', a security_policy that a
-- newer one for the same node made moot before it was acked (controller/model_cmd.c,
-- docs/protocol.md "Policy sync"). Finished, like 'acked' and 'failed'.
--
-- Forward-only: never edit this file once it has landed.

ALTER TABLE commands DROP CONSTRAINT commands_status_check;
ALTER TABLE commands
	ADD CONSTRAINT commands_status_check
	CHECK (status IN ('pending', 'published', 'acked', 'failed', 'superseded'));
