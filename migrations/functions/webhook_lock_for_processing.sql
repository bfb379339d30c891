-- Processing one webhook payload starts by locking its inbox row FOR UPDATE (SKIP LOCKED when asked:
-- no row when another worker holds it) and reading its routing (webhook_routing.sql). As one
-- function call that first statement travels with the transaction's BEGIN in one round trip, as
-- ledger_prepare does for an append (src/webhook/, the inbox repository; docs/webhook.md).
-- Sequential scans off and generic plans, as the ledger's functions.
-- Migrations: 0010 (created), 0011, 0014 (settings), 0017 (routing by tenancy, settings again).
CREATE OR REPLACE FUNCTION webhook_lock_for_processing(p_id bigint, p_skip_locked boolean)
RETURNS TABLE (id text, received_at timestamptz, raw_body text, body_sha256 text, status text, phone_number_ids text[],
               attempts int, last_error text, processed_at timestamptz, routing json)
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
  IF p_skip_locked THEN
    RETURN QUERY SELECT i.id::text, i.received_at, i.raw_body, i.body_sha256, i.status, i.phone_number_ids, i.attempts, i.last_error,
                        i.processed_at, webhook_routing(i.phone_number_ids, i.workspace_id)
                   FROM webhook_inbox i WHERE i.id = p_id FOR UPDATE OF i SKIP LOCKED;
  ELSE
    RETURN QUERY SELECT i.id::text, i.received_at, i.raw_body, i.body_sha256, i.status, i.phone_number_ids, i.attempts, i.last_error,
                        i.processed_at, webhook_routing(i.phone_number_ids, i.workspace_id)
                   FROM webhook_inbox i WHERE i.id = p_id FOR UPDATE OF i;
  END IF;
END;
$$;
