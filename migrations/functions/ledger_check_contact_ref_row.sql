-- The contact reference of identities and consent_state on UPDATE, checked per row and only when
-- the UPDATE names contact_id or workspace_id (only merges and moves do). A statement-level UPDATE
-- trigger would run on every projection upsert (INSERT ... ON CONFLICT DO UPDATE fires it even when
-- nothing is updated), and a trigger with a column list cannot have a transition table, hence row
-- level. Same guarantee as ledger_check_contact_refs.sql (SQLSTATE 23503;
-- test/ledger/references.test.ts).
-- Migrations: 0009 (created), 0011 (seqscan off).
CREATE OR REPLACE FUNCTION ledger_check_contact_ref_row() RETURNS trigger
LANGUAGE plpgsql
SET enable_seqscan = off
AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM contacts c WHERE c.workspace_id = NEW.workspace_id AND c.id = NEW.contact_id) THEN
    RAISE EXCEPTION 'insert or update on table "%" violates the reference to "contacts"', TG_TABLE_NAME
      USING ERRCODE = '23503', TABLE = TG_TABLE_NAME,
            DETAIL = format('Key (workspace_id, contact_id)=(%s, %s) is not present in table "contacts".', NEW.workspace_id, NEW.contact_id);
  END IF;
  RETURN NULL;
END;
$$;
--> statement-breakpoint
CREATE OR REPLACE TRIGGER identities_contact_ref_update
  AFTER UPDATE OF contact_id, workspace_id ON identities
  FOR EACH ROW
  EXECUTE FUNCTION ledger_check_contact_ref_row();
--> statement-breakpoint
CREATE OR REPLACE TRIGGER consent_state_contact_ref_update
  AFTER UPDATE OF contact_id, workspace_id ON consent_state
  FOR EACH ROW
  EXECUTE FUNCTION ledger_check_contact_ref_row();
