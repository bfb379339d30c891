#!/usr/bin/env node
/**
 * Bulk import benchmark, end to end over HTTP, against the built service (`dist/`) running as a
 * child process on PostgreSQL, with a baseline measured in the same run on the same file:
 *
 *  import       POST /imports of an N-row CSV (streamed from disk), then GET /imports/{id} until
 *               completed: upload (parse + stage + commit) rows/s, processing rows/s, end-to-end rows/s.
 *  baseline     COPY of the same file (FORMAT csv, HEADER) into a bare table of text columns: what
 *               PostgreSQL alone costs to take the bytes (no validation, no ledger).
 *  memory       the server's RSS sampled every 100 ms (/proc/<pid>/status VmRSS) and its peak (VmHWM).
 *
 * Run: `npm run build && node bench/import.mjs`. Environment:
 *  BENCH_DATABASE_URL   admin URL (default postgres://postgres@127.0.0.1:5432/postgres); a database
 *                       is created and dropped
 *  BENCH_ROWS           rows (default 1,000,000)
 *  BENCH_TEXT_BYTES     length of each row's consent_text (default 20); ~1,000 with BENCH_ROWS=1000000
 *                       and BENCH_EXTRA_COLUMNS=4 gives a ~1 GiB file
 *  BENCH_EXTRA_COLUMNS  extra (attribute) columns per row (default 1)
 *  BENCH_SKIP_BASELINE  1: no raw COPY
 *  BENCH_FILE           reuse/keep this CSV path instead of a temporary file
 *  BENCH_SERVER_NODE_ARGS  node flags for the service (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`)
 *
 * The ceiling (ledgerWriteCeiling below) writes the same rows straight into copies of the ledger's
 * five tables with their indexes, set-based, and nothing else: no import into this data model can
 * go faster, which is why the 20%-of-COPY target stays out of reach (docs/performance.md).
 */
import pg from 'pg'
import { spawn } from 'node:child_process'
import { closeSync, createReadStream, createWriteStream, existsSync, openSync, readFileSync, readSync, statSync, rmSync } from 'node:fs'
import { once } from 'node:events'
import { pipeline } from 'node:stream/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createServer } from 'node:net'
import copyStreams from 'pg-copy-streams'
import { migratePostgres } from '../dist/src/db/migrate.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const admin = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000)
const TEXT_BYTES = Number(process.env.BENCH_TEXT_BYTES ?? 20)
const EXTRA = Number(process.env.BENCH_EXTRA_COLUMNS ?? 1)
const KEY = 'bench-root-key-0123456789abcdef'
const name = `cl_bench_import_${process.pid}`
const dbUrl = new URL(admin)
dbUrl.pathname = `/${name}`
const file = process.env.BENCH_FILE ?? join(tmpdir(), `consent-import-bench-${ROWS}-${TEXT_BYTES}-${EXTRA}.csv`)

const fmt = (n) => Math.round(n).toLocaleString('en-US')
const mb = (kb) => `${(kb / 1024).toFixed(0)} MB`

async function adminQuery(sql) {
  const c = new pg.Client({ connectionString: admin })
  await c.connect()
  try {
    return await c.query(sql)
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

/** The CSV: one group column filled per row, a phone, a time in the past, evidence, extra attributes. */
async function generate(group) {
  const out = createWriteStream(file)
  const extra = Array.from({ length: EXTRA }, (_, i) => `attr_${i}`)
  out.write(['phone', 'subscription_group_id', 'subscription_state', 'occurred_at', 'method', 'consent_text', ...extra].join(',') + '\n')
  const text = 'Yes, send me offers. '.repeat(Math.ceil(TEXT_BYTES / 21)).slice(0, TEXT_BYTES).replaceAll('"', '')
  let buf = ''
  for (let i = 0; i < ROWS; i++) {
    const phone = `+1415${String(2000000 + i).padStart(7, '0')}`
    const t = new Date(Date.UTC(2025, 0, 1) + i * 1000).toISOString()
    const attrs = extra.map((_, k) => `v${k}-${i}`)
    buf += `${phone},${group},${i % 10 === 0 ? 'unsubscribed' : 'subscribed'},${t},web_form,"${text}"${attrs.length ? ',' + attrs.join(',') : ''}\n`
    if (buf.length > 1 << 20) {
      if (!out.write(buf)) await once(out, 'drain')
      buf = ''
    }
  }
  out.end(buf)
  await once(out, 'finish')
}

async function rawCopy() {
  const fd = openSync(file, 'r')
  const head = Buffer.alloc(4096)
  readSync(fd, head, 0, 4096, 0)
  closeSync(fd)
  const header = head.toString('utf8').split('\n')[0].split(',')
  const c = new pg.Client({ connectionString: dbUrl.toString() })
  await c.connect()
  try {
    await c.query(`CREATE TABLE bare (${header.map((h) => `"${h}" text`).join(', ')})`)
    const t0 = process.hrtime.bigint()
    await pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), c.query(copyStreams.from(`COPY bare FROM STDIN WITH (FORMAT csv, HEADER true)`)))
    const s = Number(process.hrtime.bigint() - t0) / 1e9
    // Kept for ledgerWriteCeiling(), which reads it.
    return s
  } finally {
    await c.end()
  }
}

/**
 * The ceiling of any import into this data model, measured in the same run: the rows one import
 * row becomes (a contact, an identity, an exactly-once key, an event, the projection row), written
 * straight from the raw COPY's table by five set-based INSERT ... SELECT in one transaction into
 * copies of the ledger's tables WITH their indexes (the B-tree entries every append must make) and
 * nothing else: no validation, no phone parsing, no lookups of existing people, no locks, no
 * reference triggers, no hash computation (md5 stand-ins), time-ordered ids like uuidv7's. Whatever
 * the application does, an import cannot beat this.
 */
async function ledgerWriteCeiling() {
  const c = new pg.Client({ connectionString: dbUrl.toString() })
  await c.connect()
  const tables = { contacts: 'w_contacts', identities: 'w_identities', ledger_dedupe: 'w_dedupe', consent_events: 'w_events', consent_state: 'w_state' }
  try {
    const cols = (await c.query(`SELECT attname FROM pg_attribute WHERE attrelid = 'bare'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`)).rows.map((r) => r.attname)
    const attrs = cols.filter((h) => h.startsWith('attr_'))
    const attrJson = attrs.length ? `jsonb_build_object(${attrs.map((a) => `'${a}', "${a}"`).join(', ')})` : `'{}'::jsonb`
    await c.query(`CREATE TABLE w_src AS SELECT row_number() OVER () AS i, * FROM bare`)
    await c.query('DROP TABLE bare')
    for (const [from, to] of Object.entries(tables)) await c.query(`CREATE TABLE ${to} (LIKE ${from} INCLUDING DEFAULTS INCLUDING INDEXES)`)
    await c.query('VACUUM ANALYZE w_src')
    const ws = `'0190aaaa-0000-7000-8000-000000000001'::uuid`
    const id = (prefix) => `('${prefix}-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid`
    const hash = `md5(phone || i) || md5(occurred_at || i)`
    const t0 = process.hrtime.bigint()
    await c.query('BEGIN')
    await c.query(`INSERT INTO w_contacts (workspace_id, id, attributes, chain_head, chain_length) SELECT ${ws}, ${id('0190cccc')}, ${attrJson}, ${hash}, 1 FROM w_src`)
    await c.query(`INSERT INTO w_identities (workspace_id, type, value, contact_id) SELECT ${ws}, 'phone', phone, ${id('0190cccc')} FROM w_src`)
    await c.query(`INSERT INTO w_dedupe (workspace_id, key, event_id) SELECT ${ws}, 'import:bench:' || i, ${id('0190eeee')} FROM w_src`)
    await c.query(
      `INSERT INTO w_events (workspace_id, id, event_id, contact_id, subscription_group_id, state, occurred_at, recorded_at, source, method, evidence, identity_type, identity_value, actor, prev_hash, hash)
       SELECT ${ws}, i, ${id('0190eeee')}, ${id('0190cccc')}, subscription_group_id::uuid, subscription_state, occurred_at::timestamptz, now(), 'import', method,
              jsonb_build_object('consent_text', consent_text), 'phone', phone, 'import:bench', md5(i::text) || md5(phone), ${hash} FROM w_src`,
    )
    await c.query(
      `INSERT INTO w_state (workspace_id, contact_id, subscription_group_id, state, occurred_at, event_seq, event_id, source)
       SELECT ${ws}, ${id('0190cccc')}, subscription_group_id::uuid, subscription_state, occurred_at::timestamptz, i, ${id('0190eeee')}, 'import' FROM w_src`,
    )
    await c.query('COMMIT')
    return Number(process.hrtime.bigint() - t0) / 1e9
  } finally {
    await c.query(`DROP TABLE IF EXISTS w_src, bare, ${Object.values(tables).join(', ')}`).catch(() => {})
    await c.end()
  }
}

function rssOf(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8')
    return { rss: Number(/VmRSS:\s+(\d+)/.exec(s)?.[1] ?? 0), hwm: Number(/VmHWM:\s+(\d+)/.exec(s)?.[1] ?? 0) }
  } catch {
    return { rss: 0, hwm: 0 }
  }
}

async function main() {
  await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  await adminQuery(`CREATE DATABASE ${name}`)
  let child
  const batchStats = { batches: 0, rows: 0, ahead: 0, ms: {} }
  try {
    await migratePostgres(dbUrl.toString())
    const port = await freePort()
    child = spawn(process.execPath, [...(process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean), join(root, 'dist/src/cli.js'), 'serve'], {
      cwd: root,
      // debug: the worker logs each batch's timings ('import batch'), summed below.
      env: { ...process.env, DATABASE_URL: dbUrl.toString(), CONSENT_ADMIN_KEY: KEY, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'debug', RATE_LIMIT_MAX: '100000000' },
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let partial = ''
    child.stdout.setEncoding('utf8').on('data', (d) => {
      const lines = (partial + d).split('\n')
      partial = lines.pop()
      for (const l of lines) {
        try {
          const j = JSON.parse(l)
          if (j.msg === 'import stored') batchStats.upload = j.ms
          if (j.msg === 'import batch') {
            batchStats.batches++
            batchStats.rows += j.rows
            if (j.ahead) batchStats.ahead++
            for (const [k, v] of Object.entries(j.ms)) batchStats.ms[k] = (batchStats.ms[k] ?? 0) + v
          } else if (j.level >= 40) console.error(l)
        } catch {}
      }
    })
    const base = `http://127.0.0.1:${port}`
    const auth = { authorization: `Bearer ${KEY}` }
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`${base}/healthz`)).ok) break
      } catch {}
      if (i > 200) throw new Error('server did not start')
      await new Promise((r) => setTimeout(r, 100))
    }
    const g = await (await fetch(`${base}/subscription-groups`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'bench', channel: 'whatsapp', category: 'marketing' }) })).json()

    // The group id is in the file; a kept file from another run carries another id, so regenerate.
    const tg = process.hrtime.bigint()
    await generate(g.id)
    const bytes = statSync(file).size
    console.log(`generated ${fmt(ROWS)} rows, ${(bytes / 2 ** 20).toFixed(0)} MiB in ${(Number(process.hrtime.bigint() - tg) / 1e9).toFixed(1)} s: ${file}`)

    let copyS = null
    let ceilingS = null
    if (process.env.BENCH_SKIP_BASELINE !== '1') {
      copyS = await rawCopy()
      console.log(`baseline raw COPY: ${copyS.toFixed(2)} s, ${fmt(ROWS / copyS)} rows/s`)
      ceilingS = await ledgerWriteCeiling()
      console.log(`ceiling: the ledger's rows alone (5 set-based INSERT ... SELECT with the ledger's indexes, nothing else): ${ceilingS.toFixed(2)} s, ${fmt(ROWS / ceilingS)} rows/s = ${((copyS / ceilingS) * 100).toFixed(1)}% of raw COPY`)
    }

    // Memory sampler.
    const idle = rssOf(child.pid)
    let peak = idle.rss
    let phase = 'upload'
    const peaks = { upload: 0, processing: 0 }
    const sampler = setInterval(() => {
      const r = rssOf(child.pid)
      if (r.rss > peak) peak = r.rss
      if (r.rss > peaks[phase]) peaks[phase] = r.rss
    }, 100)

    const t0 = process.hrtime.bigint()
    const accepted = await new Promise((resolve, reject) => {
      const req = request(`${base}/imports?source_label=bench`, { method: 'POST', headers: { ...auth, 'content-type': 'text/csv', 'content-length': String(bytes) } }, (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (d) => (body += d))
        res.on('end', () => (res.statusCode === 202 ? resolve(JSON.parse(body)) : reject(new Error(`upload: ${res.statusCode} ${body}`))))
      })
      req.on('error', reject)
      createReadStream(file, { highWaterMark: 1 << 20 }).pipe(req)
    })
    const uploadS = Number(process.hrtime.bigint() - t0) / 1e9
    phase = 'processing'
    console.log(`upload (parse + stage + commit, 202): ${uploadS.toFixed(2)} s, ${fmt(ROWS / uploadS)} rows/s, ${(bytes / 2 ** 20 / uploadS).toFixed(0)} MiB/s`)
    await new Promise((r) => setTimeout(r, 200))
    if (batchStats.upload) console.log(`  in the service: parse + COPY ${batchStats.upload.stage} ms, marking repeated rows ${batchStats.upload.duplicates} ms, commit ${batchStats.upload.commit} ms`)

    let last
    for (;;) {
      last = await (await fetch(`${base}/imports/${accepted.id}`, { headers: auth })).json()
      if (last.status === 'completed' || last.status === 'failed') break
      await new Promise((r) => setTimeout(r, 500))
    }
    const totalS = Number(process.hrtime.bigint() - t0) / 1e9
    clearInterval(sampler)
    const hwm = rssOf(child.pid).hwm
    const processS = last.duration_ms / 1000

    console.log(`\nimport ${last.status}: applied ${fmt(last.rows_applied)}, rejected ${fmt(last.rows_rejected)}, duplicate ${fmt(last.rows_duplicate)} of ${fmt(last.rows_total)}`)
    console.log('\nbenchmark | result | baseline (same run) | ratio')
    const ratio = (x) => (copyS ? `${((x / (ROWS / copyS)) * 100).toFixed(1)}% of raw COPY` : '-')
    const base_ = copyS ? `raw COPY ${fmt(ROWS / copyS)} rows/s` : '-'
    console.log(`import end to end (upload to completed) | ${fmt(ROWS / totalS)} rows/s (${totalS.toFixed(1)} s) | ${base_} | ${ratio(ROWS / totalS)}`)
    console.log(`upload: parse + COPY to staging + commit | ${fmt(ROWS / uploadS)} rows/s (${uploadS.toFixed(1)} s) | ${base_} | ${ratio(ROWS / uploadS)}`)
    console.log(`processing: batches through ledger.append | ${fmt(ROWS / processS)} rows/s (${processS.toFixed(1)} s) | ${base_} | ${ratio(ROWS / processS)}`)
    const per1000 = Object.entries(batchStats.ms).map(([k, v]) => `${k} ${((v / batchStats.rows) * 1000).toFixed(1)} ms`)
    const allMs = Object.values(batchStats.ms).reduce((a, b) => a + b, 0)
    console.log(`where a batch's time goes (${batchStats.batches} batches; per 1,000 rows): ${per1000.join(', ')}; outside ledger.append: ${(((allMs - (batchStats.ms.append ?? 0)) / allMs) * 100).toFixed(1)}%`)
    console.log(`  (fetch: read staged rows; map: JSON.parse + row → item + validation; both only the wait inside the batch's transaction, ~0 for the ${fmt(batchStats.ahead)} batches read and validated ahead during the previous one; append: the ledger's reads and its work in node; write: the ledger's write statement, which goes out pipelined with the first statement after it (src/db/sql.ts, queryLast), then attributes, error lines, progress)`)
    console.log(`server RSS: idle ${mb(idle.rss)}, peak during upload ${mb(peaks.upload)}, peak during processing ${mb(peaks.processing)}, VmHWM ${mb(hwm)} | file ${(bytes / 2 ** 20).toFixed(0)} MiB`)

    if (process.env.BENCH_MACHINERY !== '0') {
      // The import machinery alone (fetch staged rows, map, duplicate keys, errors, progress, one
      // transaction per batch), with a stand-in ledger that answers `applied` without writing: the
      // ceiling of this part, whatever the ledger's speed. In process, on the same database.
      child.kill('SIGTERM')
      await once(child, 'exit')
      child = null
      const { buildApp } = await import('../dist/src/app.js')
      const { loadConfig } = await import('../dist/src/config/env.js')
      const { processNextBatch } = await import('../dist/src/import/processor.js')
      const app = await buildApp(loadConfig({ DATABASE_URL: dbUrl.toString(), CONSENT_ADMIN_KEY: KEY, LOG_LEVEL: 'silent', RATE_LIMIT_MAX: '100000000' }))
      await app.ready()
      await app.importWorker.stop()
      const { randomUUID } = await import('node:crypto')
      // Distinct (absent) contacts: the attribute UPDATE probes one contact per row, as it would.
      const applied = (items) => items.map(() => ({ status: 'applied', event_id: randomUUID(), contact_id: randomUUID(), changed: true }))
      const stub = { validateUnits: (units) => units, appendValidated: async (_sql, units) => units.map((u) => applied(u.items)), append: async (_sql, _ctx, items) => applied(items) }
      const r = await app.inject({ method: 'POST', url: '/imports', headers: { ...auth, 'content-type': 'text/csv' }, payload: createReadStream(file, { highWaterMark: 1 << 20 }) })
      if (r.statusCode !== 202) throw new Error(r.body)
      const tm = process.hrtime.bigint()
      while (await processNextBatch({ sql: app.database.sql, ledger: stub, log: app.log }, () => 5000));
      const machineryS = Number(process.hrtime.bigint() - tm) / 1e9
      await app.close()
      console.log(`import machinery without the ledger (stand-in append) | ${fmt(ROWS / machineryS)} rows/s (${machineryS.toFixed(1)} s) | ${base_} | ${ratio(ROWS / machineryS)}`)
    }
  } finally {
    if (child && child.exitCode === null) {
      child.kill('SIGTERM')
      await once(child, 'exit').catch(() => {})
    }
    await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    if (!process.env.BENCH_FILE && existsSync(file)) rmSync(file)
  }
}

await main()
