/**
 * A replayed signed webhook (the same bytes POSTed again: Meta's retries, or anyone who captured
 * one) is acknowledged 200 every time and stored once, by a unique index on the tenancy and the
 * sha256 of the raw body (migration 0016).
 */
import t from 'tap'
import { buildTestApp, newGroup } from '../../helpers/build-app.js'
import { WEBHOOK_ENV, mapNumber, postWebhook, textMessage } from '../../webhook/helpers.js'

const stop = (id: string, pnid: string, waId = '14155550100') => textMessage('STOP', { id, ts: 1750000000, pnid, waId })

t.test('a replayed signed body is stored once and acknowledged every time', async (t) => {
  const ta = await buildTestApp(t, WEBHOOK_ENV)
  await newGroup(ta, ta.root)
  await mapNumber(ta.app, ta.root, 'PD')
  const rows = async (sha?: string) =>
    (await ta.app.database.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM webhook_inbox WHERE $1::text IS NULL OR body_sha256 = $1`, [sha ?? null]))[0]!.n

  const raw = stop('replay7', 'PD')
  const acks = []
  for (let i = 0; i < 7; i++) acks.push(await postWebhook(ta.app, raw))
  t.same(
    acks.map((a) => a.statusCode),
    Array(7).fill(200),
  )
  t.same(new Set(acks.map((a) => a.json().inbox_id)).size, 1, 'every acknowledgement names the one stored row')
  t.equal(acks[6]!.json().status, 'processed')
  t.equal(await rows(), 1, 'one inbox row for seven deliveries')

  // Concurrent replays (grouped inserts) and a malformed body replayed.
  const raw2 = stop('replay-concurrent', 'PD', '14155550199')
  const conc = await Promise.all(Array.from({ length: 7 }, () => postWebhook(ta.app, raw2)))
  t.same(
    conc.map((a) => a.statusCode),
    Array(7).fill(200),
  )
  t.equal(new Set(conc.map((a) => a.json().inbox_id)).size, 1)
  t.equal(await rows(), 2)
  for (let i = 0; i < 3; i++) t.equal((await postWebhook(ta.app, '{"not json')).statusCode, 200)
  t.equal(await rows(), 3, 'a malformed body replayed is kept once')

  // The database refuses a second row for the same body and tenancy, whatever the application does.
  const [first] = await ta.app.database.sql.query<{ raw_body: string; body_sha256: string }>(`SELECT raw_body, body_sha256 FROM webhook_inbox ORDER BY id LIMIT 1`)
  await t.rejects(
    ta.app.database.sql.query(`INSERT INTO webhook_inbox (raw_body, body_sha256, phone_number_ids) VALUES ($1, $2, '{}')`, [first!.raw_body, first!.body_sha256]),
    { code: '23505' },
  )
  // Nor can a new row claim to be a copy stored before the index (legacy_duplicate_of, migration 0018).
  await t.rejects(
    ta.app.database.sql.query(`INSERT INTO webhook_inbox (raw_body, body_sha256, phone_number_ids, legacy_duplicate_of) VALUES ($1, $2, '{}', 1)`, [
      first!.raw_body,
      first!.body_sha256,
    ]),
    { code: '23514' },
  )
})
