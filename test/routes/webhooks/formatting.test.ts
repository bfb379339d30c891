/**
 * An opt-out is never dropped for a formatting reason (docs/webhook.md): a wa_id libphonenumber
 * does not accept as valid is still the phone `+<wa_id>` (flagged `phone_unverified`), end to end
 * (identity storage, pre-send check, audit lookups); a message text holding a NUL or a lone
 * surrogate is still the opt-out it says, with its evidence made storable and the chain verifying.
 */
import t from 'tap'
import { buildTestApp, newGroup, type TestApp } from '../../helpers/build-app.js'
import { WEBHOOK_ENV, deliver, fixture, mapNumber, setTimestamp, tagIds, textMessage, variant } from '../../webhook/helpers.js'

const T = 1750000000
// Israel +972 9xx: possible (12 digits) but not a valid range for libphonenumber.
const WA = '972987654321'
const PHONE = `+${WA}`

async function setup(t: Parameters<typeof buildTestApp>[0]) {
  const ta = await buildTestApp(t, WEBHOOK_ENV)
  await mapNumber(ta.app, ta.root)
  const M = await newGroup(ta, ta.root, { name: 'promos' })
  const U = await newGroup(ta, ta.root, { name: 'orders', category: 'utility' })
  return { ta, M, U }
}

const check = async (ta: TestApp, group: string, phone = PHONE) =>
  (await ta.app.inject({ method: 'POST', url: '/consent/check', headers: ta.root, payload: { subscription_group_id: group, phones: [phone] } })).json().results[0]

const consentEvents = (ta: TestApp) =>
  ta.app.database.sql.query<{ state: string; identity_value: string; evidence: Record<string, unknown> }>(
    `SELECT state, identity_value, evidence FROM consent_events WHERE type = 'consent' ORDER BY id`,
  )

t.test('a STOP from a wa_id that is possible but not valid is recorded as +<wa_id>, flagged', async (t) => {
  const { ta, M, U } = await setup(t)
  const ack = await deliver(ta.app, textMessage('STOP', { id: 'iv1', ts: T + 1, waId: WA }))
  t.equal(ack.status, 'processed', 'not failed: the opt-out is kept')
  const rows = await consentEvents(ta)
  t.equal(rows.length, 2, 'both WhatsApp groups')
  for (const r of rows) {
    t.match(r, { state: 'unsubscribed', identity_value: PHONE })
    t.match(r.evidence, { wa_id: WA, phone_unverified: true, text: 'STOP' })
  }
  const ids = await ta.app.database.sql.query<{ type: string; value: string }>(`SELECT type, value FROM identities`)
  t.same(ids, [{ type: 'phone', value: PHONE }], 'stored as the phone +<wa_id>')
  for (const g of [M, U]) t.match(await check(ta, g), { allowed: false, state: 'unsubscribed', reason: 'opted_out' }, 'the pre-send check finds it')
  const get = await ta.app.inject({ method: 'GET', url: `/consent/check?subscription_group_id=${M}&phone=${encodeURIComponent(PHONE)}`, headers: ta.root })
  t.match(get.json(), { allowed: false, reason: 'opted_out' }, 'GET check too')
  const audit = await ta.app.inject({ method: 'GET', url: `/audit/events?phone=${encodeURIComponent(PHONE)}`, headers: ta.root })
  t.equal(audit.statusCode, 200, audit.body)
  t.equal(audit.json().events.length, 2, 'the audit lookup by that phone')
  const state = await ta.app.inject({ method: 'GET', url: `/audit/state?phone=${encodeURIComponent(PHONE)}&at=${new Date().toISOString()}`, headers: ta.root })
  t.equal(state.statusCode, 200, state.body)

  // The same person's later START, and Meta's own stop: the same contact.
  await deliver(ta.app, variant('meta-user-preferences-stop.json', { id: 'iv2', ts: T + 2, waId: WA }))
  t.match(await check(ta, M), { allowed: false, reason: 'platform_stopped' })
  t.equal((await ta.app.database.sql.query(`SELECT 1 FROM contacts`)).length, 1, 'one person')

  // With a BSUID beside it, both are kept and linked.
  await deliver(ta.app, textMessage('STOP', { id: 'iv3', ts: T + 3, waId: '972987654322', bsuid: 'US.70000000000000000007' }))
  const linked = await ta.app.database.sql.query<{ n: number }>(
    `SELECT count(DISTINCT contact_id)::int AS n FROM identities WHERE value IN ('+972987654322', 'US.70000000000000000007')`,
  )
  t.equal(linked[0]!.n, 1)

  // Not even a possible number (too short), alone: kept as failed and listed, as before.
  const bad = await deliver(ta.app, textMessage('STOP', { id: 'iv4', ts: T + 4, waId: '12345' }))
  t.equal(bad.status, 'failed')
})

t.test('NUL and lone surrogates in what the person sent: the opt-out is kept, the evidence storable', async (t) => {
  const { ta, M } = await setup(t)
  // JSON escapes, exactly as a client could send them.
  const nul = textMessage('STOP', { id: 'nul', ts: T + 1, waId: '14155550150' }).replace('"STOP"', '"STOP\\u0000"')
  t.match(nul, /STOP\\u0000/)
  const ack = await deliver(ta.app, nul)
  t.equal(ack.status, 'processed')
  const rows = await consentEvents(ta)
  t.equal(rows.length, 2)
  t.match(rows[0]!.evidence, { text: 'STOP', matched_keyword: 'STOP', evidence_sanitized: true })
  t.match(await check(ta, M, '+14155550150'), { allowed: false, reason: 'opted_out' })

  const button = setTimestamp(tagIds(fixture('meta-button.json'), 'sur'), T + 2)
    .replaceAll('16505551234', '14155550151')
    .replace('"text": "Unsubscribe"', '"text": "Unsubscribe \\ud800"')
  const ack2 = await deliver(ta.app, button)
  t.equal(ack2.status, 'processed')
  const [ev] = await ta.app.database.sql.query<{ evidence: Record<string, unknown> }>(
    `SELECT evidence FROM consent_events WHERE identity_value = '+14155550151' ORDER BY id LIMIT 1`,
  )
  t.match(ev!.evidence, { button_payload: 'Unsubscribe', button_text: 'Unsubscribe \uFFFD', evidence_sanitized: true })

  const verify = await ta.app.inject({ method: 'POST', url: '/audit/verify', headers: ta.root })
  t.equal(verify.statusCode, 200, verify.body)
  t.match(verify.json(), { ok: true }, 'stored and hashed values agree')
})
