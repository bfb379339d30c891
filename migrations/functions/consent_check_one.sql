-- The pre-send check of one identifier (src/check/): its state rows in the checked groups (one row
-- with g NULL when it has none) and, when p_stops, the WhatsApp numbers that stopped it; no row when
-- the identifier has no contact. A function, not a plain prepared statement, for its settings: with
-- sequential scans off, generic plans and every read a per-key LATERAL subquery, each table is read
-- by a probe of its key whatever its statistics were when the plan was made (a plan made while
-- platform_stops was empty would scan it once per contact until the next ANALYZE;
-- test/check/plan-stability.test.ts). STABLE: it reads on the calling statement's snapshot.
-- Migrations: 0015.
CREATE OR REPLACE FUNCTION consent_check_one(p_ws uuid, p_type text, p_value text, p_groups uuid[], p_stops boolean)
RETURNS TABLE (g uuid, state text, occurred_at text, event_id uuid, stopped text[])
LANGUAGE plpgsql STABLE
SET enable_seqscan = off
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
  RETURN QUERY
  SELECT s.subscription_group_id, s.state,
         to_char(s.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), s.event_id,
         CASE WHEN p_stops THEN (SELECT array_agg(p.phone_number_id) FROM platform_stops p
                                  WHERE p.workspace_id = p_ws AND p.contact_id = i.contact_id AND p.stopped) END
    FROM identities i
    LEFT JOIN LATERAL (SELECT s.subscription_group_id, s.state, s.occurred_at, s.event_id FROM consent_state s
                        WHERE s.workspace_id = p_ws AND s.contact_id = i.contact_id AND s.subscription_group_id = ANY(p_groups)
                       OFFSET 0) s ON true
   WHERE i.workspace_id = p_ws AND i.type = p_type AND i.value = p_value;
END;
$$;
