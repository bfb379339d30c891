/**
 * `GET|PUT /settings/consent`: per-workspace `require_evidence_to_override_opt_out`
 * (default true), and its effect on the admin toggle: off lets an evidence-less admin opt-in
 * override a person's opt-out; on answers 422 evidence_required.
 */
import t from 'tap'
import { buildTestApp, newGroup, newWorkspace, type TestApp } from '../helpers/build-app.js'

type Auth = { authorization: string }

const getSettings = (ta: TestApp, auth: Auth) => ta.app.inject({ method: 'GET', url: '/settings/consent', headers: auth })
const putSettings = (ta: TestApp, auth: Auth, payload: unknown, headers: Record<string, string> = {}) =>
  ta.app.inject({ method: 'PUT', url: '/settings/consent', headers: { ...auth, ...headers }, payload: payload as object })

t.test('defaults to true, PUT replaces it, validation and scopes', async (t) => {
  const ta = await buildTestApp(t)
  const A = await newWorkspace(ta, 'A')

  const d = await getSettings(ta, A.auth)
  t.equal(d.statusCode, 200, d.body)
  t.same(d.json(), { require_evidence_to_override_opt_out: true }, 'on by default')
  t.same((await getSettings(ta, ta.root)).json(), { require_evidence_to_override_opt_out: true }, 'default workspace too')

  const off = await putSettings(ta, A.auth, { require_evidence_to_override_opt_out: false })
  t.equal(off.statusCode, 200, off.body)
  t.same(off.json(), { require_evidence_to_override_opt_out: false })
  t.same((await getSettings(ta, A.auth)).json(), { require_evidence_to_override_opt_out: false }, 'persisted')

  for (const payload of [{}, { require_evidence_to_override_opt_out: 'no' }, { require_evidence_to_override_opt_out: true, extra: 1 }, { enabled: true }]) {
    const r = await putSettings(ta, A.auth, payload)
    t.equal(r.statusCode, 400, JSON.stringify(payload))
    t.equal(r.json().code, 'validation_failed')
  }
  t.same((await getSettings(ta, A.auth)).json(), { require_evidence_to_override_opt_out: false }, 'unchanged by rejected PUTs')

  // Keywords (another column of the same row) survive a consent-settings PUT.
  await ta.app.database.sql.query(`UPDATE workspace_settings SET keywords = '{"enabled":true}'::jsonb WHERE workspace_id = $1`, [A.id])
  t.equal((await putSettings(ta, A.auth, { require_evidence_to_override_opt_out: true })).statusCode, 200)
  const [row] = await ta.app.database.sql.query<{ keywords: unknown; require: boolean }>(
    `SELECT keywords, require_evidence_to_override_opt_out AS require FROM workspace_settings WHERE workspace_id = $1`,
    [A.id],
  )
  t.same(row, { keywords: { enabled: true }, require: true })

  // A workspace without a settings row still reads the defaults, and PUT creates the row.
  await ta.app.database.sql.query(`DELETE FROM workspace_settings WHERE workspace_id = $1`, [A.id])
  t.same((await getSettings(ta, A.auth)).json(), { require_evidence_to_override_opt_out: true })
  t.same((await putSettings(ta, A.auth, { require_evidence_to_override_opt_out: false })).json(), { require_evidence_to_override_opt_out: false })
  t.same((await getSettings(ta, A.auth)).json(), { require_evidence_to_override_opt_out: false })

  // Idempotency-Key on PUT.
  const k1 = await putSettings(ta, A.auth, { require_evidence_to_override_opt_out: true }, { 'idempotency-key': 'settings-1' })
  const k2 = await putSettings(ta, A.auth, { require_evidence_to_override_opt_out: true }, { 'idempotency-key': 'settings-1' })
  t.equal(k2.headers['idempotent-replayed'], 'true')
  t.same(k2.json(), k1.json())
  t.equal((await putSettings(ta, A.auth, { require_evidence_to_override_opt_out: false }, { 'idempotency-key': 'settings-1' })).statusCode, 422)

  // Scopes: consent:read may read, only admin may write.
  const key = await ta.app.inject({ method: 'POST', url: '/api-keys', headers: A.auth, payload: { name: 'rw', scopes: ['consent:read', 'consent:write'] } })
  const rw = { authorization: `Bearer ${key.json().key}` }
  t.equal((await getSettings(ta, rw)).statusCode, 200)
  t.equal((await putSettings(ta, rw, { require_evidence_to_override_opt_out: false })).statusCode, 403)
  t.equal((await getSettings(ta, {} as Auth)).statusCode, 401)
  t.same((await getSettings(ta, A.auth)).json(), { require_evidence_to_override_opt_out: true })
})

t.test("off: an evidence-less admin opt-in overrides a person's opt-out; on: 422 evidence_required", async (t) => {
  const ta = await buildTestApp(t)
  const A = await newWorkspace(ta, 'A')
  const G = await newGroup(ta, A.auth)
  const phone = '+14155550155'
  const [stop] = await ta.app.ledger.append(ta.app.database.sql, { workspaceId: A.id, actor: 'test' }, [
    { identities: [{ type: 'phone', value: phone }], subscriptionGroupId: G, state: 'unsubscribed', source: 'inbound_keyword' },
  ])
  t.equal(stop!.status, 'applied')
  const contactId = (stop as { contact_id: string }).contact_id
  const optIn = () =>
    ta.app.inject({ method: 'POST', url: `/contacts/${contactId}/consent`, headers: A.auth, payload: { subscription_group_id: G, state: 'subscribed' } })
  const stateNow = async () => (await ta.app.inject({ method: 'GET', url: `/contacts/${contactId}`, headers: A.auth })).json().subscription_groups[0]

  const on = await optIn()
  t.equal(on.statusCode, 422, on.body)
  t.equal(on.json().code, 'evidence_required')
  t.match(await stateNow(), { state: 'unsubscribed', source: 'inbound_keyword' })

  t.equal((await putSettings(ta, A.auth, { require_evidence_to_override_opt_out: false })).statusCode, 200)
  const off = await optIn()
  t.equal(off.statusCode, 201, off.body)
  t.match(off.json(), { contact_id: contactId, state: 'subscribed', changed: true })
  t.match(await stateNow(), { state: 'subscribed', source: 'admin', event_id: off.json().event_id })

  // Back on: the person opts out again, and an evidence-less override is refused once more.
  t.equal((await putSettings(ta, A.auth, { require_evidence_to_override_opt_out: true })).statusCode, 200)
  await ta.app.ledger.append(ta.app.database.sql, { workspaceId: A.id, actor: 'test' }, [
    { identities: [{ type: 'phone', value: phone }], subscriptionGroupId: G, state: 'unsubscribed', source: 'inbound_keyword' },
  ])
  const again = await optIn()
  t.equal(again.statusCode, 422)
  t.equal(again.json().code, 'evidence_required')
  t.match(await stateNow(), { state: 'unsubscribed' })
})

t.test('settings are per workspace', async (t) => {
  const ta = await buildTestApp(t)
  const A = await newWorkspace(ta, 'A')
  const B = await newWorkspace(ta, 'B')
  t.equal((await putSettings(ta, A.auth, { require_evidence_to_override_opt_out: false })).statusCode, 200)
  t.same((await getSettings(ta, A.auth)).json(), { require_evidence_to_override_opt_out: false })
  t.same((await getSettings(ta, B.auth)).json(), { require_evidence_to_override_opt_out: true }, "A's PUT does not change B")
  t.same((await getSettings(ta, ta.root)).json(), { require_evidence_to_override_opt_out: true }, 'nor `default`')

  // And B's ledger still enforces evidence while A's does not.
  const stopAndOptIn = async (ws: { id: string; auth: Auth }) => {
    const G = await newGroup(ta, ws.auth)
    const [stop] = await ta.app.ledger.append(ta.app.database.sql, { workspaceId: ws.id, actor: 'test' }, [
      { identities: [{ type: 'phone', value: '+14155550166' }], subscriptionGroupId: G, state: 'unsubscribed', source: 'inbound_keyword' },
    ])
    const id = (stop as { contact_id: string }).contact_id
    return ta.app.inject({ method: 'POST', url: `/contacts/${id}/consent`, headers: ws.auth, payload: { subscription_group_id: G, state: 'subscribed' } })
  }
  t.equal((await stopAndOptIn(A)).statusCode, 201, 'A: evidence not required')
  const b = await stopAndOptIn(B)
  t.equal(b.statusCode, 422, 'B: evidence required')
  t.equal(b.json().code, 'evidence_required')

  t.equal((await putSettings(ta, B.auth, { require_evidence_to_override_opt_out: true })).statusCode, 200)
  t.same((await getSettings(ta, A.auth)).json(), { require_evidence_to_override_opt_out: false }, "B's PUT does not change A")
})
