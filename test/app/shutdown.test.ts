/**
 * Graceful shutdown of this app (a preClose flag checked in onRequest, and Fastify's default
 * forceCloseConnections 'idle'): once app.close() begins
 *   - the listening socket is closed: a new connection is refused;
 *   - idle keep-alive connections are closed by the server, without a response;
 *   - a request already in flight finishes normally, and the database is still open for it;
 *   - a new request arriving on a connection that is still open (busy) gets a 503 problem
 *     (code shutting_down, with x-request-id) and Connection: close;
 *   - close() resolves only after the in-flight request has finished.
 * Raw sockets, so which connection carries which request is exact. No timings: the slow handler
 * waits on a gate the test opens.
 */
import t from 'tap'
import { connect, type Socket } from 'node:net'
import { once } from 'node:events'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config/env.js'
import { freshDatabase, withClient } from '../helpers/db.js'
import { buildTestApp, newGroup, newWorkspace } from '../helpers/build-app.js'

interface RawResponse {
  status: number
  headers: Record<string, string>
  body: string
}

/** Splits what arrived on one HTTP/1.1 connection into responses (Content-Length framing only). */
function parseResponses(raw: string): RawResponse[] {
  const out: RawResponse[] = []
  let rest = raw
  while (rest.length > 0) {
    const end = rest.indexOf('\r\n\r\n')
    if (end < 0) throw new Error(`incomplete response head: ${JSON.stringify(rest)}`)
    const [statusLine, ...lines] = rest.slice(0, end).split('\r\n')
    const headers: Record<string, string> = {}
    for (const l of lines) {
      const i = l.indexOf(':')
      headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim()
    }
    const length = Number(headers['content-length'])
    if (!Number.isInteger(length)) throw new Error(`no content-length: ${statusLine}`)
    out.push({ status: Number(statusLine!.split(' ')[1]), headers, body: rest.slice(end + 4, end + 4 + length) })
    rest = rest.slice(end + 4 + length)
  }
  return out
}

/** A raw connection that records everything it receives until it closes. */
function open(port: number) {
  const socket: Socket = connect(port, '127.0.0.1')
  socket.setEncoding('utf8')
  let received = ''
  socket.on('data', (d: string) => (received += d))
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()))
  socket.on('error', () => {}) // reported through `closed` and the assertions
  return {
    socket,
    closed,
    received: () => received,
    request: (path: string) => socket.write(`GET ${path} HTTP/1.1\r\nHost: test\r\nConnection: keep-alive\r\n\r\n`),
  }
}

t.test('graceful shutdown: in-flight finishes, busy connections get 503, idle ones close, new ones are refused', async (t) => {
  const { url } = await freshDatabase(t)
  const app = await buildApp(loadConfig({ DATABASE_URL: url, LOG_LEVEL: 'silent', DATABASE_POOL_MAX: '4' }))
  t.teardown(() => app.close())

  let entered!: () => void
  const slowEntered = new Promise<void>((r) => (entered = r))
  let release!: () => void
  const gate = new Promise<void>((r) => (release = r))
  app.get('/test-slow', async () => {
    entered()
    await gate
    // The database must still be open for a request that was in flight when close() began.
    const [row] = await app.database.sql.query<{ one: number }>('SELECT 1 AS one')
    return { ok: true, db: row?.one }
  })

  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }

  // An idle keep-alive connection: one request answered, then nothing.
  const idle = open(port)
  idle.request('/healthz')
  while (!idle.received().includes('{"status":"ok"}')) await once(idle.socket, 'data')
  t.match(idle.received(), /^HTTP\/1\.1 200 /)
  t.match(idle.received(), /connection: keep-alive/i, 'the server offered keep-alive')
  const idleBefore = idle.received()

  // A busy connection: its request is inside the handler.
  const busy = open(port)
  busy.request('/test-slow')
  await slowEntered

  let closeResolved = false
  const closing = app.close().then(() => {
    closeResolved = true
  })
  // close() has begun once the listening socket is gone (a state, not a delay).
  while (app.server.listening) await new Promise((r) => setImmediate(r))

  // A new connection is refused.
  const refused = connect(port, '127.0.0.1')
  const [err] = (await once(refused, 'error')) as [NodeJS.ErrnoException]
  t.equal(err.code, 'ECONNREFUSED', 'a new connection after close() is refused')

  // The idle keep-alive connection is closed by the server, with nothing more sent on it.
  await idle.closed
  t.equal(idle.received(), idleBefore, 'the idle connection got no further bytes before closing')

  // A new request on the busy, already-open connection (pipelined behind the in-flight one). Wait
  // until the HTTP server has parsed it, so it is certainly handled while the slow one is in flight.
  const lateArrived = once(app.server, 'request')
  busy.request('/healthz')
  const [lateReq] = (await lateArrived) as [{ url: string }]
  t.equal(lateReq.url, '/healthz')

  t.notOk(closeResolved, 'close() waits for the in-flight request')
  release()
  await busy.closed
  const responses = parseResponses(busy.received())
  t.equal(responses.length, 2, busy.received())
  const [slow, late] = responses
  t.equal(slow!.status, 200, 'the in-flight request completes')
  t.same(JSON.parse(slow!.body), { ok: true, db: 1 }, 'with the database still open')
  t.equal(late!.status, 503, 'a new request on an open connection during close gets 503')
  t.equal(late!.headers.connection?.toLowerCase(), 'close', 'and the connection is closed after it')
  t.match(late!.headers['content-type'], /^application\/problem\+json/, 'a problem document')
  t.ok(late!.headers['x-request-id'], 'with x-request-id')
  t.equal(JSON.parse(late!.body).code, 'shutting_down')

  await closing
  t.ok(closeResolved)
})

t.test('shutdown: work waiting in the group-commit queues is finished before the database closes', async (t) => {
  // One transaction or statement at a time, one item each: the queues hold most of what is sent.
  const ta = await buildTestApp(t, {
    GROUP_COMMIT_CONCURRENCY: '1',
    GROUP_COMMIT_MAX_ITEMS: '1',
    GROUP_COMMIT_LARGE_CONCURRENCY: '1',
    CHECK_GROUP_CONCURRENCY: '1',
    CHECK_GROUP_MAX_ITEMS: '1',
  })
  const { app, url } = ta
  const ws = await newWorkspace(ta)
  const group = await newGroup(ta, ws.auth)
  const phone = (n: number) => `+1415555${String(1000 + n)}`
  const ctx = { workspaceId: ws.id, actor: 'test' }
  const consent = (n: number) => ({ identities: [{ type: 'phone' as const, value: phone(n) }], subscriptionGroupId: group, state: 'subscribed', source: 'api' as const })
  // Units of one item (the lane), and of two (larger than GROUP_COMMIT_MAX_ITEMS: the larger units' lane).
  const units = Array.from({ length: 12 }, (_, n) =>
    app.appendGroups.submit({ ctx, items: n % 3 === 2 ? [consent(n), consent(100 + n)] : [consent(n)], finish: async (_tx, results) => results.map((r) => r.status) }),
  )
  const checks = Array.from({ length: 8 }, (_, n) => app.checks.check(ws.id, { subscription_group_id: group }, [{ type: 'phone', value: phone(n) }]))
  const inserts = Array.from({ length: 8 }, (_, n) => app.whatsapp.inbox.insert(JSON.stringify({ n }), `sha-${n}`, [], 'failed', 'test row'))
  // close() at once, while all of them wait (a request whose client went away is no longer waited
  // for by the server's close: only its queue entry stands between it and a closed pool).
  const closed = app.close()
  const [u, c, i] = await Promise.all([Promise.allSettled(units), Promise.allSettled(checks), Promise.allSettled(inserts)])
  await closed
  const failures = [...u, ...c, ...i].filter((s) => s.status === 'rejected').map((s) => String((s as PromiseRejectedResult).reason))
  t.same(failures, [], 'nothing queued failed on a closed pool')
  t.same(
    u.map((s) => (s as PromiseFulfilledResult<string[]>).value),
    Array.from({ length: 12 }, (_, n) => (n % 3 === 2 ? ['applied', 'applied'] : ['applied'])),
  )
  t.equal(c.length, 8)
  await withClient(url, async (db) => {
    const events = await db.query(`SELECT count(*)::int AS n FROM consent_events WHERE workspace_id = $1 AND type = 'consent'`, [ws.id])
    t.equal(events.rows[0].n, 16, 'every queued unit is in the ledger')
    const inbox = await db.query(`SELECT count(*)::int AS n FROM webhook_inbox WHERE last_error = 'test row'`)
    t.equal(inbox.rows[0].n, 8, 'every queued inbox payload was committed')
  })
})
