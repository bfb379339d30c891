/** Braze-compatible subscription routes: status/set v1 and v2, status/get, user/status. */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { buildTestApp, newGroup, type TestApp } from '../../helpers/build-app.js'

/** A fixture with placeholders replaced, longest first. */
function fixture(name: string, replace: Record<string, string> = {}): Record<string, unknown> {
  let text = readFileSync(new URL(`../../fixtures/${name}`, import.meta.url), 'utf8')
  for (const k of Object.keys(replace).sort((a, b) => b.length - a.length)) text = text.split(k).join(replace[k]!)
  return JSON.parse(text) as Record<string, unknown>
}

const post = (ta: TestApp, url: string, payload: unknown, headers: Record<string, string> = ta.root) =>
  ta.app.inject({ method: 'POST', url, headers, payload: payload as object })
const get = (ta: TestApp, url: string, headers: Record<string, string> = ta.root) => ta.app.inject({ method: 'GET', url, headers })

async function statusOf(ta: TestApp, group: string, q: string) {
  const r = await get(ta, `/subscription/status/get?subscription_group_id=${group}&${q}`)
  if (r.statusCode !== 200) throw new Error(r.body)
  return r.json().status as Record<string, string>
}

const count = async (ta: TestApp, table: 'contacts' | 'consent_events') =>
  (await ta.app.database.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`))[0]!.n

const ids = (n: number, prefix = 'u') => Array.from({ length: n }, (_, i) => `${prefix}${i}`)

t.test('v1: the documented body (braze-status-set-v1.json) with a real group and valid phones', async (t) => {
  const ta = await buildTestApp(t)
  const g = await newGroup(ta, ta.root)
  const body = fixture('braze-status-set-v1.json', {
    subscription_group_identifier: g,
    '+12223334444': '+14155552671',
    '+11112223333': '+14155552672',
  })
  const r = await post(ta, '/subscription/status/set', body)
  t.equal(r.statusCode, 201)
  t.same(r.json(), { message: 'success' })
  t.ok(r.headers['x-request-id'])
  t.same(await statusOf(ta, g, 'external_id=external_identifier&phone=%2B14155552671&phone=%2B14155552672'), {
    external_identifier: 'Unsubscribed',
    '+14155552671': 'Unsubscribed',
    '+14155552672': 'Unsubscribed',
  })
  t.equal(await count(ta, 'contacts'), 3, 'each identifier is its own change: not linked to each other')
  const sources = await ta.app.database.sql.query<{ source: string }>(`SELECT DISTINCT source FROM consent_events`)
  t.same(sources, [{ source: 'api' }])
})

t.test("v1: the documented body's invalid phones are item errors; the external_id applies", async (t) => {
  const ta = await buildTestApp(t)
  const g = await newGroup(ta, ta.root)
  const r = await post(ta, '/subscription/status/set', fixture('braze-status-set-v1.json', { subscription_group_identifier: g }))
  t.equal(r.statusCode, 201)
  t.match(r.json(), {
    message: 'success',
    errors: [
      { type: 'INVALID_PHONE', input_array: 'phone', index: 0, message: /\+12223334444/ },
      { type: 'INVALID_PHONE', input_array: 'phone', index: 1, message: /\+11112223333/ },
    ],
  })
  t.equal(r.json().errors.length, 2)
  t.same(await statusOf(ta, g, 'external_id=external_identifier'), { external_identifier: 'Unsubscribed' })
})

t.test('v1: request-level failures', async (t) => {
  const ta = await buildTestApp(t)
  const g = await newGroup(ta, ta.root)
  const set = (over: Record<string, unknown>) => post(ta, '/subscription/status/set', { subscription_group_id: g, subscription_state: 'subscribed', ...over })

  const unknown = await set({ subscription_group_id: '00000000-0000-4000-8000-000000000000', external_id: 'a' })
  t.equal(unknown.statusCode, 404)
  t.same(unknown.json(), { message: 'subscription group not found' })
  t.equal((await set({ subscription_group_id: 'subscription_group_identifier', external_id: 'a' })).statusCode, 404)

  t.equal((await set({ external_id: ids(51) })).statusCode, 400, '51 external ids')
  const mixed = await set({ external_id: ids(26), phone: Array.from({ length: 25 }, (_, i) => `+1415555${String(2600 + i)}`) })
  t.equal(mixed.statusCode, 400, '26 external ids + 25 phones')
  t.match(mixed.json(), { message: /At most 50 identifiers/, errors: [{ code: 'TOO_MANY_IDENTIFIERS' }] })
  t.equal((await set({ external_id: ids(50) })).statusCode, 201, '50 is fine')

  t.equal((await set({})).statusCode, 400, 'no identifier')
  t.equal((await set({ external_id: 'a', subscription_state: 'maybe' })).statusCode, 400, 'bad state')
  t.equal((await set({ external_id: 'a', extra: 1 })).statusCode, 400, 'unknown key')
  const bad = await set({ external_id: 'a', occurred_at: 'yesterday' })
  t.equal(bad.statusCode, 400)
  t.match(bad.json(), { message: String, errors: [{ pointer: '/body/occurred_at', code: 'INVALID_OCCURRED_AT' }] })

  await ta.app.inject({ method: 'POST', url: `/subscription-groups/${g}/archive`, headers: ta.root })
  const archived = await set({ external_id: 'a' })
  t.equal(archived.statusCode, 400)
  t.match(archived.json(), { errors: [{ code: 'ARCHIVED_SUBSCRIPTION_GROUP' }] })
  t.equal(await count(ta, 'consent_events'), 50, 'only the request of 50 wrote anything')
})

t.test('v2: the documented bodies (external ids, phones) with real groups and valid phones', async (t) => {
  const ta = await buildTestApp(t)
  const g = await newGroup(ta, ta.root)
  const r1 = await post(ta, '/v2/subscription/status/set', fixture('braze-status-set-v2-external-ids.json', { subscription_group_identifier: g }))
  t.equal(r1.statusCode, 201)
  t.same(r1.json(), { message: 'success' })
  const r2 = await post(
    ta,
    '/v2/subscription/status/set',
    fixture('braze-status-set-v2-phones.json', { subscription_group_identifier: g, '+12223334444': '+14155552671', '+15556667777': '+14155552673' }),
  )
  t.equal(r2.statusCode, 201)
  t.same(r2.json(), { message: 'success' })
  t.same(await statusOf(ta, g, 'external_id=example-user&external_id=example1@email.com&phone=%2B14155552671&phone=%2B14155552673'), {
    'example-user': 'Subscribed',
    'example1@email.com': 'Subscribed',
    '+14155552671': 'Subscribed',
    '+14155552673': 'Subscribed',
  })
})

t.test('v2: entry errors and identifier errors, the rest applies; limits', async (t) => {
  const ta = await buildTestApp(t)
  const g = await newGroup(ta, ta.root)
  const other = await newGroup(ta, ta.root, { name: 'news', channel: 'sms' })
  const r = await post(ta, '/v2/subscription/status/set', {
    subscription_groups: [
      { subscription_group_id: 'subscription_group_identifier', subscription_state: 'subscribed', external_ids: ['x1', 'x2'] },
      { subscription_group_id: g, subscription_state: 'maybe', external_ids: ['x1'] },
      { subscription_group_id: g, subscription_state: 'subscribed', external_ids: ['v1'], phones: ['+12223334444', '+14155552671'] },
      { subscription_group_id: other, subscription_state: 'unsubscribed', phones: ['+14155552671'], method: 'telepathy' },
      { subscription_group_id: other, subscription_state: 'unsubscribed', external_ids: ['v1'], occurred_at: '2026-01-01T00:00:00Z' },
    ],
  })
  t.equal(r.statusCode, 201)
  const errors = r.json().errors.map((e: { type: string; input_array: string; index: number }) => `${e.input_array}[${e.index}] ${e.type}`)
  t.same(errors, [
    'subscription_groups[0] BAD_SUBSCRIPTION_GROUP_ID',
    'subscription_groups[1] BAD_SUBSCRIPTION_GROUP_STATE',
    'subscription_groups[2].phones[0] INVALID_PHONE',
    'subscription_groups[3] INVALID_METHOD',
  ])
  t.same(await statusOf(ta, g, 'external_id=v1&phone=%2B14155552671&external_id=x1'), { v1: 'Subscribed', x1: 'Unknown', '+14155552671': 'Subscribed' })
  t.same(await statusOf(ta, other, 'external_id=v1&phone=%2B14155552671'), { v1: 'Unsubscribed', '+14155552671': 'Unknown' })

  const tooMany = await post(ta, '/v2/subscription/status/set', {
    subscription_groups: [
      { subscription_group_id: g, subscription_state: 'subscribed', external_ids: ids(1) },
      { subscription_group_id: g, subscription_state: 'subscribed', external_ids: ids(30), phones: ids(21, '+1415555') },
    ],
  })
  t.equal(tooMany.statusCode, 201, '51 identifiers in one entry: an item error, the other entry applies')
  t.match(tooMany.json(), { message: 'success', errors: [{ type: 'TOO_MANY_IDENTIFIERS', input_array: 'subscription_groups', index: 1, message: /at most 50 identifiers/ }] })
  t.equal(tooMany.json().errors.length, 1)
  const fine = await post(ta, '/v2/subscription/status/set', {
    subscription_groups: [
      { subscription_group_id: g, subscription_state: 'subscribed', external_ids: ids(50, 'a') },
      { subscription_group_id: g, subscription_state: 'subscribed', external_ids: ids(50, 'b') },
    ],
  })
  t.equal(fine.statusCode, 201, '50 per entry, 100 in all')
  const none = await post(ta, '/v2/subscription/status/set', { subscription_groups: [{ subscription_group_id: g, subscription_state: 'subscribed' }] })
  t.match(none.json(), { message: 'success', errors: [{ type: 'MISSING_IDENTIFIER', input_array: 'subscription_groups', index: 0 }] }, 'no identifiers')
  t.equal((await post(ta, '/v2/subscription/status/set', { subscription_groups: [] })).statusCode, 400)
})

t.test('status/get: capitalised states, Unknown for never-seen identifiers, nothing created; limits', async (t) => {
  const ta = await buildTestApp(t)
  const g = await newGroup(ta, ta.root)
  await post(ta, '/subscription/status/set', { subscription_group_id: g, subscription_state: 'subscribed', external_id: ['1'] })
  await post(ta, '/subscription/status/set', { subscription_group_id: g, subscription_state: 'unsubscribed', external_id: ['2'], phone: ['+14155552671'] })
  const contacts = await count(ta, 'contacts')

  // Braze's documented spelling: external_id[]=1&external_id[]=2
  const r = await get(ta, `/subscription/status/get?subscription_group_id=${g}&external_id[]=1&external_id[]=2&external_id[]=3&phone=14155552671&phone=%2B14155550100`)
  t.equal(r.statusCode, 200)
  t.same(r.json(), {
    status: { '1': 'Subscribed', '2': 'Unsubscribed', '3': 'Unknown', '14155552671': 'Unsubscribed', '+14155550100': 'Unknown' },
    message: 'success',
  })
  const bad = await get(ta, `/subscription/status/get?subscription_group_id=${g}&phone=%2B12223334444`)
  t.same(bad.json(), {
    status: { '+12223334444': 'Unknown' },
    message: 'success',
    errors: [{ type: 'INVALID_PHONE', input_array: 'phone', index: 0, message: 'phone "+12223334444" is not valid' }],
  })
  t.equal(await count(ta, 'contacts'), contacts, 'reads create no contact')

  const many = ids(51).map((i) => `external_id=${i}`).join('&')
  const tooMany = await get(ta, `/subscription/status/get?subscription_group_id=${g}&${many}`)
  t.equal(tooMany.statusCode, 400)
  t.match(tooMany.json(), { message: String })
  const split = `${ids(26).map((i) => `external_id=${i}`).join('&')}&${ids(25).map((i) => `phone=%2B1415555${2600 + Number(i.slice(1))}`).join('&')}`
  t.equal((await get(ta, `/subscription/status/get?subscription_group_id=${g}&${split}`)).statusCode, 400, '26 + 25 identifiers')
  t.equal((await get(ta, `/subscription/status/get?subscription_group_id=${g}&${ids(50).map((i) => `external_id=${i}`).join('&')}`)).statusCode, 200)
  t.equal((await get(ta, `/subscription/status/get?subscription_group_id=${g}`)).statusCode, 400, 'no identifier')
  t.equal((await get(ta, `/subscription/status/get?external_id=1`)).statusCode, 400, 'no group')
  const nf = await get(ta, `/subscription/status/get?subscription_group_id=00000000-0000-4000-8000-000000000000&external_id=1`)
  t.equal(nf.statusCode, 404)
  t.same(nf.json(), { message: 'subscription group not found' })
})

t.test('user/status: every active group with the status, paged over groups', async (t) => {
  const ta = await buildTestApp(t)
  const g1 = await newGroup(ta, ta.root, { name: 'offers' })
  const g2 = await newGroup(ta, ta.root, { name: 'alerts', channel: 'sms', category: 'utility' })
  const g3 = await newGroup(ta, ta.root, { name: 'news' })
  const gone = await newGroup(ta, ta.root, { name: 'archived' })
  await ta.app.inject({ method: 'POST', url: `/subscription-groups/${gone}/archive`, headers: ta.root })
  await post(ta, '/users/track', {
    attributes: [
      {
        external_id: 'cust-1',
        phone: '+14155552671',
        subscription_groups: [
          { subscription_group_id: g1, subscription_state: 'subscribed' },
          { subscription_group_id: g2, subscription_state: 'unsubscribed' },
        ],
      },
    ],
  })
  const contacts = await count(ta, 'contacts')

  const r = await get(ta, '/subscription/user/status?external_id=cust-1')
  t.equal(r.statusCode, 200)
  t.same(r.json(), {
    users: [
      {
        external_id: 'cust-1',
        phone: '+14155552671',
        subscription_groups: [
          { id: g1, name: 'offers', channel: 'whatsapp', status: 'Subscribed' },
          { id: g2, name: 'alerts', channel: 'sms', status: 'Unsubscribed' },
          { id: g3, name: 'news', channel: 'whatsapp', status: 'Unknown' },
        ],
      },
    ],
    total_count: 3,
    message: 'success',
  })

  const page = await get(ta, '/subscription/user/status?phone=%2B14155552671&limit=1&offset=1')
  t.same(page.json(), {
    users: [{ external_id: 'cust-1', phone: '+14155552671', subscription_groups: [{ id: g2, name: 'alerts', channel: 'sms', status: 'Unsubscribed' }] }],
    total_count: 3,
    message: 'success',
  })
  const past = await get(ta, '/subscription/user/status?external_id[]=cust-1&offset=5')
  t.same(past.json().users[0].subscription_groups, [])
  t.equal(past.json().total_count, 3)

  const unknown = await get(ta, '/subscription/user/status?external_id=nobody&phone=%2B12223334444')
  t.equal(unknown.statusCode, 200)
  t.same(unknown.json().users, [
    {
      external_id: 'nobody',
      phone: null,
      subscription_groups: [
        { id: g1, name: 'offers', channel: 'whatsapp', status: 'Unknown' },
        { id: g2, name: 'alerts', channel: 'sms', status: 'Unknown' },
        { id: g3, name: 'news', channel: 'whatsapp', status: 'Unknown' },
      ],
    },
  ], 'a never-seen identifier lists every group as Unknown; the invalid phone is only an error')
  t.match(unknown.json().errors, [{ type: 'INVALID_PHONE', input_array: 'phone', index: 0 }])
  t.equal(await count(ta, 'contacts'), contacts, 'reads create no contact')

  t.equal((await get(ta, '/subscription/user/status')).statusCode, 400, 'no identifier')
  t.equal((await get(ta, '/subscription/user/status?external_id=a&limit=101')).statusCode, 400, 'limit above 100')
  t.equal((await get(ta, `/subscription/user/status?${ids(51).map((i) => `external_id=${i}`).join('&')}`)).statusCode, 400, '51 identifiers')
})

t.test('scopes: reads need consent:read, writes consent:write; errors are Braze-shaped', async (t) => {
  const ta = await buildTestApp(t)
  const g = await newGroup(ta, ta.root)
  const k = await ta.app.inject({ method: 'POST', url: '/api-keys', headers: ta.root, payload: { name: 'writer', scopes: ['consent:write'] } })
  const writer = { authorization: `Bearer ${k.json().key}` }
  const set = await post(ta, '/subscription/status/set', { subscription_group_id: g, subscription_state: 'subscribed', external_id: 'a' }, writer)
  t.equal(set.statusCode, 201)
  const read = await get(ta, `/subscription/status/get?subscription_group_id=${g}&external_id=a`, writer)
  t.equal(read.statusCode, 403)
  t.match(read.json(), { message: /consent:read/ })
  const anon = await get(ta, `/subscription/user/status?external_id=a`, {})
  t.equal(anon.statusCode, 401)
  t.same(Object.keys(anon.json()), ['message'])
})

t.test('Idempotency-Key on v1 and v2', async (t) => {
  const ta = await buildTestApp(t)
  const g = await newGroup(ta, ta.root)
  for (const [url, body] of [
    ['/subscription/status/set', { subscription_group_id: g, subscription_state: 'subscribed', external_id: ['k1', 'k2'] }],
    ['/v2/subscription/status/set', { subscription_groups: [{ subscription_group_id: g, subscription_state: 'unsubscribed', external_ids: ['k1', 'k2'] }] }],
  ] as const) {
    const headers = { ...ta.root, 'idempotency-key': `key-${url}` }
    const a = await post(ta, url, body, headers)
    const b = await post(ta, url, body, headers)
    t.equal(a.statusCode, 201)
    t.equal(b.headers['idempotent-replayed'], 'true')
    const [n] = await ta.app.database.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM consent_events WHERE idempotency_key = $1`, [`key-${url}`])
    t.equal(n!.n, 2, `${url}: one write of two events`)
  }
})
