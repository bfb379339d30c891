/**
 * A crashed import loses and repeats nothing, at a CI-friendly size: the service is SIGKILLed in
 * the middle of a 6,000-row import
 * (24 batches of 250, IMPORT_BATCH_SIZE); a new process finishes it with exactly 6,000 applied rows,
 * every row in the ledger once. The row count is small on purpose: the property is about batch
 * boundaries, not volume, and this file shares a loaded CI machine with every other test file.
 * (scripts/import-kill-check.mjs runs the same check at 1,000,000 rows against the built service.)
 */
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { freshDatabase, withClient } from '../helpers/db.js'
import { ROOT_KEY } from '../helpers/build-app.js'
import { TS_CHILD_ARGS } from '../helpers/child.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const N = 6_000
const BATCH = 250
// Two service starts under the TypeScript loader on a shared machine dominate the time.
t.setTimeout(200_000)

async function freePort(): Promise<number> {
  const srv = createServer()
  srv.listen(0, '127.0.0.1')
  await once(srv, 'listening')
  const { port } = srv.address() as { port: number }
  srv.close()
  return port
}

function serve(databaseUrl: string, port: number): ChildProcess {
  const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: databaseUrl, PORT: String(port), HOST: '127.0.0.1', CONSENT_ADMIN_KEY: ROOT_KEY, LOG_LEVEL: 'silent', IMPORT_BATCH_SIZE: String(BATCH) }
  delete env.REDIS_URL
  return spawn(process.execPath, [...TS_CHILD_ARGS, 'src/cli.ts', 'serve'], { cwd: root, env, stdio: ['ignore', 'ignore', 'inherit'] })
}

async function ready(base: string) {
  // A deadline, not a count of tries: on a loaded machine starting the TypeScript child is slow.
  for (const until = Date.now() + 180_000; Date.now() < until; ) {
    try {
      if ((await fetch(`${base}/healthz`)).ok) return
    } catch {}
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error('the service did not start')
}

t.test('kill -9 during an import, restart: exactly N rows applied, none twice', async (t) => {
  const { url } = await freshDatabase(t)
  const auth = { authorization: `Bearer ${ROOT_KEY}` }
  const children: ChildProcess[] = []
  t.teardown(() => children.forEach((c) => c.exitCode === null && c.kill('SIGKILL')))

  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const started = Date.now()
  const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`
  children.push(serve(url, port))
  await ready(base)
  t.comment(`first service ready after ${elapsed()}`)

  const g = await fetch(`${base}/subscription-groups`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'Promotions', channel: 'whatsapp', category: 'marketing' }),
  })
  const group = ((await g.json()) as { id: string }).id
  const lines = ['phone,subscription_group_id,subscription_state,occurred_at,consent_text']
  for (let i = 0; i < N; i++) {
    lines.push(`+1415${String(4000000 + i).padStart(7, '0')},${group},${i % 7 ? 'subscribed' : 'unsubscribed'},2025-01-01T00:00:00Z,yes`)
  }
  const posted = await fetch(`${base}/imports`, { method: 'POST', headers: { ...auth, 'content-type': 'text/csv' }, body: `${lines.join('\n')}\n` })
  t.equal(posted.status, 202)
  const { id } = (await posted.json()) as { id: string }

  type Status = { status: string; rows_applied: number; rows_rejected: number; rows_duplicate: number; rows_total: number; rows_processed: number }
  const get = async (b: string) => (await (await fetch(`${b}/imports/${id}`, { headers: auth })).json()) as Status
  let seen: Status
  for (;;) {
    seen = await get(base)
    if (seen.rows_applied > 0 || seen.status === 'completed') break
    await new Promise((r) => setTimeout(r, 10))
  }
  t.ok(seen.rows_applied > 0 && seen.rows_applied < N, `killed mid-import (${seen.rows_applied} of ${N} applied)`)
  children[0]!.kill('SIGKILL')
  await once(children[0]!, 'exit')
  t.comment(`killed after ${elapsed()} with ${seen.rows_applied} rows applied`)

  const atCrash = await withClient(url, async (c) => (await c.query(`SELECT status, rows_applied FROM imports WHERE id = $1`, [id])).rows[0])
  t.equal(atCrash.status, 'running')
  t.ok(atCrash.rows_applied < N, `${atCrash.rows_applied} rows committed before the kill`)

  const port2 = await freePort()
  const base2 = `http://127.0.0.1:${port2}`
  children.push(serve(url, port2))
  await ready(base2)
  t.comment(`second service ready after ${elapsed()}`)
  let done: Status
  for (const until = Date.now() + 300_000; ; ) {
    done = await get(base2)
    if (done.status === 'completed' || done.status === 'failed') break
    if (Date.now() > until) throw new Error(`still ${done.status} after ${elapsed()}: ${JSON.stringify(done)}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  t.comment(`import completed after ${elapsed()}`)
  t.match(done, { status: 'completed', rows_total: N, rows_processed: N, rows_applied: N, rows_rejected: 0, rows_duplicate: 0 })

  const counts = await withClient(url, async (c) =>
    (
      await c.query(
        `SELECT (SELECT count(*)::int FROM consent_events WHERE actor = $1) AS events,
                (SELECT count(DISTINCT evidence->>'row')::int FROM consent_events WHERE actor = $1) AS distinct_rows,
                (SELECT count(*)::int FROM ledger_dedupe WHERE key LIKE $2) AS dedupe_keys,
                (SELECT count(*)::int FROM import_errors WHERE import_id = $3) AS errors`,
        [`import:${id}`, `import:${id}:%`, id],
      )
    ).rows[0],
  )
  t.same(counts, { events: N, distinct_rows: N, dedupe_keys: N, errors: 0 }, 'every row exactly once')
  children[1]!.kill('SIGTERM')
  await once(children[1]!, 'exit')
})
