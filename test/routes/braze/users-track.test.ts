/** Braze-compatible POST /users/track, with the request bodies of Braze's own documentation. */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { DEFAULT_WORKSPACE_ID } from '../../../src/auth/api-keys.js'
import { buildTestApp, newGroup, type TestApp } from '../../helpers/build-app.js'

const fixtureText = (name: string) => readFileSync(new URL(`../../fixtures/${name}`, import.meta.url), 'utf8')

/** A fixture with placeholders replaced (longest first, so `..._1` is not eaten by its prefix). */
function fixture(name: string, replace: Record<string, string> = {}): Record<string, unknown> {
  let text = fixtureText(name)
  for (const k of Object.keys(replace).sort((a, b) => b.length - a.length)) text = text.split(k).join(replace[k]!)
  return JSON.parse(text) as Record<string, unknown>
}

type Auth = { authorization: string }

const track = (ta: TestApp, payload: unknown, headers: Record<string, string> = ta.root) =>
  ta.app.inject({ method: 'POST', url: '/users/track', headers, payload: payload as object })

async function statusOf(ta: TestApp, group: string, q: string, auth: Auth = ta.root) {
  const r = await ta.app.inject({ method: 'GET', url: `/subscription/status/get?subscription_group_id=${group}&${q}`, headers: auth })
  if (r.statusCode !== 200) throw new Error(r.body)
  return r.json().status as Record<string, string>
}

async function attributesOf(ta: TestApp, type: string, value: string) {
  const [r] = await ta.app.database.sql.query<{ attributes: Record<string, unknown> }>(
    `SELECT c.attributes FROM identities i JOIN contacts c ON c.workspace_id = i.workspace_id AND c.id = i.contact_id WHERE i.type = $1 AND i.value = $2`,
    [type, value],
  )
  return r?.attributes
}

const countEvents = async (ta: TestApp) =>
  (await ta.app.database.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM consent_events WHERE type = 'consent'`))[0]!.n

t.test("Braze's documented body (braze-users-track.json) with real group ids", async (t) => {
  const ta = await buildTestApp(t)
  const [g1, g2, g3] = [await newGroup(ta, ta.root, { name: 'g1' }), await newGroup(ta, ta.root, { name: 'g2' }), await newGroup(ta, ta.root, { name: 'g3' })]
  const body = fixture('braze-users-track.json', {
    subscription_group_identifier_1: g1!,
    subscription_group_identifier_2: g2!,
    subscription_group_identifier_3: g3!,
  })
  const r = await track(ta, body)
  t.equal(r.statusCode, 201)
  t.same(r.json(), { message: 'success', attributes_processed: 1 }, 'no errors key when nothing failed')
  t.ok(r.headers['x-request-id'])
  t.same(await statusOf(ta, g1!, 'external_id=user_identifier'), { user_identifier: 'Unsubscribed' })
  t.same(await statusOf(ta, g2!, 'external_id=user_identifier'), { user_identifier: 'Subscribed' })
  t.same(await statusOf(ta, g3!, 'external_id=user_identifier'), { user_identifier: 'Subscribed' })
  t.same(await attributesOf(ta, 'external_id', 'user_identifier'), { email: 'example@email.com', email_subscribe: 'subscribed' })
  const sources = await ta.app.database.sql.query<{ source: string }>(`SELECT DISTINCT source FROM consent_events WHERE type = 'consent'`)
  t.same(sources, [{ source: 'users_track' }])
})

t.test('the documented body as-is: its placeholder group ids are item errors, the attributes still apply', async (t) => {
  const ta = await buildTestApp(t)
  const r = await track(ta, fixture('braze-users-track.json'))
  t.equal(r.statusCode, 201)
  const body = r.json()
  t.equal(body.message, 'success')
  t.equal(body.attributes_processed, 1)
  t.same(
    body.errors.map((e: { type: string; input_array: string; index: number }) => [e.type, e.input_array, e.index]),
    [0, 1, 2].map(() => ['BAD_SUBSCRIPTION_GROUP_ID', 'attributes', 0]),
  )
  t.match(body.errors[1].message, /^subscription_groups\[1\]: /)
  t.same(await attributesOf(ta, 'external_id', 'user_identifier'), { email: 'example@email.com', email_subscribe: 'subscribed' })
  t.equal(await countEvents(ta), 0)
})

t.test("Braze's documented body by phone (braze-users-track-by-phone.json); null removes an attribute", async (t) => {
  const ta = await buildTestApp(t)
  const body = fixture('braze-users-track-by-phone.json')
  const r = await track(ta, body)
  t.equal(r.statusCode, 201)
  t.same(r.json(), { message: 'success', attributes_processed: 1 })
  t.same(await attributesOf(ta, 'phone', '+15043277269'), {
    string_attribute: 'fruit',
    boolean_attribute_1: true,
    integer_attribute: 25,
    array_attribute: ['banana', 'apple'],
  })
  const r2 = await track(ta, { attributes: [{ phone: '+1 (504) 327-7269', string_attribute: null, integer_attribute: 26 }] })
  t.same(r2.json(), { message: 'success', attributes_processed: 1 })
  t.same(await attributesOf(ta, 'phone', '+15043277269'), { boolean_attribute_1: true, integer_attribute: 26, array_attribute: ['banana', 'apple'] })
  const [n] = await ta.app.database.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM contacts`)
  t.equal(n!.n, 1, 'the same person, written differently')
})

t.test('every item error code in one request; the valid items of the same request apply', async (t) => {
  const ta = await buildTestApp(t)
  const g = await newGroup(ta, ta.root, { name: 'offers' })
  const archived = await newGroup(ta, ta.root, { name: 'old' })
  await ta.app.inject({ method: 'POST', url: `/subscription-groups/${archived}/archive`, headers: ta.root })
  // A person's own STOP (a WhatsApp keyword): a later API opt-in without evidence cannot override it.
  await ta.app.ledger.append(ta.app.database.sql, { workspaceId: DEFAULT_WORKSPACE_ID, actor: 'meta-webhook' }, [
    { identities: [{ type: 'phone', value: '+14155550100' }], subscriptionGroupId: g, state: 'unsubscribed', source: 'inbound_keyword' },
  ])
  const before = await countEvents(ta)
  const future = new Date(Date.now() + 3600_000).toISOString()
  const sg = (over: Record<string, unknown> = {}) => ({ subscription_group_id: g, subscription_state: 'subscribed', ...over })
  const r = await track(ta, {
    attributes: [
      /* 0 */ { external_id: 'ok-1', plan: 'gold', subscription_groups: [sg()] },
      /* 1 */ {
        external_id: 'mixed',
        tier: 2,
        subscription_groups: [
          sg({ subscription_group_id: 'not-a-group' }), // BAD_SUBSCRIPTION_GROUP_ID
          sg({ subscription_group_id: '00000000-0000-4000-8000-000000000000' }), // BAD_SUBSCRIPTION_GROUP_ID (well-formed, unknown)
          sg({ subscription_state: 'maybe' }), // BAD_SUBSCRIPTION_GROUP_STATE
          sg({ subscription_group_id: archived }), // ARCHIVED_SUBSCRIPTION_GROUP
          sg({ occurred_at: 'yesterday' }), // INVALID_OCCURRED_AT
          sg({ occurred_at: future }), // OCCURRED_AT_IN_FUTURE
          sg({ method: 'telepathy' }), // INVALID_METHOD
          sg({ method: 'web_form', evidence: { page_url: 'https://example.com', blob: 'x'.repeat(17000) } }), // INVALID_EVIDENCE
          sg({ subscription_state: 'unsubscribed', occurred_at: '2026-01-01T00:00:00Z' }), // applies
        ],
      },
      /* 2 */ { phone: '+12223334444', plan: 'lost', subscription_groups: [sg()] }, // INVALID_PHONE (whole object)
      /* 3 */ { external_id: '   ', plan: 'lost' }, // INVALID_EXTERNAL_ID
      /* 4 */ { email: 'nobody@example.com' }, // UNSUPPORTED_IDENTIFIER (email alone identifies nobody here yet)
      /* 5 */ { external_id: 'with-bsuid', bsuid: 'not a bsuid' }, // INVALID_BSUID
      /* 6 */ { phone: '+14155550100', subscription_groups: [sg()] }, // EVIDENCE_REQUIRED
      /* 7 */ { phone: '+14155550100', subscription_groups: [sg({ method: 'web_form', evidence: { consent_text: 'Yes, send me offers' } })] }, // applies
      /* 8 */ { external_id: 'careful', _update_existing_only: true, plan: 'x' }, // USER_NOT_FOUND (update-only, nobody known)
    ],
    events: [{ external_id: 'ok-1', name: 'played', time: '2026-01-01T00:00:00Z' }],
    purchases: [{ external_id: 'ok-1', product_id: 'p', currency: 'USD', price: 1, time: '2026-01-01T00:00:00Z' }],
  })
  t.equal(r.statusCode, 201)
  const body = r.json()
  t.equal(body.message, 'success')
  t.equal(body.attributes_processed, 4, 'objects 0, 1, 6 and 7; the others failed on their identity (or were refused)')
  const got = body.errors.map((e: { type: string; input_array: string; index: number }) => `${e.input_array}[${e.index}] ${e.type}`)
  t.same(got, [
    'attributes[1] BAD_SUBSCRIPTION_GROUP_ID',
    'attributes[1] BAD_SUBSCRIPTION_GROUP_ID',
    'attributes[1] BAD_SUBSCRIPTION_GROUP_STATE',
    'attributes[1] ARCHIVED_SUBSCRIPTION_GROUP',
    'attributes[1] INVALID_OCCURRED_AT',
    'attributes[1] OCCURRED_AT_IN_FUTURE',
    'attributes[1] INVALID_METHOD',
    'attributes[1] INVALID_EVIDENCE',
    'attributes[2] INVALID_PHONE',
    'attributes[3] INVALID_EXTERNAL_ID',
    'attributes[4] UNSUPPORTED_IDENTIFIER',
    'attributes[5] INVALID_BSUID',
    'attributes[6] EVIDENCE_REQUIRED',
    'attributes[8] USER_NOT_FOUND',
    'events[0] UNSUPPORTED',
    'purchases[0] UNSUPPORTED',
  ])
  for (const e of body.errors) t.type(e.message, 'string')

  // The valid items applied: 3 consent events (objects 0, 1's last entry, 7).
  t.equal((await countEvents(ta)) - before, 3)
  t.same(await statusOf(ta, g, 'external_id=ok-1&external_id=mixed&phone=%2B14155550100'), {
    'ok-1': 'Subscribed',
    mixed: 'Unsubscribed',
    '+14155550100': 'Subscribed',
  })
  t.same(await attributesOf(ta, 'external_id', 'ok-1'), { plan: 'gold' })
  t.same(await attributesOf(ta, 'external_id', 'mixed'), { tier: 2 }, "an entry's errors do not stop the object's attributes")
  for (const [type, value] of [['external_id', 'careful'], ['external_id', 'with-bsuid']]) {
    t.equal(await attributesOf(ta, type!, value!), undefined, `${value}: no contact created`)
  }
  const [n] = await ta.app.database.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM contacts`)
  t.equal(n!.n, 3, 'ok-1, mixed and the phone: failed objects created nobody')
})

t.test('users/track links external_id and phone shown together (merge)', async (t) => {
  const ta = await buildTestApp(t)
  const g = await newGroup(ta, ta.root)
  await track(ta, { attributes: [{ phone: '+14155552671', subscription_groups: [{ subscription_group_id: g, subscription_state: 'subscribed' }] }] })
  const r = await track(ta, { attributes: [{ external_id: 'cust-9', phone: '+14155552671', vip: true }] })
  t.same(r.json(), { message: 'success', attributes_processed: 1 })
  t.same(await statusOf(ta, g, 'external_id=cust-9'), { 'cust-9': 'Subscribed' }, "the phone's history now answers for cust-9")
  t.same(await attributesOf(ta, 'phone', '+14155552671'), { vip: true })
})

t.test('limits and request shape', async (t) => {
  const ta = await buildTestApp(t)
  const many = (n: number) => Array.from({ length: n }, (_, i) => ({ external_id: `u${i}` }))

  const ok = await track(ta, { attributes: many(75) })
  t.equal(ok.statusCode, 201)
  t.equal(ok.json().attributes_processed, 75)

  for (const key of ['attributes', 'events', 'purchases']) {
    const r = await track(ta, { [key]: many(76) })
    t.equal(r.statusCode, 400, `76 ${key} objects`)
    t.match(r.headers['content-type'], /^application\/json/)
    t.match(r.json(), { message: String, errors: [{ pointer: `/body/${key}`, code: 'maxItems' }] })
    t.notOk('type' in r.json() || 'title' in r.json(), 'Braze shape, not problem+json')
  }

  const unknownTop = await track(ta, { attributes: [], users: [] })
  t.equal(unknownTop.statusCode, 400, 'unknown top-level key')
  const unknownInGroup = await track(ta, {
    attributes: [{ external_id: 'a', subscription_groups: [{ subscription_group_id: 'x', subscription_state: 'subscribed', colour: 'red' }] }],
  })
  t.equal(unknownInGroup.statusCode, 201, 'unknown key in a subscription_groups entry: an item error')
  t.match(unknownInGroup.json(), { attributes_processed: 1, errors: [{ type: 'UNKNOWN_FIELD', input_array: 'attributes', index: 0 }] })
  const nullId = await track(ta, { attributes: [{ external_id: null, phone: '+14155552673', bsuid: null }] })
  t.same(nullId.json(), { message: 'success', attributes_processed: 1 }, 'a null identifier is an absent one')
  const numericId = await track(ta, { attributes: [{ external_id: 5 }] })
  t.match(numericId.json(), { attributes_processed: 0, errors: [{ type: 'INVALID_EXTERNAL_ID', index: 0 }] }, 'identifiers are strings')
  const empty = await track(ta, {})
  t.equal(empty.statusCode, 400)
  t.match(empty.json(), { message: /attributes, events or purchases/ })

  const config = await buildTestApp(t, { BRAZE_MAX_OBJECTS: '2' })
  t.equal((await track(config, { attributes: many(3) })).statusCode, 400, 'BRAZE_MAX_OBJECTS is configurable')
  t.equal((await track(config, { attributes: many(2) })).statusCode, 201)
})

t.test('authentication and scope answer Braze-shaped errors', async (t) => {
  const ta = await buildTestApp(t)
  const none = await track(ta, { attributes: [] }, {})
  t.equal(none.statusCode, 401)
  t.match(none.json(), { message: String })
  const k = await ta.app.inject({ method: 'POST', url: '/api-keys', headers: ta.root, payload: { name: 'reader', scopes: ['consent:read'] } })
  const reader = { authorization: `Bearer ${k.json().key}` }
  const forbidden = await track(ta, { attributes: [] }, reader)
  t.equal(forbidden.statusCode, 403)
  t.match(forbidden.json(), { message: /consent:write/ })
})

t.test('Idempotency-Key: a replay gives one ledger write and the same answer', async (t) => {
  const ta = await buildTestApp(t)
  const g = await newGroup(ta, ta.root)
  const body = { attributes: [{ external_id: 'idem', phone: '+14155552672', subscription_groups: [{ subscription_group_id: g, subscription_state: 'subscribed' }] }] }
  const headers = { ...ta.root, 'idempotency-key': 'track-1' }
  const first = await track(ta, body, headers)
  const again = await track(ta, body, headers)
  t.equal(first.statusCode, 201)
  t.equal(again.statusCode, 201)
  t.equal(again.headers['idempotent-replayed'], 'true')
  t.same(again.json(), first.json())
  const [n] = await ta.app.database.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM consent_events WHERE idempotency_key = 'track-1'`)
  t.equal(n!.n, 1, 'one ledger write')
  t.equal(await countEvents(ta), 1)
  const other = await track(ta, { attributes: [{ external_id: 'idem', x: 1 }] }, headers)
  t.equal(other.statusCode, 422, 'the same key with another body')
  t.match(other.json(), { message: String })
})

t.test('concurrent requests share transactions (group commit), each answered with its own results', async (t) => {
  const ta = await buildTestApp(t)
  const g = await newGroup(ta, ta.root)
  const before = ta.app.appendGroups.grouped
  const n = 24
  const answers = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      ta.app.inject({
        method: 'POST',
        url: '/users/track',
        headers: { ...ta.root, 'x-request-id': `gc-${i}` },
        payload: {
          attributes: [
            // Every 4th request: a second object naming an unknown group, and an attribute.
            { external_id: `gc-${i}`, plan: `p${i}`, subscription_groups: [{ subscription_group_id: g, subscription_state: i % 2 ? 'subscribed' : 'unsubscribed' }] },
            ...(i % 4 === 0 ? [{ external_id: `gc-x-${i}`, subscription_groups: [{ subscription_group_id: '00000000-0000-7000-8000-000000000000', subscription_state: 'subscribed' }] }] : []),
          ],
        },
      }),
    ),
  )
  t.ok(ta.app.appendGroups.grouped - before > 0, 'some requests were committed together')
  for (let i = 0; i < n; i++) {
    const a = answers[i]!
    t.equal(a.statusCode, 201)
    const body = a.json()
    t.equal(body.attributes_processed, i % 4 === 0 ? 2 : 1, `request ${i}`)
    t.equal(body.errors?.length ?? 0, i % 4 === 0 ? 1 : 0, `request ${i}: only its own error`)
    const ev = await ta.app.database.sql.query<{ request_id: string; state: string; identity_value: string }>(
      `SELECT request_id, state, identity_value FROM consent_events WHERE type = 'consent' AND identity_value = $1`,
      [`gc-${i}`],
    )
    t.same(ev, [{ request_id: `gc-${i}`, state: i % 2 ? 'subscribed' : 'unsubscribed', identity_value: `gc-${i}` }], `request ${i}: its event, its request id`)
    t.same(await attributesOf(ta, 'external_id', `gc-${i}`), { plan: `p${i}` })
  }
  t.equal(await countEvents(ta), n)
})

t.test('a request with an Idempotency-Key runs in its own transaction (not grouped)', async (t) => {
  const ta = await buildTestApp(t)
  const g = await newGroup(ta, ta.root)
  const before = ta.app.appendGroups.grouped
  const answers = await Promise.all(
    Array.from({ length: 8 }, (_, i) =>
      track(ta, { attributes: [{ external_id: `ik-${i}`, subscription_groups: [{ subscription_group_id: g, subscription_state: 'subscribed' }] }] }, {
        ...ta.root,
        'idempotency-key': `ik-${i}`,
      }),
    ),
  )
  answers.forEach((a) => t.equal(a.statusCode, 201))
  t.equal(ta.app.appendGroups.grouped, before)
  const replay = await track(ta, { attributes: [{ external_id: 'ik-3', subscription_groups: [{ subscription_group_id: g, subscription_state: 'subscribed' }] }] }, {
    ...ta.root,
    'idempotency-key': 'ik-3',
  })
  t.equal(replay.headers['idempotent-replayed'], 'true')
  t.equal(await countEvents(ta), 8)
})
