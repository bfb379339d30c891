-- Hand-written. Two changes to the ledger's hot path, both measured on a one-object /users/track.
--
-- 1. The UPDATE reference checks of identities and consent_state become row-level triggers that
--    fire only when an UPDATE names contact_id or workspace_id. The statement-level UPDATE
--    triggers of 0008 ran on every projection upsert (INSERT ... ON CONFLICT DO UPDATE fires the
--    statement-level UPDATE triggers even when it updates nothing), a PL/pgSQL call and a query per
--    append for rows that never change their contact. A trigger with a column list cannot have a
--    transition table, hence row level; only merges and moves (rare) update contact_id. The
--    guarantee is unchanged: such an UPDATE naming a contact that is not in the row's workspace
--    fails with SQLSTATE 23503 (test/ledger/references.test.ts).
DROP TRIGGER identities_contact_ref_update ON identities;
--> statement-breakpoint
DROP TRIGGER consent_state_contact_ref_update ON consent_state;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION ledger_check_contact_ref_row() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM contacts c WHERE c.workspace_id = NEW.workspace_id AND c.id = NEW.contact_id) THEN
    RAISE EXCEPTION 'insert or update on table "%" violates the reference to "contacts"', TG_TABLE_NAME
      USING ERRCODE = '23503', TABLE = TG_TABLE_NAME,
            DETAIL = format('Key (workspace_id, contact_id)=(%s, %s) is not present in table "contacts".', NEW.workspace_id, NEW.contact_id);
  END IF;
  RETURN NULL;
END;
$$;
--> statement-breakpoint
CREATE TRIGGER identities_contact_ref_update
  AFTER UPDATE OF contact_id, workspace_id ON identities
  FOR EACH ROW EXECUTE FUNCTION ledger_check_contact_ref_row();
--> statement-breakpoint
CREATE TRIGGER consent_state_contact_ref_update
  AFTER UPDATE OF contact_id, workspace_id ON consent_state
  FOR EACH ROW EXECUTE FUNCTION ledger_check_contact_ref_row();
--> statement-breakpoint
-- The identities' advisory locks, two-level, as explained in src/ledger/contact-resolver.ts: a
-- set of at most 128 keys takes each key's bucket (of 256) SHARED, then each key EXCLUSIVE; a
-- larger set takes its buckets EXCLUSIVE. Each kind in one global order: no deadlock. Transaction
-- scoped: they are held after the function returns. (Defined once, here: the append's prepare step
-- and the resolver's standalone lock both call it.)
CREATE OR REPLACE FUNCTION ledger_lock_identities(p_keys text[]) RETURNS int
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  n int;
BEGIN
  -- PL/pgSQL, not SQL: a SQL function's body is parsed and planned on every call (measured with
  -- perf: half of ledger_prepare's time); PL/pgSQL keeps the plan for the session.
  SELECT count(CASE l.kind WHEN 0 THEN pg_advisory_xact_lock(727101, l.b)
                           WHEN 1 THEN pg_advisory_xact_lock_shared(727101, l.b)
                           ELSE pg_advisory_xact_lock(727102, l.b) END)::int
    INTO n
    FROM (SELECT DISTINCT CASE WHEN cardinality(p_keys) <= 128 THEN 1 ELSE 0 END AS kind,
                 (hashtextextended(x, 0) & 255)::int AS b
            FROM unnest(p_keys) AS x
          UNION
          SELECT 2, hashtext(x) FROM unnest(p_keys) AS x WHERE cardinality(p_keys) <= 128
          ORDER BY 1, 2) l;
  RETURN n;
END;
$$;
--> statement-breakpoint
-- 2. ledger_prepare: everything the append reads before it writes, in ONE round trip instead of
--    four (prelude, owners, chain heads, after-lock; src/ledger/ledger-service.ts). Round trips,
--    not rows, are the cost of a small append. It writes nothing: the append's single write
--    statement stays the only way events enter the ledger. In order, each step a statement of its
--    own, so (READ COMMITTED, a VOLATILE function) each sees what was committed before it started:
--    a. the identities' advisory locks (contact-resolver.ts, lockIdentitiesSql: the same SQL);
--    b. the batch's subscription groups (live, archived) and the workspace's evidence setting;
--    c. the owner of each identity, and the external_id that owner holds (merge-or-move decision);
--    d. the chain heads of those owners and of the contacts named directly, locked FOR UPDATE in
--       id order (as ledger-lock-heads: no deadlock between batches);
--    e. after the locks: exactly-once keys already seen, the current projection rows of each
--       (contact, group) an item names (its identities' owner, or the contact it names directly),
--       p_n ledger ids and the recording time.
--    The per-key probes are LATERAL ... LIMIT 1 for the reason given in contact-resolver.ts
--    (never flattened into a scan of the workspace). When the resolution then merges or moves
--    (rare), the append falls back to reading d and e again for the contacts that result.
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
LANGUAGE plpgsql VOLATILE AS $$
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
