/**
 * Redis (the shared rate-limit store) killed under load, then started again. The documented
 * degraded behaviour (docs/operations.md): rate limiting fails open, so every rate-limited route is
 * still served from PostgreSQL (no 5xx, no 503: the instance can serve everything), /readyz stays
 * 200 and says `rate_limit: degraded`, and once Redis is back the shared limit is enforced again
 * without a restart. A key with a limit of 3 requests shows the limit: enforced before (429 on the
 * 4th), not enforced during the outage, enforced again after.
 */
import t from 'tap'
import { checkLedger, Load, tally } from './load.js'
import { sleep } from './processes.js'
import { api, AUTH, DATABASE, figures, startStack } from './stack.js'

const OUTAGE_MS = 6_000
t.setTimeout(180_000)

t.test('Redis down under load: rate-limited routes still served, readiness says degraded, limits back after', async (t) => {
  const { cluster, service, group, redis } = await startStack(t, 'redis', { redis: true })
  const base = service.base
  const limited = { authorization: `Bearer ${((await api(base, 'POST', '/api-keys', { name: 'limited', scopes: ['consent:read'], rate_limit_max: 3 })) as { key: string }).key}` }
  const check = async () => (await fetch(`${base}/consent/check?subscription_group_id=${group}&phone=%2B14155550100`, { headers: limited })).status
  const burst = async (n: number) => {
    const out: number[] = []
    for (let i = 0; i < n; i++) out.push(await check())
    return out
  }
  const readyz = async () => {
    const r = await fetch(`${base}/readyz`)
    return { status: r.status, body: (await r.json()) as { rate_limit?: string } }
  }

  t.match(await readyz(), { status: 200, body: { rate_limit: 'ok' } }, 'before: ready, shared limit ok')
  t.same(await burst(4), [200, 200, 200, 429], 'before: the limit of 3 is enforced')

  const load = new Load(base, AUTH, group, { writers: 6, readers: 1, prefix: 'redis' }).start()
  t.teardown(() => load.stop())
  await sleep(1_500)

  const from = Date.now()
  await redis!.kill()
  let degradedAt: number | undefined
  const readies: { status: number; rate_limit?: string }[] = []
  const during: number[] = []
  while (Date.now() - from < OUTAGE_MS) {
    const r = await readyz()
    readies.push({ status: r.status, rate_limit: r.body.rate_limit })
    if (r.body.rate_limit === 'degraded') degradedAt ??= Date.now()
    during.push(await check())
    await sleep(100)
  }
  const to = Date.now()
  await redis!.start()
  const back = Date.now()
  let recoveredAt: number | undefined
  for (let i = 0; i < 300 && recoveredAt === undefined; i++) {
    if ((await readyz()).body.rate_limit === 'ok') recoveredAt = Date.now()
    else await sleep(100)
  }
  await sleep(1_000)
  await load.stop()

  const faultAnswers = tally(load.between(from, to))
  const ledger = await checkLedger(cluster, DATABASE, load)
  t.ok(service.alive, 'the service process stayed up')
  t.equal(faultAnswers.fiveXX + faultAnswers.s503, 0, `no 5xx (nor 503) while Redis was down (statuses ${faultAnswers.statuses.join(', ')})`)
  t.ok(faultAnswers.ok > 0, `rate-limited routes were served while Redis was down (${faultAnswers.ok} answers 2xx)`)
  t.ok(degradedAt !== undefined, '/readyz reported rate_limit: degraded during the outage')
  t.same(
    readies.filter((r) => r.status !== 200),
    [],
    '/readyz stayed 200 throughout (the instance can serve everything)',
  )
  t.same(
    during.filter((s) => s !== 200),
    [],
    `during: the limited key was served every time (${during.length} checks, fail open)`,
  )
  t.ok(recoveredAt !== undefined, '/readyz says rate_limit: ok again once Redis is back')
  const after = await burst(4)
  t.same(after, [200, 200, 200, 429], 'after: the limit of 3 is enforced again, without a restart')
  t.equal(ledger.lost, 0, 'no acknowledged write lost')
  t.equal(ledger.duplicated, 0, 'no key appended twice')
  t.same(load.unexpected, [], 'no unexpected answer')
  figures(t, 'redis-down', [
    ['acknowledged', ledger.acknowledged],
    ['lost', ledger.lost],
    ['duplicated', ledger.duplicated],
    ['5xx', faultAnswers.fiveXX],
    ['503', faultAnswers.s503],
    ['served_2xx', faultAnswers.ok],
    ['readyz', `${[...new Set(readies.map((r) => r.status))].join('/')}:${[...new Set(readies.map((r) => r.rate_limit))].join('/')}`],
    ['degraded_after_ms', degradedAt === undefined ? -1 : degradedAt - from],
    ['recovery_ms', recoveredAt === undefined ? -1 : recoveredAt - back],
  ])
  await service.sigterm()
})
