/**
 * Restores never fabricate consent (docs/webhook.md, "What a restore gives back"): START and the
 * other opt-in keywords, and Meta's `resume`, give back only the groups the person's opt-outs took
 * away (subscribed right before them), in order and out of order (deferred restores). Checked
 * through the API a customer uses: POST /consent/check and GET /audit/events.
 */
import t from 'tap'
import { buildTestApp, newGroup, type TestApp } from '../../helpers/build-app.js'
import { FIXTURE_PNID, WEBHOOK_ENV, deliver, mapNumber, textMessage, variant } from '../../webhook/helpers.js'

const T = 1750000000

async function setup(t: Parameters<typeof buildTestApp>[0]) {
  const ta = await buildTestApp(t, WEBHOOK_ENV)
  await mapNumber(ta.app, ta.root)
  const A = await newGroup(ta, ta.root, { name: 'A promos', phone_number_id: FIXTURE_PNID })
  const B = await newGroup(ta, ta.root, { name: 'B promos' })
  const C = await newGroup(ta, ta.root, { name: 'C orders', category: 'utility' })
  return { ta, A, B, C }
}

async function subscribe(ta: TestApp, phone: string, groups: string[], at = '2025-01-01T00:00:00Z') {
  const r = await ta.app.inject({
    method: 'POST',
    url: '/consent/events',
    headers: ta.root,
    payload: { events: groups.map((g) => ({ phone, subscription_group_id: g, state: 'subscribed', occurred_at: at, method: 'web_form', evidence: { consent_text: 'yes' } })) },
  })
  if (r.statusCode !== 200) throw new Error(r.body)
}

async function check(ta: TestApp, phone: string, group: string) {
  const r = await ta.app.inject({ method: 'POST', url: '/consent/check', headers: ta.root, payload: { subscription_group_id: group, phones: [phone] } })
  const x = r.json().results[0]
  return { allowed: x.allowed, state: x.state, reason: x.reason }
}

/** The person's webhook `subscribed` events, as [group, source] pairs, through the audit API. */
async function restored(ta: TestApp, phone: string) {
  const r = await ta.app.inject({ method: 'GET', url: `/audit/events?phone=${encodeURIComponent(phone)}&type=consent&limit=1000`, headers: ta.root })
  if (r.statusCode !== 200) throw new Error(r.body)
  const events = r.json().events as { subscription_group_id: string; state: string; source: string; actor: string }[]
  return events.filter((e) => e.state === 'subscribed' && e.actor === 'meta-webhook').map((e) => e.subscription_group_id).sort()
}

t.test('STOP (all) then START gives back only the group the person was subscribed to', async (t) => {
  const { ta, A, B, C } = await setup(t)
  const phone = '+14155550101'
  await subscribe(ta, phone, [A])
  await deliver(ta.app, textMessage('STOP', { id: 'r1', ts: T + 1, waId: '14155550101' }))
  for (const g of [A, B, C]) t.match(await check(ta, phone, g), { allowed: false, state: 'unsubscribed', reason: 'opted_out' }, 'STOP records every group in scope')
  const ack = await deliver(ta.app, textMessage('START', { id: 'r2', ts: T + 2, waId: '14155550101' }))
  t.equal(ack.status, 'processed')
  t.same(await check(ta, phone, A), { allowed: true, state: 'subscribed', reason: 'subscribed' }, 'A is given back')
  t.same(await check(ta, phone, B), { allowed: false, state: 'unsubscribed', reason: 'opted_out' }, 'B stays as the STOP left it')
  t.same(await check(ta, phone, C), { allowed: false, state: 'unsubscribed', reason: 'opted_out' }, 'C stays as the STOP left it')
  t.same(await restored(ta, phone), [A], 'the ledger holds one restore: A')
})

t.test('STOP PROMOTIONS then START: out-of-scope groups stay unknown, never-joined groups are not given', async (t) => {
  const { ta, A, B, C } = await setup(t)
  const phone = '+14155550102'
  await subscribe(ta, phone, [A])
  await deliver(ta.app, variant('meta-button-stop-promotions.json', { id: 'r3', ts: T + 1, waId: '14155550102' }))
  await deliver(ta.app, textMessage('unstop', { id: 'r4', ts: T + 2, waId: '14155550102' }))
  t.same(await check(ta, phone, A), { allowed: true, state: 'subscribed', reason: 'subscribed' })
  t.same(await check(ta, phone, B), { allowed: false, state: 'unsubscribed', reason: 'opted_out' })
  t.same(await check(ta, phone, C), { allowed: false, state: 'unknown', reason: 'not_opted_in' }, 'unknown stays unknown')
  t.same(await restored(ta, phone), [A])

  // A person subscribed to nothing: START after STOP records nothing at all.
  const other = '+14155550103'
  await deliver(ta.app, textMessage('STOP', { id: 'r5', ts: T + 1, waId: '14155550103' }))
  const ack = await deliver(ta.app, textMessage('START', { id: 'r6', ts: T + 2, waId: '14155550103' }))
  t.equal(ack.status, 'processed', 'not deferred: there is an opt-out, it took nothing away')
  t.same(await restored(ta, other), [])
  for (const g of [A, B, C]) t.equal((await check(ta, other, g)).state, 'unsubscribed')
})

t.test('a repeated opt-out: STOP, STOP, START gives back what the first STOP took away', async (t) => {
  const { ta, A, B } = await setup(t)
  const phone = '+14155550104'
  await subscribe(ta, phone, [A])
  await deliver(ta.app, textMessage('STOP', { id: 'r7', ts: T + 1, waId: '14155550104' }))
  await deliver(ta.app, textMessage('stop!', { id: 'r8', ts: T + 2, waId: '14155550104' }))
  await deliver(ta.app, textMessage('START', { id: 'r9', ts: T + 3, waId: '14155550104' }))
  t.same(await restored(ta, phone), [A])
  t.equal((await check(ta, phone, B)).state, 'unsubscribed')

  // ...but not over a business-side opt-out recorded after the STOP and before the START's
  // restore point: START gives back only what stayed opted out by the person's own opt-outs.
  await deliver(ta.app, textMessage('STOP', { id: 'r10', ts: T + 10, waId: '14155550104' }))
  const api = await ta.app.inject({
    method: 'POST',
    url: '/consent/events',
    headers: ta.root,
    payload: { events: [{ phone, subscription_group_id: A, state: 'unsubscribed', occurred_at: new Date((T + 11) * 1000).toISOString() }] },
  })
  t.equal(api.statusCode, 200)
  await deliver(ta.app, textMessage('START', { id: 'r11', ts: T + 12, waId: '14155550104' }))
  t.same(await restored(ta, phone), [A], 'no second restore')
  t.equal((await check(ta, phone, A)).state, 'unsubscribed')
})

t.test('user_preferences stop then resume: only the marketing groups the person was in come back', async (t) => {
  const { ta, A, B, C } = await setup(t)
  const phone = '+14155550105'
  await subscribe(ta, phone, [A, C])
  await deliver(ta.app, variant('meta-user-preferences-stop.json', { id: 'p1', ts: T + 1, waId: '14155550105' }))
  t.match(await check(ta, phone, A), { allowed: false, reason: 'platform_stopped' })
  t.match(await check(ta, phone, B), { allowed: false, reason: 'platform_stopped' })
  await deliver(ta.app, variant('meta-user-preferences-resume.json', { id: 'p2', ts: T + 2, waId: '14155550105' }))
  t.same(await check(ta, phone, A), { allowed: true, state: 'subscribed', reason: 'subscribed' }, 'A is given back')
  t.same(await check(ta, phone, B), { allowed: false, state: 'unsubscribed', reason: 'opted_out' }, 'B is not: the platform stop is cleared, no consent is made up')
  t.same(await check(ta, phone, C), { allowed: true, state: 'subscribed', reason: 'subscribed' }, 'utility untouched')
  t.same(await restored(ta, phone), [A])

  // Subscribed to no marketing group: the resume clears the stop and grants nothing.
  const other = '+14155550106'
  await deliver(ta.app, variant('meta-user-preferences-stop.json', { id: 'p3', ts: T + 1, waId: '14155550106' }))
  await deliver(ta.app, variant('meta-user-preferences-resume.json', { id: 'p4', ts: T + 2, waId: '14155550106' }))
  for (const g of [A, B]) t.same(await check(ta, other, g), { allowed: false, state: 'unsubscribed', reason: 'opted_out' }, 'not platform_stopped, not subscribed')
  t.same(await restored(ta, other), [])
  const stops = await ta.app.database.sql.query<{ stopped: boolean }>(
    `SELECT p.stopped FROM platform_stops p JOIN identities i ON i.contact_id = p.contact_id WHERE i.value = $1`,
    [other],
  )
  t.same(stops, [{ stopped: false }], 'the platform stop is cleared')
})

t.test('a stop followed by the 131050 of a blocked send, then resume: what the stop took away comes back', async (t) => {
  const { ta, A, B } = await setup(t)
  const phone = '+14155550107'
  await subscribe(ta, phone, [A])
  await deliver(ta.app, variant('meta-user-preferences-stop.json', { id: 'q1', ts: T + 1, waId: '14155550107' }))
  await deliver(ta.app, variant('meta-status-failed-131050.json', { id: 'q2', ts: T + 2, waId: '14155550107' }))
  await deliver(ta.app, variant('meta-user-preferences-resume.json', { id: 'q3', ts: T + 3, waId: '14155550107' }))
  t.same(await check(ta, phone, A), { allowed: true, state: 'subscribed', reason: 'subscribed' })
  t.same(await check(ta, phone, B), { allowed: false, state: 'unsubscribed', reason: 'opted_out' })
})

t.test('out of order: START/resume delivered before the older opt-out they answer', async (t) => {
  const { ta, A, B, C } = await setup(t)
  const phone = '+14155550108'
  await subscribe(ta, phone, [A])
  const start = await deliver(ta.app, textMessage('START', { id: 'o1', ts: T + 20, waId: '14155550108' }))
  t.equal(start.status, 'deferred')
  await deliver(ta.app, textMessage('STOP', { id: 'o2', ts: T + 10, waId: '14155550108' }))
  const [row] = await ta.app.database.sql.query<{ status: string }>(`SELECT status FROM webhook_inbox WHERE id = $1`, [start.inbox_id])
  t.equal(row!.status, 'processed', 'the STOP completed the deferred START')
  t.same(await check(ta, phone, A), { allowed: true, state: 'subscribed', reason: 'subscribed' })
  t.same(await check(ta, phone, B), { allowed: false, state: 'unsubscribed', reason: 'opted_out' })
  t.same(await check(ta, phone, C), { allowed: false, state: 'unsubscribed', reason: 'opted_out' })
  t.same(await restored(ta, phone), [A])

  // Meta's resume before its stop, for a person subscribed to B only.
  const other = '+14155550109'
  await subscribe(ta, other, [B])
  const resume = await deliver(ta.app, variant('meta-user-preferences-resume.json', { id: 'o3', ts: T + 60, waId: '14155550109' }))
  t.equal(resume.status, 'deferred')
  await deliver(ta.app, variant('meta-status-failed-131050.json', { id: 'o4', ts: T + 50, waId: '14155550109' }))
  t.same(await check(ta, other, B), { allowed: true, state: 'subscribed', reason: 'subscribed' })
  t.same(await check(ta, other, A), { allowed: false, state: 'unsubscribed', reason: 'opted_out' }, 'A: not platform_stopped, not made up')
  t.same(await restored(ta, other), [B])

  // The subscription itself arrives before the (older) STOP, after the START: same end state.
  const third = '+14155550110'
  await deliver(ta.app, textMessage('START', { id: 'o5', ts: T + 20, waId: '14155550110' }))
  await subscribe(ta, third, [C], new Date((T + 5) * 1000).toISOString())
  await deliver(ta.app, textMessage('STOP', { id: 'o6', ts: T + 10, waId: '14155550110' }))
  t.same(await restored(ta, third), [C])
  t.same(await check(ta, third, A), { allowed: false, state: 'unsubscribed', reason: 'opted_out' })
})
