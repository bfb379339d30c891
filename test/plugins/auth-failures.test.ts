/**
 * Failed authentications are limited per client address: past AUTH_FAILURE_MAX failures in
 * AUTH_FAILURE_WINDOW_MS an address gets 429 with Retry-After and no lookup, and a key that cannot
 * be valid (not `cl_<prefix>_<secret>`, not the root key) is refused without a database lookup.
 */
import t from 'tap'
import { buildTestApp } from '../helpers/build-app.js'

t.test('200 bad keys from one address: a few 401s, then 429 with Retry-After; few database lookups', async (t) => {
  const ta = await buildTestApp(t, { AUTH_FAILURE_MAX: '5', AUTH_FAILURE_WINDOW_MS: '60000' })
  const { app } = ta
  let lookups = 0
  const sql = app.database.sql
  const query = sql.query.bind(sql)
  sql.query = ((text: string, params?: unknown[], name?: string) => {
    if (text.includes('FROM api_keys')) lookups++
    return query(text, params, name)
  }) as typeof sql.query

  const codes: number[] = []
  let last
  for (let i = 0; i < 200; i++) {
    const key = `cl_abcdefghij${String(i % 100).padStart(2, '0')}_${'x'.repeat(30)}${i}`
    last = await app.inject({ method: 'GET', url: '/subscription-groups', headers: { authorization: `Bearer ${key}` }, remoteAddress: '10.0.0.1' })
    codes.push(last.statusCode)
  }
  t.same(codes.slice(0, 5), [401, 401, 401, 401, 401])
  t.same([...new Set(codes.slice(5))], [429], 'then 429')
  t.equal(last!.json().code, 'too_many_failed_authentications')
  t.ok(Number(last!.headers['retry-after']) > 0, 'Retry-After')
  t.ok(lookups <= 5, `at most one lookup per allowed failure (${lookups})`)

  // Braze routes answer in Braze's shape.
  const braze = await app.inject({ method: 'POST', url: '/users/track', headers: { authorization: 'Bearer cl_abcdefghij00_nope' }, payload: {}, remoteAddress: '10.0.0.1' })
  t.equal(braze.statusCode, 429)
  t.same(Object.keys(braze.json()), ['message'])

  // Another address is not affected, and a valid key works from it.
  const other = await app.inject({ method: 'GET', url: '/subscription-groups', headers: ta.root, remoteAddress: '10.0.0.2' })
  t.equal(other.statusCode, 200)
})

t.test('a key that cannot be valid is refused without a database lookup', async (t) => {
  const ta = await buildTestApp(t)
  const { app } = ta
  let lookups = 0
  const sql = app.database.sql
  const query = sql.query.bind(sql)
  sql.query = ((text: string, params?: unknown[], name?: string) => {
    if (text.includes('FROM api_keys')) lookups++
    return query(text, params, name)
  }) as typeof sql.query
  for (const key of ['not-a-key-at-all-but-quite-long-0123456789', 'cl_short', 'cl_ABCDEFGHIJKL_xxxxxxxxxxxxxxxxxxxxxxxx', 'x'.repeat(2000)]) {
    const r = await app.inject({ method: 'GET', url: '/subscription-groups', headers: { authorization: `Bearer ${key}` } })
    t.equal(r.statusCode, 401, key.slice(0, 40))
  }
  t.equal(lookups, 0, 'no lookup for impossible keys')
  // The root key (any shape) still works.
  t.equal((await app.inject({ method: 'GET', url: '/subscription-groups', headers: ta.root })).statusCode, 200)
})
