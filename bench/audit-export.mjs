#!/usr/bin/env node
/**
 * Memory benchmark of GET /audit/export (issue 6 acceptance: an export of 1,000,000 events streams
 * while the service's RSS stays under 200 MB). Run: `npm run build && node bench/audit-export.mjs`.
 *
 * - Creates its own PostgreSQL database (BENCH_DATABASE_URL, default
 *   postgres://postgres@127.0.0.1:5432/postgres), migrates it, and seeds BENCH_EVENTS (default
 *   1,000,000) ledger rows over 10,000 contacts with one INSERT ... SELECT generate_series. The
 *   rows have realistic sizes (evidence with consent text, ip, user agent, page url) but their
 *   hashes are valid-looking placeholders, not a real chain: this measures memory and throughput of
 *   the export, not verification (the chains are tested in test/audit).
 * - Starts the built service (`node dist/src/cli.js serve`) as a child process, streams the whole
 *   export over HTTP (NDJSON, then CSV), reading and discarding the body, and samples the server
 *   process's resident set size from /proc/<pid>/status every 50 ms.
 * - Prints the baseline RSS, the peak RSS while streaming, the kernel's high-water mark (VmHWM)
 *   and the throughput. Exits 1 if a peak reached 200 MB.
 *
 * BENCH_EVENTS=n seeds another size; BENCH_SERVER_NODE_ARGS="--trace-gc" passes flags to the
 * server's node; BENCH_DEBUG=1 prints the server's heap metrics after each export.
 */
import pg from 'pg'
import net from 'node:net'
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { migratePostgres } from '../dist/src/db/migrate.js'

const admin = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
const N = Number(process.env.BENCH_EVENTS ?? 1_000_000)
const CONTACTS = 10_000
const LIMIT_MB = 200
const name = `cl_bench_export_${process.pid}`
const url = new URL(admin)
url.pathname = `/${name}`
const KEY = 'bench-root-key-0123456789abcdef'
const WS = '00000000-0000-4000-8000-000000000001'
const root = fileURLToPath(new URL('..', import.meta.url))

async function adminQuery(sql) {
  const c = new pg.Client({ connectionString: admin })
  await c.connect()
  try {
    await c.query(sql)
  } finally {
    await c.end()
  }
}

const freePort = () =>
  new Promise((resolve) => {
    const s = net.createServer()
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })

function memOf(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0)
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 }
}

await adminQuery(`DROP DATABASE IF EXISTS ${name}`)
await adminQuery(`CREATE DATABASE ${name}`)
let server
try {
  await migratePostgres(url.toString())
  const db = new pg.Client({ connectionString: url.toString() })
  await db.connect()
  const seedT0 = Date.now()
  await db.query(`INSERT INTO workspaces (id, name) VALUES ($1, 'default') ON CONFLICT DO NOTHING`, [WS])
  await db.query(`INSERT INTO workspace_settings (workspace_id) VALUES ($1) ON CONFLICT DO NOTHING`, [WS])
  const group = '11111111-1111-4111-8111-111111111111'
  await db.query(`INSERT INTO subscription_groups (workspace_id, id, name, channel, category) VALUES ($1, $2, 'bench', 'whatsapp', 'marketing')`, [WS, group])
  await db.query(
    `INSERT INTO contacts (workspace_id, id, chain_length)
     SELECT $1, ('00000000-0000-4000-8000-' || lpad(to_hex(c), 12, '0'))::uuid, 0 FROM generate_series(1, $2::int) c`,
    [WS, CONTACTS],
  )
  await db.query(
    `INSERT INTO consent_events (workspace_id, id, event_id, contact_id, type, subscription_group_id, state, occurred_at, recorded_at,
                                 source, method, evidence, identity_type, identity_value, actor, request_id, idempotency_key, prev_hash, hash)
     SELECT $1, i, gen_random_uuid(),
            ('00000000-0000-4000-8000-' || lpad(to_hex(1 + i % $3::int), 12, '0'))::uuid,
            'consent', $4::uuid, CASE WHEN i % 4 = 0 THEN 'unsubscribed' ELSE 'subscribed' END,
            timestamptz '2026-01-01' + i * interval '1 second', timestamptz '2026-01-01' + i * interval '1 second',
            'api', 'web_form',
            jsonb_build_object('consent_text', 'Yes, I want to receive offers and news on WhatsApp from Example Shop (v3)',
                               'consent_text_version', 'v3', 'ip', '203.0.113.' || (i % 250),
                               'user_agent', 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148',
                               'page_url', 'https://shop.example/checkout?step=consent&ref=' || i),
            'phone', '+1415' || lpad((2000000 + i % $3::int)::text, 7, '0'), 'key:bench', 'req-' || i, NULL,
            encode(sha256(((i - 1)::text)::bytea), 'hex'), encode(sha256((i::text)::bytea), 'hex')
       FROM generate_series(1, $2::bigint) i`,
    [WS, N, CONTACTS, group],
  )
  await db.query(`SELECT setval('consent_events_id_seq', $1)`, [N])
  await db.query('ANALYZE')
  await db.end()
  console.log(`seeded ${N.toLocaleString('en')} events over ${CONTACTS.toLocaleString('en')} contacts in ${((Date.now() - seedT0) / 1000).toFixed(1)} s`)

  const port = await freePort()
  const nodeArgs = (process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean)
  server = spawn(process.execPath, [...nodeArgs, 'dist/src/cli.js', 'serve'], {
    cwd: root,
    env: { ...process.env, DATABASE_URL: url.toString(), CONSENT_ADMIN_KEY: KEY, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', RATE_LIMIT_MAX: '100000000' },
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  const base = `http://127.0.0.1:${port}`
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${base}/healthz`)).ok) break
    } catch {}
    if (i > 200) throw new Error('server did not start')
    await new Promise((r) => setTimeout(r, 100))
  }
  console.log(`server RSS after start: ${memOf(server.pid).rss.toFixed(0)} MB`)
  // Warm up (JIT, pools), then let the heap settle.
  await (await fetch(`${base}/audit/events?limit=1000`, { headers: { authorization: `Bearer ${KEY}` } })).arrayBuffer()
  await new Promise((r) => setTimeout(r, 1000))

  const results = []
  for (const format of ['ndjson', 'csv']) {
    const baseline = memOf(server.pid).rss
    let peak = baseline
    const sampler = setInterval(() => {
      try {
        peak = Math.max(peak, memOf(server.pid).rss)
      } catch {}
    }, 50)
    const t0 = Date.now()
    const res = await fetch(`${base}/audit/export?format=${format}`, { headers: { authorization: `Bearer ${KEY}` } })
    if (!res.ok) throw new Error(`export ${format}: ${res.status} ${await res.text()}`)
    let bytes = 0
    let lines = 0
    for await (const chunk of res.body) {
      bytes += chunk.length
      for (let i = 0; i < chunk.length; i++) if (chunk[i] === 10) lines++
    }
    clearInterval(sampler)
    peak = Math.max(peak, memOf(server.pid).rss)
    const secs = (Date.now() - t0) / 1000
    const events = format === 'csv' ? lines - 1 : lines // csv: header row (no quoted newlines in this data)
    results.push({ format, events, bytes, secs, baseline, peak })
    if (process.env.BENCH_DEBUG) {
      const m = await (await fetch(`${base}/metrics`)).text()
      console.log(m.split('\n').filter((l) => /^nodejs_heap_size|^nodejs_external_memory/.test(l)).join('\n'))
    }
    console.log(
      `${format}: ${events.toLocaleString('en')} events, ${(bytes / 1e6).toFixed(0)} MB in ${secs.toFixed(1)} s ` +
        `(${Math.round(events / secs).toLocaleString('en')} events/s); server RSS ${baseline.toFixed(0)} MB before, peak ${peak.toFixed(0)} MB while streaming`,
    )
  }
  const { hwm } = memOf(server.pid)
  console.log(`server VmHWM (peak RSS over its whole life, start-up included): ${hwm.toFixed(0)} MB`)
  const worst = Math.max(...results.map((r) => r.peak))
  const complete = results.every((r) => r.events === N)
  console.log(`\nRESULT: peak RSS while streaming ${worst.toFixed(0)} MB (limit ${LIMIT_MB} MB); every export complete: ${complete}`)
  if (worst >= LIMIT_MB || !complete) process.exitCode = 1
} finally {
  if (server) {
    server.kill('SIGTERM')
    await new Promise((r) => server.once('exit', r))
  }
  await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
}
