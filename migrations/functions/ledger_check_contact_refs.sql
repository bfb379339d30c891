-- The reference from a ledger row to its contact, checked per statement instead of a per-row
-- foreign key: the statement's new rows (a transition table) are joined once to contacts, where an
-- FK runs one query and takes one row lock per row, a large share of an import's database time.
-- Same guarantee: every consent_events, identities and consent_state row names a contact of its
-- workspace, checked at the end of the statement (SQLSTATE 23503, as a NO ACTION FK). No FOR KEY
-- SHARE lock is needed because a contact can never go away (refuse_referenced_change.sql).
-- UPDATEs of identities and consent_state are checked per row: ledger_check_contact_ref_row.sql.
-- Sequential scans off: the probes stay index probes whatever the statistics (plan-stability tests).
-- Migrations: 0008 (created), 0009 (UPDATE triggers moved to the row check), 0011 (seqscan off).
CREATE OR REPLACE FUNCTION ledger_check_contact_refs() RETURNS trigger
LANGUAGE plpgsql
SET enable_seqscan = off
AS $$
DECLARE
  bad record;
BEGIN
  SELECT n.workspace_id, n.contact_id INTO bad
    FROM new_rows n
   WHERE NOT EXISTS (SELECT 1 FROM contacts c WHERE c.workspace_id = n.workspace_id AND c.id = n.contact_id)
   LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'insert or update on table "%" violates the reference to "contacts"', TG_TABLE_NAME
      USING ERRCODE = '23503', TABLE = TG_TABLE_NAME,
            DETAIL = format('Key (workspace_id, contact_id)=(%s, %s) is not present in table "contacts".', bad.workspace_id, bad.contact_id);
  END IF;
  RETURN NULL;
END;
$$;
--> statement-breakpoint
CREATE OR REPLACE TRIGGER consent_events_contact_ref
  AFTER INSERT ON consent_events REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT
  EXECUTE FUNCTION ledger_check_contact_refs();
--> statement-breakpoint
CREATE OR REPLACE TRIGGER identities_contact_ref_insert
  AFTER INSERT ON identities REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT
  EXECUTE FUNCTION ledger_check_contact_refs();
--> statement-breakpoint
CREATE OR REPLACE TRIGGER consent_state_contact_ref_insert
  AFTER INSERT ON consent_state REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT
  EXECUTE FUNCTION ledger_check_contact_refs();
