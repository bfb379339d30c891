#!/usr/bin/env node
/**
 * Benchmarks, reported as ratios against a baseline measured in the same run (shared, noisy
 * machines: absolute numbers mean little, ratios travel). Run: `npm run bench` (builds first).
 *
 *  check-10k     POST /consent/check with 10,000 phones (half known), over HTTP on 127.0.0.1;
 *                baseline: the same 10,000 values through a bare `SELECT ... FROM unnest($1)` on the
 *                same pool, i.e. what PostgreSQL alone costs to receive and return that many rows.
 *  check-1       POST /consent/check with 1 phone, autocannon (10 connections, 5 s);
 *                baseline: GET /healthz under the same load (the framework's floor).
 *
 * Needs PostgreSQL (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres): it
 * creates and drops its own database.
 */
import pg from 'pg'
import autocannon from 'autocannon'
import { buildApp } from '../dist/src/app.js'
import { loadConfig } from '../dist/src/config/env.js'
import { migratePostgres } from '../dist/src/db/migrate.js'

const admin = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
const name = `cl_bench_${process.pid}`
const url = new URL(admin)
url.pathname = `/${name}`
const KEY = 'bench-root-key-0123456789abcdef'
const N = Number(process.env.BENCH_CONTACTS ?? 20000)

async function adminQuery(sql) {
  const c = new pg.Client({ connectionString: admin })
  await c.connect()
  try {
    await c.query(sql)
  } finally {
    await c.end()
  }
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]
}
const ms = (x) => `${x.toFixed(2)} ms`

async function time(fn, runs) {
  const out = []
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint()
    await fn()
    out.push(Number(process.hrtime.bigint() - t0) / 1e6)
  }
  return out
}

await adminQuery(`DROP DATABASE IF EXISTS ${name}`)
await adminQuery(`CREATE DATABASE ${name}`)
let app
try {
  await migratePostgres(url.toString())
  app = await buildApp(loadConfig({ DATABASE_URL: url.toString(), CONSENT_ADMIN_KEY: KEY, LOG_LEVEL: 'silent', RATE_LIMIT_MAX: '100000000' }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const base = `http://127.0.0.1:${app.server.address().port}`
  const headers = { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }
  const post = async (path, body) => {
    const r = await fetch(base + path, { method: 'POST', headers, body: JSON.stringify(body) })
    if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`)
    return r.json()
  }
  const group = (await post('/subscription-groups', { name: 'bench', channel: 'whatsapp', category: 'marketing' })).id
  const phone = (n) => `+1415${String(2000000 + n).padStart(7, '0')}`
  const seedT0 = Date.now()
  for (let i = 0; i < N; i += 5000) {
    const events = []
    for (let n = i; n < Math.min(N, i + 5000); n++) events.push({ phone: phone(n), subscription_group_id: group, state: n % 4 === 0 ? 'unsubscribed' : 'subscribed' })
    await post('/consent/events', { events })
  }
  const seedMs = Date.now() - seedT0
  // Fresh bulk-loaded tables have no planner statistics until autovacuum gets to them; without
  // them PostgreSQL may pick a nested loop over a sequential scan for the check's join (seen here:
  // 14 s instead of 0.1 s). Production tables are analysed; so are these, as an import would.
  await app.database.sql.query('ANALYZE')
  console.log(`seeded ${N} contacts in ${seedMs} ms (${Math.round(N / (seedMs / 1000))} events/s through POST /consent/events)`)

  // check-10k vs bare unnest of the same values.
  const phones = Array.from({ length: 10000 }, (_, i) => phone(i * 2)) // half beyond N when N=10k; all known when N>=20k
  const pool = app.database.pool
  await time(() => post('/consent/check', { subscription_group_id: group, phones }), 3) // warm-up
  const check10k = await time(() => post('/consent/check', { subscription_group_id: group, phones }), 20)
  const bare = await time(() => pool.query('SELECT v, ord FROM unnest($1::text[]) WITH ORDINALITY AS q(v, ord)', [phones]), 20)
  const service = await time(() => app.checks.check('00000000-0000-4000-8000-000000000001', { subscription_group_id: group }, phones.map((value) => ({ type: 'phone', value }))), 20)

  // check-1 vs healthz under load.
  const load = (opts) =>
    new Promise((resolve, reject) => autocannon({ url: base, connections: 10, duration: 5, ...opts }, (err, res) => (err ? reject(err) : resolve(res))))
  // Bare baseline for the single check: a plain Fastify route doing one primary-key SELECT
  // through pg on the same database (no auth, no validation, no identities join).
  const { default: Fastify } = await import('fastify')
  const bareApp = Fastify()
  const bareContact = (await pool.query(`SELECT contact_id FROM identities WHERE value = $1`, [phone(7)])).rows[0].contact_id
  bareApp.get('/bare', async () => {
    const r = await pool.query('SELECT state FROM consent_state WHERE workspace_id = $1 AND contact_id = $2 AND subscription_group_id = $3', [
      '00000000-0000-4000-8000-000000000001',
      bareContact,
      group,
    ])
    return { state: r.rows[0]?.state ?? 'unknown' }
  })
  await bareApp.listen({ port: 0, host: '127.0.0.1' })
  const bareBase = `http://127.0.0.1:${bareApp.server.address().port}`
  const bareLoad = await load({ url: `${bareBase}/bare` })
  const getOne = await load({ url: `${base}/consent/check?phone=${encodeURIComponent(phone(7))}&subscription_group_id=${group}`, headers })
  await bareApp.close()
  const health = await load({ url: `${base}/healthz` })
  const one = await load({ url: `${base}/consent/check`, method: 'POST', headers, body: JSON.stringify({ subscription_group_id: group, phones: [phone(7)] }) })

  const rows = [
    ['GET /consent/check under load (req/s, p50/p99)', `${Math.round(getOne.requests.average)} req/s, ${getOne.latency.p50}/${getOne.latency.p99} ms`, `baseline bare PK-select route ${Math.round(bareLoad.requests.average)} req/s, p99 ${bareLoad.latency.p99} ms`, `ratio ${(getOne.requests.average / bareLoad.requests.average).toFixed(2)}`],
    ['check-10k over HTTP (p50 / p95)', `${ms(pct(check10k, 50))} / ${ms(pct(check10k, 95))}`, `baseline bare unnest p50 ${ms(pct(bare, 50))}`, `ratio ${(pct(check10k, 50) / pct(bare, 50)).toFixed(1)}x`],
    ['check-10k in process (p50)', ms(pct(service, 50)), `baseline bare unnest p50 ${ms(pct(bare, 50))}`, `ratio ${(pct(service, 50) / pct(bare, 50)).toFixed(1)}x`],
    ['check-1 under load (req/s, p99)', `${Math.round(one.requests.average)} req/s, p99 ${one.latency.p99} ms`, `baseline /healthz ${Math.round(health.requests.average)} req/s`, `ratio ${(one.requests.average / health.requests.average).toFixed(2)} of baseline throughput`],
  ]
  console.log('\nbenchmark | result | baseline (same run) | ratio')
  for (const r of rows) console.log(r.join(' | '))
  if (one.non2xx > 0 || health.non2xx > 0) console.log(`WARNING: non-2xx answers: check ${one.non2xx}, healthz ${health.non2xx}`)
} finally {
  if (app) await app.close()
  await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
}
