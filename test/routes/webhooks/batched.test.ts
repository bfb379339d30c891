/**
 * Under load, webhook payloads are acknowledged once committed and processed in batches right after
 * (src/webhook/processor.ts, WEBHOOK_INLINE_MAX). The same traffic must end exactly as when every
 * payload is processed inside its own request: the same consent state, the same inbox statuses, the
 * same events per signal, nothing lost and nothing doubled, and restores (START, `resume`) in a
 * batch see the opt-outs before them in the same batch.
 */
import t from 'tap'
import { buildTestApp, newGroup, type TestApp } from '../../helpers/build-app.js'
import { WEBHOOK_ENV, deliver, mapNumber, setWaId, textMessage, variant } from '../../webhook/helpers.js'

const T = 1750000000

/** Mixed traffic: opt-outs, restores after them, a restore before its opt-out, a redelivery, a bad phone, Meta signals. */
function traffic(): string[] {
  const out: string[] = []
  for (let i = 0; i < 12; i++) {
    const waId = `1415555${String(1000 + i).padStart(4, '0')}`
    out.push(textMessage('STOP', { id: `stop${i}`, ts: T + 10 + i, waId }))
  }
  // Restores of the first four: in the same batch as their opt-outs.
  for (let i = 0; i < 4; i++) out.push(textMessage('START', { id: `start${i}`, ts: T + 100 + i, waId: `1415555${String(1000 + i).padStart(4, '0')}` }))
  // A START whose opt-out arrives later (deferred, then completed by that opt-out).
  out.push(textMessage('START', { id: 'early-start', ts: T + 300, waId: '14155552000' }))
  out.push(textMessage('STOP PROMOTIONS', { id: 'late-stop', ts: T + 200, waId: '14155552000' }))
  // A redelivery of a STOP, a message that matches nothing, a wa_id that is not a phone.
  out.push(textMessage('STOP', { id: 'stop3', ts: T + 13, waId: '14155551003' }))
  out.push(textMessage('hello there', { id: 'hello', ts: T + 400, waId: '14155553000' }))
  out.push(textMessage('STOP', { id: 'badphone', ts: T + 401, waId: '12' }))
  // Meta: a marketing stop and its resume, a 131050 delivery error.
  out.push(setWaId(variant('meta-user-preferences-stop.json', { id: 'ups', ts: T + 500 }), '14155554000'))
  out.push(setWaId(variant('meta-user-preferences-resume.json', { id: 'upr', ts: T + 600 }), '14155554000'))
  out.push(setWaId(variant('meta-status-failed-131050.json', { id: 'st', ts: T + 700 }), '14155555000'))
  return out
}

async function setup(t: Parameters<typeof buildTestApp>[0], inlineMax: string) {
  const ta = await buildTestApp(t, { ...WEBHOOK_ENV, WEBHOOK_INLINE_MAX: inlineMax })
  await mapNumber(ta.app, ta.root)
  const groups = [await newGroup(ta, ta.root, { name: 'promos' }), await newGroup(ta, ta.root, { name: 'orders', category: 'utility' })]
  // The people whose restores the traffic exercises were subscribed first (a restore gives back
  // only what an opt-out took away).
  const people = ['+14155551000', '+14155551001', '+14155551002', '+14155551003', '+14155552000', '+14155554000']
  const r = await ta.app.inject({
    method: 'POST',
    url: '/consent/events',
    headers: ta.root,
    payload: {
      events: people.flatMap((phone) =>
        groups.map((g) => ({ phone, subscription_group_id: g, state: 'subscribed', occurred_at: '2025-01-01T00:00:00Z', method: 'web_form', evidence: { consent_text: 'yes' } })),
      ),
    },
  })
  if (r.statusCode !== 200) throw new Error(r.body)
  return ta
}

/** Everything that must match, without ids that differ between databases. */
async function outcome(ta: TestApp) {
  const sql = ta.app.database.sql
  const state = await sql.query<{ phone: string; name: string; state: string; source: string }>(
    `SELECT i.value AS phone, g.name, s.state, s.source FROM consent_state s
       JOIN subscription_groups g ON g.id = s.subscription_group_id
       JOIN identities i ON i.contact_id = s.contact_id AND i.type = 'phone'
      ORDER BY 1, 2`,
  )
  const events = await sql.query<{ key: string; name: string; state: string; source: string; n: number }>(
    `SELECT e.evidence->>'signal_key' AS key, g.name, e.state, e.source, count(*)::int AS n FROM consent_events e
       JOIN subscription_groups g ON g.id = e.subscription_group_id
      WHERE e.type = 'consent' GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4`,
  )
  const inbox = await sql.query<{ sha: string; status: string }>(`SELECT body_sha256 AS sha, status FROM webhook_inbox ORDER BY body_sha256, status`)
  const stops = await sql.query<{ phone: string; stopped: boolean }>(
    `SELECT i.value AS phone, p.stopped FROM platform_stops p JOIN identities i ON i.contact_id = p.contact_id AND i.type = 'phone' ORDER BY 1`,
  )
  return { state, events, inbox, stops }
}

t.test('batched processing ends exactly as processing in the request', async (t) => {
  const inline = await setup(t, '1000')
  const batched = await setup(t, '0')
  const payloads = traffic()

  const inlineAcks = []
  for (const p of payloads) inlineAcks.push((await deliver(inline.app, p)).status)
  t.notOk(inlineAcks.includes('pending'), 'inline: every payload is processed before its 200')

  // Batched: every payload is acknowledged on commit, all at once.
  const acks = await Promise.all(payloads.map((p) => deliver(batched.app, p)))
  t.ok(
    acks.every((a) => a.status === 'pending'),
    'batched: acknowledged as pending',
  )
  await batched.app.whatsapp.processor.idle()

  const a = await outcome(inline)
  const b = await outcome(batched)
  t.ok(a.events.length > 20, `the traffic records events (${a.events.length} signal/group lines)`)
  t.same(b.state, a.state, 'same consent state')
  t.same(b.events, a.events, 'same events per signal, none doubled')
  t.same(b.inbox, a.inbox, 'same inbox statuses')
  t.same(b.stops, a.stops, 'same platform stops')
  t.ok(a.inbox.some((r) => r.status === 'failed'), 'the bad phone is kept as failed')
  t.notOk(b.inbox.some((r) => r.status === 'pending'), 'nothing left pending')
  const restored = b.state.filter((s) => s.phone === '+14155551000')
  t.same(
    restored.map((s) => s.state),
    ['subscribed', 'subscribed'],
    'a START in the same batch as its STOP restores it',
  )
})

t.test('shutdown processes the acknowledged rows still waiting', async (t) => {
  const ta = await setup(t, '0')
  const payloads = [0, 1, 2, 3, 4].map((i) => textMessage('STOP', { id: `q${i}`, ts: T + i, waId: `1415557000${i}` }))
  const acks = await Promise.all(payloads.map((p) => deliver(ta.app, p)))
  t.ok(acks.every((a) => a.status === 'pending'))
  // Read through a separate connection after close: the app's pool is gone by then.
  await ta.app.close()
  const { default: pg } = await import('pg')
  const c = new pg.Client({ connectionString: ta.url })
  await c.connect()
  t.teardown(() => c.end())
  const rows = (await c.query<{ status: string; n: number }>(`SELECT status, count(*)::int AS n FROM webhook_inbox GROUP BY status`)).rows
  t.same(rows, [{ status: 'processed', n: 5 }], 'every acknowledged row processed before the pool closed')
  const events = (await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM consent_events WHERE type = 'consent' AND actor = 'meta-webhook'`)).rows[0]!.n
  t.equal(events, 10, 'two groups per STOP')
})
