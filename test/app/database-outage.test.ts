/**
 * A database outage (server stopped, then started again) on a private cluster: meanwhile every
 * request that needs the database answers 503 with Retry-After (problem+json, Braze's shape on
 * Braze routes) in bounded time, /readyz answers 503 and /healthz 200; once the database is back
 * the same app (never restarted) serves again, and its background loops (the import worker)
 * resume by themselves. See docs/operations.md.
 */
import t from 'tap'
import { setTimeout as delay } from 'node:timers/promises'
import { buildApp, type App } from '../../src/app.js'
import { loadConfig } from '../../src/config/env.js'
import { migratePostgres } from '../../src/db/migrate.js'
import { startPrivateCluster } from '../helpers/private-cluster.js'
import { ROOT_KEY } from '../helpers/build-app.js'

const root = { authorization: `Bearer ${ROOT_KEY}` }

async function waitFor(what: string, fn: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs
  while (!(await fn())) {
    if (Date.now() > until) throw new Error(`${what}: not within ${timeoutMs} ms`)
    await delay(100)
  }
}

t.test('stop the database: 503 with Retry-After; start it again: the same app serves again', async (t) => {
  const cluster = await startPrivateCluster(t)
  await migratePostgres(cluster.url())
  const config = loadConfig({
    DATABASE_URL: cluster.url(),
    CONSENT_ADMIN_KEY: ROOT_KEY,
    LOG_LEVEL: 'silent',
    DATABASE_POOL_MAX: '6',
    DATABASE_CONNECT_TIMEOUT_MS: '1000',
  })
  const app: App = await buildApp(config)
  t.teardown(() => app.close())
  await app.ready()

  const group = await app.inject({ method: 'POST', url: '/subscription-groups', headers: root, payload: { name: 'Marketing', channel: 'whatsapp', category: 'marketing' } })
  t.equal(group.statusCode, 201)
  const G = group.json().id as string
  const write = () =>
    app.inject({ method: 'POST', url: '/consent/events', headers: root, payload: { events: [{ phone: '+14155550100', subscription_group_id: G, state: 'subscribed' }] } })
  const check = () => app.inject({ method: 'POST', url: '/consent/check', headers: root, payload: { subscription_group_id: G, phones: ['+14155550100'] } })
  const track = () =>
    app.inject({
      method: 'POST',
      url: '/users/track',
      headers: root,
      payload: { attributes: [{ external_id: 'u1', phone: '+14155550101', subscription_groups: [{ subscription_group_id: G, subscription_state: 'subscribed' }] }] },
    })
  t.equal((await write()).statusCode, 200)
  t.equal((await check()).statusCode, 200)

  await cluster.stop('immediate')

  for (const [name, send] of [['POST /consent/events', write], ['POST /consent/check', check]] as const) {
    const r = await send()
    t.equal(r.statusCode, 503, `${name}: 503`)
    t.equal(r.headers['retry-after'], '5', `${name}: Retry-After`)
    t.match(r.headers['content-type'], /application\/problem\+json/)
    t.match(r.json(), { status: 503, code: 'database_unavailable' })
  }
  const braze = await track()
  t.equal(braze.statusCode, 503, 'POST /users/track: 503')
  t.ok(braze.headers['retry-after'])
  t.same(Object.keys(braze.json()), ['message'], "Braze's shape")
  const ready = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(ready.statusCode, 503)
  t.match(ready.json(), { database: 'unreachable' })
  t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200)

  // A few seconds of outage: the import worker's polls fail meanwhile.
  await delay(2500)
  await cluster.start()

  await waitFor('/consent/check answers again', async () => (await check()).statusCode === 200)
  t.equal((await write()).statusCode, 200, 'writes are served again')
  t.equal((await track()).statusCode, 201, 'Braze writes too')
  t.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200)

  const up = await app.inject({ method: 'POST', url: `/imports?subscription_group_id=${G}&subscription_state=subscribed`, headers: { ...root, 'content-type': 'text/csv' }, payload: 'phone\n+14155550102\n' })
  t.equal(up.statusCode, 202)
  const id = up.json().id as string
  await waitFor('the import worker completes an upload after the outage', async () => {
    const r = await app.inject({ method: 'GET', url: `/imports/${id}`, headers: root })
    return r.json().status === 'completed'
  })
  t.pass('the import worker resumed by itself')
})
