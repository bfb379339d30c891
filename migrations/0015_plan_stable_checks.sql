-- Hand-written. The pre-send check's two statements become PL/pgSQL functions with sequential
-- scans off and generic plans, as the ledger's functions are (0011, 0014). As plain prepared
-- statements (node-postgres, one per pooled connection) PostgreSQL kept a generic plan made from
-- the statistics of the moment: with platform_stops analyzed while empty, that plan scans the whole
-- table once per checked contact, and it was kept while the table grew until the next ANALYZE
-- (with autovacuum off, or busy elsewhere, never). Measured (20,000 contacts, then 5 stops each
-- inserted, statistics not refreshed): a 10,000-phone batch check 0.1 s -> 32-38 s, a single check
-- 2.0 -> 11.1 ms. Inside these functions every table is read by a probe of its key whatever its
-- statistics (test/check/plan-stability.test.ts): sequential scans off, and every read a
-- per-identifier subquery, so an index cannot be scanned whole instead either. STABLE: the
-- statement inside runs on the calling statement's snapshot, as the plain statement did. The cost
-- of the call (bench/ab-check.mjs): PostgreSQL's CPU per single check 55.6 -> 66.6 us when checks
-- share statements, 149 -> 181 us alone; per 10,000-phone batch 102 -> 106 ms (noise).
--
-- One identifier: its state rows in the checked groups (one row with g NULL when it has none) and,
-- when p_stops, the numbers that stopped it; no row when the identifier has no contact. Each table
-- read by its key (the states as a LATERAL subquery the planner cannot turn into a join).
CREATE FUNCTION consent_check_one(p_ws uuid, p_type text, p_value text, p_groups uuid[], p_stops boolean)
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
--> statement-breakpoint
-- Many identifiers (position = ord, 1-based): one row per (identifier, state of a checked group),
-- identifiers without a contact absent, then one row per platform stop of the contacts found
-- (when p_stops). Each table is read by one key probe per identifier, written as LATERAL
-- subqueries the planner cannot turn into joins (LIMIT 1 on the unique key, OFFSET 0): with
-- sequential scans off alone, a plan made on small tables read the workspace's whole index instead
-- (a hash join over identities, a nested loop over every stop of the workspace).
CREATE FUNCTION consent_check_many(p_ws uuid, p_types text[], p_values text[], p_groups uuid[], p_stops boolean)
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
