-- The referenced side of contacts_check_workspace_refs.sql: a workspace that has contacts cannot be
-- deleted or re-keyed (SQLSTATE 23503, as the foreign key it replaces). TRUNCATE of workspaces stays
-- impossible through the other tables' foreign keys.
-- Migrations: 0012.
CREATE OR REPLACE FUNCTION workspaces_keep_contacts() RETURNS trigger
LANGUAGE plpgsql
AS $$
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
CREATE OR REPLACE TRIGGER workspaces_keep_contacts_delete
  BEFORE DELETE ON workspaces
  FOR EACH ROW
  EXECUTE FUNCTION workspaces_keep_contacts();
--> statement-breakpoint
CREATE OR REPLACE TRIGGER workspaces_keep_contacts_rekey
  BEFORE UPDATE OF id ON workspaces
  FOR EACH ROW
  WHEN (OLD.id IS DISTINCT FROM NEW.id)
  EXECUTE FUNCTION workspaces_keep_contacts();
