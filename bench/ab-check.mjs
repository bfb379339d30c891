#!/usr/bin/env node
/**
 * A/B of two builds (or two settings) of the service on the single pre-send check, on 1- or
 * 75-object /users/track requests or on 10,000-phone batch checks, for changes too small for the suite's ratios to show on a noisy machine:
 * both builds run at once as child processes on ONE seeded database (20,000 contacts), and
 * autocannon drives them in alternating rounds (A B, B A, ...) or, with AB_PARALLEL=1, both at once
 * (half the connections each), so both see the same machine. Printed per build: req/s of every
 * round, the server's user and system CPU per request (microseconds, from /proc/<pid>/stat around
 * each round), and PostgreSQL's (every server process; halved between the sides in parallel rounds).
 *
 *   git worktree add /tmp/before <rev> && (cd /tmp/before && npm ci && npm run build)
 *   npm run build && node bench/ab-check.mjs /tmp/before/dist dist
 *   AB_WORKLOAD=track75 AB_ENV_B='GROUP_COMMIT_LARGE_CONCURRENCY=0' node bench/ab-check.mjs dist dist
 *
 * Env: AB_WORKLOAD (check | track1 | track75 | batch10k, which wants AB_CONNECTIONS=1 as the suite), AB_ROUNDS (6), AB_DURATION (seconds per round, 5),
 * AB_CONNECTIONS (10), AB_PARALLEL, AB_ENV_A / AB_ENV_B (settings of one side, `K=V K=V`), AB_SETUP_SQL (a SQL file run after the migrations),
 * AB_NODE_ARGS_A / AB_NODE_ARGS_B (node flags of one side, e.g. `--cpu-prof`), AB_WAITS=1 (what the backends
 * wait for during the rounds, sampled from pg_stat_activity: see sampleWaits), BENCH_DATABASE_URL
 * (admin URL; the database ab_check is created and dropped).
 * Two identical builds differ by about 1% in CPU per request in alternating rounds and by up to
 * 6% in parallel ones: only a difference well beyond that means something.
 */
import { createDatabase, spawnNode, freePort, waitHttp, load, cleanup, installCleanup, postgresCpu } from './lib/harness.mjs'
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'

installCleanup()
const [distA, distB] = process.argv.slice(2).map((d) => resolve(d))
if (!distA || !distB) {
  console.error('usage: node bench/ab-check.mjs <dist of build A> <dist of build B>')
  process.exit(2)
}
const ROUNDS = Number(process.env.AB_ROUNDS ?? 6)
/** `check` (GET /consent/check) or `track75` (POST /users/track with 75 new objects, one group each). */
const WORKLOAD = process.env.AB_WORKLOAD ?? 'check'
if (!['check', 'track1', 'track75', 'batch10k'].includes(WORKLOAD)) throw new Error(`AB_WORKLOAD: check, track1, track75 or batch10k, not ${WORKLOAD}`)
const DURATION = Number(process.env.AB_DURATION ?? 5)
const CONNECTIONS = Number(process.env.AB_CONNECTIONS ?? 10)
const KEY = 'bench-root-key-0123456789abcdef'
const headers = { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }
const phone = (n) => `+1415${String(2000000 + n).padStart(7, '0')}`
/** user and system CPU of a process, in clock ticks (10 ms). */
const cpuTicks = (pid) => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ').slice(11, 13).map(Number)

const url = await createDatabase('ab_check')
const { migratePostgres } = await import(join(distA, 'src/db/migrate.js'))
await migratePostgres(url)
// AB_SETUP_SQL: a file of SQL run once after the migrations, e.g. a variant of a function in a
// schema of its own that one side puts first in its search_path (AB_ENV_B='DATABASE_URL=...?options=-c%20search_path%3Dv,public').
if (process.env.AB_SETUP_SQL) {
  const pg = (await import('pg')).default
  const c = new pg.Client(url)
  await c.connect()
  await c.query(readFileSync(process.env.AB_SETUP_SQL, 'utf8'))
  await c.end()
}

async function start(dist, label) {
  const port = await freePort()
  // e.g. AB_NODE_ARGS_B='--cpu-prof --cpu-prof-dir=/tmp/prof'
  const nodeArgs = (process.env[`AB_NODE_ARGS_${label}`] ?? '').split(' ').filter(Boolean)
  const child = spawnNode([...nodeArgs, join(dist, 'src/cli.js'), 'serve'], {
    cwd: process.cwd(),
    cleanEnv: true,
    label,
    env: {
      PATH: process.env.PATH, NODE_ENV: 'production', DATABASE_URL: url, DATABASE_POOL_MAX: '20', CONSENT_ADMIN_KEY: KEY, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', RATE_LIMIT_MAX: '1000000000',
      // e.g. AB_ENV_B='GROUP_COMMIT_CONCURRENCY=2' to compare a setting on one build
      ...Object.fromEntries((process.env[`AB_ENV_${label}`] ?? '').split(' ').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])),
    },
  })
  const base = `http://127.0.0.1:${port}`
  await waitHttp(`${base}/healthz`, child)
  return { child, base, label, ticks: [0, 0], pg: 0, requests: 0, rps: [] }
}
const A = await start(distA, 'A')
const B = await start(distB, 'B')

async function api(method, path, body) {
  const r = await fetch(A.base + path, { method, headers, body: body && JSON.stringify(body) })
  const text = await r.text()
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`)
  return JSON.parse(text)
}
const group = (await api('POST', '/subscription-groups', { name: 'm', channel: 'whatsapp', category: 'marketing' })).id
for (let i = 0; i < 20000; i += 5000) {
  const events = []
  for (let n = i; n < i + 5000; n++) events.push({ phone: phone(n), subscription_group_id: group, state: n % 4 ? 'subscribed' : 'unsubscribed' })
  await api('POST', '/consent/events', { events })
}

let k = 0
let u = 0
const trackBody = () => {
  const attributes = []
  for (let i = 0; i < (WORKLOAD === 'track1' ? 1 : 75); i++) attributes.push({ external_id: `ab-u-${u++}`, subscription_groups: [{ subscription_group_id: group, subscription_state: 'subscribed' }] })
  return JSON.stringify({ attributes })
}
/** 10,000 seeded phones, every second one (as bench/run.mjs's batch workload). */
const batchBody = JSON.stringify({ subscription_group_id: group, phones: Array.from({ length: 10_000 }, (_, i) => phone((i * 2) % 20000)) })
const opts = (s, connections) =>
  WORKLOAD === 'check'
    ? {
        url: s.base,
        connections,
        headers: { authorization: headers.authorization },
        requests: [{ method: 'GET', setupRequest: (r) => ({ ...r, path: `/consent/check?phone=${encodeURIComponent(phone((k++ * 7919) % 20000))}&subscription_group_id=${group}` }) }],
      }
    : WORKLOAD === 'batch10k'
      ? { url: `${s.base}/consent/check`, connections, headers, method: 'POST', body: batchBody }
      : { url: `${s.base}/users/track`, connections, headers, requests: [{ method: 'POST', setupRequest: (r) => ({ ...r, body: trackBody() }) }] }
/**
 * AB_WAITS=1: what the database's backends are doing during a round, sampled from pg_stat_activity
 * every 5 ms (state and wait event; "CPU" when active and waiting for nothing; idle connections, of
 * either side's pool, left out): is PostgreSQL busy, waiting on its own locks or the disk, or, idle
 * in a transaction, waiting for the service? Sums per side, in sample counts.
 */
async function sampleWaits(until, into) {
  const pg = (await import('pg')).default
  const c = new pg.Client(url)
  await c.connect()
  try {
    while (Date.now() < until) {
      const { rows } = await c.query(
        `SELECT state, coalesce(wait_event_type || ':' || wait_event, CASE WHEN state = 'active' THEN 'CPU' ELSE '-' END) AS w
           FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
            AND state <> 'idle'`,
      )
      into.samples++
      for (const r of rows) into.counts.set(`${r.state} ${r.w}`, (into.counts.get(`${r.state} ${r.w}`) ?? 0) + 1)
      await new Promise((r) => setTimeout(r, 5))
    }
  } finally {
    await c.end()
  }
}

async function round(sides, connections) {
  const before = sides.map((s) => cpuTicks(s.child.pid))
  const pg0 = postgresCpu()
  // (in parallel rounds both sides' backends are sampled together: each side gets the same sums)
  const waits = process.env.AB_WAITS ? sides.map((s) => (s.waits ??= { samples: 0, counts: new Map() })) : []
  const sampling = waits.length > 0 ? sampleWaits(Date.now() + DURATION * 1000 - 200, waits[0]) : undefined
  const results = await Promise.all(sides.map((s) => load({ ...opts(s, connections), duration: DURATION })))
  if (sampling) {
    await sampling
    for (const w of waits.slice(1)) (w.samples = waits[0].samples), (w.counts = waits[0].counts)
  }
  sides.forEach((s, i) => {
    const after = cpuTicks(s.child.pid)
    if (results[i].non2xx) throw new Error(`${s.label}: ${results[i].non2xx} non-2xx answers`)
    s.ticks[0] += after[0] - before[i][0]
    s.ticks[1] += after[1] - before[i][1]
    s.requests += results[i].requests
    // (in parallel rounds PostgreSQL's CPU is shared: each side gets half)
    s.pg += (postgresCpu() - pg0) / sides.length
    s.rps.push(Math.round(results[i].rps))
  })
}

for (const s of [A, B]) await load({ ...opts(s, CONNECTIONS), duration: 3 }) // warm-up
for (let i = 0; i < ROUNDS; i++) {
  if (process.env.AB_PARALLEL) await round([A, B], Math.max(1, CONNECTIONS >> 1))
  else for (const s of i % 2 ? [B, A] : [A, B]) await round([s], CONNECTIONS)
}
for (const s of [A, B]) {
  const median = [...s.rps].sort((x, y) => x - y)[s.rps.length >> 1]
  const us = (t) => ((t * 10 * 1000) / s.requests).toFixed(1)
  const pgUs = ((s.pg * 1e6) / s.requests).toFixed(1)
  console.log(
    `${s.label} ${s.label === 'A' ? distA : distB}: req/s ${s.rps.join(' ')} (median ${median}); CPU per request: user ${us(s.ticks[0])} us, system ${us(s.ticks[1])} us, PostgreSQL ${pgUs} us`,
  )
  if (s.waits) {
    const avg = [...s.waits.counts].filter(([, n]) => n / s.waits.samples >= 0.005).sort((x, y) => y[1] - x[1]).map(([k, n]) => `${(n / s.waits.samples).toFixed(2)} ${k}`)
    console.log(`  ${s.label} backends on average (${s.waits.samples} samples): ${avg.join(', ')}`)
  }
}
await cleanup()
process.exit(0)
