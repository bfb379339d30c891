/**
 * `POST|GET /whatsapp/numbers`, `GET /whatsapp/numbers/{phone_number_id}`: 200 again
 * here, no 409 oracle for workspaces (claims; tenancy in test/routes/webhooks/tenancy.test.ts),
 * validation, scopes, Idempotency-Key, and no cross-workspace reads.
 */
import t from 'tap'
import { buildTestApp, newWorkspace, type TestApp } from '../helpers/build-app.js'

type Auth = { authorization: string }
const post = (ta: TestApp, auth: Auth, payload: unknown, headers: Record<string, string> = {}) =>
  ta.app.inject({ method: 'POST', url: '/whatsapp/numbers', headers: { ...auth, ...headers }, payload: payload as object })

t.test('map, list, read; one workspace per number', async (t) => {
  const ta = await buildTestApp(t)
  const A = await newWorkspace(ta, 'A')
  const B = await newWorkspace(ta, 'B')

  const created = await post(ta, A.auth, { phone_number_id: '106540352242922', display_phone_number: '15550783881' })
  t.equal(created.statusCode, 201, created.body)
  t.match(created.json(), { phone_number_id: '106540352242922', display_phone_number: '15550783881', created_at: /Z$/ })
  const again = await post(ta, A.auth, { phone_number_id: '106540352242922' })
  t.equal(again.statusCode, 200, 'already ours: 200')
  t.equal(again.json().display_phone_number, '15550783881', 'kept when not given')
  t.equal((await post(ta, A.auth, { phone_number_id: '106540352242922', display_phone_number: '+1 555 078 3881' })).json().display_phone_number, '+1 555 078 3881', 'updated when given')

  // Another workspace's claim of the same number: answered like any new number (no 409 oracle),
  // and it receives none of A's webhooks (test/routes/webhooks/tenancy.test.ts).
  const taken = await post(ta, B.auth, { phone_number_id: '106540352242922' })
  t.equal(taken.statusCode, 201)
  t.match(taken.json(), { status: 'pending', mapped_by: 'workspace' })
  t.match(created.json(), { status: 'pending', mapped_by: 'workspace' }, "A's own mapping is a claim too")
  // The operator's workspace maps as the operator: one workspace per number, 409 only for it.
  t.match((await post(ta, ta.root, { phone_number_id: '106540352242922' })).json(), { status: 'verified', mapped_by: 'operator' })
  const opAgain = await ta.app.inject({ method: 'POST', url: `/workspaces/${A.id}/whatsapp/numbers`, headers: ta.root, payload: { phone_number_id: '106540352242922' } })
  t.equal(opAgain.statusCode, 409, 'the operator cannot map one number to two workspaces')
  t.equal(opAgain.json().code, 'phone_number_mapped_elsewhere')

  t.equal((await post(ta, B.auth, { phone_number_id: '200000000000001' })).statusCode, 201)
  const listA = (await ta.app.inject({ method: 'GET', url: '/whatsapp/numbers', headers: A.auth })).json()
  t.same(listA.numbers.map((n: { phone_number_id: string }) => n.phone_number_id), ['106540352242922'])
  const listB = (await ta.app.inject({ method: 'GET', url: '/whatsapp/numbers', headers: B.auth })).json()
  t.same(listB.numbers.map((n: { phone_number_id: string }) => n.phone_number_id), ['106540352242922', '200000000000001'])
  t.same((await ta.app.inject({ method: 'GET', url: '/whatsapp/numbers', headers: ta.root })).json().numbers.map((n: { phone_number_id: string }) => n.phone_number_id), ['106540352242922'])

  t.equal((await ta.app.inject({ method: 'GET', url: '/whatsapp/numbers/106540352242922', headers: A.auth })).statusCode, 200)
  const other = await ta.app.inject({ method: 'GET', url: '/whatsapp/numbers/200000000000001', headers: A.auth })
  t.equal(other.statusCode, 404, "another workspace's number answers 404")
  t.equal(other.json().code, 'not_found')
  t.equal((await ta.app.inject({ method: 'GET', url: '/whatsapp/numbers/none', headers: B.auth })).statusCode, 404)
})

t.test('validation, scopes, Idempotency-Key', async (t) => {
  const ta = await buildTestApp(t)
  for (const payload of [{}, { phone_number_id: '' }, { phone_number_id: 'has space' }, { phone_number_id: 'x'.repeat(65) }, { phone_number_id: 1 }, { phone_number_id: '1', extra: true }]) {
    const r = await post(ta, ta.root, payload)
    t.equal(r.statusCode, 400, JSON.stringify(payload))
    t.equal(r.json().code, 'validation_failed')
  }
  const key = await ta.app.inject({ method: 'POST', url: '/api-keys', headers: ta.root, payload: { name: 'r', scopes: ['consent:read'] } })
  const reader = { authorization: `Bearer ${key.json().key}` }
  t.equal((await post(ta, reader, { phone_number_id: '1' })).statusCode, 403, 'mapping needs admin')
  t.equal((await ta.app.inject({ method: 'GET', url: '/whatsapp/numbers', headers: reader })).statusCode, 200, 'listing needs consent:read')
  t.equal((await post(ta, {} as Auth, { phone_number_id: '1' })).statusCode, 401)

  const k1 = await post(ta, ta.root, { phone_number_id: '42' }, { 'idempotency-key': 'num-1' })
  const k2 = await post(ta, ta.root, { phone_number_id: '42' }, { 'idempotency-key': 'num-1' })
  t.equal(k1.statusCode, 201)
  t.equal(k2.statusCode, 201, 'replayed answer')
  t.equal(k2.headers['idempotent-replayed'], 'true')
  t.equal((await post(ta, ta.root, { phone_number_id: '43' }, { 'idempotency-key': 'num-1' })).statusCode, 422)
})
