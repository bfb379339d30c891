/** Operations routes: liveness, readiness (database + migrations) and Prometheus metrics. */
import t from 'tap'
import { buildTestApp } from '../helpers/build-app.js'
import { DEFAULT_WORKSPACE_ID } from '../../src/auth/api-keys.js'

t.test('GET /healthz → 200 ok, no key needed', async (t) => {
  const { app } = await buildTestApp(t)
  const r = await app.inject({ method: 'GET', url: '/healthz' })
  t.equal(r.statusCode, 200)
  t.same(r.json(), { status: 'ok' })
})

t.test('GET /readyz → 200 when the database answers and every migration is applied', async (t) => {
  const { app } = await buildTestApp(t)
  const r = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(r.statusCode, 200, r.body)
  t.same(r.json(), { status: 'ready', database: 'ok', migrations: 'current', rate_limit: 'local' })
})

t.test('GET /readyz → 503 migrations pending when the journal lacks a row', async (t) => {
  const { app } = await buildTestApp(t)
  // This test's own database; drizzle's journal is not a ledger table (no append-only trigger).
  const deleted = await app.database.sql.query(
    'DELETE FROM drizzle.__drizzle_migrations WHERE id = (SELECT max(id) FROM drizzle.__drizzle_migrations) RETURNING id',
  )
  t.equal(deleted.length, 1)
  const r = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(r.statusCode, 503, r.body)
  t.same(r.json(), { status: 'not_ready', database: 'ok', migrations: 'pending', rate_limit: 'local' })
})

t.test('GET /readyz → 503 database unreachable once the pool is gone', async (t) => {
  const { app } = await buildTestApp(t)
  // Stop the server side of every connection of this app: the pool reconnects, so end the pool itself.
  const pool = app.database.pool!
  t.ok(pool, 'a PostgreSQL pool')
  await pool.end()
  // close() would end the pool a second time; make it a no-op for this test's teardown.
  app.database.close = async () => {}
  const r = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(r.statusCode, 503, r.body)
  t.same(r.json(), { status: 'not_ready', database: 'unreachable', migrations: 'unknown', rate_limit: 'local' })
})

t.test('GET /metrics: requests by route, latency histogram, pool gauge, ledger appends by source', async (t) => {
  const ta = await buildTestApp(t)
  const { app, root } = ta
  t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200)
  await app.inject({ method: 'GET', url: '/no-such-route/123' })
  t.equal((await app.inject({ method: 'HEAD', url: '/healthz' })).statusCode, 200)

  const before = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(before.statusCode, 200)
  t.match(before.headers['content-type'], /^text\/plain/)
  t.match(before.body, /^http_requests_total\{method="GET",route="\/healthz",status="200"\} 1$/m)
  t.match(before.body, /^http_request_duration_seconds_bucket\{le="[^"]+",method="GET",route="\/healthz",status="200"\} \d+$/m)
  t.match(before.body, /^http_request_duration_seconds_count\{method="GET",route="\/healthz",status="200"\} 1$/m)
  t.match(before.body, /^db_pool_connections\{state="total"\} \d+$/m)
  t.match(before.body, /^db_pool_connections\{state="idle"\} \d+$/m)
  t.match(before.body, /^db_pool_connections\{state="waiting"\} 0$/m)
  // The route label is the pattern, never the raw URL (bounded cardinality).
  t.notMatch(before.body, 'no-such-route', 'a raw unmatched URL never becomes a label')
  t.match(before.body, /^http_requests_total\{method="GET",route="unmatched",status="404"\} 1$/m, 'a 404 counts under "unmatched"')
  t.match(before.body, /^http_requests_total\{method="HEAD",route="\/healthz",status="200"\} 1$/m, 'HEAD counts once, on its own')
  t.notMatch(before.body, /ledger_appends_total\{source="api"\}/, 'no api appends yet')

  const group = await app.inject({
    method: 'POST',
    url: '/subscription-groups',
    headers: root,
    payload: { name: 'Promotions', channel: 'whatsapp', category: 'marketing' },
  })
  t.equal(group.statusCode, 201, group.body)
  const ev = await app.inject({
    method: 'POST',
    url: '/consent/events',
    headers: root,
    payload: { events: [{ external_id: 'u1', subscription_group_id: group.json().id, state: 'subscribed' }] },
  })
  t.equal(ev.statusCode, 200, ev.body)
  t.equal(ev.json().applied, 1)

  const after = await app.inject({ method: 'GET', url: '/metrics' })
  t.match(after.body, /^ledger_appends_total\{source="api"\} 1$/m)
  t.match(after.body, /^http_requests_total\{method="POST",route="\/consent\/events",status="200"\} 1$/m)
  t.match(after.body, /^http_requests_total\{method="POST",route="\/subscription-groups",status="201"\} 1$/m)
  // The first /metrics scrape counted itself once it had answered.
  t.match(after.body, /^http_requests_total\{method="GET",route="\/metrics",status="200"\} 1$/m)

  // Appends inside a caller's transaction (a shared group commit, an Idempotency-Key request, an
  // import batch) count once it commits, and never when it rolls back.
  const apiAppends = async () => {
    const m = /^ledger_appends_total\{source="api"\} (\d+)$/m.exec((await app.inject({ method: 'GET', url: '/metrics' })).body)
    return Number(m?.[1] ?? 0)
  }
  const item = (id: string) => ({ identities: [{ type: 'external_id' as const, value: id }], subscriptionGroupId: group.json().id, state: 'subscribed' as const, source: 'api' as const })
  const ctx = { workspaceId: DEFAULT_WORKSPACE_ID, actor: 'test' }
  await t.rejects(
    app.database.sql.tx(async (tx) => {
      await app.ledger.append(tx, ctx, [item('u2')])
      throw new Error('the caller fails after the append')
    }),
  )
  t.equal(await apiAppends(), 1, 'a rolled-back append is not counted')
  await app.database.sql.tx(async (tx) => {
    await app.ledger.append(tx, ctx, [item('u3'), item('u4')])
    t.equal(await apiAppends(), 1, 'not counted before its transaction commits')
  })
  t.equal(await apiAppends(), 3, 'counted once committed')
})
