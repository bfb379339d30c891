/**
 * The identities' advisory locks (src/ledger/contact-resolver.ts): requests for different people
 * never wait for each other, the same person is serialized, a big set excludes the small sets of
 * its buckets, and no set holds more than 256 locks (PostgreSQL's shared lock table is finite).
 */
import t from 'tap'
import pg from 'pg'
import { freshDatabase } from '../helpers/db.js'
import { lockIdentitiesSql } from '../../src/ledger/contact-resolver.js'

t.test('identity locks: per key for small sets, per bucket for big ones, at most 256', async (t) => {
  const { url } = await freshDatabase(t)
  const open = async () => {
    const c = new pg.Client({ connectionString: url })
    await c.connect()
    t.teardown(() => c.end())
    return c
  }
  const a = await open()
  const b = await open()
  const lock = (c: pg.Client, keys: string[]) => c.query(`SELECT ${lockIdentitiesSql('$1')} AS n`, [keys])
  /** Whether `keys` can be locked by b while a holds its locks (b gives up after 300 ms). */
  const canLock = async (keys: string[]) => {
    await b.query('BEGIN')
    await b.query(`SET LOCAL lock_timeout = '300ms'`)
    try {
      await lock(b, keys)
      return true
    } catch (err) {
      if ((err as { code?: string }).code === '55P03') return false
      throw err
    } finally {
      await b.query('ROLLBACK')
    }
  }
  // Two keys in the same bucket (the bucket is hashtextextended & 255, as in the lock SQL).
  const { rows } = await a.query<{ k: string; bucket: number }>(
    `SELECT 'ws:phone:+1415555' || lpad(i::text, 4, '0') AS k, (hashtextextended('ws:phone:+1415555' || lpad(i::text, 4, '0'), 0) & 255)::int AS bucket
       FROM generate_series(1, 2000) i`,
  )
  const first = rows[0]!
  const sameBucket = rows.find((r) => r.k !== first.k && r.bucket === first.bucket)!
  t.ok(sameBucket, 'found two keys sharing a bucket')

  await a.query('BEGIN')
  await lock(a, [first.k])
  t.equal(await canLock([sameBucket.k]), true, 'another person in the same bucket does not wait')
  t.equal(await canLock([first.k]), false, 'the same person waits')
  const big = rows.slice(1, 500).map((r) => r.k)
  t.ok(big.includes(sameBucket.k))
  t.equal(await canLock(big), false, 'a big set waits for a small set holding one of its buckets')
  await a.query('ROLLBACK')

  await a.query('BEGIN')
  await lock(a, big)
  t.equal(await canLock([first.k]), false, 'a small set waits for a big set holding its bucket')
  const [{ n }] = (await a.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()`)).rows
  t.ok(n <= 256, `a 499-key set holds ${n} advisory locks`)
  await a.query('ROLLBACK')

  const ten = Array.from({ length: 10_000 }, (_, i) => `ws:phone:+1415${String(2000000 + i).padStart(7, '0')}`)
  await a.query('BEGIN')
  await lock(a, ten)
  const [{ m }] = (await a.query<{ m: number }>(`SELECT count(*)::int AS m FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()`)).rows
  t.equal(m, 256, 'a 10,000-key set holds its 256 buckets, no more')
  await a.query('ROLLBACK')

  await a.query('BEGIN')
  await lock(a, rows.slice(0, 128).map((r) => r.k))
  const [{ s }] = (await a.query<{ s: number }>(`SELECT count(*)::int AS s FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()`)).rows
  t.ok(s > 128 && s <= 256, `a 128-key set holds its keys and their buckets (${s})`)
  await a.query('ROLLBACK')
})
