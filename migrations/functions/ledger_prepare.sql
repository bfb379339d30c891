-- Everything the ledger's append reads before it writes, in one round trip (round trips, not rows,
-- are the cost of a small append). It writes nothing: the append's single write statement stays the
-- only way events enter the ledger. In order, each step a statement of its own, so that (READ
-- COMMITTED, VOLATILE) each sees what was committed before it started:
--   a. the identities' advisory locks (ledger_lock_identities.sql);
--   b. the batch's subscription groups (live, archived) and the workspace's evidence setting;
--   c. the owner of each identity, and the external_id that owner holds (merge-or-move decision);
--   d. the chain heads of those owners and of the contacts named directly, locked FOR UPDATE in id
--      order (no deadlock between batches);
--   e. after the locks: exactly-once keys already seen, the current projection rows of each
--      (contact, group) an item names, p_n ledger ids and the recording time.
-- Per-key probes are LATERAL ... LIMIT 1 so the planner never turns them into a scan of the
-- workspace. When the resolution then merges or moves (rare), the append reads d and e again for
-- the contacts that result. Sequential scans off and generic plans: every statement is a key probe,
-- planned once per connection and never as a scan because a table was small when the plan was made
-- (test/ledger/plan-stability.test.ts).
-- Migrations: 0009 (created), 0011 (seqscan off), 0014 (generic plans).
CREATE OR REPLACE FUNCTION ledger_prepare(
  p_ws uuid,
  p_groups uuid[],
  p_lock_keys text[],
  p_types text[],
  p_values text[],
  p_id_groups uuid[],
  p_direct uuid[],
  p_direct_groups uuid[],
  p_keys text[],
  p_n int,
  OUT live text[],
  OUT archived text[],
  OUT require_evidence boolean,
  OUT owners json,
  OUT heads json,
  OUT seen json,
  OUT cur_states json,
  OUT ids text[],
  OUT now timestamptz
)
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
  v_contacts uuid[];
  v_pair_c uuid[];
  v_pair_g uuid[];
BEGIN
  -- a
  PERFORM ledger_lock_identities(p_lock_keys);
  -- b
  SELECT ARRAY(SELECT g.id::text FROM subscription_groups g WHERE g.workspace_id = p_ws AND g.id = ANY(p_groups) AND g.archived_at IS NULL),
         ARRAY(SELECT g.id::text FROM subscription_groups g WHERE g.workspace_id = p_ws AND g.id = ANY(p_groups) AND g.archived_at IS NOT NULL),
         (SELECT s.require_evidence_to_override_opt_out FROM workspace_settings s WHERE s.workspace_id = p_ws)
    INTO live, archived, require_evidence;
  -- c (each identity comes with the group of the item that names it, null for none: the pairs
  --    (owner, group) whose projection rows step e reads)
  SELECT json_agg(json_build_array(q.type, q.value, i.contact_id, e.value)), array_agg(DISTINCT i.contact_id),
         array_agg(i.contact_id) FILTER (WHERE q.g IS NOT NULL), array_agg(q.g) FILTER (WHERE q.g IS NOT NULL)
    INTO owners, v_contacts, v_pair_c, v_pair_g
    FROM unnest(p_types, p_values, p_id_groups) AS q(type, value, g)
   CROSS JOIN LATERAL (SELECT i.contact_id FROM identities i
                        WHERE i.workspace_id = p_ws AND i.type = q.type AND i.value = q.value LIMIT 1) i
    LEFT JOIN LATERAL (SELECT e.value FROM identities e
                        WHERE e.workspace_id = p_ws AND e.contact_id = i.contact_id AND e.type = 'external_id' LIMIT 1) e ON true;
  v_contacts := ARRAY(SELECT DISTINCT x FROM unnest(COALESCE(v_contacts, '{}'::uuid[]) || COALESCE(p_direct, '{}'::uuid[])) AS x);
  -- d
  IF cardinality(v_contacts) > 0 THEN
    SELECT json_agg(json_build_array(h.id, h.chain_head, h.chain_length, h.merged_into IS NOT NULL))
      INTO heads
      FROM (SELECT c.id, c.chain_head, c.chain_length, c.merged_into FROM contacts c
             WHERE c.workspace_id = p_ws AND c.id = ANY(v_contacts) ORDER BY c.id FOR UPDATE) h;
  END IF;
  -- e
  IF cardinality(p_keys) > 0 THEN
    SELECT json_agg(json_build_array(q.key, d.event_id)) INTO seen
      FROM unnest(p_keys) AS q(key)
     CROSS JOIN LATERAL (SELECT d.event_id FROM ledger_dedupe d WHERE d.workspace_id = p_ws AND d.key = q.key LIMIT 1) d;
  END IF;
  IF cardinality(v_pair_c) > 0 OR cardinality(p_direct_groups) > 0 THEN
    SELECT json_agg(json_build_array(s.contact_id, s.subscription_group_id, s.state, s.occurred_at, s.event_seq::text, s.source)) INTO cur_states
      FROM (SELECT DISTINCT x.c, x.g
              FROM unnest(COALESCE(v_pair_c, '{}'::uuid[]) || COALESCE(p_direct, '{}'::uuid[]),
                          COALESCE(v_pair_g, '{}'::uuid[]) || COALESCE(p_direct_groups, '{}'::uuid[])) AS x(c, g)
             WHERE x.g IS NOT NULL) q
     CROSS JOIN LATERAL (SELECT s.contact_id, s.subscription_group_id, s.state, s.occurred_at, s.event_seq, s.source FROM consent_state s
                          WHERE s.workspace_id = p_ws AND s.contact_id = q.c AND s.subscription_group_id = q.g LIMIT 1) s;
  END IF;
  ids := ARRAY(SELECT nextval('consent_events_id_seq')::text FROM generate_series(1, p_n));
  now := date_trunc('milliseconds', clock_timestamp());
END;
$$;
