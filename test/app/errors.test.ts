/**
 * Error shape at the HTTP edge: every rejection Fastify or the schema produces is an RFC 9457
 * application/problem+json with a stable `code`, and every response carries x-request-id.
 */
import t, { type Test } from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { buildTestApp, type TestApp } from '../helpers/build-app.js'

const GROUP = { name: 'Marketing', channel: 'whatsapp', category: 'marketing' }

function assertProblem(t: Test, r: LightMyRequestResponse, status: number, code: string, instance = '/subscription-groups') {
  t.equal(r.statusCode, status, r.body)
  t.match(r.headers['content-type'], /^application\/problem\+json\b/, 'problem content type')
  const body = r.json()
  t.equal(body.status, status, 'status in the body matches')
  t.equal(body.code, code)
  t.equal(body.type, `https://consent-ledger.dev/problems/${code}`)
  t.equal(body.instance, instance)
  t.type(body.title, 'string')
  t.type(body.detail, 'string')
  t.ok(r.headers['x-request-id'], 'x-request-id is set')
  return body
}

let ta: TestApp
t.before(async () => {
  ta = await buildTestApp(t, { BODY_LIMIT: '2048' })
})

t.test('a well-formed create succeeds (the baseline the other cases differ from)', async (t) => {
  const r = await ta.app.inject({ method: 'POST', url: '/subscription-groups', headers: ta.root, payload: GROUP })
  t.equal(r.statusCode, 201, r.body)
  t.match(r.headers['content-type'], /^application\/json\b/)
})

t.test('malformed JSON → 400 malformed_json', async (t) => {
  const r = await ta.app.inject({
    method: 'POST',
    url: '/subscription-groups',
    headers: { ...ta.root, 'content-type': 'application/json' },
    payload: '{"name": "x",',
  })
  assertProblem(t, r, 400, 'malformed_json')
})

t.test('an empty JSON body → 400 malformed_json', async (t) => {
  const r = await ta.app.inject({
    method: 'POST',
    url: '/subscription-groups',
    headers: { ...ta.root, 'content-type': 'application/json' },
    payload: '',
  })
  assertProblem(t, r, 400, 'malformed_json')
})

t.test('text/plain → 415 unsupported_media_type', async (t) => {
  const r = await ta.app.inject({
    method: 'POST',
    url: '/subscription-groups',
    headers: { ...ta.root, 'content-type': 'text/plain' },
    payload: JSON.stringify(GROUP),
  })
  assertProblem(t, r, 415, 'unsupported_media_type')
})

t.test('a body over BODY_LIMIT → 413 body_too_large', async (t) => {
  const payload = JSON.stringify({ ...GROUP, name: 'x'.repeat(4096) })
  t.ok(payload.length > 2048)
  const r = await ta.app.inject({
    method: 'POST',
    url: '/subscription-groups',
    headers: { ...ta.root, 'content-type': 'application/json' },
    payload,
  })
  assertProblem(t, r, 413, 'body_too_large')
})

t.test('an unknown field → 400 validation_failed pointing at it', async (t) => {
  const count = async () => (await ta.app.inject({ method: 'GET', url: '/subscription-groups', headers: ta.root })).json().subscription_groups.length
  const before = await count()
  const r = await ta.app.inject({ method: 'POST', url: '/subscription-groups', headers: ta.root, payload: { ...GROUP, colour: 'red' } })
  const body = assertProblem(t, r, 400, 'validation_failed')
  t.ok(Array.isArray(body.errors))
  t.ok(
    body.errors.some((e: { pointer: string; code: string }) => e.pointer === '/body/colour' && e.code === 'additionalProperties'),
    JSON.stringify(body.errors),
  )
  // Rejected, not stripped: nothing was created.
  t.equal(await count(), before, 'no group was created')
})

t.test('a missing required field → 400 validation_failed pointing at it', async (t) => {
  const { channel: _omit, ...withoutChannel } = GROUP
  const r = await ta.app.inject({ method: 'POST', url: '/subscription-groups', headers: ta.root, payload: withoutChannel })
  const body = assertProblem(t, r, 400, 'validation_failed')
  t.ok(
    body.errors.some((e: { pointer: string; code: string }) => e.pointer === '/body/channel' && e.code === 'required'),
    JSON.stringify(body.errors),
  )
})

t.test('all schema errors are reported at once (allErrors)', async (t) => {
  const r = await ta.app.inject({ method: 'POST', url: '/subscription-groups', headers: ta.root, payload: { name: 'x', colour: 'red' } })
  const body = assertProblem(t, r, 400, 'validation_failed')
  const pointers = body.errors.map((e: { pointer: string }) => e.pointer)
  for (const p of ['/body/channel', '/body/category', '/body/colour']) t.ok(pointers.includes(p), `${p} in ${pointers}`)
})

t.test('an unknown route → 404 problem+json', async (t) => {
  const r = await ta.app.inject({ method: 'GET', url: '/no/such/route?x=1', headers: ta.root })
  assertProblem(t, r, 404, 'not_found', '/no/such/route')
})

t.test('x-request-id', async (t) => {
  const ids = new Set<string>()
  for (const r of [
    await ta.app.inject({ method: 'GET', url: '/healthz' }),
    await ta.app.inject({ method: 'GET', url: '/nope' }),
    await ta.app.inject({ method: 'POST', url: '/subscription-groups', headers: ta.root, payload: GROUP }),
    await ta.app.inject({ method: 'POST', url: '/subscription-groups', payload: GROUP }), // 401
  ]) {
    const id = r.headers['x-request-id']
    t.type(id, 'string', `set on a ${r.statusCode}`)
    ids.add(id as string)
  }
  t.equal(ids.size, 4, 'generated ids are distinct')

  const echoed = await ta.app.inject({ method: 'POST', url: '/subscription-groups', headers: { ...ta.root, 'x-request-id': 'abc-123' }, payload: { bad: 1 } })
  t.equal(echoed.statusCode, 400)
  t.equal(echoed.headers['x-request-id'], 'abc-123', 'a caller-supplied id is echoed back')

  const insane = await ta.app.inject({ method: 'GET', url: '/healthz', headers: { 'x-request-id': 'has spaces and <html>' } })
  t.not(insane.headers['x-request-id'], 'has spaces and <html>', 'an unsafe id is replaced')
  t.match(insane.headers['x-request-id'], /^[0-9a-f-]{36}$/)
})
