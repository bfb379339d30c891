/** Idempotency-Key on write routes (IETF draft + Stripe semantics). */
import t from 'tap'
import pg from 'pg'
import { buildTestApp, newGroup } from '../helpers/build-app.js'

t.test('Idempotency-Key', async (t) => {
  const ta = await buildTestApp(t)
  const { sql } = ta.app.database
  const group = await newGroup(ta, ta.root)
  const body = (phone: string, state = 'unsubscribed') => ({ events: [{ phone, subscription_group_id: group, state, method: 'web_form' }] })
  const post = (key: string | undefined, payload: unknown) =>
    ta.app.inject({
      method: 'POST',
      url: '/consent/events',
      headers: { ...ta.root, ...(key ? { 'idempotency-key': key } : {}) },
      payload: payload as object,
    })
  const eventsFor = async (key: string) =>
    (await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM consent_events WHERE idempotency_key = $1`, [key]))[0]!.n

  t.test('20 concurrent identical requests with one key give exactly one ledger event', async (t) => {
    const replies = await Promise.all(Array.from({ length: 20 }, () => post('concurrent-1', body('+14155550201'))))
    const statuses = replies.map((r) => r.statusCode)
    t.ok(statuses.every((s) => s === 200 || s === 409), `only 200 (first or replay) and 409 (in flight): ${statuses.join(',')}`)
    t.ok(statuses.includes(200))
    t.equal(await eventsFor('concurrent-1'), 1, 'exactly one ledger event')
    const firsts = replies.filter((r) => r.statusCode === 200 && r.headers['idempotent-replayed'] !== 'true')
    t.equal(firsts.length, 1, 'one request did the work; the other 200s are replays')
    for (const r of replies.filter((r) => r.statusCode === 409)) t.equal(r.json().code, 'idempotency_in_flight')
    // After the first finished, a retry replays it.
    const retry = await post('concurrent-1', body('+14155550201'))
    t.equal(retry.statusCode, 200)
    t.equal(retry.headers['idempotent-replayed'], 'true')
    t.same(retry.json(), firsts[0]!.json(), 'same body as the first answer')
    t.equal(await eventsFor('concurrent-1'), 1)
  })

  t.test('replay returns the first status and body; key order in the body does not matter', async (t) => {
    const first = await post('replay-1', body('+14155550202'))
    t.equal(first.statusCode, 200)
    t.notOk(first.headers['idempotent-replayed'])
    const reordered = { events: [{ state: 'unsubscribed', method: 'web_form', subscription_group_id: group, phone: '+14155550202' }] }
    const second = await post('replay-1', reordered)
    t.equal(second.statusCode, first.statusCode)
    t.equal(second.body, first.body)
    t.equal(second.headers['idempotent-replayed'], 'true')
    t.equal(await eventsFor('replay-1'), 1)
  })

  t.test('the same key with a different body answers 422 and writes nothing', async (t) => {
    await post('reuse-1', body('+14155550203'))
    const before = (await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM consent_events`))[0]!.n
    const other = await post('reuse-1', body('+14155550203', 'subscribed'))
    t.equal(other.statusCode, 422)
    t.match(other.headers['content-type'], /^application\/problem\+json/)
    t.equal(other.json().code, 'idempotency_key_reused')
    const after = (await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM consent_events`))[0]!.n
    t.equal(after, before)
  })

  t.test('a duplicate arriving while the first is in flight answers 409', async (t) => {
    // Hold the key's in-flight lock from another connection, exactly as a first request does.
    const client = new pg.Client({ connectionString: ta.url })
    await client.connect()
    t.teardown(() => client.end())
    const [{ id: ws }] = (await client.query(`SELECT id FROM workspaces WHERE name = 'default'`)).rows
    await client.query('BEGIN')
    await client.query(`SELECT pg_advisory_xact_lock(hashtextextended($1, 1))`, [`${ws}:inflight-1`])
    const dup = await post('inflight-1', body('+14155550204'))
    t.equal(dup.statusCode, 409)
    t.equal(dup.json().code, 'idempotency_in_flight')
    t.equal(await eventsFor('inflight-1'), 0)
    await client.query('ROLLBACK')
    const later = await post('inflight-1', body('+14155550204'))
    t.equal(later.statusCode, 200)
    t.equal(await eventsFor('inflight-1'), 1)
  })

  t.test('answers are replayed for 24 h, then the key may be used again', async (t) => {
    await post('ttl-1', body('+14155550205'))
    await sql.query(`UPDATE idempotency_keys SET created_at = now() - interval '23 hours' WHERE key = 'ttl-1'`)
    const within = await post('ttl-1', body('+14155550205', 'subscribed'))
    t.equal(within.statusCode, 422, 'still remembered after 23 h')
    await sql.query(`UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'ttl-1'`)
    const after = await post('ttl-1', body('+14155550205', 'subscribed'))
    t.equal(after.statusCode, 200, 'expired keys start afresh')
  })

  t.test('keys are scoped to the workspace and must be sane', async (t) => {
    const bad = await post('has space', body('+14155550206'))
    t.equal(bad.statusCode, 400)
    t.equal(bad.json().code, 'invalid_idempotency_key')
    const none = await post(undefined, body('+14155550206'))
    t.equal(none.statusCode, 200)
  })
})
