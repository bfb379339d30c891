-- Hand-written: the ledger is append-only, enforced by the database whatever the application does
-- (docs/audit.md, "Three layers"). Row triggers refuse UPDATE and DELETE, a statement trigger refuses
-- TRUNCATE. They fire for every role, the application's own included.
CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'ledger table % is append-only: % refused', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'P0001', HINT = 'Record a new event instead of changing an old one.';
END;
$$;
--> statement-breakpoint
CREATE TRIGGER consent_events_append_only
  BEFORE UPDATE OR DELETE ON consent_events
  FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
--> statement-breakpoint
CREATE TRIGGER consent_events_no_truncate
  BEFORE TRUNCATE ON consent_events
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
--> statement-breakpoint
CREATE TRIGGER ledger_dedupe_append_only
  BEFORE UPDATE OR DELETE ON ledger_dedupe
  FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
--> statement-breakpoint
CREATE TRIGGER ledger_dedupe_no_truncate
  BEFORE TRUNCATE ON ledger_dedupe
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
--> statement-breakpoint
-- Channel and category of a group are immutable once events reference it: they are part of what
-- those events mean.
CREATE OR REPLACE FUNCTION subscription_group_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF (NEW.channel IS DISTINCT FROM OLD.channel OR NEW.category IS DISTINCT FROM OLD.category)
     AND EXISTS (SELECT 1 FROM consent_events e
                  WHERE e.workspace_id = OLD.workspace_id AND e.subscription_group_id = OLD.id) THEN
    RAISE EXCEPTION 'channel and category of subscription group % are immutable once events reference it', OLD.id
      USING ERRCODE = 'CL002';
  END IF;
  RETURN NEW;
END;
$$;
--> statement-breakpoint
CREATE TRIGGER subscription_groups_guard
  BEFORE UPDATE ON subscription_groups
  FOR EACH ROW EXECUTE FUNCTION subscription_group_guard();
--> statement-breakpoint
CREATE TRIGGER subscription_groups_no_delete
  BEFORE DELETE OR TRUNCATE ON subscription_groups
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
