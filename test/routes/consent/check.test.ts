/** Pre-send check. */
import t from 'tap'
import { DEFAULT_WORKSPACE_ID } from '../../../src/auth/api-keys.js'
import { buildTestApp, newGroup, newWorkspace } from '../../helpers/build-app.js'

t.test('POST /consent/check answers every reason, in input order', async (t) => {
  const ta = await buildTestApp(t)
  const { sql } = ta.app.database
  const g = await newGroup(ta, ta.root, { phone_number_id: 'PN1' })
  const open = await newGroup(ta, ta.root, { name: 'service', category: 'utility', requires_opt_in: false })
  const ctx = { workspaceId: DEFAULT_WORKSPACE_ID, actor: 'test' }
  const phone = (n: number) => `+1415555${String(n).padStart(4, '0')}`
  await ta.app.ledger.append(sql, ctx, [
    { identities: [{ type: 'phone', value: phone(1) }], subscriptionGroupId: g, state: 'subscribed', source: 'api' },
    { identities: [{ type: 'phone', value: phone(2) }], subscriptionGroupId: g, state: 'unsubscribed', source: 'api' },
    { identities: [{ type: 'phone', value: phone(3) }, { type: 'external_id', value: 'u3' }], subscriptionGroupId: g, state: 'subscribed', source: 'api', occurredAt: '2026-01-01T00:00:00Z' },
    {
      identities: [{ type: 'phone', value: phone(3) }],
      subscriptionGroupId: g,
      state: 'unsubscribed',
      source: 'meta_user_preferences',
      occurredAt: '2026-01-02T00:00:00Z',
      platformStop: { action: 'stop', phoneNumberId: 'PN1' },
    },
    { identities: [{ type: 'phone', value: phone(3) }], subscriptionGroupId: g, state: 'subscribed', source: 'inbound_keyword', occurredAt: '2026-01-03T00:00:00Z' },
    { identities: [{ type: 'bsuid', value: 'US.13491208655302741918' }], subscriptionGroupId: g, state: 'subscribed', source: 'api' },
  ])
  const contactsBefore = (await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM contacts`))[0]!.n

  const r = await ta.app.inject({
    method: 'POST',
    url: '/consent/check',
    headers: ta.root,
    payload: { subscription_group_id: g, phones: [phone(2), phone(1), '14155550003', phone(9), 'nonsense'], external_ids: ['u3'], bsuids: ['US.13491208655302741918'] },
  })
  t.equal(r.statusCode, 200, r.body)
  const results = r.json().results
  t.same(
    results.map((x: { identifier: string; allowed: boolean; state: string; reason: string }) => [x.identifier, x.allowed, x.state, x.reason]),
    [
      [phone(2), false, 'unsubscribed', 'opted_out'],
      [phone(1), true, 'subscribed', 'subscribed'],
      ['14155550003', false, 'subscribed', 'platform_stopped'],
      [phone(9), false, 'unknown', 'not_opted_in'],
      ['nonsense', false, 'unknown', 'not_opted_in'],
      ['u3', false, 'subscribed', 'platform_stopped'],
      ['US.13491208655302741918', true, 'subscribed', 'subscribed'],
    ],
  )
  t.equal(results[4].error, 'invalid_identifier')
  // One identifier at a time (its own statement, src/check/check-service.ts checkOne) answers exactly
  // as the batch did, for every reason: POST with one identifier, and the GET form.
  const asked: Array<['phones' | 'external_ids' | 'bsuids', string]> = [
    ...[phone(2), phone(1), '14155550003', phone(9), 'nonsense'].map((v) => ['phones', v] as ['phones', string]),
    ['external_ids', 'u3'],
    ['bsuids', 'US.13491208655302741918'],
  ]
  for (const [k, [field, value]] of asked.entries()) {
    const single = await ta.app.inject({ method: 'POST', url: '/consent/check', headers: ta.root, payload: { subscription_group_id: g, [field]: [value] } })
    t.same(single.json().results, [results[k]], `${value} alone (POST)`)
    const param = { phones: 'phone', external_ids: 'external_id', bsuids: 'bsuid' }[field]
    const get = await ta.app.inject({ method: 'GET', url: `/consent/check?${param}=${encodeURIComponent(value)}&subscription_group_id=${g}`, headers: ta.root })
    t.same(get.json(), results[k], `${value} alone (GET)`)
  }
  t.match(results[1], { event_id: /^[0-9a-f-]{36}$/, occurred_at: /Z$/, subscription_group_id: g })
  t.equal(results[3].event_id, null)
  const contactsAfter = (await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM contacts`))[0]!.n
  t.equal(contactsAfter, contactsBefore, 'checking unknown identifiers creates nothing')

  // A group that does not require opt-in.
  const o = await ta.app.inject({ method: 'POST', url: '/consent/check', headers: ta.root, payload: { subscription_group_id: open, phones: [phone(9), phone(2)] } })
  t.same(o.json().results.map((x: { reason: string }) => x.reason), ['opt_in_not_required', 'opt_in_not_required'])

  // By channel + category (+ number): the number's group is found.
  const byKind = await ta.app.inject({
    method: 'POST',
    url: '/consent/check',
    headers: ta.root,
    payload: { channel: 'whatsapp', category: 'marketing', phone_number_id: 'PN1', phones: [phone(1)] },
  })
  t.match(byKind.json().results[0], { allowed: true, subscription_group_id: g })
  const none = await ta.app.inject({ method: 'POST', url: '/consent/check', headers: ta.root, payload: { channel: 'sms', category: 'marketing', phones: [phone(1)] } })
  t.equal(none.statusCode, 422)
  t.equal(none.json().code, 'no_matching_subscription_group')

  // The GET form answers one.
  const one = await ta.app.inject({ method: 'GET', url: `/consent/check?phone=${encodeURIComponent(phone(2))}&subscription_group_id=${g}`, headers: ta.root })
  t.equal(one.statusCode, 200)
  t.match(one.json(), { identifier: phone(2), allowed: false, state: 'unsubscribed', reason: 'opted_out' })

  // Bad requests.
  for (const payload of [{ phones: [phone(1)] }, { subscription_group_id: g }, { subscription_group_id: g, channel: 'sms', category: 'marketing', phones: ['x'] }, { subscription_group_id: g, phones: [1] }, { subscription_group_id: g, emails: [] }]) {
    const b = await ta.app.inject({ method: 'POST', url: '/consent/check', headers: ta.root, payload })
    t.equal(b.statusCode, 400, JSON.stringify(payload))
    t.match(b.headers['content-type'], /problem\+json/)
  }
  const unknownGroup = await ta.app.inject({ method: 'POST', url: '/consent/check', headers: ta.root, payload: { subscription_group_id: '00000000-0000-4000-8000-000000000099', phones: [phone(1)] } })
  t.equal(unknownGroup.statusCode, 404)
})

t.test('10,000 identifiers come back correct and in input order', async (t) => {
  const ta = await buildTestApp(t)
  const g = await newGroup(ta, ta.root)
  const phone = (n: number) => `+1415${String(2000000 + n).padStart(7, '0')}`
  // Every third subscribed, every fifth unsubscribed (the later write wins for multiples of 15).
  const events = []
  for (let n = 0; n < 10_000; n++) {
    if (n % 3 === 0) events.push({ phone: phone(n), subscription_group_id: g, state: 'subscribed', occurred_at: '2026-01-01T00:00:00Z' })
    if (n % 5 === 0) events.push({ phone: phone(n), subscription_group_id: g, state: 'unsubscribed', occurred_at: '2026-01-02T00:00:00Z' })
  }
  for (let i = 0; i < events.length; i += 5000) {
    const w = await ta.app.inject({ method: 'POST', url: '/consent/events', headers: ta.root, payload: { events: events.slice(i, i + 5000) } })
    t.equal(w.statusCode, 200)
  }
  // A platform stop for one person: its row comes from the stops part of the query, in whichever
  // chunk of the batch (src/check/check-service.ts) the person falls.
  const stopped = 9_998
  await ta.app.ledger.append(ta.app.database.sql, { workspaceId: DEFAULT_WORKSPACE_ID, actor: 'test' }, [
    { identities: [{ type: 'phone', value: phone(stopped) }], subscriptionGroupId: g, state: 'unsubscribed', source: 'meta_user_preferences', occurredAt: '2026-01-03T00:00:00Z', platformStop: { action: 'stop', phoneNumberId: 'PN9' } },
    { identities: [{ type: 'phone', value: phone(stopped) }], subscriptionGroupId: g, state: 'subscribed', source: 'inbound_keyword', occurredAt: '2026-01-04T00:00:00Z' },
  ])
  // Input in a shuffled order (deterministic), so "input order" is not the storage order.
  const order = Array.from({ length: 10_000 }, (_, i) => (i * 7919) % 10_000)
  const r = await ta.app.inject({ method: 'POST', url: '/consent/check', headers: ta.root, payload: { subscription_group_id: g, phones: order.map(phone) } })
  t.equal(r.statusCode, 200)
  const results = r.json().results as { identifier: string; state: string; allowed: boolean }[]
  t.equal(results.length, 10_000)
  let wrong = 0
  results.forEach((x, i) => {
    const n = order[i]!
    if (n === stopped) return
    const expected = n % 5 === 0 ? 'unsubscribed' : n % 3 === 0 ? 'subscribed' : 'unknown'
    if (x.identifier !== phone(n) || x.state !== expected || x.allowed !== (expected === 'subscribed')) wrong++
  })
  t.equal(wrong, 0, 'every result matches its identifier, in input order')
  const at = order.indexOf(stopped)
  t.ok(at > 2_500, 'the stopped person is past the first chunk')
  t.match(results[at], { identifier: phone(stopped), state: 'subscribed', allowed: false, reason: 'platform_stopped' })
  const tooMany = await ta.app.inject({ method: 'POST', url: '/consent/check', headers: ta.root, payload: { subscription_group_id: g, phones: order.map(phone), external_ids: ['x'] } })
  t.equal(tooMany.statusCode, 400)
  t.equal(tooMany.json().code, 'too_many_identifiers')
})

t.test('the check never crosses workspaces', async (t) => {
  const ta = await buildTestApp(t)
  const a = await newWorkspace(ta, 'a')
  const b = await newWorkspace(ta, 'b')
  const ga = await newGroup(ta, a.auth)
  await newGroup(ta, b.auth)
  await ta.app.inject({ method: 'POST', url: '/consent/events', headers: a.auth, payload: { events: [{ phone: '+14155552671', subscription_group_id: ga, state: 'subscribed' }] } })
  const cross = await ta.app.inject({ method: 'POST', url: '/consent/check', headers: b.auth, payload: { subscription_group_id: ga, phones: ['+14155552671'] } })
  const random = await ta.app.inject({ method: 'POST', url: '/consent/check', headers: b.auth, payload: { subscription_group_id: '00000000-0000-4000-8000-000000000099', phones: ['+14155552671'] } })
  t.equal(cross.statusCode, 404)
  t.same({ ...cross.json(), instance: 0 }, { ...random.json(), instance: 0 }, 'same answer as a group that does not exist')
  const byKind = await ta.app.inject({ method: 'POST', url: '/consent/check', headers: b.auth, payload: { channel: 'whatsapp', category: 'marketing', phones: ['+14155552671'] } })
  t.match(byKind.json().results[0], { state: 'unknown', allowed: false }, "A's opt-in does not leak into B")
  const getCross = await ta.app.inject({ method: 'GET', url: `/consent/check?phone=%2B14155552671&subscription_group_id=${ga}`, headers: b.auth })
  t.equal(getCross.statusCode, 404)
})
