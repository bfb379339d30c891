-- Hand-written. Processing one webhook payload starts by locking its inbox row and reading its
-- routing (src/webhook/inbox-repository.ts, lockForProcessing). As a function call, that first
-- statement travels with the transaction's BEGIN in one round trip (src/db/sql.ts), as
-- ledger_prepare does for a ledger append: one round trip less per webhook.
--
-- webhook_routing: what processing a row needs: its numbers' workspaces (number -> workspace),
-- each with its keyword settings and active WhatsApp groups. PL/pgSQL so that its plan is kept
-- (a SQL function with subqueries is planned on every call); STABLE: it reads with its caller's
-- snapshot, as the subquery it replaces did.
CREATE OR REPLACE FUNCTION webhook_routing(p_numbers text[]) RETURNS json
LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN json_build_object(
    'numbers', (SELECT coalesce(json_object_agg(w.phone_number_id, w.workspace_id), '{}')
                  FROM whatsapp_numbers w WHERE w.phone_number_id = ANY(p_numbers)),
    'workspaces', (SELECT coalesce(json_agg(json_build_object(
                     'id', ws.id,
                     'keywords', (SELECT s.keywords FROM workspace_settings s WHERE s.workspace_id = ws.id),
                     'groups', (SELECT coalesce(json_agg(json_build_object('id', g.id, 'category', g.category, 'phone_number_id', g.phone_number_id)
                                                         ORDER BY g.created_at, g.id), '[]')
                                  FROM subscription_groups g
                                 WHERE g.workspace_id = ws.id AND g.channel = 'whatsapp' AND g.archived_at IS NULL))), '[]')
                     FROM (SELECT DISTINCT w.workspace_id AS id FROM whatsapp_numbers w WHERE w.phone_number_id = ANY(p_numbers)) ws));
END;
$$;
--> statement-breakpoint
-- Locks one inbox row FOR UPDATE (SKIP LOCKED when asked: no row when another worker holds it)
-- and returns it with its routing.
CREATE OR REPLACE FUNCTION webhook_lock_for_processing(p_id bigint, p_skip_locked boolean)
RETURNS TABLE (id text, received_at timestamptz, raw_body text, body_sha256 text, status text, phone_number_ids text[],
               attempts int, last_error text, processed_at timestamptz, routing json)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  IF p_skip_locked THEN
    RETURN QUERY SELECT i.id::text, i.received_at, i.raw_body, i.body_sha256, i.status, i.phone_number_ids, i.attempts, i.last_error,
                        i.processed_at, webhook_routing(i.phone_number_ids)
                   FROM webhook_inbox i WHERE i.id = p_id FOR UPDATE OF i SKIP LOCKED;
  ELSE
    RETURN QUERY SELECT i.id::text, i.received_at, i.raw_body, i.body_sha256, i.status, i.phone_number_ids, i.attempts, i.last_error,
                        i.processed_at, webhook_routing(i.phone_number_ids)
                   FROM webhook_inbox i WHERE i.id = p_id FOR UPDATE OF i;
  END IF;
END;
$$;
