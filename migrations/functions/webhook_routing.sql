-- What processing a WhatsApp webhook row needs: its numbers' workspaces (number -> workspace), each
-- with its keyword settings and active WhatsApp groups. Which workspaces a row may reach depends on
-- the URL it came through (docs/webhook.md, "Tenancy"): p_workspace NULL (the operator's URL) reads
-- the operator's mappings, otherwise that workspace's own numbers only. Each branch reads by an index.
-- PL/pgSQL so that its plans are kept; STABLE: it reads with its caller's snapshot. Sequential scans
-- off and generic plans, as the ledger's functions (ledger_prepare.sql).
-- Migrations: 0010 (created), 0011, 0014 (settings), 0017 (tenancy: p_workspace, settings again).
CREATE OR REPLACE FUNCTION webhook_routing(p_numbers text[], p_workspace uuid) RETURNS json
LANGUAGE plpgsql STABLE
SET enable_seqscan = off
SET plan_cache_mode = force_generic_plan
AS $$
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
