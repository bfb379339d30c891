ALTER TABLE "contacts" DROP CONSTRAINT "contacts_workspace_id_workspaces_id_fk";

--> statement-breakpoint
-- Hand-written (the DROP above is generated). The last per-row foreign key on the append path,
-- contacts(workspace_id) -> workspaces(id), becomes a set-based check, as 0008 did for the ledger's
-- other references: the FK ran one RI query per new contact, each taking a FOR KEY SHARE lock on
-- the SAME workspace row (a 75-object /users/track: 75 of them, ~0.7 ms, and concurrent appends of
-- a workspace share that row's lock through a MultiXact). The guarantee is the same:
--   * every contact names an existing workspace, checked at the end of each INSERT statement
--     (SQLSTATE 23503, as the NO ACTION FK); contacts cannot change workspace (contacts_no_rekey);
--   * the workspaces a statement's contacts name are locked FOR KEY SHARE once each, so a
--     concurrent DELETE of such a workspace waits for the inserting transaction and then finds its
--     contacts;
--   * a workspace that has contacts cannot be deleted or re-keyed (SQLSTATE 23503), and TRUNCATE of
--     workspaces stays impossible (the other tables' foreign keys).
CREATE OR REPLACE FUNCTION contacts_check_workspace_refs() RETURNS trigger
LANGUAGE plpgsql SET enable_seqscan = off AS $$
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
CREATE TRIGGER contacts_workspace_ref
  AFTER INSERT ON contacts REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION contacts_check_workspace_refs();
--> statement-breakpoint
CREATE OR REPLACE FUNCTION workspaces_keep_contacts() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM contacts c WHERE c.workspace_id = OLD.id) THEN
    RAISE EXCEPTION '% on table "workspaces" violates the reference from "contacts"', lower(TG_OP)
      USING ERRCODE = '23503', TABLE = 'workspaces',
            DETAIL = format('Key (id)=(%s) is still referenced from table "contacts".', OLD.id);
  END IF;
  RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END;
$$;
--> statement-breakpoint
CREATE TRIGGER workspaces_keep_contacts_delete
  BEFORE DELETE ON workspaces
  FOR EACH ROW EXECUTE FUNCTION workspaces_keep_contacts();
--> statement-breakpoint
CREATE TRIGGER workspaces_keep_contacts_rekey
  BEFORE UPDATE OF id ON workspaces
  FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
  EXECUTE FUNCTION workspaces_keep_contacts();
