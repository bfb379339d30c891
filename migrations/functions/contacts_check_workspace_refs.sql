-- The reference from a contact to its workspace, checked per INSERT statement instead of a per-row
-- foreign key, as ledger_check_contact_refs.sql does for the ledger: the FK took a FOR KEY SHARE
-- lock on the same workspace row once per new contact, and concurrent appends of a workspace
-- shared that lock through a MultiXact. Same guarantee: every contact names an existing workspace
-- (SQLSTATE 23503); the workspaces named are locked FOR KEY SHARE once each, so a concurrent DELETE
-- of one waits and then finds its contacts (workspaces_keep_contacts.sql refuses it). Contacts never
-- change workspace (refuse_referenced_change.sql).
-- Migrations: 0012.
CREATE OR REPLACE FUNCTION contacts_check_workspace_refs() RETURNS trigger
LANGUAGE plpgsql
SET enable_seqscan = off
AS $$
DECLARE
  bad uuid;
BEGIN
  PERFORM 1 FROM workspaces w WHERE w.id IN (SELECT n.workspace_id FROM new_rows n) FOR KEY SHARE;
  SELECT n.workspace_id INTO bad
    FROM new_rows n
   WHERE NOT EXISTS (SELECT 1 FROM workspaces w WHERE w.id = n.workspace_id)
   LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'insert or update on table "contacts" violates the reference to "workspaces"'
      USING ERRCODE = '23503', TABLE = 'contacts',
            DETAIL = format('Key (workspace_id)=(%s) is not present in table "workspaces".', bad);
  END IF;
  RETURN NULL;
END;
$$;
--> statement-breakpoint
CREATE OR REPLACE TRIGGER contacts_workspace_ref
  AFTER INSERT ON contacts REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT
  EXECUTE FUNCTION contacts_check_workspace_refs();
