/**
 * A lost database connection (failover, restart, pg_terminate_backend) must never kill the process:
 * the statement in flight fails, the broken client leaves the pool, and the next request is served
 * on a new connection. node-postgres emits 'error' on a client whose socket dies; a checked-out
 * client with no listener turns that into an uncaught exception (which fails this test file).
 */
import t from 'tap'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as delay } from 'node:timers/promises'
import { buildTestApp, newGroup, newWorkspace } from '../helpers/build-app.js'
import { adminUrl, withClient } from '../helpers/db.js'

/** Terminates the backends of one database (this test's own; the shared server stays up). */
async function terminateBackendsOf(database: string): Promise<number> {
  return withClient(adminUrl, async (c) => {
    const r = await c.query<{ n: number }>(
      'SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
      [database],
    )
    return r.rows[0]!.n
  })
}

const dbName = (url: string) => new URL(url).pathname.slice(1)

t.test('a transaction whose connection is terminated fails; the pool serves the next one', async (t) => {
  const ta = await buildTestApp(t)
  const { sql } = ta.app.database
  const held = sql.tx(async (tx) => {
    await tx.query('SELECT 1')
    t.ok((await terminateBackendsOf(dbName(ta.url))) >= 1, 'the held connection was terminated')
    // Give the socket's end time to arrive while the client is checked out and idle.
    await delay(300)
    await tx.query('SELECT 2')
  })
  await t.rejects(held, 'the transaction fails')
  const rows = await sql.query<{ n: number }>('SELECT 3 AS n')
  t.equal(rows[0]!.n, 3, 'a new connection answers')
  const r = await ta.app.inject({ method: 'GET', url: '/readyz' })
  t.equal(r.statusCode, 200)
})

t.test('an upload whose connection is terminated mid-stream: 503, and the app serves the next request', async (t) => {
  const ta = await buildTestApp(t)
  const ws = await newWorkspace(ta)
  const G = await newGroup(ta, ws.auth)
  await ta.app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = ta.app.server.address() as AddressInfo

  const answer = new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method: 'POST', path: `/imports?subscription_group_id=${G}&subscription_state=subscribed`, headers: { ...ws.auth, 'content-type': 'text/csv' } },
      (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (c: string) => (body += c))
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }))
      },
    )
    req.on('error', reject)
    req.write('phone\n')
    for (let i = 0; i < 200; i++) req.write(`+1415555${String(1000 + i).padStart(4, '0')}\n`)
    // The upload's transaction (COPY) is open now; kill its connection, then finish the file.
    void (async () => {
      for (let i = 0; i < 50; i++) {
        await delay(100)
        const idle = await withClient(adminUrl, (c) =>
          c.query("SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'COPY%'", [dbName(ta.url)]),
        )
        if (idle.rowCount) break
      }
      await terminateBackendsOf(dbName(ta.url))
      await delay(300)
      for (let i = 0; i < 200; i++) req.write(`+1415556${String(1000 + i).padStart(4, '0')}\n`)
      req.end()
    })()
  })
  const res = await answer
  t.equal(res.status, 503, 'the lost database answers 503')
  t.ok(res.headers['retry-after'], 'with Retry-After')
  t.match(JSON.parse(res.body), { code: 'database_unavailable' })

  const next = await fetch(`http://127.0.0.1:${port}/consent/check`, {
    method: 'POST',
    headers: { ...ws.auth, 'content-type': 'application/json' },
    body: JSON.stringify({ subscription_group_id: G, phones: ['+14155551000'] }),
  })
  t.equal(next.status, 200, 'the next request is served')
  const imports = await ta.app.inject({ method: 'GET', url: '/imports', headers: ws.auth })
  t.equal(imports.json().data?.length ?? imports.json().imports?.length ?? 0, 0, 'nothing of the interrupted upload was stored')
})
