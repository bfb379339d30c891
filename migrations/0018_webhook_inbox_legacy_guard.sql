-- Hand-written. legacy_duplicate_of (migration 0016) exempts a row from the replay index; only the
-- copies stored before that index existed may carry it. This constraint pins it to the ids that
-- existed when this migration ran, so no later insert (whatever the application does) can use it
-- to store a replayed body again. A CHECK, not a trigger: nothing per insert but the comparison.
DO $$
BEGIN
  EXECUTE format('ALTER TABLE "webhook_inbox" ADD CONSTRAINT "webhook_inbox_legacy_duplicate_check" CHECK ("legacy_duplicate_of" IS NULL OR "id" <= %s)',
                 (SELECT coalesce(max(id), 0) FROM "webhook_inbox"));
END;
$$;
