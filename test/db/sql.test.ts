/**
 * poolSql's transactions send BEGIN with their first statement, pipelined (one write, one round
 * trip). The transaction must be the same one, a failure must roll everything back, and no value
 * may change on the way (quotes, backslashes, arrays, NULL, dates). afterCommit runs its callbacks
 * only once the outermost transaction committed.
 */
import t, { type Test } from 'tap'
import pg from 'pg'
import { PGlite } from '@electric-sql/pglite'
import { freshDatabase } from '../helpers/db.js'
import { pgliteSql, poolSql, rolledBack, type Sql } from '../../src/db/sql.js'

t.test('pooled transactions: BEGIN with the first statement', async (t) => {
  const { url } = await freshDatabase(t)
  const pool = new pg.Pool({ connectionString: url, max: 2 })
  t.teardown(() => pool.end())
  // What goes over the wire, one entry per query message node-postgres sends.
  const sent: string[] = []
  const wire: string[] = []
  pool.on('connect', (client) => {
    const query = client.query.bind(client) as (...a: unknown[]) => unknown
    ;(client as unknown as { query: unknown }).query = (q: unknown, ...rest: unknown[]) => {
      sent.push(typeof q === 'string' ? q : (q as { text: string }).text)
      return query(q, ...rest)
    }
    // The socket's traffic: 'w' for a write to PostgreSQL, 'r' for an answer read.
    const stream = (client as unknown as { connection: { stream: NodeJS.EventEmitter } }).connection.stream as unknown as Record<string, (...a: unknown[]) => unknown> &
      NodeJS.EventEmitter
    for (const m of ['_write', '_writev']) {
      const original = stream[m]!.bind(stream)
      stream[m] = (...a: unknown[]) => (wire.push('w'), original(...a))
    }
    stream.on('data', () => wire.push('r'))
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
    wire.length = 0
    const tricky = ["it's", 'back\\slash', '{braces}', '"quoted"', 'comma,semi;', null as unknown as string, 'ünï']
    const out = await sql.tx(async (tx) => {
      const [first] = await tx.query<{ n: number; xid: string }>(`SELECT * FROM put($1, $2::text[])`, ["k'1", tricky])
      const [second] = await tx.query<{ xid: string; in_block: boolean }>(
        `SELECT txid_current()::text AS xid, now() = statement_timestamp() AS in_block`,
      )
      return { first: first!, second: second! }
    })
    t.same(sent, ['BEGIN', 'SELECT * FROM put($1, $2::text[])', 'SELECT txid_current()::text AS xid, now() = statement_timestamp() AS in_block', 'COMMIT'])
    t.match(wire.join(''), /^wr+wr+wr+$/, `three round trips, BEGIN in one write with the first statement: ${wire.join('')}`)
    t.equal(out.first.n, tricky.length)
    t.equal(out.first.xid, out.second.xid, 'the function ran in the same transaction as the statements after it')
    t.equal(out.second.in_block, false, 'a transaction block: now() is its start, not the statement start')
    const [row] = await sql.query<{ v: string }>(`SELECT v FROM kv WHERE k = $1`, ["k'1"])
    t.equal(row!.v, tricky.map((x) => x ?? '<null>').join('|'))
  })

  t.test('a failure after the pipelined first statement rolls it back', async (t) => {
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

  t.test('any other first statement travels with BEGIN too', async (t) => {
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

t.test('queryLast: the last statement travels with the COMMIT (pipelined), its errors roll back', async (t) => {
  const { url } = await freshDatabase(t)
  const pool = new pg.Pool({ connectionString: url, max: 1 })
  t.teardown(() => pool.end())
  // The socket's traffic, in order: 'w' for a write to PostgreSQL (one system call: what a corked
  // stream buffered goes out in one _writev), 'r' for an answer read.
  const wire: string[] = []
  pool.on('connect', (client) => {
    const stream = (client as unknown as { connection: { stream: NodeJS.EventEmitter } }).connection.stream as unknown as Record<string, (...a: unknown[]) => unknown> &
      NodeJS.EventEmitter
    for (const m of ['_write', '_writev']) {
      const original = stream[m]!.bind(stream)
      stream[m] = (...a: unknown[]) => (wire.push('w'), original(...a))
    }
    stream.on('data', () => wire.push('r'))
  })
  const sql = poolSql(pool)
  await sql.query(`CREATE TABLE kv (k text PRIMARY KEY, v text)`)
  await sql.query(`INSERT INTO kv VALUES ('taken', 'x')`)
  const count = async (k: string) => (await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM kv WHERE k = $1`, [k]))[0]!.n

  t.test('held back, then sent with the COMMIT before its answer is read', async (t) => {
    wire.length = 0
    await sql.tx(async (tx) => {
      await tx.query(`INSERT INTO kv VALUES ($1, $2)`, ['a', 'first'])
      // A slow statement: its answer cannot come before the COMMIT is written if they are pipelined.
      const before = wire.length
      await tx.queryLast(`INSERT INTO kv SELECT $1, $2 FROM pg_sleep(0.05)`, ['b', 'last'], 'slow-insert')
      t.equal(wire.length, before, 'not sent yet')
    })
    t.equal(await count('a'), 1)
    t.equal(await count('b'), 1, 'committed')
  })

  t.test('one round trip for the statement and COMMIT', async (t) => {
    await sql.query(`DELETE FROM kv WHERE k IN ('c', 'd')`)
    wire.length = 0
    let marks = 0
    await sql.tx(async (tx) => {
      await tx.query(`INSERT INTO kv VALUES ($1, $2)`, ['c', 'x'])
      marks = wire.length
      await tx.queryLast(`INSERT INTO kv SELECT $1, $2 FROM pg_sleep(0.05)`, ['d', 'y'], 'slow-insert')
    })
    const tail = wire.slice(marks).join('')
    t.match(tail, /^wr/, `statement and COMMIT in one write, before any answer: ${tail}`)
    t.notMatch(tail, /r+w/, `no write after an answer: ${tail}`)
    t.equal(await count('d'), 1)
  })

  t.test('refused with the COMMIT: nothing of the transaction stays, marked rolled back', async (t) => {
    const err = await sql
      .tx(async (tx) => {
        await tx.query(`INSERT INTO kv VALUES ($1, $2)`, ['e', 'x'])
        await tx.queryLast(`INSERT INTO kv VALUES ($1, $2)`, ['taken', 'dup'], 'insert-kv')
      })
      .then(
        () => t.fail('should fail'),
        (e: unknown) => e,
      )
    t.match(err, { code: '23505' })
    t.equal(rolledBack(err), true, 'the COMMIT behind it rolled back')
    t.equal(await count('e'), 0, 'the statement before it rolled back too')
    // The connection (the only one) is usable, not left in an aborted transaction.
    await sql.tx(async (tx) => {
      await tx.query(`INSERT INTO kv VALUES ($1, $2)`, ['f', 'x'])
      await tx.queryLast(`INSERT INTO kv VALUES ($1, $2)`, ['g', 'x'], 'insert-kv')
    })
    t.equal(await count('f') + (await count('g')), 2)
    t.equal((pool as unknown as { _clients: { pipeline: boolean }[] })._clients[0]!.pipeline, false, 'pipeline mode is off again')
  })

  t.test('a statement after it goes with it (it first), and gets its error', async (t) => {
    let tail = ''
    const seen = await sql.tx(async (tx) => {
      await tx.query(`INSERT INTO kv VALUES ($1, $2)`, ['h', 'x'])
      await tx.queryLast(`UPDATE kv SET v = $2 FROM pg_sleep(0.05) WHERE k = $1`, ['h', 'updated'], 'update-kv')
      const mark = wire.length
      const v = (await tx.query<{ v: string }>(`SELECT v FROM kv WHERE k = 'h'`))[0]!.v
      tail = wire.slice(mark).join('')
      return v
    })
    t.equal(seen, 'updated', 'the held-back statement ran before the next one')
    t.match(tail, /^wr/, `both in one write, before any answer: ${tail}`)
    t.notMatch(tail, /r+w/, `no write after an answer: ${tail}`)
    const err = await sql
      .tx(async (tx) => {
        await tx.query(`INSERT INTO kv VALUES ($1, $2)`, ['i', 'x'])
        await tx.queryLast(`INSERT INTO kv VALUES ($1, $2)`, ['taken', 'dup'], 'insert-kv')
        await tx.query(`SELECT 1`)
        t.fail('not reached')
      })
      .catch((e: unknown) => e)
    t.match(err, { code: '23505' })
    t.equal(rolledBack(err), false, 'thrown before the COMMIT, by the statement that followed')
    t.equal(await count('i'), 0)
  })

  t.test('a transaction that fails after it never sends it', async (t) => {
    await t.rejects(
      sql.tx(async (tx) => {
        await tx.query(`INSERT INTO kv VALUES ($1, $2)`, ['j', 'x'])
        await tx.queryLast(`INSERT INTO kv VALUES ($1, $2)`, ['k', 'x'], 'insert-kv')
        throw new Error('caller gave up')
      }),
      /caller gave up/,
    )
    t.equal(await count('j') + (await count('k')), 0)
  })

  t.test('a value that cannot be sent fails before anything is', async (t) => {
    const circular: Record<string, unknown> = {}
    circular.self = circular
    await t.rejects(
      sql.tx(async (tx) => {
        await tx.query(`INSERT INTO kv VALUES ($1, $2)`, ['l', 'x'])
        await tx.queryLast(`INSERT INTO kv VALUES ($1, $2::text)`, ['m', circular])
      }),
    )
    t.equal(await count('l'), 0, 'rolled back, not committed without the statement')
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
