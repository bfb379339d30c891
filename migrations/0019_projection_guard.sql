-- Hand-written. consent_state and platform_stops are projections of the ledger: what the pre-send
-- check reads, always rebuildable from the ledger alone. Like the ledger, they refuse writes that
-- do not come from the ledger's own write path, whatever the role (docs/audit.md):
--   * the append marks its transaction with the transaction-local setting
--     consent_ledger.projection_write = on (in its first statement, the ledger_prepare call of
--     src/ledger/ledger-service.ts), so its write statement and a merge's recomputation pass;
--   * the rebuild (src/ledger/projection.ts, POST /audit/projection/rebuild) sets it too;
--   * any other INSERT, UPDATE, DELETE or TRUNCATE is refused.
-- The marker is not a secret: it stops accidents and casual edits (an UPDATE from a SQL console),
-- not someone who sets it on purpose or disables triggers. What catches those is POST /audit/verify,
-- which compares both tables with a fold of the ledger.
-- Statement-level with a WHEN condition: the condition is evaluated once per statement inside the
-- executor (no PL/pgSQL call when the marker is on), so the append's hot path pays almost nothing.
CREATE OR REPLACE FUNCTION projection_refuse_write() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'table % is a projection of the ledger: % refused outside the ledger''s write path', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'P0001',
          HINT = 'Append an event to the ledger; to bring the projection back to the ledger, rebuild it (POST /audit/projection/rebuild).';
END;
$$;
--> statement-breakpoint
CREATE TRIGGER consent_state_write_guard
  BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON consent_state
  FOR EACH STATEMENT
  WHEN (current_setting('consent_ledger.projection_write', true) IS DISTINCT FROM 'on')
  EXECUTE FUNCTION projection_refuse_write();
--> statement-breakpoint
CREATE TRIGGER platform_stops_write_guard
  BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON platform_stops
  FOR EACH STATEMENT
  WHEN (current_setting('consent_ledger.projection_write', true) IS DISTINCT FROM 'on')
  EXECUTE FUNCTION projection_refuse_write();
