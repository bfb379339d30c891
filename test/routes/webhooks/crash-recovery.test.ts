/**
 * `kill -9` after the inbox commit and before processing loses nothing.
 *
 * The real service runs as a child process (`src/cli.ts serve`, tap's own TypeScript loader) on a
 * fresh PostgreSQL database. To stop it exactly between the inbox commit and the processing, with
 * no test hook in the product, the test holds an ACCESS EXCLUSIVE lock on `whatsapp_numbers`:
 * storing the raw payload does not touch that table, processing does (it routes the payload to a
 * workspace). So the POST commits its inbox row and then waits on the lock. The test sees the
 * committed `pending` row and the waiting backend, SIGKILLs the service, ends its orphaned
 * database sessions (what PostgreSQL does by itself once it notices the dead client), releases the
 * lock and starts a new service: the startup sweep processes the payload before it listens.
 * No timings are asserted; the waits are bounded polls.
 */
import t from 'tap'
import pg from 'pg'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import { EnvSchema } from '../../../src/config/env.js'
import { freshDatabase } from '../../helpers/db.js'
import { ROOT_KEY } from '../../helpers/build-app.js'
import { FIXTURE_PNID, SECRET, textMessage } from '../../webhook/helpers.js'
import { sign } from '../../../src/webhook/signature.js'
import { TS_CHILD_ARGS } from '../../helpers/child.js'

const root = fileURLToPath(new URL('../../..', import.meta.url))
const cliPath = fileURLToPath(new URL('../../../src/cli.ts', import.meta.url))
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function inheritedEnv(): Record<string, string> {
  const configVars = new Set(Object.keys(EnvSchema.properties))
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !configVars.has(k)) out[k] = v
  return out
}

async function freePort(): Promise<number> {
  const s = createServer()
  s.listen(0, '127.0.0.1')
  await once(s, 'listening')
  const port = (s.address() as { port: number }).port
  s.close()
  await once(s, 'close')
  return port
}

interface Service {
  child: ChildProcess
  base: string
  stderr: () => string
}

async function startService(databaseUrl: string): Promise<Service> {
  const port = await freePort()
  const child = spawn(process.execPath, [...TS_CHILD_ARGS, cliPath, 'serve'], {
    cwd: root,
    env: {
      ...inheritedEnv(),
      DATABASE_URL: databaseUrl,
      PORT: String(port),
      HOST: '127.0.0.1',
      CONSENT_ADMIN_KEY: ROOT_KEY,
      WHATSAPP_APP_SECRETS: SECRET,
      DATABASE_POOL_MAX: '4',
      LOG_LEVEL: 'silent',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  const base = `http://127.0.0.1:${port}`
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`service exited (${child.exitCode}): ${stderr}`)
    try {
      const r = await fetch(`${base}/healthz`)
      if (r.ok) break
    } catch {
      // not listening yet
    }
    if (i > 600) throw new Error(`service did not start: ${stderr}`)
    await sleep(100)
  }
  return { child, base, stderr: () => stderr }
}

async function pollUntil<T>(what: string, fn: () => Promise<T | undefined | null | false>): Promise<T> {
  for (let i = 0; i < 600; i++) {
    const v = await fn()
    if (v) return v
    await sleep(50)
  }
  throw new Error(`timed out waiting for ${what}`)
}

t.test('kill -9 between the inbox commit and processing: the payload is processed at the next start', async (t) => {
  const { url, name } = await freshDatabase(t)
  const db = new pg.Client({ connectionString: url, application_name: 'crash-test-observer' })
  await db.connect()
  t.teardown(() => db.end())
  const locker = new pg.Client({ connectionString: url, application_name: 'crash-test-locker' })
  await locker.connect()
  t.teardown(() => locker.end())

  const first = await startService(url)
  t.teardown(() => void first.child.kill('SIGKILL'))
  const auth = { authorization: `Bearer ${ROOT_KEY}`, 'content-type': 'application/json' }
  const api = async (svc: Service, method: string, path: string, body?: unknown) => {
    const r = await fetch(`${svc.base}${path}`, { method, headers: auth, body: body === undefined ? undefined : JSON.stringify(body) })
    return { status: r.status, body: (await r.json()) as Record<string, unknown> }
  }
  t.equal((await api(first, 'POST', '/whatsapp/numbers', { phone_number_id: FIXTURE_PNID })).status, 201)
  const group = (await api(first, 'POST', '/subscription-groups', { name: 'promos', channel: 'whatsapp', category: 'marketing' })).body.id as string

  // Processing will block on this lock; storing the payload will not.
  await locker.query('BEGIN')
  await locker.query('LOCK TABLE whatsapp_numbers IN ACCESS EXCLUSIVE MODE')

  const raw = Buffer.from(textMessage('STOP', { id: 'crash', ts: 1750000000 }))
  const inFlight = fetch(`${first.base}/webhooks/whatsapp`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-hub-signature-256': sign(raw, SECRET) },
    body: raw,
  }).then(
    (r) => `answered ${r.status}`,
    () => 'connection lost',
  )

  const row = await pollUntil('the committed inbox row', async () => (await db.query<{ id: string; status: string }>(`SELECT id::text AS id, status FROM webhook_inbox`)).rows[0])
  t.equal(row.status, 'pending', 'the raw payload is committed, not processed')
  await pollUntil('the service to wait on the lock', async () =>
    (await db.query(`SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND application_name = 'consent-ledger' AND wait_event_type = 'Lock'`, [name])).rowCount,
  )

  first.child.kill('SIGKILL')
  await once(first.child, 'exit')
  t.equal(first.child.signalCode, 'SIGKILL')
  t.equal(await inFlight, 'connection lost', 'Meta never got an answer')
  // The dead process's sessions: PostgreSQL ends them once it notices; here, at once.
  await db.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'consent-ledger'`, [name])
  await locker.query('ROLLBACK')
  t.equal((await db.query(`SELECT status FROM webhook_inbox`)).rows[0].status, 'pending', 'still pending after the crash')
  t.equal((await db.query(`SELECT 1 FROM consent_events`)).rowCount, 0, 'nothing recorded yet')

  const second = await startService(url)
  t.teardown(async () => {
    if (second.child.exitCode === null) {
      second.child.kill('SIGTERM')
      await once(second.child, 'exit')
    }
  })
  // The startup sweep runs before the service listens: no waiting needed.
  const after = (await db.query<{ status: string; attempts: number }>(`SELECT status, attempts FROM webhook_inbox`)).rows
  t.same(after, [{ status: 'processed', attempts: 1 }], 'processed at start')
  const events = (await db.query<{ state: string; source: string; evidence: { inbox_id: string } }>(`SELECT state, source, evidence FROM consent_events WHERE type = 'consent'`)).rows
  t.match(events, [{ state: 'unsubscribed', source: 'inbound_keyword', evidence: { inbox_id: row.id } }])
  const check = await api(second, 'POST', '/consent/check', { subscription_group_id: group, phones: ['+16505551234'] })
  t.match((check.body.results as unknown[])[0], { state: 'unsubscribed', reason: 'opted_out' })

  // Meta redelivers what it never got an answer for: the new service appends nothing twice.
  const redelivered = await fetch(`${second.base}/webhooks/whatsapp`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-hub-signature-256': sign(raw, SECRET) },
    body: raw,
  })
  t.equal(redelivered.status, 200)
  t.equal((await db.query(`SELECT 1 FROM consent_events WHERE type = 'consent'`)).rowCount, 1, 'exactly once')
})
