-- The ledger and its tamper evidence are append-only whatever the application does: these
-- triggers refuse UPDATE and DELETE of a row and TRUNCATE of the table, for every role, the
-- application's own included (docs/audit.md, "Three layers"). Guarded: consent_events and
-- ledger_dedupe (the ledger), checkpoints and checkpoint_leaves (what checkpoints signed), and
-- subscription_groups against DELETE and TRUNCATE (events reference them).
-- Migrations: 0001 (function, ledger and group triggers), 0004 (checkpoints), 0006 (leaves).
CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  RAISE EXCEPTION 'ledger table % is append-only: % refused', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'P0001', HINT = 'Record a new event instead of changing an old one.';
END;
$$;
--> statement-breakpoint
CREATE OR REPLACE TRIGGER consent_events_append_only
  BEFORE UPDATE OR DELETE ON consent_events
  FOR EACH ROW
  EXECUTE FUNCTION ledger_refuse_change();
--> statement-breakpoint
CREATE OR REPLACE TRIGGER consent_events_no_truncate
  BEFORE TRUNCATE ON consent_events
  FOR EACH STATEMENT
  EXECUTE FUNCTION ledger_refuse_change();
--> statement-breakpoint
CREATE OR REPLACE TRIGGER ledger_dedupe_append_only
  BEFORE UPDATE OR DELETE ON ledger_dedupe
  FOR EACH ROW
  EXECUTE FUNCTION ledger_refuse_change();
--> statement-breakpoint
CREATE OR REPLACE TRIGGER ledger_dedupe_no_truncate
  BEFORE TRUNCATE ON ledger_dedupe
  FOR EACH STATEMENT
  EXECUTE FUNCTION ledger_refuse_change();
--> statement-breakpoint
CREATE OR REPLACE TRIGGER checkpoints_append_only
  BEFORE UPDATE OR DELETE ON checkpoints
  FOR EACH ROW
  EXECUTE FUNCTION ledger_refuse_change();
--> statement-breakpoint
CREATE OR REPLACE TRIGGER checkpoints_no_truncate
  BEFORE TRUNCATE ON checkpoints
  FOR EACH STATEMENT
  EXECUTE FUNCTION ledger_refuse_change();
--> statement-breakpoint
CREATE OR REPLACE TRIGGER checkpoint_leaves_append_only
  BEFORE UPDATE OR DELETE ON checkpoint_leaves
  FOR EACH ROW
  EXECUTE FUNCTION ledger_refuse_change();
--> statement-breakpoint
CREATE OR REPLACE TRIGGER checkpoint_leaves_no_truncate
  BEFORE TRUNCATE ON checkpoint_leaves
  FOR EACH STATEMENT
  EXECUTE FUNCTION ledger_refuse_change();
--> statement-breakpoint
CREATE OR REPLACE TRIGGER subscription_groups_no_delete
  BEFORE DELETE OR TRUNCATE ON subscription_groups
  FOR EACH STATEMENT
  EXECUTE FUNCTION ledger_refuse_change();
