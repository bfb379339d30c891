-- Hand-written. The identities' advisory locks (0009, src/ledger/contact-resolver.ts) take a key
-- lock per identity for sets of at most 160 keys (was 128), buckets exclusive above that. 160 lets
-- two 75-object /users/track requests (the Braze maximum, one identity each: 150 keys) share one
-- append without excluding every other append from most of the 256 buckets: the coalescer pairs
-- such requests (src/ledger/append-coalescer.ts, TWO_LEVEL_MAX_KEYS). A set still holds at most
-- 160 key locks and 160 bucket locks (was 128 + 128), 6,400 for 20 pooled connections at once,
-- PostgreSQL's default lock table (max_locks_per_transaction 64 x max_connections 100).
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
    FROM (SELECT DISTINCT CASE WHEN cardinality(p_keys) <= 160 THEN 1 ELSE 0 END AS kind,
                 (hashtextextended(x, 0) & 255)::int AS b
            FROM unnest(p_keys) AS x
          UNION
          SELECT 2, hashtext(x) FROM unnest(p_keys) AS x WHERE cardinality(p_keys) <= 160
          ORDER BY 1, 2) l;
  RETURN n;
END;
$$;
