/**
 * The identities' advisory locks (src/ledger/contact-resolver.ts): requests for different people
 * never wait for each other, the same person is serialized, a big set excludes the small sets of
 * its buckets, and no set holds more than 2 x 160 locks (PostgreSQL's shared lock table is finite).
 */
import t from 'tap'
import pg from 'pg'
import { freshDatabase } from '../helpers/db.js'
import { lockIdentitiesSql, TWO_LEVEL_MAX_KEYS } from '../../src/ledger/contact-resolver.js'

t.test('identity locks: per key for small sets, per bucket for big ones, at most 320', async (t) => {
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

  // The bound is TWO_LEVEL_MAX_KEYS on both sides (the coalescer pairs requests up to it): at the
  // bound each key is locked on its own, one key more and only buckets are.
  const held = async (n: number) => {
    await a.query('BEGIN')
    await lock(a, rows.slice(0, n).map((r) => r.k))
    const { rows: l } = await a.query<{ mode: string; classid: string }>(
      `SELECT mode, classid::text FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()`,
    )
    await a.query('ROLLBACK')
    return { keys: l.filter((x) => x.classid === '727102').length, exclusiveBuckets: l.filter((x) => x.classid === '727101' && x.mode === 'ExclusiveLock').length, all: l.length }
  }
  const atBound = await held(TWO_LEVEL_MAX_KEYS)
  t.equal(atBound.keys, TWO_LEVEL_MAX_KEYS, `a ${TWO_LEVEL_MAX_KEYS}-key set locks each key`)
  t.equal(atBound.exclusiveBuckets, 0, '... and takes its buckets shared')
  t.ok(atBound.all <= 2 * TWO_LEVEL_MAX_KEYS, `... holding ${atBound.all} advisory locks`)
  const above = await held(TWO_LEVEL_MAX_KEYS + 1)
  t.same([above.keys, above.exclusiveBuckets > 0], [0, true], `a ${TWO_LEVEL_MAX_KEYS + 1}-key set locks buckets only`)
})
