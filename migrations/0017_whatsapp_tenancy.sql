-- Hand-written. Which tenant a WhatsApp webhook belongs to (docs/webhook.md "Tenancy").
--
-- Before: any workspace admin could map any unmapped phone_number_id and then received that
-- business's opt-outs (a number was unique, so another tenant got a 409 that told it the number
-- existed). Now a payload reaches a workspace only through something a squatter cannot have:
--   * signed with the operator's app secret (WHATSAPP_APP_SECRETS, POST /webhooks/whatsapp): the
--     numbers the operator mapped (mapped_by = 'operator'), at most one workspace per number;
--   * signed with a workspace's own app secret (workspace_settings.whatsapp_app_secrets, POST
--     /webhooks/whatsapp/{workspace_id}): that workspace's own numbers, whoever else claims them.
-- A workspace's own mapping (mapped_by = 'workspace') is a claim: several workspaces may claim one
-- number and none learns of the others. verified_at: when the mapping was first proven (operator
-- mappings: when made; claims: the first payload signed with the workspace's own secret naming it).
--
-- Existing mappings were made under the old rule, operator or not; they are kept as operator
-- mappings so that deployments keep receiving what they received (the README says how to review).
ALTER TABLE "whatsapp_numbers" ADD COLUMN "mapped_by" text DEFAULT 'operator' NOT NULL;
--> statement-breakpoint
ALTER TABLE "whatsapp_numbers" ADD COLUMN "verified_at" timestamp with time zone;
--> statement-breakpoint
UPDATE "whatsapp_numbers" SET "verified_at" = "created_at";
--> statement-breakpoint
ALTER TABLE "whatsapp_numbers" ADD CONSTRAINT "whatsapp_numbers_mapped_by_check" CHECK ("whatsapp_numbers"."mapped_by" in ('operator', 'workspace'));
--> statement-breakpoint
DROP INDEX "whatsapp_numbers_phone_number_id_key";
--> statement-breakpoint
CREATE UNIQUE INDEX "whatsapp_numbers_operator_key" ON "whatsapp_numbers" USING btree ("phone_number_id") WHERE "whatsapp_numbers"."mapped_by" = 'operator';
--> statement-breakpoint
ALTER TABLE "workspace_settings" ADD COLUMN "whatsapp_app_secrets" text[] DEFAULT '{}'::text[] NOT NULL;
--> statement-breakpoint
ALTER TABLE "workspace_settings" ADD COLUMN "whatsapp_verify_token" text;
--> statement-breakpoint
-- A row's routing now depends on the URL it came through (p_workspace: NULL for the operator's).
-- Each branch reads by an index (the operator key, or the primary key).
CREATE FUNCTION webhook_routing(p_numbers text[], p_workspace uuid) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
  v_numbers json;
  v_workspaces uuid[];
BEGIN
  IF p_workspace IS NULL THEN
    SELECT coalesce(json_object_agg(w.phone_number_id, w.workspace_id), '{}'), coalesce(array_agg(DISTINCT w.workspace_id), '{}')
      INTO v_numbers, v_workspaces
      FROM whatsapp_numbers w WHERE w.phone_number_id = ANY(p_numbers) AND w.mapped_by = 'operator';
  ELSE
    SELECT coalesce(json_object_agg(w.phone_number_id, w.workspace_id), '{}'), coalesce(array_agg(DISTINCT w.workspace_id), '{}')
      INTO v_numbers, v_workspaces
      FROM whatsapp_numbers w WHERE w.workspace_id = p_workspace AND w.phone_number_id = ANY(p_numbers);
  END IF;
  RETURN json_build_object(
    'numbers', v_numbers,
    'workspaces', (SELECT coalesce(json_agg(json_build_object(
                     'id', ws.id,
                     'keywords', (SELECT s.keywords FROM workspace_settings s WHERE s.workspace_id = ws.id),
                     'groups', (SELECT coalesce(json_agg(json_build_object('id', g.id, 'category', g.category, 'phone_number_id', g.phone_number_id)
                                                         ORDER BY g.created_at, g.id), '[]')
                                  FROM subscription_groups g
                                 WHERE g.workspace_id = ws.id AND g.channel = 'whatsapp' AND g.archived_at IS NULL))), '[]')
                     FROM unnest(v_workspaces) AS ws(id)));
END;
$$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION webhook_lock_for_processing(p_id bigint, p_skip_locked boolean)
RETURNS TABLE (id text, received_at timestamptz, raw_body text, body_sha256 text, status text, phone_number_ids text[],
               attempts int, last_error text, processed_at timestamptz, routing json)
LANGUAGE plpgsql VOLATILE AS $$
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
--> statement-breakpoint
DROP FUNCTION webhook_routing(text[]);
--> statement-breakpoint
-- As migrations 0011 and 0014 set for the functions they replace (CREATE OR REPLACE resets them).
ALTER FUNCTION webhook_routing(text[], uuid) SET enable_seqscan = off;
--> statement-breakpoint
ALTER FUNCTION webhook_routing(text[], uuid) SET plan_cache_mode = force_generic_plan;
--> statement-breakpoint
ALTER FUNCTION webhook_lock_for_processing(bigint, boolean) SET enable_seqscan = off;
--> statement-breakpoint
ALTER FUNCTION webhook_lock_for_processing(bigint, boolean) SET plan_cache_mode = force_generic_plan;
