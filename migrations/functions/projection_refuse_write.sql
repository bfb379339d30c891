-- consent_state and platform_stops are projections of the ledger (what the pre-send check reads,
-- always rebuildable from the ledger alone). They refuse INSERT, UPDATE, DELETE and TRUNCATE unless
-- the transaction set consent_ledger.projection_write = on: the ledger's append does (in its first
-- statement, the ledger_prepare call) and so does the rebuild (POST /audit/projection/rebuild). The
-- marker is no secret: it stops mistakes and casual edits, POST /audit/verify catches the rest
-- (docs/audit.md, "What the projection is, and why it is guarded"). Statement level with a WHEN
-- condition: evaluated once per statement inside the executor, no PL/pgSQL call on the append's path.
-- Migrations: 0019.
CREATE OR REPLACE FUNCTION projection_refuse_write() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  RAISE EXCEPTION 'table % is a projection of the ledger: % refused outside the ledger''s write path', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'P0001',
          HINT = 'Append an event to the ledger; to bring the projection back to the ledger, rebuild it (POST /audit/projection/rebuild).';
END;
$$;
--> statement-breakpoint
CREATE OR REPLACE TRIGGER consent_state_write_guard
  BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON consent_state
  FOR EACH STATEMENT
  WHEN (current_setting('consent_ledger.projection_write', true) IS DISTINCT FROM 'on')
  EXECUTE FUNCTION projection_refuse_write();
--> statement-breakpoint
CREATE OR REPLACE TRIGGER platform_stops_write_guard
  BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON platform_stops
  FOR EACH STATEMENT
  WHEN (current_setting('consent_ledger.projection_write', true) IS DISTINCT FROM 'on')
  EXECUTE FUNCTION projection_refuse_write();
