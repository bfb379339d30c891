-- The pre-send check of many identifiers (src/check/; position = ord, 1-based): one row per
-- (identifier, state of a checked group), identifiers without a contact absent, then one row per
-- platform stop of the contacts found (when p_stops). Settings as consent_check_one.sql. Each table
-- is read by one key probe per identifier, written as LATERAL subqueries the planner cannot turn
-- into joins (LIMIT 1 on the unique key, OFFSET 0): with sequential scans off alone, a plan made on
-- small tables would read the workspace's whole index instead.
-- Migrations: 0015.
CREATE OR REPLACE FUNCTION consent_check_many(p_ws uuid, p_types text[], p_values text[], p_groups uuid[], p_stops boolean)
RETURNS TABLE (ord integer, g uuid, state text, occurred_at text, event_id uuid, stop text)
LANGUAGE plpgsql STABLE
SET enable_seqscan = off
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
  RETURN QUERY
  WITH m AS MATERIALIZED (
    SELECT q.ord, i.contact_id
      FROM unnest(p_types, p_values) WITH ORDINALITY AS q(type, value, ord)
     CROSS JOIN LATERAL (SELECT i.contact_id FROM identities i
                          WHERE i.workspace_id = p_ws AND i.type = q.type AND i.value = q.value LIMIT 1) i)
  SELECT m.ord::int, s.subscription_group_id, s.state,
         to_char(s.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), s.event_id, NULL::text
    FROM m
    LEFT JOIN LATERAL (SELECT s.subscription_group_id, s.state, s.occurred_at, s.event_id FROM consent_state s
                        WHERE s.workspace_id = p_ws AND s.contact_id = m.contact_id AND s.subscription_group_id = ANY(p_groups)
                       OFFSET 0) s ON true
  UNION ALL
  SELECT m.ord::int, NULL::uuid, NULL::text, NULL::text, NULL::uuid, p.phone_number_id
    FROM m
   CROSS JOIN LATERAL (SELECT p.phone_number_id FROM platform_stops p
                        WHERE p.workspace_id = p_ws AND p.contact_id = m.contact_id AND p.stopped OFFSET 0) p
   WHERE p_stops;
END;
$$;
