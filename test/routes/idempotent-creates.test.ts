/**
 * Idempotency-Key on the native creates (exactly-once effect): the same key and body replays
 * the first answer (status and body, `idempotent-replayed: true`) and creates nothing more; the same
 * key with another body is 422; keys are scoped to the workspace.
 */
import t, { type Test } from 'tap'
import { buildTestApp, newWorkspace, type TestApp } from '../helpers/build-app.js'

type Headers = Record<string, string>
const post = (ta: TestApp, url: string, headers: Headers, payload: unknown, key?: string) =>
  ta.app.inject({ method: 'POST', url, headers: key ? { ...headers, 'idempotency-key': key } : headers, payload: payload as object })
const count = async (ta: TestApp, table: string) => (await ta.app.database.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`))[0]!.n

/** The shared contract, checked on one route. */
async function contract(t: Test, ta: TestApp, url: string, headers: Headers, body: object, other: object, table: string) {
  const before = await count(ta, table)
  const first = await post(ta, url, headers, body, `k-${url}`)
  t.equal(first.statusCode, 201, `${url}: ${first.body}`)
  const again = await post(ta, url, headers, body, `k-${url}`)
  t.equal(again.statusCode, 201, `${url}: the replay answers the first status`)
  t.equal(again.headers['idempotent-replayed'], 'true', `${url}: marked as a replay`)
  t.equal(again.json().id, first.json().id, `${url}: the same object`)
  t.equal((await count(ta, table)) - before, 1, `${url}: created once`)
  const reused = await post(ta, url, headers, other, `k-${url}`)
  t.equal(reused.statusCode, 422, `${url}: same key, other body`)
  t.equal(reused.json().code, 'idempotency_key_reused')
  const fresh = await post(ta, url, headers, body, `k2-${url}`)
  t.equal(fresh.statusCode, 201)
  t.not(fresh.json().id, first.json().id, `${url}: another key creates another`)
  return { first, again }
}

t.test('POST /subscription-groups', async (t) => {
  const ta = await buildTestApp(t)
  const { first, again } = await contract(
    t,
    ta,
    '/subscription-groups',
    ta.root,
    { name: 'Offers', channel: 'whatsapp', category: 'marketing' },
    { name: 'Other', channel: 'whatsapp', category: 'marketing' },
    'subscription_groups',
  )
  t.same(again.json(), first.json(), 'the whole answer replays')
})

t.test('POST /api-keys: the replay never shows the secret again', async (t) => {
  const ta = await buildTestApp(t)
  const { first, again } = await contract(t, ta, '/api-keys', ta.root, { name: 'ci', scopes: ['consent:read'] }, { name: 'ci', scopes: ['admin'] }, 'api_keys')
  t.type(first.json().key, 'string', 'the first answer shows the secret')
  t.notOk('key' in again.json(), 'the replay does not: it is not stored')
  const { key, ...rest } = first.json()
  t.ok(key)
  t.same(again.json(), rest)
  const [stored] = await ta.app.database.sql.query<{ response_body: string }>(`SELECT response_body FROM idempotency_keys WHERE key = 'k-/api-keys'`)
  t.notMatch(stored!.response_body, first.json().key, 'the secret is not kept in the idempotency store')
})

t.test('POST /workspaces and POST /workspaces/:id/api-keys', async (t) => {
  const ta = await buildTestApp(t)
  await contract(t, ta, '/workspaces', ta.root, { name: 'acme' }, { name: 'globex' }, 'workspaces')
  const ws = await newWorkspace(ta, 'target')
  const { again } = await contract(
    t,
    ta,
    `/workspaces/${ws.id}/api-keys`,
    ta.root,
    { name: 'ops', scopes: ['admin'] },
    { name: 'ops2', scopes: ['admin'] },
    'api_keys',
  )
  t.notOk('key' in again.json())

  const other = await newWorkspace(ta, 'other')
  const sameKeyOtherPath = await post(ta, `/workspaces/${other.id}/api-keys`, ta.root, { name: 'ops', scopes: ['admin'] }, `k-/workspaces/${ws.id}/api-keys`)
  t.equal(sameKeyOtherPath.statusCode, 422, "the same key and body on another workspace's path is another request, never the first one's replay")
})

t.test('keys are scoped to the workspace', async (t) => {
  const ta = await buildTestApp(t)
  const a = await newWorkspace(ta, 'a')
  const b = await newWorkspace(ta, 'b')
  const body = { name: 'Offers', channel: 'whatsapp', category: 'marketing' }
  const ra = await post(ta, '/subscription-groups', a.auth, body, 'shared-key')
  const rb = await post(ta, '/subscription-groups', b.auth, body, 'shared-key')
  t.equal(ra.statusCode, 201)
  t.equal(rb.statusCode, 201)
  t.notOk(rb.headers['idempotent-replayed'], "another workspace's key is another key")
  t.not(ra.json().id, rb.json().id)
})

t.test('POST /whatsapp/numbers keeps honouring the key', async (t) => {
  const ta = await buildTestApp(t)
  const first = await post(ta, '/whatsapp/numbers', ta.root, { phone_number_id: '1234567890' }, 'num-key')
  t.equal(first.statusCode, 201, first.body)
  const again = await post(ta, '/whatsapp/numbers', ta.root, { phone_number_id: '1234567890' }, 'num-key')
  t.equal(again.statusCode, 201, 'the first answer (201), not "already mapped" (200)')
  t.equal(again.headers['idempotent-replayed'], 'true')
  const reused = await post(ta, '/whatsapp/numbers', ta.root, { phone_number_id: '999' }, 'num-key')
  t.equal(reused.statusCode, 422)
})
