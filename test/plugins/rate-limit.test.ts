/** @fastify/rate-limit per API key, per-key override, and the shared Redis store. */
import t from 'tap'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config/env.js'
import { buildTestApp, ROOT_KEY } from '../helpers/build-app.js'

async function createKey(app: Awaited<ReturnType<typeof buildApp>>, body: object) {
  const r = await app.inject({ method: 'POST', url: '/api-keys', headers: { authorization: `Bearer ${ROOT_KEY}` }, payload: body })
  if (r.statusCode !== 201) throw new Error(r.body)
  return { authorization: `Bearer ${r.json().key}` }
}

t.test('limits per API key with x-ratelimit-* and retry-after on 429', async (t) => {
  const { app } = await buildTestApp(t, { RATE_LIMIT_MAX: '3', RATE_LIMIT_WINDOW_MS: '60000', RATE_LIMIT_HEADERS: 'always' })
  const k1 = await createKey(app, { name: 'k1', scopes: ['consent:read'] })
  const k2 = await createKey(app, { name: 'k2', scopes: ['consent:read'] })
  const get = (h: Record<string, string>) => app.inject({ method: 'GET', url: '/subscription-groups', headers: h })
  const ok = [await get(k1), await get(k1), await get(k1)]
  t.same(ok.map((r) => r.statusCode), [200, 200, 200])
  t.equal(ok[0]!.headers['x-ratelimit-limit'], '3')
  t.equal(ok[2]!.headers['x-ratelimit-remaining'], '0')
  const limited = await get(k1)
  t.equal(limited.statusCode, 429)
  t.match(limited.headers['content-type'], /problem\+json/)
  t.equal(limited.json().code, 'rate_limited')
  t.ok(Number(limited.headers['retry-after']) > 0, 'retry-after is set')
  t.ok(limited.headers['x-ratelimit-reset'] !== undefined)
  t.equal((await get(k2)).statusCode, 200, 'another key has its own budget')
  // More than the limit (3) from one address: operations routes are never limited.
  for (const url of ['/healthz', '/readyz', '/metrics']) {
    const answers = []
    for (let i = 0; i < 5; i++) answers.push(await app.inject({ url }))
    t.same(answers.map((r) => r.statusCode), [200, 200, 200, 200, 200], `${url} is never limited`)
    t.equal(answers[4]!.headers['x-ratelimit-limit'], undefined, `${url} carries no rate-limit headers`)
  }
  const verify = []
  for (let i = 0; i < 4; i++) verify.push((await app.inject({ url: '/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1' })).statusCode)
  t.equal(verify[3], 429, 'other public routes are limited by address')

  const big = await createKey(app, { name: 'big', scopes: ['consent:read'], rate_limit_max: 5 })
  const codes = []
  for (let i = 0; i < 6; i++) codes.push((await get(big)).statusCode)
  t.same(codes, [200, 200, 200, 200, 200, 429], 'a per-key override replaces the default')
})

t.test('by default x-ratelimit-* come only with the 429', async (t) => {
  const { app } = await buildTestApp(t, { RATE_LIMIT_MAX: '2', RATE_LIMIT_WINDOW_MS: '60000' })
  const k = await createKey(app, { name: 'k', scopes: ['consent:read'] })
  const get = () => app.inject({ method: 'GET', url: '/subscription-groups', headers: k })
  const ok = [await get(), await get()]
  t.same(ok.map((r) => r.statusCode), [200, 200])
  for (const h of ['x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset']) t.equal(ok[1]!.headers[h], undefined, `no ${h} below the limit`)
  const limited = await get()
  t.equal(limited.statusCode, 429)
  t.equal(limited.headers['x-ratelimit-limit'], '2')
  t.equal(limited.headers['x-ratelimit-remaining'], '0')
  t.ok(Number(limited.headers['x-ratelimit-reset']) > 0, 'x-ratelimit-reset on the 429')
  t.ok(Number(limited.headers['retry-after']) > 0, 'retry-after on the 429')
})

t.test('with REDIS_URL, instances share one limit', async (t) => {
  const a = await buildTestApp(t, { RATE_LIMIT_MAX: '3', REDIS_URL: 'redis://127.0.0.1:6379' })
  // A second instance on the same database and Redis.
  const b = await buildApp(loadConfig({ DATABASE_URL: a.url, CONSENT_ADMIN_KEY: ROOT_KEY, LOG_LEVEL: 'silent', RATE_LIMIT_MAX: '3', REDIS_URL: 'redis://127.0.0.1:6379' }))
  t.teardown(() => b.close())
  const k = await createKey(a.app, { name: 'shared', scopes: ['consent:read'] })
  const get = (app: typeof b) => app.inject({ method: 'GET', url: '/subscription-groups', headers: k })
  const codes = [(await get(a.app)).statusCode, (await get(b)).statusCode, (await get(a.app)).statusCode, (await get(b)).statusCode]
  t.same(codes, [200, 200, 200, 429], 'the fourth request is limited whichever instance gets it')
})
