/**
 * Workspace isolation on every Braze route: workspace B's key with workspace A's group id learns
 * nothing and changes nothing. Choice (documented in src/routes/braze/subscription-status.ts):
 * where the group is the request's single target (v1 set, status/get) the answer is a Braze-shaped
 * 404, identical to an id that does not exist; where it is one item of a batch (/users/track,
 * v2 set) the item answers BAD_SUBSCRIPTION_GROUP_ID, identical to an id that does not exist.
 */
import t from 'tap'
import { buildTestApp, newGroup, newWorkspace } from '../../helpers/build-app.js'

t.test("workspace B cannot read, write or detect workspace A's groups and people", async (t) => {
  const ta = await buildTestApp(t)
  const a = await newWorkspace(ta, 'A')
  const b = await newWorkspace(ta, 'B')
  const gA = await newGroup(ta, a.auth, { name: 'A offers' })
  const gB = await newGroup(ta, b.auth, { name: 'B offers' })
  const missing = '00000000-0000-4000-8000-000000000000'
  const post = (auth: { authorization: string }, url: string, payload: object) => ta.app.inject({ method: 'POST', url, headers: auth, payload })
  const get = (auth: { authorization: string }, url: string) => ta.app.inject({ method: 'GET', url, headers: auth })

  // A's person, subscribed to A's group, with attributes.
  const seed = await post(a.auth, '/users/track', {
    attributes: [{ external_id: 'shared-id', phone: '+14155552671', secret: 'A only', subscription_groups: [{ subscription_group_id: gA, subscription_state: 'subscribed' }] }],
  })
  t.same(seed.json(), { message: 'success', attributes_processed: 1 })
  const eventsInA = async () =>
    (await ta.app.database.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM consent_events WHERE workspace_id = $1`, [a.id]))[0]!.n
  const before = await eventsInA()

  t.test('/users/track: BAD_SUBSCRIPTION_GROUP_ID, exactly as for an id that does not exist', async (t) => {
    const answer = async (group: string) =>
      (await post(b.auth, '/users/track', { attributes: [{ external_id: 'shared-id', subscription_groups: [{ subscription_group_id: group, subscription_state: 'unsubscribed' }] }] })).json()
    const foreign = await answer(gA)
    const none = await answer(missing)
    t.match(foreign, { message: 'success', attributes_processed: 1, errors: [{ type: 'BAD_SUBSCRIPTION_GROUP_ID', input_array: 'attributes', index: 0 }] })
    t.same(foreign.errors[0].message.replace(gA, 'ID'), none.errors[0].message.replace(missing, 'ID'), 'same message as a missing id')
  })

  t.test('v1 set: 404, exactly as for an id that does not exist', async (t) => {
    const foreign = await post(b.auth, '/subscription/status/set', { subscription_group_id: gA, subscription_state: 'unsubscribed', external_id: 'shared-id' })
    const none = await post(b.auth, '/subscription/status/set', { subscription_group_id: missing, subscription_state: 'unsubscribed', external_id: 'shared-id' })
    t.equal(foreign.statusCode, 404)
    t.same(foreign.json(), { message: 'subscription group not found' })
    t.same(foreign.json(), none.json())
  })

  t.test('v2 set: BAD_SUBSCRIPTION_GROUP_ID on the entry; B\'s own entry applies', async (t) => {
    const r = await post(b.auth, '/v2/subscription/status/set', {
      subscription_groups: [
        { subscription_group_id: gA, subscription_state: 'unsubscribed', external_ids: ['shared-id'], phones: ['+14155552671'] },
        { subscription_group_id: gB, subscription_state: 'subscribed', external_ids: ['shared-id'] },
      ],
    })
    t.equal(r.statusCode, 201)
    t.same(
      r.json().errors.map((e: { type: string; input_array: string; index: number }) => [e.type, e.input_array, e.index]),
      [['BAD_SUBSCRIPTION_GROUP_ID', 'subscription_groups', 0]],
    )
  })

  t.test('status/get: 404 for A\'s group; B\'s group answers for B\'s people only', async (t) => {
    const foreign = await get(b.auth, `/subscription/status/get?subscription_group_id=${gA}&external_id=shared-id`)
    const none = await get(b.auth, `/subscription/status/get?subscription_group_id=${missing}&external_id=shared-id`)
    t.equal(foreign.statusCode, 404)
    t.same(foreign.json(), none.json())
    const own = await get(b.auth, `/subscription/status/get?subscription_group_id=${gB}&external_id=shared-id&phone=%2B14155552671`)
    t.same(own.json(), { status: { 'shared-id': 'Subscribed', '+14155552671': 'Unknown' }, message: 'success' }, "A's phone is unknown in B")
  })

  t.test("user/status: B sees its own groups and nothing of A's person", async (t) => {
    const r = await get(b.auth, '/subscription/user/status?external_id=shared-id&phone=%2B14155552671')
    t.equal(r.statusCode, 200)
    t.same(r.json(), {
      users: [
        { external_id: 'shared-id', phone: null, subscription_groups: [{ id: gB, name: 'B offers', channel: 'whatsapp', status: 'Subscribed' }] },
        { external_id: null, phone: '+14155552671', subscription_groups: [{ id: gB, name: 'B offers', channel: 'whatsapp', status: 'Unknown' }] },
      ],
      total_count: 1,
      message: 'success',
    })
    t.notMatch(r.body, gA)
    t.notMatch(r.body, 'A offers')
  })

  t.test("A's data is untouched", async (t) => {
    t.equal(await eventsInA(), before, 'no event written in A')
    const r = await get(a.auth, '/subscription/user/status?external_id=shared-id')
    t.same(r.json(), {
      users: [{ external_id: 'shared-id', phone: '+14155552671', subscription_groups: [{ id: gA, name: 'A offers', channel: 'whatsapp', status: 'Subscribed' }] }],
      total_count: 1,
      message: 'success',
    })
    const [attrs] = await ta.app.database.sql.query<{ attributes: Record<string, unknown> }>(
      `SELECT c.attributes FROM identities i JOIN contacts c ON c.workspace_id = i.workspace_id AND c.id = i.contact_id
        WHERE i.workspace_id = $1 AND i.type = 'external_id' AND i.value = 'shared-id'`,
      [a.id],
    )
    t.same(attrs!.attributes, { secret: 'A only' })
    const [bContacts] = await ta.app.database.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM contacts WHERE workspace_id = $1`, [b.id])
    t.equal(bContacts!.n, 1, "B's shared-id is B's own contact")
  })
})
