/**
 * Subscription groups: create, list, read, rename, archive, never delete;
 * validation; and no cross-workspace read, write or existence leak (invariant 5).
 */
import t from 'tap'
import { buildTestApp, newGroup, newWorkspace, type TestApp } from '../helpers/build-app.js'

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/
const RANDOM_ID = '7d0b6f0e-2f2a-4c63-9d55-0f3c1c1a9e42'

const count = async (ta: TestApp) =>
  (await ta.app.database.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM subscription_groups`))[0]!.n

t.test('create applies defaults and answers the group with its id', async (t) => {
  const ta = await buildTestApp(t)
  const r = await ta.app.inject({
    method: 'POST',
    url: '/subscription-groups',
    headers: ta.root,
    payload: { name: 'Promotions', channel: 'whatsapp', category: 'marketing' },
  })
  t.equal(r.statusCode, 201, r.body)
  const g = r.json()
  t.match(g.id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)
  t.equal(g.name, 'Promotions')
  t.equal(g.channel, 'whatsapp')
  t.equal(g.category, 'marketing')
  t.equal(g.requires_opt_in, true, 'requires_opt_in defaults to true')
  t.equal(g.phone_number_id, null, 'phone_number_id defaults to null (all numbers)')
  t.equal(g.archived_at, null)
  t.match(g.created_at, ISO)
  t.match(g.updated_at, ISO)

  const explicit = await ta.app.inject({
    method: 'POST',
    url: '/subscription-groups',
    headers: ta.root,
    payload: { name: 'OTP', channel: 'sms', category: 'authentication', phone_number_id: '1234567890', requires_opt_in: false },
  })
  t.equal(explicit.statusCode, 201, explicit.body)
  t.match(explicit.json(), { channel: 'sms', category: 'authentication', phone_number_id: '1234567890', requires_opt_in: false })

  const got = await ta.app.inject({ method: 'GET', url: `/subscription-groups/${g.id}`, headers: ta.root })
  t.equal(got.statusCode, 200)
  t.same(got.json(), g, 'GET answers what POST answered')
  const upper = await ta.app.inject({ method: 'GET', url: `/subscription-groups/${g.id.toUpperCase()}`, headers: ta.root })
  t.equal(upper.statusCode, 200, 'an uppercase id names the same group')
  t.equal(upper.json().id, g.id)
})

t.test('list hides archived groups unless include_archived=true; archive is idempotent', async (t) => {
  const ta = await buildTestApp(t)
  const a = await newGroup(ta, ta.root, { name: 'A' })
  const b = await newGroup(ta, ta.root, { name: 'B', channel: 'sms' })

  const list = async (qs = '') => {
    const r = await ta.app.inject({ method: 'GET', url: `/subscription-groups${qs}`, headers: ta.root })
    t.equal(r.statusCode, 200, r.body)
    return (r.json().subscription_groups as Array<{ id: string }>).map((g) => g.id)
  }
  t.same(await list(), [a, b], 'both listed, in creation order')

  const arch = await ta.app.inject({ method: 'POST', url: `/subscription-groups/${a}/archive`, headers: ta.root })
  t.equal(arch.statusCode, 200, arch.body)
  t.match(arch.json().archived_at, ISO, 'archived_at set')
  t.equal(arch.json().id, a)

  const again = await ta.app.inject({ method: 'POST', url: `/subscription-groups/${a}/archive`, headers: ta.root })
  t.equal(again.statusCode, 200, 'archiving twice is harmless')
  t.equal(again.json().archived_at, arch.json().archived_at, 'and keeps the first archive time')

  t.same(await list(), [b], 'archived group hidden by default')
  t.same(await list('?include_archived=false'), [b])
  t.same(await list('?include_archived=true'), [a, b], 'shown with include_archived=true')

  const got = await ta.app.inject({ method: 'GET', url: `/subscription-groups/${a}`, headers: ta.root })
  t.equal(got.statusCode, 200, 'an archived group can still be read')
  t.equal(got.json().archived_at, arch.json().archived_at)

  const badQs = await ta.app.inject({ method: 'GET', url: '/subscription-groups?include_archived=maybe', headers: ta.root })
  t.equal(badQs.statusCode, 400)
  t.equal(badQs.json().code, 'validation_failed')
})

t.test('patch renames; empty or invalid patches are rejected and change nothing', async (t) => {
  const ta = await buildTestApp(t)
  const id = await newGroup(ta, ta.root, { name: 'Old' })
  const before = (await ta.app.inject({ method: 'GET', url: `/subscription-groups/${id}`, headers: ta.root })).json()

  const r = await ta.app.inject({ method: 'PATCH', url: `/subscription-groups/${id}`, headers: ta.root, payload: { name: 'New' } })
  t.equal(r.statusCode, 200, r.body)
  t.equal(r.json().name, 'New')
  t.equal(r.json().channel, before.channel, 'other fields unchanged')
  t.equal(r.json().category, before.category)
  t.equal(r.json().created_at, before.created_at)
  t.ok(Date.parse(r.json().updated_at) >= Date.parse(before.updated_at), 'updated_at does not go back')
  t.equal((await ta.app.inject({ method: 'GET', url: `/subscription-groups/${id}`, headers: ta.root })).json().name, 'New', 'persisted')

  // A patch changes only the fields it names: schema defaults must not fill in the others.
  const optional = await newGroup(ta, ta.root, { name: 'Service', category: 'utility', requires_opt_in: false, phone_number_id: '555' })
  const renamed = await ta.app.inject({ method: 'PATCH', url: `/subscription-groups/${optional}`, headers: ta.root, payload: { name: 'Service 2' } })
  t.equal(renamed.statusCode, 200, renamed.body)
  t.match(renamed.json(), { name: 'Service 2', requires_opt_in: false, phone_number_id: '555', category: 'utility' }, 'a rename keeps requires_opt_in false')
  const stored = (await ta.app.inject({ method: 'GET', url: `/subscription-groups/${optional}`, headers: ta.root })).json()
  t.equal(stored.requires_opt_in, false, 'requires_opt_in still false when read back')

  const flip = await ta.app.inject({ method: 'PATCH', url: `/subscription-groups/${optional}`, headers: ta.root, payload: { requires_opt_in: true, phone_number_id: null } })
  t.equal(flip.statusCode, 200, flip.body)
  t.match(flip.json(), { requires_opt_in: true, phone_number_id: null, name: 'Service 2' }, 'fields named in a patch do change')

  for (const payload of [{}, { name: '' }, { channel: 'email' }, { colour: 'red' }]) {
    const bad = await ta.app.inject({ method: 'PATCH', url: `/subscription-groups/${id}`, headers: ta.root, payload })
    t.equal(bad.statusCode, 400, `PATCH ${JSON.stringify(payload)}`)
    t.equal(bad.json().code, 'validation_failed')
  }
  t.equal((await ta.app.inject({ method: 'GET', url: `/subscription-groups/${id}`, headers: ta.root })).json().name, 'New', 'unchanged by rejected patches')
})

t.test('there is no delete', async (t) => {
  const ta = await buildTestApp(t)
  const id = await newGroup(ta, ta.root)
  const del = await ta.app.inject({ method: 'DELETE', url: `/subscription-groups/${id}`, headers: ta.root })
  t.ok(del.statusCode < 200 || del.statusCode >= 300, `DELETE is not a success (got ${del.statusCode})`)
  t.ok([404, 405].includes(del.statusCode), 'DELETE answers 404 or 405')
  const got = await ta.app.inject({ method: 'GET', url: `/subscription-groups/${id}`, headers: ta.root })
  t.equal(got.statusCode, 200, 'the group still exists')
  t.equal(got.json().archived_at, null, 'and is not even archived')
  t.equal(await count(ta), 1)
})

t.test('validation: bad values and unknown fields answer 400 validation_failed and create nothing', async (t) => {
  const ta = await buildTestApp(t)
  const base = { name: 'G', channel: 'whatsapp', category: 'marketing' }
  const post = (payload: Record<string, unknown>) =>
    ta.app.inject({ method: 'POST', url: '/subscription-groups', headers: ta.root, payload })

  const channel = await post({ ...base, channel: 'email' })
  t.equal(channel.statusCode, 400)
  t.match(channel.headers['content-type'], /^application\/problem\+json/)
  const cb = channel.json()
  t.equal(cb.code, 'validation_failed')
  t.ok(Array.isArray(cb.errors) && cb.errors.some((e: { pointer: string }) => e.pointer === '/body/channel'), 'points at /body/channel')

  const unknown = await post({ ...base, colour: 'red' })
  t.equal(unknown.statusCode, 400)
  t.equal(unknown.json().code, 'validation_failed')
  t.ok(unknown.json().errors.some((e: { pointer: string }) => e.pointer === '/body/colour'), 'points at /body/colour')

  const cases: Array<Record<string, unknown>> = [
    { ...base, category: 'promo' },
    { channel: 'sms', category: 'utility' },
    { ...base, name: '' },
    { ...base, requires_opt_in: 'yes' },
    { ...base, phone_number_id: 'x'.repeat(65) },
  ]
  for (const payload of cases) {
    const r = await post(payload)
    t.equal(r.statusCode, 400, JSON.stringify(payload))
    t.equal(r.json().code, 'validation_failed')
  }
  t.equal(await count(ta), 0, 'nothing was created')
})

t.test('no cross-workspace read, write or existence leak', async (t) => {
  const ta = await buildTestApp(t)
  const A = await newWorkspace(ta, 'A')
  const B = await newWorkspace(ta, 'B')
  const aGroup = await newGroup(ta, A.auth, { name: 'A only' })
  const bGroup = await newGroup(ta, B.auth, { name: 'B own' })

  const attempts = (id: string) => [
    { method: 'GET' as const, url: `/subscription-groups/${id}` },
    { method: 'PATCH' as const, url: `/subscription-groups/${id}`, payload: { name: 'hijacked' } },
    { method: 'POST' as const, url: `/subscription-groups/${id}/archive` },
  ]
  const strip = (body: Record<string, unknown>) => {
    const { instance, ...rest } = body
    return rest
  }

  const foreignAttempts = attempts(aGroup)
  const randomAttempts = attempts(RANDOM_ID)
  for (let i = 0; i < foreignAttempts.length; i++) {
    const foreign = await ta.app.inject({ ...foreignAttempts[i]!, headers: B.auth })
    const random = await ta.app.inject({ ...randomAttempts[i]!, headers: B.auth })
    const label = foreignAttempts[i]!.method + ' ' + foreignAttempts[i]!.url.replace(aGroup, '{id}')
    t.equal(foreign.statusCode, 404, `${label}: another workspace's group is 404`)
    t.equal(random.statusCode, 404, `${label}: a random id is 404`)
    t.equal(foreign.headers['content-type'], random.headers['content-type'])
    t.same(strip(foreign.json()), strip(random.json()), `${label}: same body as a nonexistent id`)
    t.equal(foreign.json().instance, foreignAttempts[i]!.url, 'instance is the request path')
    t.notOk(foreign.body.includes('A only'), 'the name does not leak')
  }

  const listB = await ta.app.inject({ method: 'GET', url: '/subscription-groups?include_archived=true', headers: B.auth })
  t.same(
    (listB.json().subscription_groups as Array<{ id: string }>).map((g) => g.id),
    [bGroup],
    "B's list holds only B's group",
  )
  const listRoot = await ta.app.inject({ method: 'GET', url: '/subscription-groups', headers: ta.root })
  t.same(listRoot.json().subscription_groups, [], 'nor does `default` see either')

  const mine = await ta.app.inject({ method: 'GET', url: `/subscription-groups/${aGroup}`, headers: A.auth })
  t.equal(mine.statusCode, 200, 'A still reads its group')
  t.equal(mine.json().name, 'A only', 'not renamed by B')
  t.equal(mine.json().archived_at, null, 'not archived by B')
})
