/**
 * Redis down: the rate limiter fails open. Requests keep being served (never 5xx), the pre-send
 * check answers from PostgreSQL, /readyz stays 200 and says `rate_limit: degraded`, the metrics
 * move; when Redis returns the shared limit is enforced again. See docs/operations.md.
 */
import t from 'tap'
import { setTimeout as delay } from 'node:timers/promises'
import { buildTestApp, newGroup } from '../helpers/build-app.js'
import { startPrivateRedis } from '../helpers/private-redis.js'

function metric(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `))
  return line === undefined ? NaN : Number(line.split(' ')[1])
}

t.test('Redis stopped mid-test: served without limits, readiness and metrics say so, limits return with Redis', async (t) => {
  const redis = await startPrivateRedis(t)
  const ta = await buildTestApp(t, { REDIS_URL: redis.url, RATE_LIMIT_MAX: '60', RATE_LIMIT_WINDOW_MS: '60000' })
  const { app, root } = ta
  const G = await newGroup(ta, root)
  const metrics = async () => (await app.inject({ url: '/metrics' })).body
  const ready = await app.inject({ url: '/readyz' })
  t.equal(ready.statusCode, 200)
  t.equal(ready.json().rate_limit, 'ok')
  t.equal(metric(await metrics(), 'consent_rate_limit_degraded'), 0)
  const errorsBefore = metric(await metrics(), 'consent_rate_limit_store_errors_total')
  t.equal(errorsBefore, 0)

  await redis.stop()

  const codes: number[] = []
  for (let i = 0; i < 40; i++) {
    const r =
      i % 2 === 0
        ? await app.inject({ method: 'GET', url: '/subscription-groups', headers: root })
        : await app.inject({ method: 'POST', url: '/consent/check', headers: root, payload: { subscription_group_id: G, phones: ['+14155550100'] } })
    codes.push(r.statusCode)
  }
  t.same([...new Set(codes)], [200], '40 rate-limited requests with Redis down are all served')

  const degraded = await app.inject({ url: '/readyz' })
  t.equal(degraded.statusCode, 200, 'still ready: the instance serves everything')
  t.same(degraded.json(), { status: 'ready', database: 'ok', migrations: 'current', rate_limit: 'degraded' })
  const text = await metrics()
  t.equal(metric(text, 'consent_rate_limit_degraded'), 1)
  t.ok(metric(text, 'consent_rate_limit_store_errors_total') >= 40, 'every unlimited request is counted')

  await redis.start()
  const until = Date.now() + 30_000
  while ((await app.inject({ url: '/readyz' })).json().rate_limit !== 'ok') {
    if (Date.now() > until) throw new Error('rate_limit did not return to ok')
    await delay(100)
  }
  t.equal(metric(await metrics(), 'consent_rate_limit_degraded'), 0)
  // The restarted Redis counts from zero: 60 allowed, then 429.
  const after: number[] = []
  for (let i = 0; i < 61; i++) after.push((await app.inject({ method: 'GET', url: '/subscription-groups', headers: root })).statusCode)
  t.same(after.slice(0, 60), Array(60).fill(200))
  t.equal(after[60], 429, 'the shared limit is enforced again')
})
