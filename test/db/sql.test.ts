/**
 * poolSql's transactions send BEGIN with their first statement: a function call travels with it
 * in one simple query, its values inlined as literals. The transaction must be the same one, a
 * failure must roll everything back, and no value may change on the way (quotes, backslashes,
 * arrays, NULL, dates). afterCommit runs its callbacks only once the outermost transaction committed.
 */
import t, { type Test } from 'tap'
import pg from 'pg'
import { PGlite } from '@electric-sql/pglite'
import { freshDatabase } from '../helpers/db.js'
import fc from 'fast-check'
import { pgliteSql, poolSql, quoteLiteral, type Sql } from '../../src/db/sql.js'

t.test('quoteLiteral writes every string exactly as node-postgres escapeLiteral does', async (t) => {
  for (const s of ['', "'", "''", '\\', "a'b\\c", '{"a\\"b",NULL}', 'é\u0000x'])
    t.equal(quoteLiteral(s), pg.escapeLiteral(s), JSON.stringify(s))
  fc.assert(fc.property(fc.string({ unit: fc.constantFrom("'", '\\', 'a', '"', ',', '{', ' ', 'é') }), (s) => quoteLiteral(s) === pg.escapeLiteral(s)))
  fc.assert(fc.property(fc.string({ unit: 'binary' }), (s) => quoteLiteral(s) === pg.escapeLiteral(s)))
})

t.test('pooled transactions: BEGIN with the first statement', async (t) => {
  const { url } = await freshDatabase(t)
  const pool = new pg.Pool({ connectionString: url, max: 2 })
  t.teardown(() => pool.end())
  // What goes over the wire, one entry per query message node-postgres sends.
  const sent: string[] = []
  pool.on('connect', (client) => {
    const query = client.query.bind(client) as (...a: unknown[]) => unknown
    ;(client as unknown as { query: unknown }).query = (q: unknown, ...rest: unknown[]) => {
      sent.push(typeof q === 'string' ? q : (q as { text: string }).text)
      return query(q, ...rest)
    }
  })
  const sql = poolSql(pool)
  await sql.query(`CREATE TABLE kv (k text PRIMARY KEY, v text)`)
  await sql.query(`CREATE FUNCTION put(p_k text, p_v text[], OUT n int, OUT xid text) LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO kv VALUES (p_k, array_to_string(p_v, '|', '<null>'));
      n := cardinality(p_v);
      xid := txid_current()::text;
    END $$`)

  t.test('a function call first: one transaction, values unchanged', async (t) => {
    sent.length = 0
    const tricky = ["it's", 'back\\slash', '{braces}', '"quoted"', 'comma,semi;', null as unknown as string, 'ünï']
    const out = await sql.tx(async (tx) => {
      const [first] = await tx.query<{ n: number; xid: string }>(`SELECT * FROM put($1, $2::text[])`, ["k'1", tricky])
      const [second] = await tx.query<{ xid: string; in_block: boolean }>(
        `SELECT txid_current()::text AS xid, now() = statement_timestamp() AS in_block`,
      )
      return { first: first!, second: second! }
    })
    t.equal(sent.length, 3, `three round trips: ${sent.join(' / ')}`)
    t.match(sent[0], /^BEGIN; SELECT \* FROM put\('k''1', /, 'BEGIN travelled with the function call')
    t.equal(sent[2], 'COMMIT')
    t.equal(out.first.n, tricky.length)
    t.equal(out.first.xid, out.second.xid, 'the function ran in the same transaction as the statements after it')
    t.equal(out.second.in_block, false, 'a transaction block: now() is its start, not the statement start')
    const [row] = await sql.query<{ v: string }>(`SELECT v FROM kv WHERE k = $1`, ["k'1"])
    t.equal(row!.v, tricky.map((x) => x ?? '<null>').join('|'))
  })

  t.test('a failure after the combined first statement rolls it back', async (t) => {
    await t.rejects(
      sql.tx(async (tx) => {
        await tx.query(`SELECT * FROM put($1, $2::text[])`, ['k2', ['a']])
        await tx.query(`SELECT 1 / 0`)
      }),
      { code: '22012' },
    )
    t.same(await sql.query(`SELECT * FROM kv WHERE k = 'k2'`), [], 'nothing of the transaction stayed')
    // A failing combined statement (duplicate key) rolls back too, and the connection is reusable.
    await t.rejects(sql.tx((tx) => tx.query(`SELECT * FROM put($1, $2::text[])`, ["k'1", ['x']])), { code: '23505' })
    const [n] = await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM kv`)
    t.equal(n!.n, 1)
    for (let i = 0; i < 4; i++) await sql.tx((tx) => tx.query(`SELECT * FROM put($1, $2::text[])`, [`k-${i}`, []]))
    const [m] = await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM kv`)
    t.equal(m!.n, 5, 'both pooled connections still work')
  })

  t.test('any other first statement gets its own BEGIN', async (t) => {
    sent.length = 0
    const xids = await sql.tx(async (tx) => {
      const [a] = await tx.query<{ xid: string }>(`SELECT txid_current()::text AS xid`, [], 'named')
      await tx.query(`INSERT INTO kv VALUES ($1, $2)`, ['k3', 'v'])
      const [b] = await tx.query<{ xid: string }>(`SELECT txid_current()::text AS xid`)
      return [a!.xid, b!.xid]
    })
    t.equal(xids[0], xids[1])
    t.same(sent.slice(0, 2), ['BEGIN', 'SELECT txid_current()::text AS xid'])
    sent.length = 0
    t.equal(await sql.tx(async () => 'no statement'), 'no statement')
    t.same(sent, [], 'a transaction without statements sends nothing')
    await t.rejects(
      sql.tx(async (tx) => {
        await tx.query(`INSERT INTO kv VALUES ($1, $2)`, ['k4', 'v'])
        throw new Error('caller gave up')
      }),
      /caller gave up/,
    )
    t.same(await sql.query(`SELECT k FROM kv WHERE k = 'k4'`), [])
  })
})

/** afterCommit on both drivers: at once outside a transaction, after COMMIT inside one, never on rollback. */
async function afterCommitSemantics(t: Test, sql: Sql) {
  const seen: string[] = []
  sql.afterCommit(() => seen.push('outside'))
  t.same(seen, ['outside'], 'outside a transaction: at once')

  const result = await sql.tx(async (tx) => {
    await tx.query(`SELECT 1`)
    tx.afterCommit(() => seen.push('committed'))
    await tx.tx(async (inner) => inner.afterCommit(() => seen.push('nested')))
    t.same(seen, ['outside'], 'not before COMMIT')
    return 42
  })
  t.equal(result, 42)
  t.same(seen, ['outside', 'committed', 'nested'], 'after COMMIT, a nested transaction with the outer one')

  await t.rejects(
    sql.tx(async (tx) => {
      await tx.query(`SELECT 1`)
      tx.afterCommit(() => seen.push('rolled back'))
      throw new Error('boom')
    }),
    /boom/,
  )
  t.same(seen, ['outside', 'committed', 'nested'], 'never after a rollback')

  await sql.tx(async (tx) => {
    tx.afterCommit(() => {
      throw new Error('a failing callback')
    })
    tx.afterCommit(() => seen.push('next'))
  })
  t.same(seen.at(-1), 'next', 'a failing callback neither fails the transaction nor stops the others')
}

t.test('afterCommit on PostgreSQL', async (t) => {
  const { url } = await freshDatabase(t)
  const pool = new pg.Pool({ connectionString: url, max: 2 })
  t.teardown(() => pool.end())
  await afterCommitSemantics(t, poolSql(pool))
})

t.test('afterCommit on embedded PGlite', async (t) => {
  const db = new PGlite()
  t.teardown(() => db.close())
  await afterCommitSemantics(t, pgliteSql(db))
})
