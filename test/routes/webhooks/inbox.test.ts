/**
 * The durable inbox (docs/webhook.md): a payload for an unmapped number is kept and applied (once) when
 * the number is mapped; kept payloads are listed and replayable; visibility never crosses
 * workspaces (another workspace's payload answers 404; unmapped numbers are the root key's only; a
 * batch naming two workspaces' numbers shows each only its own changes).
 */
import t from 'tap'
import { buildTestApp, newGroup, newWorkspace, type TestApp } from '../../helpers/build-app.js'
import { FIXTURE_PNID, WEBHOOK_ENV, deliver, mapNumber, textMessage, variant } from '../../webhook/helpers.js'

type Auth = { authorization: string }
const list = (ta: TestApp, auth: Auth, q = '') => ta.app.inject({ method: 'GET', url: `/webhooks/whatsapp/inbox${q}`, headers: auth })
const one = (ta: TestApp, auth: Auth, id: string) => ta.app.inject({ method: 'GET', url: `/webhooks/whatsapp/inbox/${id}`, headers: auth })
const replay = (ta: TestApp, auth: Auth, id: string) => ta.app.inject({ method: 'POST', url: `/webhooks/whatsapp/inbox/${id}/replay`, headers: auth })
const operatorMap = (ta: TestApp, workspaceId: string, pnid: string) =>
  ta.app.inject({ method: 'POST', url: `/workspaces/${workspaceId}/whatsapp/numbers`, headers: ta.root, payload: { phone_number_id: pnid } })
const consentEvents = async (ta: TestApp) => (await ta.app.database.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM consent_events WHERE type = 'consent'`))[0]!.n

t.test('an unmapped number is kept, then applied once when it is mapped', async (t) => {
  const ta = await buildTestApp(t, WEBHOOK_ENV)
  const A = await newWorkspace(ta, 'A')
  const G = await newGroup(ta, A.auth, { name: 'promos' })

  const ack = await deliver(ta.app, variant('meta-button.json', { id: 'unmapped' }))
  t.equal(ack.status, 'unmapped', 'kept as unmapped, still 200')
  t.equal(await consentEvents(ta), 0, 'nothing recorded yet')
  const redelivered = await deliver(ta.app, variant('meta-button.json', { id: 'unmapped' }))
  t.same(redelivered, ack, 'a redelivery of the same bytes answers the row stored first')
  t.equal((await deliver(ta.app, variant('meta-button.json', { id: 'unmapped' }).replace('{', '{ '))).status, 'unmapped', 'a redelivery with other bytes is kept too')

  // The root key (operator) sees payloads of numbers mapped nowhere; a workspace does not.
  const rootView = (await list(ta, ta.root)).json()
  t.equal(rootView.payloads.length, 2)
  t.match(rootView.payloads[0], { status: 'unmapped', phone_number_ids: [FIXTURE_PNID], body_sha256: /^[0-9a-f]{64}$/, attempts: 1 })
  t.equal(rootView.payloads[0].payload.entry[0].changes[0].value.messages[0].button.payload, 'Unsubscribe')
  t.same((await list(ta, A.auth)).json().payloads, [], 'A does not see a number it has not mapped')
  t.equal((await one(ta, A.auth, ack.inbox_id)).statusCode, 404)
  t.equal((await replay(ta, A.auth, ack.inbox_id)).statusCode, 404)

  // The operator mapping the number processes the kept payloads in the same request.
  const mapped = await operatorMap(ta, A.id, FIXTURE_PNID)
  t.equal(mapped.statusCode, 201)
  t.equal(await consentEvents(ta), 1, 'applied once, though delivered twice')
  const state = await ta.app.inject({ method: 'POST', url: '/consent/check', headers: A.auth, payload: { subscription_group_id: G, phones: ['+16505551234'] } })
  t.match(state.json().results[0], { state: 'unsubscribed', reason: 'opted_out' })
  t.same((await list(ta, A.auth)).json().payloads, [], 'nothing kept any more')
  const all = (await list(ta, A.auth, '?status=all')).json().payloads
  t.same(all.map((p: { status: string; attempts: number }) => [p.status, p.attempts]), [['processed', 2], ['processed', 2]])
  t.same((await list(ta, ta.root)).json().payloads, [], "the root key no longer sees A's payloads")

  // Mapping again (same workspace) is 200 and appends nothing.
  const again = await operatorMap(ta, A.id, FIXTURE_PNID)
  t.equal(again.statusCode, 200)
  t.equal(await consentEvents(ta), 1)
})

t.test('replay reprocesses a kept payload; replaying an applied one appends nothing', async (t) => {
  const ta = await buildTestApp(t, WEBHOOK_ENV)
  await mapNumber(ta.app, ta.root)
  // No group yet: a STOP records nothing; later a group exists and a replay applies it.
  const ack = await deliver(ta.app, textMessage('STOP', { id: 'replay', ts: 1750000000 }))
  t.equal(ack.status, 'processed')
  const G = await newGroup(ta, ta.root)
  const r = await replay(ta, ta.root, ack.inbox_id)
  t.equal(r.statusCode, 200, r.body)
  t.match(r.json(), { id: ack.inbox_id, status: 'processed', attempts: 2 })
  t.equal(await consentEvents(ta), 1)
  const r2 = await replay(ta, ta.root, ack.inbox_id)
  t.match(r2.json(), { status: 'processed', attempts: 3 })
  t.equal(await consentEvents(ta), 1, 'exactly once')

  // A failed payload (invalid phone) stays failed on replay, and is listed.
  const bad = await deliver(ta.app, textMessage('STOP', { id: 'bad', ts: 1750000000, waId: '123' }))
  t.equal(bad.status, 'failed')
  const kept = (await list(ta, ta.root)).json().payloads
  t.same(kept.map((p: { id: string }) => p.id), [bad.inbox_id])
  t.match((await replay(ta, ta.root, bad.inbox_id)).json(), { status: 'failed', last_error: /invalid_phone/ })
  t.equal((await replay(ta, ta.root, '999999')).statusCode, 404)
  t.equal((await replay(ta, ta.root, 'abc')).statusCode, 404)
  void G
})

t.test('listing: filters, pagination, scopes', async (t) => {
  const ta = await buildTestApp(t, WEBHOOK_ENV)
  await mapNumber(ta.app, ta.root)
  await newGroup(ta, ta.root)
  const ids: string[] = []
  for (let i = 0; i < 5; i++) ids.push((await deliver(ta.app, textMessage('STOP', { id: `l${i}`, ts: 1750000000 + i, waId: i % 2 ? '123' : '16505551234' }))).inbox_id)
  const failed = ids.filter((_, i) => i % 2)
  t.same((await list(ta, ta.root)).json().payloads.map((p: { id: string }) => p.id), [...failed].reverse(), 'kept ones, newest first')
  t.same((await list(ta, ta.root, '?status=processed')).json().payloads.length, 3)
  const p1 = (await list(ta, ta.root, '?status=all&limit=2')).json()
  t.same(p1.payloads.map((p: { id: string }) => p.id), [ids[4], ids[3]])
  const p2 = (await list(ta, ta.root, `?status=all&limit=2&cursor=${p1.next_cursor}`)).json()
  t.same(p2.payloads.map((p: { id: string }) => p.id), [ids[2], ids[1]])
  const p3 = (await list(ta, ta.root, `?status=all&limit=2&cursor=${p2.next_cursor}`)).json()
  t.same(p3.payloads.map((p: { id: string }) => p.id), [ids[0]])
  t.equal(p3.next_cursor, null)
  t.equal((await list(ta, ta.root, '?status=bogus')).statusCode, 400)
  const key = await ta.app.inject({ method: 'POST', url: '/api-keys', headers: ta.root, payload: { name: 'rw', scopes: ['consent:read', 'consent:write', 'audit:read'] } })
  const rw = { authorization: `Bearer ${key.json().key}` }
  t.equal((await list(ta, rw)).statusCode, 403, 'admin scope')
  t.equal((await replay(ta, rw, ids[1]!)).statusCode, 403)
  t.equal((await list(ta, {} as Auth)).statusCode, 401)
})

t.test('cross-workspace: payloads, replays and numbers of another workspace answer 404', async (t) => {
  const ta = await buildTestApp(t, WEBHOOK_ENV)
  const A = await newWorkspace(ta, 'A')
  const B = await newWorkspace(ta, 'B')
  // The operator maps each workspace's number (payloads signed with the operator's app secret).
  await operatorMap(ta, A.id, 'PA')
  await operatorMap(ta, B.id, 'PB')
  const GA = await newGroup(ta, A.auth)
  const GB = await newGroup(ta, B.auth)

  const a = await deliver(ta.app, textMessage('STOP', { id: 'xa', ts: 1750000000, pnid: 'PA', waId: '123' })) // failed: kept
  const b = await deliver(ta.app, textMessage('STOP', { id: 'xb', ts: 1750000000, pnid: 'PB', waId: '124' }))
  t.same((await list(ta, A.auth)).json().payloads.map((p: { id: string }) => p.id), [a.inbox_id])
  t.same((await list(ta, B.auth)).json().payloads.map((p: { id: string }) => p.id), [b.inbox_id])
  for (const [who, id] of [[A.auth, b.inbox_id], [B.auth, a.inbox_id]] as const) {
    t.equal((await one(ta, who, id)).statusCode, 404)
    const r = await replay(ta, who, id)
    t.equal(r.statusCode, 404)
    t.equal(r.json().code, 'not_found')
  }
  t.same((await list(ta, ta.root)).json().payloads, [], "the root key (workspace default) sees neither")
  t.equal((await one(ta, ta.root, a.inbox_id)).statusCode, 404)

  // Numbers: 404 for another workspace's; mapping it is a claim that receives none of B's payloads.
  t.equal((await ta.app.inject({ method: 'GET', url: '/whatsapp/numbers/PB', headers: A.auth })).statusCode, 404)
  t.equal((await ta.app.inject({ method: 'GET', url: '/whatsapp/numbers/PA', headers: A.auth })).statusCode, 200)
  const steal = await ta.app.inject({ method: 'POST', url: '/whatsapp/numbers', headers: A.auth, payload: { phone_number_id: 'PB' } })
  t.equal(steal.statusCode, 201)
  t.match(steal.json(), { status: 'pending', mapped_by: 'workspace' })
  t.same((await list(ta, A.auth)).json().payloads.map((p: { id: string }) => p.id), [a.inbox_id], "A's claim of PB shows none of B's payloads")

  // One batch naming both workspaces' numbers: each applies its own part and sees only its own.
  const batch = JSON.stringify({
    object: 'whatsapp_business_account',
    entry: [
      {
        id: 'WABA',
        changes: ['PA', 'PB', 'PX'].map((pnid, i) => ({
          field: 'messages',
          value: { metadata: { phone_number_id: pnid }, messages: [{ from: `1415555040${i}`, id: `wamid.mixed.${pnid}`, timestamp: '1750000001', type: 'text', text: { body: 'STOP' } }] },
        })),
      },
    ],
  })
  const mixed = await deliver(ta.app, batch)
  t.equal(mixed.status, 'unmapped', 'PX is mapped nowhere')
  const inA = (await one(ta, A.auth, mixed.inbox_id)).json()
  t.same(inA.phone_number_ids, ['PA'])
  t.same(inA.payload.entry[0].changes.map((c: { value: { metadata: { phone_number_id: string } } }) => c.value.metadata.phone_number_id), ['PA'], "A sees only its own change")
  t.equal(inA.status, 'processed', "for A its part is done; another number's mapping is not its business")
  const inB = (await one(ta, B.auth, mixed.inbox_id)).json()
  t.same(inB.payload.entry[0].changes.map((c: { value: { metadata: { phone_number_id: string } } }) => c.value.metadata.phone_number_id), ['PB'])
  const inRoot = (await one(ta, ta.root, mixed.inbox_id)).json()
  t.same(inRoot.phone_number_ids, ['PX'], 'root sees the unmapped number only')
  t.equal(inRoot.status, 'unmapped')
  t.same(inRoot.payload.entry[0].changes.map((c: { value: { metadata: { phone_number_id: string } } }) => c.value.metadata.phone_number_id), ['PX'])
  const evA = await ta.app.database.sql.query<{ g: string }>(`SELECT subscription_group_id::text AS g FROM consent_events WHERE workspace_id = $1 AND type = 'consent'`, [A.id])
  const evB = await ta.app.database.sql.query<{ g: string }>(`SELECT subscription_group_id::text AS g FROM consent_events WHERE workspace_id = $1 AND type = 'consent'`, [B.id])
  t.same([evA.map((e) => e.g), evB.map((e) => e.g)], [[GA], [GB]], 'each workspace got its own STOP')
  // Once the root maps PX to default, the payload is fully processed.
  await mapNumber(ta.app, ta.root, 'PX')
  t.equal((await one(ta, ta.root, mixed.inbox_id)).json().status, 'processed')
})
