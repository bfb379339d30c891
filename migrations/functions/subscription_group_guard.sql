-- A subscription group's channel and category are part of what its events mean: once an event
-- references the group, they cannot change (SQLSTATE CL002). Name, archiving and the rest may.
-- Migrations: 0001.
CREATE OR REPLACE FUNCTION subscription_group_guard() RETURNS trigger
LANGUAGE plpgsql
AS $$
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
CREATE OR REPLACE TRIGGER subscription_groups_guard
  BEFORE UPDATE ON subscription_groups
  FOR EACH ROW
  EXECUTE FUNCTION subscription_group_guard();
