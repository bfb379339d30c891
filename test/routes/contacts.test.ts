/**
 * Contacts administration: GET /contacts filters and keyset pagination, GET
 * /contacts/{id} with state per group, PATCH attributes/tags; and no cross-workspace read, write or
 * existence leak on any of them (invariant 5). The admin toggle is in contacts-consent.test.ts.
 */
import t from 'tap'
import { DEFAULT_WORKSPACE_ID } from '../../src/auth/api-keys.js'
import { applyAttributePatches } from '../../src/contacts/contact-service.js'
import { buildTestApp, newGroup, newWorkspace, type TestApp } from '../helpers/build-app.js'

type Auth = { authorization: string }
const RANDOM_ID = '7d0b6f0e-2f2a-4c63-9d55-0f3c1c1a9e42'
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

/** Seed through the public API; answers the contact id of each event. */
async function seed(ta: TestApp, auth: Auth, events: object[]): Promise<string[]> {
  const r = await ta.app.inject({ method: 'POST', url: '/consent/events', headers: auth, payload: { events } })
  if (r.statusCode !== 200) throw new Error(r.body)
  const results = r.json().results as { status: string; contact_id: string; message?: string }[]
  for (const x of results) if (x.status !== 'applied') throw new Error(JSON.stringify(x))
  return results.map((x) => x.contact_id)
}

async function list(ta: TestApp, auth: Auth, qs: string) {
  const r = await ta.app.inject({ method: 'GET', url: `/contacts${qs}`, headers: auth })
  return r
}

const ids = (r: { json(): { contacts: { id: string }[] } }) => r.json().contacts.map((c) => c.id)
const sorted = (a: string[]) => [...a].sort()

t.test('list filters each return exactly the right live contacts', async (t) => {
  const ta = await buildTestApp(t)
  const A = await newWorkspace(ta, 'A')
  const B = await newWorkspace(ta, 'B')
  const G = await newGroup(ta, A.auth, { name: 'promos' })
  const H = await newGroup(ta, A.auth, { name: 'service', category: 'utility' })
  const sql = ta.app.database.sql

  const [c1, c2, c3, c4] = await seed(ta, A.auth, [
    { external_id: 'alice-001', phone: '+14155550101', subscription_group_id: G, state: 'subscribed' },
    { external_id: 'bob-002', phone: '+14155550102', subscription_group_id: G, state: 'unsubscribed' },
    { phone: '+447911123456', subscription_group_id: H, state: 'subscribed' },
    { bsuid: 'US.1234567890', subscription_group_id: G, state: 'subscribed' },
  ])
  // c5a (phone only) is merged into c5 (external_id) when a request shows both together.
  const [c5a] = await seed(ta, A.auth, [{ phone: '+14155550199', subscription_group_id: G, state: 'subscribed' }])
  const [c5] = await seed(ta, A.auth, [{ external_id: 'carol-005', subscription_group_id: H, state: 'subscribed' }])
  await seed(ta, A.auth, [{ external_id: 'carol-005', phone: '+14155550199', subscription_group_id: H, state: 'subscribed' }])
  const [merged] = await sql.query<{ merged_into: string }>(`SELECT merged_into FROM contacts WHERE id = $1`, [c5a])
  t.equal(merged!.merged_into, c5, 'fixture: c5a was merged into c5')

  await applyAttributePatches(sql, A.id, [
    { contactId: c1!, set: { plan: 'gold', age: 30 }, remove: [], addTags: ['vip', 'beta'] },
    { contactId: c2!, set: { plan: 'silver', active: true }, remove: [], addTags: ['vip'] },
    { contactId: c3!, set: { plan: 'gold', note: 'a%b' }, remove: [] },
    { contactId: c4!, set: { age: 31 }, remove: [], addTags: ['beta'] },
  ])
  // Workspace B has look-alike data that must never show up in A's lists.
  const GB = await newGroup(ta, B.auth, { name: 'B promos' })
  const [b1] = await seed(ta, B.auth, [{ external_id: 'alice-001', phone: '+14155550101', subscription_group_id: GB, state: 'subscribed' }])
  await applyAttributePatches(sql, B.id, [{ contactId: b1!, set: { plan: 'gold', age: 30 }, remove: [], addTags: ['vip', 'beta'] }])

  const live = [c1!, c2!, c3!, c4!, c5!]
  const cases: [string, string[]][] = [
    ['', live],
    ['?q=alice', [c1!]],
    ['?q=ALICE-0', [c1!]],
    ['?q=%2B1415555010', [c1!, c2!]],
    ['?q=4155550102', [c2!]],
    ['?q=%2B1%20415-555-0102', [c2!]],
    ['?q=US.123', [c4!]],
    ['?q=4479', [c3!]],
    ['?q=0199', [c5!]],
    ['?q=%25', []],
    ['?q=_', []],
    ['?q=nobody', []],
    ['?tag=vip', [c1!, c2!]],
    ['?tag=beta', [c1!, c4!]],
    ['?tag=vip&tag=beta', [c1!]],
    ['?tag=none', []],
    ['?attribute[plan]=gold', [c1!, c3!]],
    ['?attribute%5Bplan%5D=silver', [c2!]],
    ['?attribute[age]=30', [c1!]],
    ['?attribute[active]=true', [c2!]],
    ['?attribute[plan]=gold&attribute[age]=30', [c1!]],
    ['?attribute[note]=a%25b', [c3!]],
    ['?attribute[plan]=Gold', []],
    ['?attribute[missing]=x', []],
    ['?tag=vip&attribute[plan]=silver', [c2!]],
    [`?subscription_group_id=${G}`, live],
    [`?subscription_group_id=${G}&state=subscribed`, [c1!, c4!, c5!]],
    [`?subscription_group_id=${G}&state=unsubscribed`, [c2!]],
    [`?subscription_group_id=${G}&state=unknown`, [c3!]],
    [`?subscription_group_id=${H}&state=subscribed`, [c3!, c5!]],
    [`?subscription_group_id=${H}&state=unknown`, [c1!, c2!, c4!]],
    [`?subscription_group_id=${G}&state=subscribed&tag=beta&q=alice`, [c1!]],
  ]
  for (const [qs, expected] of cases) {
    const r = await list(ta, A.auth, qs)
    t.equal(r.statusCode, 200, `${qs}: ${r.body}`)
    t.same(ids(r), sorted(expected), `GET /contacts${qs}`)
    t.equal(r.json().next_cursor, null, `${qs}: one page`)
  }

  // The list shows identities, attributes and tags; with a group, each row carries its state there.
  const one = (await list(ta, A.auth, `?q=alice&subscription_group_id=${G}`)).json().contacts[0]
  t.same(one.identities, [{ type: 'external_id', value: 'alice-001' }, { type: 'phone', value: '+14155550101' }])
  t.same(one.attributes, { plan: 'gold', age: 30 })
  t.same(one.tags, ['beta', 'vip'])
  t.match(one.created_at, ISO)
  t.match(one.consent, { subscription_group_id: G, state: 'subscribed', occurred_at: ISO })
  t.match(one.consent.event_id, /^[0-9a-f-]{36}$/)
  const unknown = (await list(ta, A.auth, `?q=4479&subscription_group_id=${G}`)).json().contacts[0]
  t.same(unknown.consent, { subscription_group_id: G, state: 'unknown', occurred_at: null, event_id: null })
  t.notOk('consent' in (await list(ta, A.auth, '?q=alice')).json().contacts[0], 'no consent field without a group')

  t.notOk(ids(await list(ta, A.auth, '')).includes(c5a!), 'a merged-away contact is never listed')
  t.same(ids(await list(ta, B.auth, '?q=alice')), [b1], "B's list holds only B's contact")
  t.same(ids(await list(ta, B.auth, '')), [b1])
  t.same(ids(await list(ta, ta.root, '')), [], 'nor does `default` see either')

  // Input errors.
  const bad = async (qs: string, status: number, code: string) => {
    const r = await list(ta, A.auth, qs)
    t.equal(r.statusCode, status, `${qs}: ${r.body}`)
    t.equal(r.json().code, code, qs)
    t.match(r.headers['content-type'], /^application\/problem\+json/)
    return r.json()
  }
  const noGroup = await bad('?state=subscribed', 400, 'state_requires_subscription_group')
  t.ok(noGroup.errors.some((e: { pointer: string }) => e.pointer === '/querystring/subscription_group_id'))
  await bad(`?subscription_group_id=${G}&state=maybe`, 400, 'validation_failed')
  await bad('?subscription_group_id=not-a-uuid', 400, 'validation_failed')
  await bad('?colour=red', 400, 'validation_failed')
  await bad('?attribute=gold', 400, 'validation_failed')
  await bad('?attribute[plan]=gold&attribute[plan]=silver', 400, 'validation_failed')
  await bad('?q=', 400, 'validation_failed')
  await bad('?q=a%00b', 400, 'invalid_text')
  // An unknown group and another workspace's group answer the same 404.
  const strip = ({ instance, ...rest }: Record<string, unknown>) => rest
  const foreignGroup = await bad(`?subscription_group_id=${GB}&state=unknown`, 404, 'not_found')
  const randomGroup = await bad(`?subscription_group_id=${RANDOM_ID}&state=unknown`, 404, 'not_found')
  t.same(strip(foreignGroup), strip(randomGroup), "B's group is indistinguishable from a random id")
  await bad(`?subscription_group_id=${RANDOM_ID}`, 404, 'not_found')
})

t.test('pagination walks every contact exactly once, in id order', async (t) => {
  const ta = await buildTestApp(t)
  const G = await newGroup(ta, ta.root)
  const all = await seed(
    ta,
    ta.root,
    Array.from({ length: 25 }, (_, i) => ({ external_id: `p-${String(i).padStart(2, '0')}`, subscription_group_id: G, state: i % 2 ? 'subscribed' : 'unsubscribed' })),
  )
  t.equal(new Set(all).size, 25)

  const walk = async (qs: string, limit: number) => {
    const seen: string[] = []
    const sizes: number[] = []
    let cursor: string | null = null
    for (let page = 0; page < 20; page++) {
      const r = await list(ta, ta.root, `?limit=${limit}${qs}${cursor ? `&cursor=${cursor}` : ''}`)
      t.equal(r.statusCode, 200, r.body)
      const body = r.json() as { contacts: { id: string }[]; next_cursor: string | null }
      seen.push(...body.contacts.map((c) => c.id))
      sizes.push(body.contacts.length)
      cursor = body.next_cursor
      if (cursor === null) break
      t.match(cursor, /^[A-Za-z0-9_-]+$/, 'the cursor is opaque base64url')
    }
    return { seen, sizes }
  }

  const { seen, sizes } = await walk('', 10)
  t.same(sizes, [10, 10, 5], 'three pages of 10, 10 and 5')
  t.equal(new Set(seen).size, seen.length, 'no duplicates across pages')
  t.same(sorted(seen), sorted(all), 'no contact missing')
  t.same(seen, sorted(seen), 'stable id order across pages')

  const exact = await walk('', 5)
  t.same(exact.sizes, [5, 5, 5, 5, 5], 'a last full page is not followed by an empty one')
  t.same(exact.seen, seen)

  const filtered = await walk(`&subscription_group_id=${G}&state=subscribed`, 4)
  t.same(filtered.sizes, [4, 4, 4], 'filters hold across pages')
  t.same(sorted(filtered.seen), sorted(all.filter((_, i) => i % 2 === 1)))

  const dflt = await list(ta, ta.root, '')
  t.equal(dflt.json().contacts.length, 25, 'default limit (50) takes all 25')
  t.equal(dflt.json().next_cursor, null)
  t.equal((await list(ta, ta.root, '?limit=500')).statusCode, 200, 'limit 500 is allowed')
  for (const qs of ['?limit=0', '?limit=501', '?limit=ten']) {
    const r = await list(ta, ta.root, qs)
    t.equal(r.statusCode, 400, qs)
    t.equal(r.json().code, 'validation_failed')
  }
  for (const cursor of ['nope', Buffer.from('c1:not-a-uuid').toString('base64url'), Buffer.from(RANDOM_ID).toString('base64url')]) {
    const r = await list(ta, ta.root, `?cursor=${cursor}`)
    t.equal(r.statusCode, 400, `cursor ${cursor}`)
    t.equal(r.json().code, 'invalid_cursor')
  }
})

t.test('detail: identities, attributes, tags, state per non-archived group (incl. unknown), platform stops', async (t) => {
  const ta = await buildTestApp(t)
  const G = await newGroup(ta, ta.root, { name: 'promos' })
  const U = await newGroup(ta, ta.root, { name: 'receipts', category: 'utility' })
  const N = await newGroup(ta, ta.root, { name: 'number 2 promos', phone_number_id: 'PN2' })
  const X = await newGroup(ta, ta.root, { name: 'old' })
  const r = await ta.app.inject({
    method: 'POST',
    url: '/consent/events',
    headers: ta.root,
    payload: {
      events: [
        { external_id: 'dana', phone: '+14155550111', subscription_group_id: G, state: 'subscribed', occurred_at: '2026-01-02T03:04:05.678Z' },
        { external_id: 'dana', subscription_group_id: X, state: 'subscribed' },
      ],
    },
  })
  const [ev] = r.json().results as { event_id: string; contact_id: string }[]
  const id = ev!.contact_id
  await ta.app.inject({ method: 'POST', url: `/subscription-groups/${X}/archive`, headers: ta.root })
  await applyAttributePatches(ta.app.database.sql, DEFAULT_WORKSPACE_ID, [{ contactId: id, set: { plan: 'gold', n: { a: [1, 2] } }, remove: [], addTags: ['vip'] }])

  const got = await ta.app.inject({ method: 'GET', url: `/contacts/${id}`, headers: ta.root })
  t.equal(got.statusCode, 200, got.body)
  const d = got.json()
  t.equal(d.id, id)
  t.same(d.identities, [{ type: 'external_id', value: 'dana' }, { type: 'phone', value: '+14155550111' }])
  t.same(d.attributes, { plan: 'gold', n: { a: [1, 2] } })
  t.same(d.tags, ['vip'])
  t.match(d.created_at, ISO)
  t.match(d.updated_at, ISO)
  t.same(
    d.subscription_groups.map((g: { subscription_group_id: string }) => g.subscription_group_id),
    [G, U, N],
    'every non-archived group, in creation order; the archived one is left out',
  )
  t.same(d.subscription_groups[0], {
    subscription_group_id: G,
    name: 'promos',
    channel: 'whatsapp',
    category: 'marketing',
    phone_number_id: null,
    state: 'subscribed',
    occurred_at: '2026-01-02T03:04:05.678Z',
    event_id: ev!.event_id,
    source: 'api',
    platform_stopped: false,
  })
  t.same(d.subscription_groups[1], {
    subscription_group_id: U,
    name: 'receipts',
    channel: 'whatsapp',
    category: 'utility',
    phone_number_id: null,
    state: 'unknown',
    occurred_at: null,
    event_id: null,
    source: null,
    platform_stopped: false,
  })
  t.same(d.platform_stops, [])

  // Meta's own marketing stop on number PN1: an opt-out of G, and G (all numbers) is platform-stopped;
  // the utility group and the group of another number are not.
  const [stop] = await ta.app.ledger.append(ta.app.database.sql, { workspaceId: DEFAULT_WORKSPACE_ID, actor: 'meta-webhook' }, [
    {
      identities: [{ type: 'phone', value: '+14155550111' }],
      subscriptionGroupId: G,
      state: 'unsubscribed',
      occurredAt: '2026-01-03T00:00:00.000Z',
      source: 'meta_user_preferences',
      platformStop: { action: 'stop', phoneNumberId: 'PN1' },
    },
  ])
  t.equal(stop!.status, 'applied')
  const after = (await ta.app.inject({ method: 'GET', url: `/contacts/${id.toUpperCase()}`, headers: ta.root })).json()
  t.equal(after.id, id, 'an uppercase id names the same contact')
  t.same(after.platform_stops, [{ phone_number_id: 'PN1', stopped: true, occurred_at: '2026-01-03T00:00:00.000Z' }])
  t.match(after.subscription_groups[0], { state: 'unsubscribed', source: 'meta_user_preferences', platform_stopped: true, event_id: (stop as { event_id: string }).event_id })
  t.match(after.subscription_groups[1], { state: 'unknown', platform_stopped: false })
  t.match(after.subscription_groups[2], { subscription_group_id: N, platform_stopped: false })

  for (const bad of [RANDOM_ID, 'not-a-uuid']) {
    const nf = await ta.app.inject({ method: 'GET', url: `/contacts/${bad}`, headers: ta.root })
    t.equal(nf.statusCode, 404, bad)
    t.equal(nf.json().code, 'not_found')
  }
})

t.test('a merged-away contact answers 404 contact_merged naming the survivor', async (t) => {
  const ta = await buildTestApp(t)
  const G = await newGroup(ta, ta.root)
  const [gone] = await seed(ta, ta.root, [{ phone: '+14155550122', subscription_group_id: G, state: 'subscribed' }])
  const [survivor] = await seed(ta, ta.root, [{ external_id: 'erin', subscription_group_id: G, state: 'subscribed' }])
  t.not(gone, survivor)
  // Shown together: the phone-only contact is merged into erin's.
  t.same(await seed(ta, ta.root, [{ external_id: 'erin', phone: '+14155550122', subscription_group_id: G, state: 'subscribed' }]), [survivor])
  for (const req of [
    { method: 'GET' as const, url: `/contacts/${gone}` },
    { method: 'PATCH' as const, url: `/contacts/${gone}`, payload: { tags: { add: ['x'] } } },
    { method: 'POST' as const, url: `/contacts/${gone}/consent`, payload: { subscription_group_id: G, state: 'unsubscribed' } },
  ]) {
    const r = await ta.app.inject({ ...req, headers: ta.root })
    t.equal(r.statusCode, 404, `${req.method}: ${r.body}`)
    t.equal(r.json().code, 'contact_merged')
    t.match(r.json().detail, survivor!, 'the detail names the survivor')
  }
  const [c] = await ta.app.database.sql.query<{ tags: string[] }>(`SELECT tags FROM contacts WHERE id = $1`, [gone])
  t.same(c!.tags, [], 'nothing written to the merged-away contact')
})

t.test('PATCH sets and removes attributes and tags; invalid patches change nothing', async (t) => {
  const ta = await buildTestApp(t)
  const G = await newGroup(ta, ta.root)
  const [id] = await seed(ta, ta.root, [{ external_id: 'frank', subscription_group_id: G, state: 'subscribed' }])
  const patch = (payload: unknown, headers: Record<string, string> = {}) =>
    ta.app.inject({ method: 'PATCH', url: `/contacts/${id}`, headers: { ...ta.root, ...headers }, payload: payload as object })

  const r1 = await patch({ attributes: { plan: 'gold', age: 30, prefs: { lang: 'en' } }, tags: { add: ['vip', 'beta', 'vip'] } })
  t.equal(r1.statusCode, 200, r1.body)
  t.same(r1.json().attributes, { plan: 'gold', age: 30, prefs: { lang: 'en' } })
  t.same(r1.json().tags, ['beta', 'vip'])
  t.match(r1.json().subscription_groups, [{ subscription_group_id: G, state: 'subscribed' }], 'answers the full detail')

  const r2 = await patch({ attributes: { plan: null, age: 31, missing: null }, tags: { add: ['new'], remove: ['beta', 'absent'] } })
  t.equal(r2.statusCode, 200, r2.body)
  t.same(r2.json().attributes, { age: 31, prefs: { lang: 'en' } }, 'null removes a key; other keys kept')
  t.same(r2.json().tags, ['new', 'vip'])
  const got = await ta.app.inject({ method: 'GET', url: `/contacts/${id}`, headers: ta.root })
  t.same(got.json(), r2.json(), 'GET reads what PATCH answered')

  const tagsOnly = await patch({ tags: { remove: ['vip'] } })
  t.same(tagsOnly.json().attributes, { age: 31, prefs: { lang: 'en' } }, 'a tags-only patch keeps attributes')
  t.same(tagsOnly.json().tags, ['new'])

  const before = (await ta.app.inject({ method: 'GET', url: `/contacts/${id}`, headers: ta.root })).json()
  const invalid: [unknown, string][] = [
    [{}, 'validation_failed'],
    [{ colour: 'red' }, 'validation_failed'],
    [{ tags: ['replace', 'shape'] }, 'validation_failed'],
    [{ tags: {} }, 'validation_failed'],
    [{ tags: { add: [''] } }, 'validation_failed'],
    [{ tags: { add: ['a'], extra: [] } }, 'validation_failed'],
    [{ attributes: {} }, 'validation_failed'],
    [{ attributes: { '': 1 } }, 'validation_failed'],
    [{ attributes: 'plan=gold' }, 'validation_failed'],
    [{ attributes: { plan: 'a\u0000b' } }, 'invalid_text'],
    [{ attributes: { plan: 'a\ud800b' } }, 'invalid_text'],
    [{ tags: { add: ['x', 'y'], remove: ['y'] } }, 'conflicting_tags'],
  ]
  for (const [payload, code] of invalid) {
    const r = await patch(payload)
    t.equal(r.statusCode, 400, `${JSON.stringify(payload)}: ${r.body}`)
    t.equal(r.json().code, code, JSON.stringify(payload))
  }
  t.same((await ta.app.inject({ method: 'GET', url: `/contacts/${id}`, headers: ta.root })).json(), before, 'rejected patches changed nothing')

  // Idempotency-Key: the retry replays the first answer.
  const k1 = await patch({ attributes: { visits: 1 } }, { 'idempotency-key': 'patch-1' })
  const k2 = await patch({ attributes: { visits: 1 } }, { 'idempotency-key': 'patch-1' })
  t.equal(k2.statusCode, 200)
  t.equal(k2.headers['idempotent-replayed'], 'true')
  t.same(k2.json(), k1.json())
  const k3 = await patch({ attributes: { visits: 2 } }, { 'idempotency-key': 'patch-1' })
  t.equal(k3.statusCode, 422, 'the same key with another body is refused')
  t.equal((await ta.app.inject({ method: 'GET', url: `/contacts/${id}`, headers: ta.root })).json().attributes.visits, 1)

  // consent:read may read but not patch.
  const key = await ta.app.inject({ method: 'POST', url: '/api-keys', headers: ta.root, payload: { name: 'reader', scopes: ['consent:read'] } })
  const reader = { authorization: `Bearer ${key.json().key}` }
  t.equal((await ta.app.inject({ method: 'GET', url: `/contacts/${id}`, headers: reader })).statusCode, 200)
  t.equal((await ta.app.inject({ method: 'GET', url: `/contacts`, headers: reader })).statusCode, 200)
  const denied = await ta.app.inject({ method: 'PATCH', url: `/contacts/${id}`, headers: reader, payload: { tags: { add: ['x'] } } })
  t.equal(denied.statusCode, 403)
  t.equal((await ta.app.inject({ method: 'PATCH', url: `/contacts/${id}`, payload: { tags: { add: ['x'] } } })).statusCode, 401)
})

t.test('no cross-workspace read, write or existence leak on any contacts route', async (t) => {
  const ta = await buildTestApp(t)
  const A = await newWorkspace(ta, 'A')
  const B = await newWorkspace(ta, 'B')
  const GA = await newGroup(ta, A.auth, { name: 'A group' })
  const GB = await newGroup(ta, B.auth, { name: 'B group' })
  const [aContact] = await seed(ta, A.auth, [{ external_id: 'secret-a', phone: '+14155550133', subscription_group_id: GA, state: 'subscribed' }])
  await applyAttributePatches(ta.app.database.sql, A.id, [{ contactId: aContact!, set: { plan: 'gold' }, remove: [], addTags: ['a-tag'] }])
  const [bContact] = await seed(ta, B.auth, [{ external_id: 'b-own', subscription_group_id: GB, state: 'subscribed' }])
  const eventsBefore = (await ta.app.database.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM consent_events`))[0]!.n
  const strip = ({ instance, ...rest }: Record<string, unknown>) => rest

  const attempts = (id: string) => [
    { method: 'GET' as const, url: `/contacts/${id}` },
    { method: 'PATCH' as const, url: `/contacts/${id}`, payload: { attributes: { plan: 'hijacked' }, tags: { add: ['b-was-here'] } } },
    // B's own (valid) group: only the contact id can make this fail.
    { method: 'POST' as const, url: `/contacts/${id}/consent`, payload: { subscription_group_id: GB, state: 'unsubscribed' } },
    { method: 'POST' as const, url: `/contacts/${id}/consent`, payload: { subscription_group_id: GA, state: 'unsubscribed' } },
  ]
  const foreign = attempts(aContact!)
  const random = attempts(RANDOM_ID)
  for (let i = 0; i < foreign.length; i++) {
    const f = await ta.app.inject({ ...foreign[i]!, headers: B.auth })
    const r = await ta.app.inject({ ...random[i]!, headers: B.auth })
    const label = `${foreign[i]!.method} ${foreign[i]!.url.replace(aContact!, '{id}')} #${i}`
    t.equal(f.statusCode, 404, `${label}: another workspace's contact is 404`)
    t.equal(r.statusCode, 404, `${label}: a random id is 404`)
    t.equal(f.headers['content-type'], r.headers['content-type'])
    t.same(strip(f.json()), strip(r.json()), `${label}: same body as a nonexistent id`)
    t.equal(f.json().code, 'not_found')
    t.notOk(f.body.includes('secret-a') || f.body.includes('gold'), 'nothing of the contact leaks')
  }

  const listB = await ta.app.inject({ method: 'GET', url: '/contacts?q=secret', headers: B.auth })
  t.same(listB.json().contacts, [], "B's search never finds A's contact")
  t.same(ids(await ta.app.inject({ method: 'GET', url: '/contacts?tag=a-tag', headers: B.auth })), [])
  t.same(ids(await ta.app.inject({ method: 'GET', url: '/contacts?attribute[plan]=gold', headers: B.auth })), [])
  t.same(ids(await ta.app.inject({ method: 'GET', url: '/contacts', headers: B.auth })), [bContact])
  // A cursor cannot be used to peek at another workspace either: it only seeks within the caller's.
  const cursor = Buffer.from(`c1:${'0'.repeat(8)}-0000-4000-8000-000000000000`).toString('base64url')
  t.same(ids(await ta.app.inject({ method: 'GET', url: `/contacts?cursor=${cursor}`, headers: B.auth })), [bContact])

  const mine = (await ta.app.inject({ method: 'GET', url: `/contacts/${aContact}`, headers: A.auth })).json()
  t.same(mine.attributes, { plan: 'gold' }, 'not patched by B')
  t.same(mine.tags, ['a-tag'])
  t.match(mine.subscription_groups, [{ subscription_group_id: GA, state: 'subscribed' }], 'not toggled by B')
  const eventsAfter = (await ta.app.database.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM consent_events`))[0]!.n
  t.equal(eventsAfter, eventsBefore, 'no event appended by the failed attempts')
})
