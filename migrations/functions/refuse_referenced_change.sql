-- The other half of the set-based references (ledger_check_contact_refs.sql,
-- ledger_check_group_refs.sql): what the ledger references never disappears, so those checks need
-- no lock on it. Contacts are never deleted, truncated or re-keyed (a merge keeps the absorbed
-- contact, merged_into); subscription groups are never re-keyed (their DELETE and TRUNCATE are
-- refused by ledger_refuse_change.sql).
-- Migrations: 0008.
CREATE OR REPLACE FUNCTION refuse_referenced_change() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  RAISE EXCEPTION 'rows of % are referenced by the ledger: % refused (they are never deleted or re-keyed)', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'P0001';
END;
$$;
--> statement-breakpoint
CREATE OR REPLACE TRIGGER contacts_no_delete
  BEFORE DELETE OR TRUNCATE ON contacts
  FOR EACH STATEMENT
  EXECUTE FUNCTION refuse_referenced_change();
--> statement-breakpoint
CREATE OR REPLACE TRIGGER contacts_no_rekey
  BEFORE UPDATE ON contacts
  FOR EACH ROW
  WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.workspace_id IS DISTINCT FROM NEW.workspace_id)
  EXECUTE FUNCTION refuse_referenced_change();
--> statement-breakpoint
CREATE OR REPLACE TRIGGER subscription_groups_no_rekey
  BEFORE UPDATE ON subscription_groups
  FOR EACH ROW
  WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.workspace_id IS DISTINCT FROM NEW.workspace_id)
  EXECUTE FUNCTION refuse_referenced_change();
