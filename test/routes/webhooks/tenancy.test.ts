/**
 * Which tenant a webhook belongs to (docs/webhook.md "Tenancy"): a payload signed with the
 * operator's app secret (WHATSAPP_APP_SECRETS, `POST /webhooks/whatsapp`) reaches only numbers the
 * operator mapped; a payload signed with a workspace's own app secret (`PUT /settings/whatsapp`,
 * `POST /webhooks/whatsapp/{workspace_id}`) reaches only that workspace's own numbers. A workspace
 * that maps someone else's number (a claim) receives none of their events and learns nothing about
 * whether anyone else has it. And a replayed signed body is stored once.
 */
import t from 'tap'
import { buildTestApp, newGroup, newWorkspace, type TestApp } from '../../helpers/build-app.js'
import { sign } from '../../../src/webhook/signature.js'
import { SECRET, WEBHOOK_ENV, postWebhook, textMessage } from '../../webhook/helpers.js'

type Auth = { authorization: string }
const SECRET_A = 'workspace-a-app-secret-0123456789'
const SECRET_A2 = 'workspace-a-app-secret-rotated-98765'
const SECRET_B = 'workspace-b-app-secret-abcdefghij'

const claim = (ta: TestApp, auth: Auth, pnid: string) => ta.app.inject({ method: 'POST', url: '/whatsapp/numbers', headers: auth, payload: { phone_number_id: pnid } })
const operatorMap = (ta: TestApp, workspaceId: string, pnid: string) =>
  ta.app.inject({ method: 'POST', url: `/workspaces/${workspaceId}/whatsapp/numbers`, headers: ta.root, payload: { phone_number_id: pnid } })
const setSecrets = (ta: TestApp, auth: Auth, secrets: string[], verifyToken = 'tenant-verify-token') =>
  ta.app.inject({ method: 'PUT', url: '/settings/whatsapp', headers: auth, payload: { app_secrets: secrets, verify_token: verifyToken } })
/** POSTs `raw` to a workspace's own webhook URL, signed with `secret`. */
const postTenant = (ta: TestApp, workspaceId: string, raw: string, secret: string) =>
  ta.app.inject({
    method: 'POST',
    url: `/webhooks/whatsapp/${workspaceId}`,
    headers: { 'content-type': 'application/json', 'x-hub-signature-256': sign(Buffer.from(raw), secret) },
    payload: Buffer.from(raw),
  })
const eventsOf = async (ta: TestApp, workspaceId: string) =>
  (await ta.app.database.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM consent_events WHERE workspace_id = $1 AND type = 'consent'`, [workspaceId]))[0]!.n
const inboxOf = async (ta: TestApp, auth: Auth) => (await ta.app.inject({ method: 'GET', url: '/webhooks/whatsapp/inbox?status=all', headers: auth })).json().payloads as { id: string }[]
const stop = (id: string, pnid: string, waId = '14155550100') => textMessage('STOP', { id, ts: 1750000000, pnid, waId })

t.test('squatting: a workspace that maps another business number receives nothing and learns nothing', async (t) => {
  const ta = await buildTestApp(t, WEBHOOK_ENV)
  const A = await newWorkspace(ta, 'A')
  const B = await newWorkspace(ta, 'B')
  await newGroup(ta, A.auth)
  await newGroup(ta, B.auth)

  // The operator maps A's number; B then "maps" it too, and also a number nobody has.
  const op = await operatorMap(ta, A.id, 'PA')
  t.equal(op.statusCode, 201, op.body)
  t.match(op.json(), { phone_number_id: 'PA', status: 'verified', mapped_by: 'operator' })
  const taken = await claim(ta, B.auth, 'PA')
  const free = await claim(ta, B.auth, 'PFREE')
  t.equal(taken.statusCode, 201, "mapping A's number answers like any new number: no 409 oracle")
  t.equal(free.statusCode, 201)
  const shape = (r: { json(): Record<string, unknown> }) => {
    const { phone_number_id: _p, created_at: _c, ...rest } = r.json()
    return rest
  }
  t.same(shape(taken), shape(free), 'the same answer whether the number is mapped elsewhere or not at all')
  t.match(taken.json(), { status: 'pending', mapped_by: 'workspace' })
  t.match((await ta.app.inject({ url: '/whatsapp/numbers/PA', headers: B.auth })).json(), { status: 'pending' }, 'B sees its own claim, pending')

  // Meta's payloads for PA (signed with the operator's app secret) reach A only.
  t.equal((await postWebhook(ta.app, stop('sq1', 'PA'))).statusCode, 200)
  t.equal(await eventsOf(ta, A.id), 1, "A records its customer's STOP")
  t.equal(await eventsOf(ta, B.id), 0, 'B records nothing')
  t.same(await inboxOf(ta, B.auth), [], "B's inbox shows nothing of A's payloads")

  // A number mapped by nobody but claimed by B: the operator's payloads for it do not go to B either.
  const ack = await postWebhook(ta.app, stop('sq2', 'PFREE'))
  t.equal(ack.json().status, 'unmapped', 'kept for the operator to map')
  t.equal(await eventsOf(ta, B.id), 0)
  t.same(await inboxOf(ta, B.auth), [])
  t.same(
    (await inboxOf(ta, ta.root)).map((p) => p.id),
    [ack.json().inbox_id],
    'the operator sees the payload of a number it has not mapped',
  )
  // Once the operator maps it (to B, say, after checking), it is applied.
  t.equal((await operatorMap(ta, B.id, 'PFREE')).statusCode, 201, "B's claim becomes an operator mapping")
  t.equal(await eventsOf(ta, B.id), 1)
  t.match((await ta.app.inject({ url: '/whatsapp/numbers/PFREE', headers: B.auth })).json(), { status: 'verified', mapped_by: 'operator' })

  // The operator cannot map one number to two workspaces (only the root key learns this).
  const twice = await operatorMap(ta, B.id, 'PA')
  t.equal(twice.statusCode, 409)
  t.equal(twice.json().code, 'phone_number_mapped_elsewhere')
  t.equal((await ta.app.inject({ method: 'POST', url: `/workspaces/${B.id}/whatsapp/numbers`, headers: B.auth, payload: { phone_number_id: 'PX' } })).statusCode, 403, 'root key only')
  t.equal((await operatorMap(ta, '00000000-0000-4000-8000-00000000dead', 'PX')).statusCode, 404)
})

t.test("a workspace's own app secret: verification, isolation from other secrets, rotation", async (t) => {
  const ta = await buildTestApp(t, WEBHOOK_ENV)
  const A = await newWorkspace(ta, 'A')
  const B = await newWorkspace(ta, 'B')
  await newGroup(ta, A.auth)
  await newGroup(ta, B.auth)

  // Settings: write-only secrets, shown masked.
  const put = await setSecrets(ta, A.auth, [SECRET_A])
  t.equal(put.statusCode, 200, put.body)
  t.notOk(put.body.includes(SECRET_A), 'the secret is never echoed')
  t.match(put.json(), { app_secrets: [/^\*+6789$/], verify_token_set: true, webhook_path: `/webhooks/whatsapp/${A.id}` })
  t.notOk((await ta.app.inject({ url: '/settings/whatsapp', headers: A.auth })).body.includes(SECRET_A))
  t.equal((await setSecrets(ta, B.auth, [SECRET_B])).statusCode, 200)
  for (const bad of [{ app_secrets: [''] }, { app_secrets: ['x'.repeat(5)], verify_token: 'tok' }, { app_secrets: Array(6).fill('s'.repeat(32)), verify_token: 'tok' }]) {
    const r = await ta.app.inject({ method: 'PUT', url: '/settings/whatsapp', headers: A.auth, payload: bad })
    t.equal(r.statusCode, 400, JSON.stringify(bad))
  }

  // The handshake of A's URL uses A's verify token.
  const hs = (token: string) => ta.app.inject({ url: `/webhooks/whatsapp/${A.id}?hub.mode=subscribe&hub.verify_token=${token}&hub.challenge=c42` })
  t.equal((await hs('tenant-verify-token')).body, 'c42')
  t.equal((await hs(WEBHOOK_ENV.WHATSAPP_VERIFY_TOKEN)).statusCode, 403, "the operator's token is not A's")

  // A claims its number: pending until a payload signed with A's secret names it.
  t.match((await claim(ta, A.auth, 'PA')).json(), { status: 'pending' })
  const a1 = await postTenant(ta, A.id, stop('own1', 'PA'), SECRET_A)
  t.equal(a1.statusCode, 200, a1.body)
  t.equal(a1.json().status, 'processed')
  t.equal(await eventsOf(ta, A.id), 1)
  t.match((await ta.app.inject({ url: '/whatsapp/numbers/PA', headers: A.auth })).json(), { status: 'verified', mapped_by: 'workspace' })

  // Wrong secrets are refused and store nothing.
  const rows = async () => (await ta.app.database.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM webhook_inbox`))[0]!.n
  const before = await rows()
  t.equal((await postTenant(ta, A.id, stop('x1', 'PA'), SECRET_B)).statusCode, 401, "B's secret on A's URL")
  t.equal((await postTenant(ta, A.id, stop('x2', 'PA'), SECRET)).statusCode, 401, "the operator's secret on A's URL")
  t.equal((await postWebhook(ta.app, stop('x3', 'PA'), SECRET_A)).statusCode, 401, "A's secret on the operator's URL")
  t.equal((await postTenant(ta, '00000000-0000-4000-8000-00000000dead', stop('x4', 'PA'), SECRET_A)).statusCode, 401, 'unknown workspace: 401 like a bad signature')
  t.equal((await postTenant(ta, 'not-a-uuid', stop('x5', 'PA'), SECRET_A)).statusCode, 401)
  t.equal(await rows(), before, 'nothing stored')

  // A payload for A's verified number signed with B's secret: neither A nor B records it.
  const forged = await postTenant(ta, B.id, stop('forged', 'PA', '14155550111'), SECRET_B)
  t.equal(forged.statusCode, 200)
  t.equal(forged.json().status, 'unmapped')
  t.equal(await eventsOf(ta, A.id), 1, 'not delivered to A')
  t.equal(await eventsOf(ta, B.id), 0, 'not delivered to B')
  t.notOk((await inboxOf(ta, A.auth)).some((p) => p.id === forged.json().inbox_id), "not in A's inbox")
  // The operator's payloads for A's self-verified number do not reach A either: only the operator maps those.
  t.equal((await postWebhook(ta.app, stop('op-for-a', 'PA', '14155550112'))).json().status, 'unmapped')
  t.equal(await eventsOf(ta, A.id), 1)

  // Rotation: the new secret and the old both verify while both are listed; then only the new.
  t.equal((await setSecrets(ta, A.auth, [SECRET_A2, SECRET_A])).statusCode, 200)
  t.equal((await postTenant(ta, A.id, stop('r1', 'PA', '14155550121'), SECRET_A2)).statusCode, 200)
  t.equal((await postTenant(ta, A.id, stop('r2', 'PA', '14155550122'), SECRET_A)).statusCode, 200)
  t.equal((await setSecrets(ta, A.auth, [SECRET_A2])).statusCode, 200)
  t.equal((await postTenant(ta, A.id, stop('r3', 'PA', '14155550123'), SECRET_A)).statusCode, 401, 'the retired secret no longer verifies')
  t.equal((await postTenant(ta, A.id, stop('r4', 'PA', '14155550124'), SECRET_A2)).statusCode, 200)
  t.equal(await eventsOf(ta, A.id), 4)
  t.equal((await setSecrets(ta, A.auth, [])).statusCode, 200, 'an empty list turns the URL off')
  t.equal((await postTenant(ta, A.id, stop('r5', 'PA', '14155550125'), SECRET_A2)).statusCode, 401)
})

t.test('a payload received before the claim verifies the claim when it is made', async (t) => {
  const ta = await buildTestApp(t, WEBHOOK_ENV)
  const A = await newWorkspace(ta, 'A')
  await newGroup(ta, A.auth)
  await setSecrets(ta, A.auth, [SECRET_A])
  const early = await postTenant(ta, A.id, stop('early', 'PA'), SECRET_A)
  t.equal(early.json().status, 'unmapped')
  t.same((await inboxOf(ta, A.auth)).map((p) => p.id), [early.json().inbox_id], "A sees its own app's payloads")
  t.same(await inboxOf(ta, ta.root), [], "the operator's view holds only its own app's payloads")
  const c = await claim(ta, A.auth, 'PA')
  t.match(c.json(), { status: 'verified' })
  t.equal(await eventsOf(ta, A.id), 1, 'the kept payload is applied')
})

t.test('single tenant: numbers mapped in the default workspace are the operator mappings', async (t) => {
  const ta = await buildTestApp(t, WEBHOOK_ENV)
  await newGroup(ta, ta.root)
  const key = await ta.app.inject({ method: 'POST', url: '/api-keys', headers: ta.root, payload: { name: 'ops', scopes: ['admin'] } })
  const ops = { authorization: `Bearer ${key.json().key}` }
  t.match((await claim(ta, ops, 'PD')).json(), { status: 'verified', mapped_by: 'operator' })
  t.equal((await postWebhook(ta.app, stop('d1', 'PD'))).json().status, 'processed')
})

t.test('the same bytes through a workspace URL are that tenancy\'s own row, stored once', async (t) => {
  const ta = await buildTestApp(t, WEBHOOK_ENV)
  const A = await newWorkspace(ta, 'A')
  await claim(ta, ta.root, 'PD')
  const rows = async () => (await ta.app.database.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM webhook_inbox`))[0]!.n
  const raw = stop('replay-tenancy', 'PD')
  t.equal((await postWebhook(ta.app, raw)).statusCode, 200)
  await setSecrets(ta, A.auth, [SECRET_A])
  const first = await postTenant(ta, A.id, raw, SECRET_A)
  const again = await postTenant(ta, A.id, raw, SECRET_A)
  t.equal(first.statusCode, 200, first.body)
  t.equal(again.json().inbox_id, first.json().inbox_id)
  t.equal(await rows(), 2, 'one row per tenancy')
})
