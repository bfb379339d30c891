#!/usr/bin/env node
/**
 * PostgreSQL's CPU per ledger append, without HTTP, load generator or other connections: the
 * service's own ledger (dist/) appends N batches of K new people (one consent each, as a K-object
 * /users/track without attributes) one after the other on ONE pooled connection, and the backend's
 * CPU is read from /proc/<pid>/stat around them (node's from process.cpuUsage). On a shared machine
 * this is steadier than the suite's ratios for a change inside PostgreSQL (a function, a trigger, a
 * plan), and a variant can be compared in the same run of the machine:
 *
 *   npm run build && node bench/append-cost.mjs                     # 2,000 appends of 1 object
 *   APPEND_COST_K=75 APPEND_COST_N=300 node bench/append-cost.mjs
 *   APPEND_COST_SETUP_SQL=v.sql APPEND_COST_OPTIONS='-c search_path=v,public' node bench/append-cost.mjs
 *
 * Env: APPEND_COST_N (appends measured, 2000), APPEND_COST_K (objects per append, 1),
 * APPEND_COST_WARMUP (appends before measuring, 200), APPEND_COST_SETUP_SQL (a SQL file run after
 * the migrations, e.g. a function variant in a schema of its own), APPEND_COST_OPTIONS (PostgreSQL
 * options of the measured connection, e.g. that schema first in search_path), BENCH_DATABASE_URL.
 * The database append_cost is created and dropped.
 */
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import pg from 'pg'
import { createDatabase, cleanup, installCleanup } from './lib/harness.mjs'

installCleanup()
const N = Number(process.env.APPEND_COST_N ?? 2000)
const K = Number(process.env.APPEND_COST_K ?? 1)
const WARMUP = Number(process.env.APPEND_COST_WARMUP ?? 200)
// APPEND_COST_DIST: another build's dist/ (e.g. a copy of the one before a change), to compare two builds in turn.
const dist = resolve(process.env.APPEND_COST_DIST ?? 'dist')
const WS = '00000000-0000-4000-8000-000000000001'

const url = await createDatabase('append_cost')
const { migratePostgres } = await import(join(dist, 'src/db/migrate.js'))
const { poolSql } = await import(join(dist, 'src/db/sql.js'))
const { createLedger } = await import(join(dist, 'src/ledger/ledger-service.js'))
await migratePostgres(url)

const admin = new pg.Client(url)
await admin.connect()
await admin.query(`INSERT INTO workspaces (id, name) VALUES ($1, 'bench') ON CONFLICT DO NOTHING`, [WS])
const group = (await admin.query(`INSERT INTO subscription_groups (workspace_id, name, channel, category) VALUES ($1, 'm', 'whatsapp', 'marketing') RETURNING id`, [WS])).rows[0].id
if (process.env.APPEND_COST_SETUP_SQL) await admin.query(readFileSync(process.env.APPEND_COST_SETUP_SQL, 'utf8'))
await admin.end()

const pool = new pg.Pool({ connectionString: url, max: 1, options: process.env.APPEND_COST_OPTIONS })
const sql = poolSql(pool)
const ledger = createLedger()
const pid = (await sql.query('SELECT pg_backend_pid() AS pid'))[0].pid
/** The backend's user + system CPU, in clock ticks (10 ms). */
const ticks = () => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ').slice(11, 13).map(Number).reduce((a, b) => a + b)

let u = 0
async function append() {
  const items = []
  for (let i = 0; i < K; i++) {
    const identities = [{ type: 'external_id', value: `cost-${u++}` }]
    items.push({ identities, identifyOnly: true, source: 'users_track' }, { identities, subscriptionGroupId: group, state: 'subscribed', source: 'users_track' })
  }
  const results = await ledger.append(sql, { workspaceId: WS, actor: 'bench' }, items)
  if (results.some((r) => r.status === 'rejected')) throw new Error(`rejected: ${JSON.stringify(results.find((r) => r.status === 'rejected'))}`)
}

for (let i = 0; i < WARMUP; i++) await append()
const t0 = ticks()
const c0 = process.cpuUsage()
const w0 = performance.now()
for (let i = 0; i < N; i++) await append()
const wall = performance.now() - w0
const c1 = process.cpuUsage(c0)
const t1 = ticks()
const us = (x) => Math.round(x).toLocaleString('en-US')
console.log(
  `${N} appends of ${K} object(s): PostgreSQL backend ${us(((t1 - t0) * 10_000) / N)} us CPU per append, ` +
    `node ${us((c1.user + c1.system) / N)} us, wall ${us((wall * 1000) / N)} us`,
)
await pool.end()
await cleanup()
process.exit(0)
