/** POST /consent/events: up to 10,000 native events, answered per item in input order. */
import t from 'tap'
import { buildTestApp, newGroup } from '../../helpers/build-app.js'

t.test('10,000 events in one request: per-item results in input order, invalid items alone refused', async (t) => {
  const ta = await buildTestApp(t)
  const G = await newGroup(ta, ta.root)
  const events = Array.from({ length: 10_000 }, (_, i) => ({
    phone: i % 1000 === 7 ? '+1415' : `+1415${String(3000000 + i).padStart(7, '0')}`,
    subscription_group_id: G,
    state: i % 2 ? 'unsubscribed' : 'subscribed',
  }))
  const r = await ta.app.inject({ method: 'POST', url: '/consent/events', headers: ta.root, payload: { events } })
  t.equal(r.statusCode, 200, r.statusCode === 200 ? '' : r.body)
  const body = r.json()
  t.equal(body.results.length, 10_000)
  t.same(
    body.results.map((x: { index: number }) => x.index),
    events.map((_, i) => i),
    'input order',
  )
  t.equal(body.applied, 9_990)
  t.equal(body.rejected, 10)
  t.same(body.results[7], { index: 7, status: 'rejected', code: 'invalid_phone', message: 'phone "+1415" is not a valid phone number' })
  t.match(body.results[8], { index: 8, status: 'applied', event_id: /^[0-9a-f-]{36}$/ })
})

t.test('more than 10,000 events is a 400 and changes nothing', async (t) => {
  const ta = await buildTestApp(t)
  const G = await newGroup(ta, ta.root)
  const events = Array.from({ length: 10_001 }, (_, i) => ({ external_id: `u${i}`, subscription_group_id: G, state: 'subscribed' }))
  const r = await ta.app.inject({ method: 'POST', url: '/consent/events', headers: ta.root, payload: { events } })
  t.equal(r.statusCode, 400, r.body.slice(0, 200))
  const [n] = await ta.app.database.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM consent_events`)
  t.equal(n!.n, 0)
})
