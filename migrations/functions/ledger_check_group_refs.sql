-- The reference from a consent event to its subscription group (when it names one), checked per
-- statement as ledger_check_contact_refs.sql checks contacts, and for the same reason: one join of
-- the statement's new rows instead of one foreign-key query and row lock per event. A group can
-- never go away or be re-keyed (ledger_refuse_change.sql, refuse_referenced_change.sql).
-- Migrations: 0008 (created), 0011 (seqscan off).
CREATE OR REPLACE FUNCTION ledger_check_group_refs() RETURNS trigger
LANGUAGE plpgsql
SET enable_seqscan = off
AS $$
DECLARE
  bad record;
BEGIN
  SELECT n.workspace_id, n.subscription_group_id INTO bad
    FROM new_rows n
   WHERE n.subscription_group_id IS NOT NULL
     AND NOT EXISTS (SELECT 1 FROM subscription_groups g WHERE g.workspace_id = n.workspace_id AND g.id = n.subscription_group_id)
   LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'insert or update on table "%" violates the reference to "subscription_groups"', TG_TABLE_NAME
      USING ERRCODE = '23503', TABLE = TG_TABLE_NAME,
            DETAIL = format('Key (workspace_id, subscription_group_id)=(%s, %s) is not present in table "subscription_groups".', bad.workspace_id, bad.subscription_group_id);
  END IF;
  RETURN NULL;
END;
$$;
--> statement-breakpoint
CREATE OR REPLACE TRIGGER consent_events_group_ref
  AFTER INSERT ON consent_events REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT
  EXECUTE FUNCTION ledger_check_group_refs();
