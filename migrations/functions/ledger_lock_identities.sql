-- The identities' advisory locks, taken before contacts are resolved so that two appends naming the
-- same identity never both create a contact for it (src/ledger/, the contact resolver). Two levels:
-- a set of at most 160 keys takes each key's bucket (of 256) SHARED, then each key EXCLUSIVE; a
-- larger set takes its buckets EXCLUSIVE. Each kind in one global order: no deadlock. 160 lets two
-- full 75-object /users/track requests share one append (the append coalescer pairs them) while a
-- set holds at most 160 + 160 locks, within PostgreSQL's default lock table for a full pool.
-- Transaction scoped: held after the function returns. Called by ledger_prepare.sql and by the
-- resolver's standalone lock.
-- Migrations: 0009 (created, 128 keys), 0013 (160 keys).
CREATE OR REPLACE FUNCTION ledger_lock_identities(p_keys text[]) RETURNS int
LANGUAGE plpgsql VOLATILE
AS $$
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
