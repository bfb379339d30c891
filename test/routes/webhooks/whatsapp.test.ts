/**
 * `GET|POST /webhooks/whatsapp` (docs/webhook.md): the handshake; signatures (401 and nothing
 * stored; rotation; 503 when unconfigured); 3 MiB bodies in this route only; every Meta fixture
 * delivered as its exact bytes and what each records (with evidence); BSUID-only and linked
 * variants; batches; 131049 records nothing; user_preferences stop/resume and the pre-send check;
 * payloads the ledger rejects are kept as failed.
 */
import t from 'tap'
import { buildTestApp, newGroup, type TestApp } from '../../helpers/build-app.js'
import { sign } from '../../../src/webhook/signature.js'
import {
  FIXTURE_PNID,
  META_FIXTURES,
  OLD_SECRET,
  SECRET,
  VERIFY_TOKEN,
  WEBHOOK_ENV,
  deliver,
  fixture,
  mapNumber,
  postWebhook,
  textMessage,
  variant,
} from '../../webhook/helpers.js'

interface EventRow {
  contact_id: string
  subscription_group_id: string
  state: string
  source: string
  method: string
  occurred_at: Date
  evidence: Record<string, unknown>
  identity_type: string
  identity_value: string
  actor: string
  platform_stop: string | null
}

const events = (ta: TestApp, where = 'true', params: unknown[] = []) =>
  ta.app.database.sql.query<EventRow>(`SELECT * FROM consent_events WHERE type = 'consent' AND ${where} ORDER BY id`, params)
const count = async (ta: TestApp, table: string) => (await ta.app.database.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`))[0]!.n

/** Default workspace with the fixture number mapped and four groups. */
async function setup(t: Parameters<typeof buildTestApp>[0], env: Record<string, string> = WEBHOOK_ENV) {
  const ta = await buildTestApp(t, env)
  await mapNumber(ta.app, ta.root)
  const groups = {
    numberMarketing: await newGroup(ta, ta.root, { name: 'promos of the number', phone_number_id: FIXTURE_PNID }),
    marketing: await newGroup(ta, ta.root, { name: 'promos of every number' }),
    utility: await newGroup(ta, ta.root, { name: 'order updates', category: 'utility' }),
    otherNumber: await newGroup(ta, ta.root, { name: 'promos of another number', phone_number_id: '999' }),
    sms: await newGroup(ta, ta.root, { name: 'sms promos', channel: 'sms' }),
  }
  return { ta, groups }
}

t.test('verification handshake', async (t) => {
  const ta = await buildTestApp(t, WEBHOOK_ENV)
  const get = (q: string) => ta.app.inject({ method: 'GET', url: `/webhooks/whatsapp?${q}` })
  const ok = await get(`hub.mode=subscribe&hub.verify_token=${VERIFY_TOKEN}&hub.challenge=1158201444`)
  t.equal(ok.statusCode, 200)
  t.equal(ok.body, '1158201444', 'the challenge, as is')
  t.match(ok.headers['content-type'], /^text\/plain/)
  for (const q of [
    `hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1`,
    `hub.mode=unsubscribe&hub.verify_token=${VERIFY_TOKEN}&hub.challenge=1`,
    `hub.verify_token=${VERIFY_TOKEN}&hub.challenge=1`,
    `hub.mode=subscribe&hub.challenge=1`,
    `hub.mode=subscribe&hub.verify_token=${VERIFY_TOKEN}`,
    '',
  ]) {
    const r = await get(q)
    t.equal(r.statusCode, 403, q)
    t.equal(r.json().code, 'verification_failed')
  }
  const unconfigured = await buildTestApp(t, { WHATSAPP_APP_SECRETS: 'x' })
  t.equal((await unconfigured.app.inject({ method: 'GET', url: '/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=&hub.challenge=1' })).statusCode, 403, 'no token configured: 403')
})

t.test('signatures: missing or wrong → 401 and nothing stored; rotation; no secret → 503', async (t) => {
  const { ta } = await setup(t)
  const raw = variant('meta-button.json', { id: 'sig' })
  const before = { inbox: await count(ta, 'webhook_inbox'), events: await count(ta, 'consent_events') }
  for (const [label, r] of [
    ['missing', await postWebhook(ta.app, raw, null)],
    ['wrong secret', await postWebhook(ta.app, raw, 'not-the-secret')],
    ['garbage', await postWebhook(ta.app, raw, null, { 'x-hub-signature-256': 'sha256=zz' })],
    ['signature of other bytes', await postWebhook(ta.app, raw, null, { 'x-hub-signature-256': sign(`${raw} `, SECRET) })],
  ] as const) {
    t.equal(r.statusCode, 401, label)
    t.equal(r.json().code, 'invalid_signature', label)
  }
  t.same({ inbox: await count(ta, 'webhook_inbox'), events: await count(ta, 'consent_events') }, before, 'nothing stored')

  const rotated = await postWebhook(ta.app, raw, OLD_SECRET)
  t.equal(rotated.statusCode, 200, 'the previous secret still verifies (rotation)')
  t.match(rotated.json(), { received: true, inbox_id: /^\d+$/, status: 'processed' })
  t.equal(await count(ta, 'webhook_inbox'), before.inbox + 1)

  const none = await buildTestApp(t, { WHATSAPP_VERIFY_TOKEN: VERIFY_TOKEN })
  const r = await postWebhook(none.app, raw)
  t.equal(r.statusCode, 503, 'no WHATSAPP_APP_SECRETS: refused (Meta retries a 5xx)')
  t.equal(r.json().code, 'webhook_not_configured')
  t.equal(await count(none, 'webhook_inbox'), 0, 'nothing stored')
})

t.test('bodies up to 3 MiB on this route only; JSON only', async (t) => {
  const { ta } = await setup(t)
  const small = variant('meta-text.json', { id: 'big' })
  // Valid JSON padded with white space to 2.5 MiB: above the 1 MiB default, below 3 MiB.
  const big = `${small}${' '.repeat(2.5 * 1024 * 1024)}`
  const ok = await postWebhook(ta.app, big)
  t.equal(ok.statusCode, 200, '2.5 MiB accepted')
  const [row] = await ta.app.database.sql.query<{ n: number }>(`SELECT length(raw_body) AS n FROM webhook_inbox WHERE id = $1`, [ok.json().inbox_id])
  t.equal(row!.n, Buffer.byteLength(big), 'stored whole')
  const tooBig = await postWebhook(ta.app, `${small}${' '.repeat(3 * 1024 * 1024)}`)
  t.equal(tooBig.statusCode, 413)
  t.equal(tooBig.json().code, 'body_too_large')
  const text = await ta.app.inject({ method: 'POST', url: '/webhooks/whatsapp', headers: { 'content-type': 'text/plain' }, payload: small })
  t.equal(text.statusCode, 415)
  t.equal(await count(ta, 'webhook_inbox'), 1, 'only the accepted one is stored')
  // Elsewhere JSON is parsed as usual, with the 1 MiB limit.
  const elsewhere = await ta.app.inject({ method: 'PUT', url: '/settings/consent', headers: ta.root, payload: { require_evidence_to_override_opt_out: true } })
  t.equal(elsewhere.statusCode, 200, 'other routes still parse JSON')
  const huge = await ta.app.inject({
    method: 'PUT',
    url: '/settings/consent',
    headers: { ...ta.root, 'content-type': 'application/json' },
    payload: `{"require_evidence_to_override_opt_out": true${' '.repeat(1.5 * 1024 * 1024)}}`,
  })
  t.equal(huge.statusCode, 413, 'and keep the 1 MiB limit')
})

t.test("every Meta fixture, as its exact bytes, records what docs/webhook.md says", async (t) => {
  const { ta, groups } = await setup(t)
  const { numberMarketing: NM, marketing: M, utility: U, otherNumber: O } = groups
  // Keyword scopes are workspace-wide for the channel ("every group of the channel", docs/webhook.md);
  // Meta's platform stop is per business number (its own groups and the number-less ones).
  const all = [NM, M, U, O].sort()
  const keywordMarketing = [NM, M, O].sort()
  const marketing = [NM, M].sort()
  const expected: Record<(typeof META_FIXTURES)[number], { groups: string[]; state?: string; source?: string; stop?: string }> = {
    'meta-text.json': { groups: [] }, // "Does it come in another color?" is not a keyword
    'meta-button.json': { groups: all, state: 'unsubscribed', source: 'template_button' }, // Unsubscribe
    'meta-button-stop-promotions.json': { groups: keywordMarketing, state: 'unsubscribed', source: 'template_button' },
    'meta-interactive-button-reply.json': { groups: all, state: 'unsubscribed', source: 'template_button' }, // title Cancel
    'meta-interactive-list-reply.json': { groups: [] },
    'meta-status-sent.json': { groups: [] },
    'meta-status-failed-131049.json': { groups: [] },
    'meta-status-failed-131050.json': { groups: marketing, state: 'unsubscribed', source: 'meta_delivery_error', stop: 'stop' },
    'meta-user-preferences-stop.json': { groups: marketing, state: 'unsubscribed', source: 'meta_user_preferences', stop: 'stop' },
    // Answers the latest stop at or before it (the preference stop of the same second), which took
    // no subscription away (nothing was subscribed before it): one event per group carrying the
    // resume, each keeping the group's state (unsubscribed), so no consent is made up.
    'meta-user-preferences-resume.json': { groups: marketing, state: 'unsubscribed', source: 'meta_user_preferences', stop: 'resume' },
  }
  for (const name of META_FIXTURES) {
    const raw = fixture(name) // exact bytes, not re-serialised
    const seen = await count(ta, 'consent_events')
    const ack = await deliver(ta.app, raw)
    t.equal(ack.status, 'processed', `${name}: processed`)
    const rows = await events(ta, `id > (SELECT coalesce(max(id), 0) FROM consent_events) - $1`, [(await count(ta, 'consent_events')) - seen])
    const exp = expected[name]
    t.same(rows.map((r) => r.subscription_group_id).sort(), exp.groups, `${name}: groups`)
    for (const r of rows) {
      t.equal(r.state, exp.state, `${name}: state`)
      t.match(r, { state: exp.state, source: exp.source, method: 'whatsapp', actor: 'meta-webhook', platform_stop: exp.stop ?? null, identity_type: 'phone', identity_value: '+16505551234' }, name)
      t.match(r.evidence, { phone_number_id: FIXTURE_PNID, display_phone_number: '15550783881', waba_id: '102290129340398', inbox_id: ack.inbox_id, body_sha256: /^[0-9a-f]{64}$/, wa_id: '16505551234' }, `${name}: evidence`)
    }
    const [inbox] = await ta.app.database.sql.query<{ raw_body: string; status: string }>(`SELECT raw_body, status FROM webhook_inbox WHERE id = $1`, [ack.inbox_id])
    t.equal(inbox!.raw_body, raw, `${name}: the raw payload is stored as received`)
  }

  // Evidence of a template button: message id, payload and text, the template's context.id.
  const [button] = await events(ta, `evidence->>'message_id' = 'wamid.BUTTON_TAP_ID'`)
  t.match(button!.evidence, {
    message_id: 'wamid.BUTTON_TAP_ID',
    message_type: 'button',
    button_payload: 'Stop promotions',
    button_text: 'Stop promotions',
    context_message_id: 'wamid.TEMPLATE_MSG_ID',
    matched_keyword: 'STOP PROMOTIONS',
    matched_field: 'button.payload',
    keyword_action: 'opt_out',
    keyword_scope: 'marketing',
    signal_key: 'wamid.BUTTON_TAP_ID'.replace(/^/, 'wa:msg:'),
  })
  t.equal(button!.occurred_at.toISOString(), new Date(1750091045 * 1000).toISOString(), 'occurred_at is the payload timestamp')
  const [status] = await events(ta, `source = 'meta_delivery_error'`)
  t.match(status!.evidence, { status_id: 'wamid.MARKETING_TEMPLATE_ID', error_code: 131050, error_title: /stop receiving marketing messages/ })
  const [pref] = await events(ta, `source = 'meta_user_preferences' AND state = 'unsubscribed'`)
  t.match(pref!.evidence, { user_preference: 'stop', category: 'marketing_messages', detail: 'User requested to stop marketing messages' })
  t.equal(pref!.occurred_at.toISOString(), new Date(1731705721 * 1000).toISOString(), 'integer timestamp of user_preferences')

  // Redelivering every fixture appends nothing (exactly-once keys).
  const total = await count(ta, 'consent_events')
  const dedupe = await count(ta, 'ledger_dedupe')
  for (const name of META_FIXTURES) await deliver(ta.app, fixture(name))
  t.equal(await count(ta, 'consent_events'), total, 'redelivery appends nothing')
  t.equal(await count(ta, 'ledger_dedupe'), dedupe)
  t.equal(await count(ta, 'contacts'), 1, 'one person')
  t.same(await events(ta, `subscription_group_id = $1`, [groups.sms]), [], "another channel's groups are untouched")
  t.same(await events(ta, `subscription_group_id = $1 AND source LIKE 'meta_%'`, [groups.otherNumber]), [], "Meta's stop leaves another number's groups alone")
})

t.test('BSUID-only variants find or create the contact by bsuid; both identities are linked', async (t) => {
  const { ta, groups } = await setup(t)
  const bsuid = 'US.20000000000000000001'
  for (const name of META_FIXTURES) {
    const raw = variant(name, { id: `b-${name}`, bsuidOnly: true, bsuid })
    t.notMatch(raw, /16505551234/, `${name}: no phone left`)
    const ack = await deliver(ta.app, raw)
    t.equal(ack.status, 'processed', name)
  }
  const signals = new Set((await events(ta)).map((r) => r.evidence.signal_key))
  t.equal(signals.size, 6, 'the same six signals as with phones: Unsubscribe, Stop promotions, Cancel, 131050, stop, resume')
  const rows = await events(ta)
  t.ok(rows.length > 0)
  t.ok(rows.every((r) => r.identity_type === 'bsuid' && r.identity_value === bsuid && r.evidence.bsuid === bsuid && r.evidence.wa_id === undefined), 'by bsuid')
  const ids = await ta.app.database.sql.query<{ type: string; value: string }>(`SELECT type, value FROM identities ORDER BY type`)
  t.same(ids, [{ type: 'bsuid', value: bsuid }], 'no phone was invented')

  // A bsuid-only text STOP from a third person, and the check by bsuid.
  await deliver(ta.app, textMessage('STOP', { id: 'b3', ts: 1750000000, bsuidOnly: true, bsuid: 'US.30000000000000000003', waId: '16505551234' }))
  const check = await ta.app.inject({ method: 'POST', url: '/consent/check', headers: ta.root, payload: { subscription_group_id: groups.utility, bsuids: ['US.30000000000000000003'] } })
  t.match(check.json().results[0], { state: 'unsubscribed', reason: 'opted_out' })

  // Linking: phone-only STOP (contact A), then a payload carrying both → one contact with both.
  // (Subscribed to the utility group first: START gives back only what a STOP took away.)
  const sub = await ta.app.inject({
    method: 'POST',
    url: '/consent/events',
    headers: ta.root,
    payload: { events: [{ phone: '+14155550123', subscription_group_id: groups.utility, state: 'subscribed', occurred_at: '2025-01-01T00:00:00Z', method: 'web_form', evidence: { consent_text: 'yes' } }] },
  })
  t.equal(sub.statusCode, 200, sub.body)
  await deliver(ta.app, textMessage('STOP', { id: 'p1', ts: 1750000001, waId: '14155550123' }))
  await deliver(ta.app, textMessage('STOP', { id: 'p2', ts: 1750000002, waId: '14155550123', bsuid: 'US.40000000000000000004' }))
  const linked = await ta.app.database.sql.query<{ n: number }>(
    `SELECT count(DISTINCT contact_id)::int AS n FROM identities WHERE value IN ('+14155550123', 'US.40000000000000000004')`,
  )
  t.equal(linked[0]!.n, 1, 'phone and bsuid on one contact')
  // And a bsuid-only payload from that person now finds the same contact.
  await deliver(ta.app, textMessage('START', { id: 'p3', ts: 1750000003, bsuidOnly: true, bsuid: 'US.40000000000000000004', waId: '14155550123' }))
  const c = await ta.app.inject({ method: 'POST', url: '/consent/check', headers: ta.root, payload: { subscription_group_id: groups.utility, phones: ['+14155550123'] } })
  t.match(c.json().results[0], { state: 'subscribed', reason: 'subscribed' }, 'START by bsuid restored the phone contact')

  // Separate phone-only and bsuid-only contacts are merged when a payload shows both.
  await deliver(ta.app, textMessage('STOP', { id: 'm1', ts: 1750000010, waId: '14155550177' }))
  await deliver(ta.app, textMessage('STOP', { id: 'm2', ts: 1750000011, bsuidOnly: true, bsuid: 'US.50000000000000000005', waId: '14155550177' }))
  await deliver(ta.app, variant('meta-user-preferences-stop.json', { id: 'm3', ts: 1750000012, waId: '14155550177', bsuid: 'US.50000000000000000005' }))
  const merged = await ta.app.database.sql.query<{ n: number }>(
    `SELECT count(DISTINCT contact_id)::int AS n FROM identities WHERE value IN ('+14155550177', 'US.50000000000000000005')`,
  )
  t.equal(merged[0]!.n, 1, 'merged')
  t.equal((await events(ta, `source = 'merge'`)).length, 0, 'consent rows only above')
  t.ok((await ta.app.database.sql.query(`SELECT 1 FROM consent_events WHERE type = 'contact_merged'`)).length >= 1, 'the merge is a ledger event')
})

t.test('batched payloads: several entries, changes and messages, item by item', async (t) => {
  const { ta, groups } = await setup(t)
  await mapNumber(ta.app, ta.root, '222')
  const msg = (id: string, from: string, body: string, ts: string) => ({ from, id, timestamp: ts, type: 'text', text: { body } })
  const payload = {
    object: 'whatsapp_business_account',
    entry: [
      {
        id: 'WABA1',
        changes: [
          {
            field: 'messages',
            value: {
              messaging_product: 'whatsapp',
              metadata: { display_phone_number: '15550783881', phone_number_id: FIXTURE_PNID },
              contacts: [{ wa_id: '14155550201' }, { wa_id: '14155550202' }],
              messages: [msg('wamid.batch1', '14155550201', 'STOP', '1750000100'), msg('wamid.batch2', '14155550202', 'hello', '1750000101'), msg('wamid.batch3', '14155550201', 'START', '1750000102')],
            },
          },
        ],
      },
      {
        id: 'WABA2',
        changes: [
          { field: 'messages', value: { metadata: { phone_number_id: '222' }, messages: [msg('wamid.batch4', '14155550203', 'stop promotions', '1750000103')] } },
          { field: 'messages', value: { metadata: { phone_number_id: FIXTURE_PNID }, statuses: [{ id: 'wamid.batch5', status: 'failed', timestamp: '1750000104', recipient_id: '14155550204', errors: [{ code: 131050 }] }] } },
        ],
      },
    ],
  }
  // 14155550201 was subscribed to the utility group only: START gives back that one.
  const sub = await ta.app.inject({
    method: 'POST',
    url: '/consent/events',
    headers: ta.root,
    payload: { events: [{ phone: '+14155550201', subscription_group_id: groups.utility, state: 'subscribed', occurred_at: '2025-01-01T00:00:00Z', method: 'web_form', evidence: { consent_text: 'yes' } }] },
  })
  t.equal(sub.statusCode, 200, sub.body)
  const ack = await deliver(ta.app, JSON.stringify(payload))
  t.equal(ack.status, 'processed')
  const rows = (await events(ta)).filter((r) => r.source !== 'api')
  const summary = rows.map((r) => [r.identity_value, r.evidence.message_id ?? r.evidence.status_id, r.state, r.subscription_group_id])
  const { numberMarketing: NM, marketing: M, utility: U, otherNumber: O } = groups
  const groupsOf = (id: string) => summary.filter((s) => s[1] === id).map((s) => s[3]).sort()
  t.same(groupsOf('wamid.batch1'), [NM, M, U, O].sort(), 'STOP: every WhatsApp group')
  t.same(groupsOf('wamid.batch2'), [], 'hello: nothing')
  t.same(summary.filter((s) => s[1] === 'wamid.batch3').map((s) => [s[2], s[3]]), [['subscribed', U]], 'START (later in the same batch) sees the STOP and restores what it took away')
  t.same(groupsOf('wamid.batch4'), [NM, M, O].sort(), 'stop promotions to the second number: marketing groups')
  t.same(groupsOf('wamid.batch5'), [NM, M].sort(), '131050: marketing groups of the number')
  t.equal((await events(ta, `evidence->>'waba_id' = 'WABA2'`)).length, 5, 'WABA id per entry')
})

t.test('131049 and other statuses record nothing; 131050 stops', async (t) => {
  const { ta } = await setup(t)
  const before = await count(ta, 'consent_events')
  for (const name of ['meta-status-failed-131049.json', 'meta-status-sent.json'] as const) {
    const ack = await deliver(ta.app, variant(name, { id: 'st' }))
    t.equal(ack.status, 'processed', `${name} is processed`)
  }
  t.equal(await count(ta, 'consent_events'), before, 'nothing in the ledger')
  t.equal(await count(ta, 'contacts'), 0, 'not even a contact')
  await deliver(ta.app, variant('meta-status-failed-131050.json', { id: 'st2', ts: 1750000000 }))
  const check = await ta.app.inject({ method: 'POST', url: '/consent/check', headers: ta.root, payload: { channel: 'whatsapp', category: 'marketing', phone_number_id: FIXTURE_PNID, phones: ['+16505551234'] } })
  t.match(check.json().results[0], { allowed: false, reason: 'platform_stopped' })
})

t.test('user_preferences stop → platform_stopped; a later resume clears it and restores the subscription', async (t) => {
  const { ta, groups } = await setup(t)
  const phone = '+16505551234'
  // Subscribed with evidence before anything else happens.
  const sub = await ta.app.inject({
    method: 'POST',
    url: '/consent/events',
    headers: ta.root,
    payload: {
      events: [groups.numberMarketing, groups.marketing, groups.utility].map((g) => ({
        phone,
        subscription_group_id: g,
        state: 'subscribed',
        occurred_at: '2024-01-01T00:00:00Z',
        method: 'web_form',
        evidence: { consent_text: 'Yes, send me offers' },
      })),
    },
  })
  t.equal(sub.statusCode, 200, sub.body)
  const check = async (g: string) =>
    (await ta.app.inject({ method: 'POST', url: '/consent/check', headers: ta.root, payload: { subscription_group_id: g, phones: [phone] } })).json().results[0]

  await deliver(ta.app, variant('meta-user-preferences-stop.json', { id: 'pref', ts: 1731705721 }))
  t.match(await check(groups.numberMarketing), { allowed: false, state: 'unsubscribed', reason: 'platform_stopped' })
  t.match(await check(groups.marketing), { allowed: false, reason: 'platform_stopped' })
  t.match(await check(groups.utility), { allowed: true, reason: 'subscribed' }, 'utility untouched')

  // An opt-in through the API cannot lift Meta's own stop.
  await ta.app.inject({
    method: 'POST',
    url: '/consent/events',
    headers: ta.root,
    payload: { events: [{ phone, subscription_group_id: groups.marketing, state: 'subscribed', method: 'web_form', evidence: { consent_text: 'again' } }] },
  })
  t.match(await check(groups.marketing), { allowed: false, state: 'subscribed', reason: 'platform_stopped' }, 'still platform_stopped')

  await deliver(ta.app, variant('meta-user-preferences-resume.json', { id: 'pref', ts: 1731705800 }))
  t.match(await check(groups.numberMarketing), { allowed: true, state: 'subscribed', reason: 'subscribed' }, 'resume clears the stop and restores')
  t.match(await check(groups.marketing), { allowed: true, reason: 'subscribed' })
  const resumed = await events(ta, `evidence->>'user_preference' = 'resume'`)
  t.same(resumed.map((r) => [r.state, r.platform_stop]), [['subscribed', 'resume'], ['subscribed', 'resume']])
  t.match(resumed[0]!.evidence, { resumes_signal_key: 'wa:pref:16505551234:stop:1731705721' })
  // Redelivered stop (older) does not bring the stop back.
  await deliver(ta.app, variant('meta-user-preferences-stop.json', { id: 'pref', ts: 1731705721 }))
  t.match(await check(groups.numberMarketing), { allowed: true, reason: 'subscribed' })
})

t.test('payloads the ledger rejects, and malformed JSON, are kept as failed and still answered 200', async (t) => {
  const { ta } = await setup(t)
  const bad = await postWebhook(ta.app, textMessage('STOP', { id: 'bad', ts: 1750000000, waId: '123' }))
  t.equal(bad.statusCode, 200)
  t.equal(bad.json().status, 'failed')
  const [row] = await ta.app.database.sql.query<{ status: string; last_error: string }>(`SELECT status, last_error FROM webhook_inbox WHERE id = $1`, [bad.json().inbox_id])
  t.match(row, { status: 'failed', last_error: /invalid_phone/ })
  const junk = await postWebhook(ta.app, '{"object": "whatsapp_business_account", "entry": [')
  t.equal(junk.statusCode, 200, 'authentic but malformed: 200, kept')
  t.equal(junk.json().status, 'failed')
  const future = await postWebhook(ta.app, textMessage('STOP', { id: 'future', ts: Math.floor(Date.now() / 1000) + 3600 }))
  t.equal(future.json().status, 'failed', 'a timestamp an hour ahead is rejected by the ledger, kept')
  const list = await ta.app.inject({ method: 'GET', url: '/webhooks/whatsapp/inbox', headers: ta.root })
  t.same(list.json().payloads.map((p: { id: string }) => p.id).sort(), [bad.json().inbox_id, junk.json().inbox_id, future.json().inbox_id].sort(), 'all listed')
})

t.test('rate limited per client IP (Meta has no API key); a 429 stores nothing', async (t) => {
  const ta = await buildTestApp(t, { ...WEBHOOK_ENV, RATE_LIMIT_MAX: '3' })
  // Each request its own payload (a replayed body would be stored once anyway).
  let n = 0
  const from = (ip: string) => {
    const raw = Buffer.from(variant('meta-status-sent.json', { id: `rl${n++}` }))
    return ta.app.inject({ method: 'POST', url: '/webhooks/whatsapp', remoteAddress: ip, headers: { 'content-type': 'application/json', 'x-hub-signature-256': sign(raw, SECRET) }, payload: raw })
  }
  const codes = [(await from('10.0.0.1')).statusCode, (await from('10.0.0.1')).statusCode, (await from('10.0.0.1')).statusCode]
  t.same(codes, [200, 200, 200])
  const limited = await from('10.0.0.1')
  t.equal(limited.statusCode, 429)
  t.equal(limited.json().code, 'rate_limited')
  t.equal((await from('10.0.0.2')).statusCode, 200, 'another address has its own budget')
  t.equal(await count(ta, 'webhook_inbox'), 4, 'the limited request stored nothing')
})

t.test('concurrent deliveries of the same payload append once', async (t) => {
  const { ta, groups } = await setup(t)
  const raw = textMessage('STOP', { id: 'concurrent', ts: 1750000000 })
  const acks = await Promise.all(Array.from({ length: 8 }, () => postWebhook(ta.app, raw)))
  t.same(acks.map((r) => r.statusCode), Array(8).fill(200))
  // Beyond WEBHOOK_INLINE_MAX concurrent payloads, the rest are acknowledged on commit and
  // processed right after, in a batch.
  t.ok(acks.every((r) => ['processed', 'pending'].includes(r.json().status)))
  await ta.app.whatsapp.processor.idle()
  const inbox = await ta.app.database.sql.query<{ status: string }>(`SELECT DISTINCT status FROM webhook_inbox`)
  t.same(inbox, [{ status: 'processed' }], 'processed')
  t.equal(new Set(acks.map((r) => r.json().inbox_id)).size, 1, 'the same bytes are stored once')
  const rows = await events(ta)
  t.same(rows.map((r) => r.subscription_group_id).sort(), [groups.numberMarketing, groups.marketing, groups.utility, groups.otherNumber].sort(), 'one event per group')
  t.equal(await count(ta, 'contacts'), 1)
})
