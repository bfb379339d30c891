#!/usr/bin/env node
/**
 * The import crash check at full size (CI runs the same at 6,000 rows in
 * test/import/kill.test.ts): the built service imports an N-row CSV, is SIGKILLed while the import
 * runs, restarts, and must finish with exactly N applied rows, each row in the ledger once.
 *
 *   npm run build && node scripts/import-kill-check.mjs
 *
 * Environment: KILL_CHECK_DATABASE_URL (admin URL, default postgres://postgres@127.0.0.1:5432/postgres;
 * a database is created and dropped), KILL_CHECK_ROWS (default 1,000,000), KILL_CHECK_KILLS (how many
 * times to kill, default 1), KILL_CHECK_UPLOAD_KILL=1 (also kill once in the middle of the upload:
 * nothing may be stored then). Exit code 0 when every check holds.
 */
import pg from 'pg'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createReadStream, createWriteStream, rmSync, statSync } from 'node:fs'
import { request } from 'node:http'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { migratePostgres } from '../dist/src/db/migrate.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const admin = process.env.KILL_CHECK_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
const N = Number(process.env.KILL_CHECK_ROWS ?? 1_000_000)
const KILLS = Number(process.env.KILL_CHECK_KILLS ?? 1)
const KEY = 'kill-check-root-key-0123456789abcdef'
const name = `cl_kill_check_${process.pid}`
const dbUrl = new URL(admin)
dbUrl.pathname = `/${name}`
const file = join(tmpdir(), `consent-kill-check-${process.pid}.csv`)
const auth = { authorization: `Bearer ${KEY}` }
const log = (m) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${m}`)

async function adminQuery(sql) {
  const c = new pg.Client({ connectionString: admin })
  await c.connect()
  try {
    return await c.query(sql)
  } finally {
    await c.end()
  }
}
async function dbQuery(sql, params) {
  const c = new pg.Client({ connectionString: dbUrl.toString() })
  await c.connect()
  try {
    return (await c.query(sql, params)).rows
  } finally {
    await c.end()
  }
}
async function freePort() {
  const srv = createServer()
  srv.listen(0, '127.0.0.1')
  await once(srv, 'listening')
  const { port } = srv.address()
  srv.close()
  return port
}

async function start() {
  const port = await freePort()
  const child = spawn(process.execPath, [join(root, 'dist/src/cli.js'), 'serve'], {
    cwd: root,
    env: { ...process.env, DATABASE_URL: dbUrl.toString(), CONSENT_ADMIN_KEY: KEY, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', RATE_LIMIT_MAX: '100000000' },
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  const base = `http://127.0.0.1:${port}`
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${base}/healthz`)).ok) break
    } catch {}
    if (i > 300) throw new Error('the service did not start')
    await new Promise((r) => setTimeout(r, 100))
  }
  return { child, base }
}
async function kill9(child) {
  child.kill('SIGKILL')
  await once(child, 'exit')
}

function post(base, onProgress) {
  const size = statSync(file).size
  return new Promise((resolve, reject) => {
    const req = request(`${base}/imports`, { method: 'POST', headers: { ...auth, 'content-type': 'text/csv', 'content-length': String(size) } }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d) => (body += d))
      res.on('end', () => (res.statusCode === 202 ? resolve(JSON.parse(body)) : reject(new Error(`${res.statusCode} ${body}`))))
    })
    req.on('error', reject)
    let sent = 0
    const rs = createReadStream(file, { highWaterMark: 1 << 20 })
    rs.on('data', (c) => onProgress?.((sent += c.length) / size))
    rs.pipe(req)
  })
}

const checks = []
const check = (ok, what) => {
  checks.push([ok, what])
  log(`${ok ? 'ok  ' : 'FAIL'} ${what}`)
}

await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
await adminQuery(`CREATE DATABASE ${name}`)
let svc
try {
  await migratePostgres(dbUrl.toString())
  svc = await start()
  const g = await (await fetch(`${svc.base}/subscription-groups`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'kill', channel: 'whatsapp', category: 'marketing' }) })).json()
  const out = createWriteStream(file)
  out.write('phone,subscription_group_id,subscription_state,occurred_at,method,consent_text,tier\n')
  let buf = ''
  for (let i = 0; i < N; i++) {
    buf += `+1415${String(2000000 + i).padStart(7, '0')},${g.id},${i % 9 ? 'subscribed' : 'unsubscribed'},2025-01-01T00:00:00Z,web_form,Yes,t${i % 5}\n`
    if (buf.length > 1 << 20) {
      if (!out.write(buf)) await once(out, 'drain')
      buf = ''
    }
  }
  out.end(buf)
  await once(out, 'finish')
  log(`generated ${N.toLocaleString()} rows (${(statSync(file).size / 2 ** 20).toFixed(0)} MiB)`)

  if (process.env.KILL_CHECK_UPLOAD_KILL === '1') {
    // A kill in the middle of the upload: unacknowledged, so nothing may remain.
    let killed = false
    await post(svc.base, (f) => {
      if (f > 0.5 && !killed) {
        killed = true
        svc.child.kill('SIGKILL')
      }
    }).then(
      () => check(false, 'an upload killed halfway must not be acknowledged'),
      () => {},
    )
    await once(svc.child, 'exit').catch(() => {})
    const [left] = await dbQuery(`SELECT (SELECT count(*)::int FROM imports) AS imports, (SELECT count(*)::int FROM import_rows) AS rows`)
    check(left.imports === 0 && left.rows === 0, `kill during the upload leaves nothing (imports ${left.imports}, staged rows ${left.rows})`)
    svc = await start()
  }

  const t0 = Date.now()
  const accepted = await post(svc.base)
  log(`upload acknowledged (202) after ${((Date.now() - t0) / 1000).toFixed(1)} s: import ${accepted.id}, ${accepted.rows_total.toLocaleString()} rows`)
  const status = async () => (await (await fetch(`${svc.base}/imports/${accepted.id}`, { headers: auth })).json())

  for (let k = 1; k <= KILLS; k++) {
    const target = Math.floor((N * k) / (KILLS + 1))
    for (;;) {
      const s = await status()
      if (s.rows_applied >= target || (s.status !== 'running' && s.status !== 'queued')) break
      await new Promise((r) => setTimeout(r, 200))
    }
    await kill9(svc.child)
    const [at] = await dbQuery(`SELECT status, rows_applied FROM imports WHERE id = $1`, [accepted.id])
    log(`kill -9 #${k}: the database holds ${at.rows_applied.toLocaleString()} applied rows, status ${at.status}`)
    check(at.status === 'running' && at.rows_applied < N, `kill #${k} happened mid-import`)
    svc = await start()
    log('restarted')
  }
  let s
  for (;;) {
    s = await status()
    if (s.status === 'completed' || s.status === 'failed') break
    await new Promise((r) => setTimeout(r, 1000))
  }
  log(`finished after ${((Date.now() - t0) / 1000).toFixed(0)} s: ${JSON.stringify({ status: s.status, rows_total: s.rows_total, rows_applied: s.rows_applied, rows_rejected: s.rows_rejected, rows_duplicate: s.rows_duplicate })}`)
  check(s.status === 'completed' && s.rows_total === N && s.rows_applied === N && s.rows_rejected === 0 && s.rows_duplicate === 0, `completed with exactly ${N.toLocaleString()} applied rows`)
  const [c] = await dbQuery(
    `SELECT (SELECT count(*)::int FROM consent_events WHERE actor = $1) AS events,
            (SELECT count(DISTINCT (evidence->>'row'))::int FROM consent_events WHERE actor = $1) AS distinct_rows,
            (SELECT count(*)::int FROM ledger_dedupe WHERE key LIKE $2) AS dedupe_keys`,
    [`import:${accepted.id}`, `import:${accepted.id}:%`],
  )
  check(c.events === N, `ledger events of the import: ${c.events.toLocaleString()}`)
  check(c.distinct_rows === N, `distinct rows among them: ${c.distinct_rows.toLocaleString()} (no row twice)`)
  check(c.dedupe_keys === N, `exactly-once keys: ${c.dedupe_keys.toLocaleString()}`)
} finally {
  if (svc?.child.exitCode === null) {
    svc.child.kill('SIGTERM')
    await once(svc.child, 'exit').catch(() => {})
  }
  await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  rmSync(file, { force: true })
}
const failed = checks.filter(([ok]) => !ok).length
log(failed === 0 ? `all ${checks.length} checks passed` : `${failed} of ${checks.length} checks FAILED`)
process.exit(failed === 0 ? 0 : 1)
