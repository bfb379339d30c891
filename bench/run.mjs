#!/usr/bin/env node
/**
 * The benchmark suite (issue 7). Run: `npm run bench` (builds first). Every workload is measured
 * beside its raw baseline IN THE SAME RUN, with the same duration and connections, service and
 * baseline alternating (A B B A ...) after a warm-up of each, because the machine is shared and
 * noisy: absolute numbers drift, ratios travel.
 *
 * The service runs as a child process (`node dist/src/cli.js serve`) on a PostgreSQL database this
 * suite creates, migrates and drops; the baseline is bench/bare-server.mjs (bare Fastify + pg, also
 * a child process) on the same database. Load: autocannon on 127.0.0.1. Memory: VmRSS (sampled
 * every 100 ms, peak) and VmHWM of the service's process from /proc/<pid>/status.
 *
 * Workloads (names for --only / --skip):
 *  check    GET /consent/check, one phone per request (random seeded contact)  vs  bare GET /pk (one PK SELECT)
 *  batch    POST /consent/check with 1,000 and 10,000 phones                    vs  bare POST /batch (one unnest SELECT)
 *  track    POST /users/track, 1 object x 1 group, and 75 objects               vs  bare POST /upsert (one insert+upsert statement)
 *  webhook  signed single-message STOP POST /webhooks/whatsapp                  vs  bare POST /upsert
 *  import   1,000,000-row CSV import end to end (bench/import.mjs, a child)     vs  raw COPY of the same file (measured by it)
 *  scale    GET /consent/check on a ledger of BENCH_BIG_EVENTS (10^7) synthetic events vs the same on 10^5
 *
 * Options: --only a,b  --skip a,b  --out DIR  --no-save. Environment: see docs/performance.md ("Running the benchmarks").
 */
import { createHmac } from 'node:crypto'
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { migratePostgres } from '../dist/src/db/migrate.js'
import { adminQuery, cleanup, createDatabase, dropDatabase, freePort, installCleanup, load, memOf, rssSampler, cpuMeter, spawnNode, stopChild, waitHttp } from './lib/harness.mjs'
import { describeMachine, parseImportOutput, toMarkdown } from './lib/report.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const env = process.env
const num = (name, dflt) => {
  const v = env[name]
  if (v === undefined || v === '') return dflt
  const n = Number(v)
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a number (got ${JSON.stringify(v)})`)
  return n
}

// ---- options ---------------------------------------------------------------------------------
const ALL = ['check', 'batch', 'track', 'webhook', 'import', 'scale']
const argv = process.argv.slice(2)
const flag = (name) => {
  const i = argv.indexOf(name)
  if (i < 0) return undefined
  const v = argv[i + 1]
  if (v === undefined || v.startsWith('--')) throw new Error(`${name} needs a value`)
  return v
}
const list = (s) => (s ? s.split(',').map((x) => x.trim()).filter(Boolean) : null)
const only = list(flag('--only') ?? env.BENCH_ONLY)
const skip = list(flag('--skip') ?? env.BENCH_SKIP) ?? []
for (const w of [...(only ?? []), ...skip]) if (!ALL.includes(w)) throw new Error(`unknown workload "${w}" (known: ${ALL.join(', ')})`)
const selected = ALL.filter((w) => (only ? only.includes(w) : true) && !skip.includes(w))
const OUT = flag('--out') ?? env.BENCH_OUT ?? join(root, 'bench/results')
const SAVE = !argv.includes('--no-save') && env.BENCH_SAVE !== '0'

const DURATION = num('BENCH_DURATION', 10) // seconds per measured run
const ROUNDS = num('BENCH_ROUNDS', 2) // measured runs per side, alternating
const WARMUP = num('BENCH_WARMUP', 3) // seconds of warm-up per side
const CONNECTIONS = num('BENCH_CONNECTIONS', 10)
const BATCH_CONNECTIONS = num('BENCH_BATCH_CONNECTIONS', 1)
const CONTACTS = num('BENCH_CONTACTS', 20_000) // seeded contacts of the main database
const POOL = num('BENCH_POOL', 20) // DATABASE_POOL_MAX of the service and of the bare server
const IMPORT_ROWS = num('BENCH_IMPORT_ROWS', 1_000_000)
const SMALL_EVENTS = num('BENCH_SMALL_EVENTS', 100_000)
const BIG_EVENTS = num('BENCH_BIG_EVENTS', 10_000_000)
const EVENTS_PER_CONTACT = 10

const KEY = 'bench-root-key-0123456789abcdef'
const SECRET = 'bench-app-secret'
const PNID = '106540352242922'
const WS = '00000000-0000-4000-8000-000000000001' // the default workspace (src/auth/api-keys.ts)
const headers = { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }
const phone = (n) => `+1415${String(2000000 + n).padStart(7, '0')}`
const log = (...a) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}]`, ...a)

// ---- processes -------------------------------------------------------------------------------
function baseEnv() {
  // A clean environment: nothing of the caller's (REDIS_URL, DATABASE_URL, ...) leaks in.
  return { PATH: env.PATH, HOME: env.HOME, NODE_ENV: 'production' }
}

async function startService(url, label, script = ['dist/src/cli.js', 'serve'], extraEnv = {}) {
  const port = await freePort()
  const nodeArgs = (env.BENCH_SERVICE_NODE_ARGS ?? '').split(' ').filter(Boolean) // e.g. --cpu-prof --cpu-prof-dir=/tmp/prof
  const child = spawnNode([...nodeArgs, join(root, script[0]), ...script.slice(1)], {
    cwd: root,
    label,
    cleanEnv: true,
    env: {
      ...baseEnv(),
      DATABASE_URL: url,
      DATABASE_POOL_MAX: String(POOL),
      CONSENT_ADMIN_KEY: KEY,
      WHATSAPP_APP_SECRETS: SECRET,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      RATE_LIMIT_MAX: '1000000000',
      // e.g. BENCH_SERVICE_ENV='GROUP_COMMIT_CONCURRENCY=0' to measure a setting
      ...Object.fromEntries((env.BENCH_SERVICE_ENV ?? '').split(' ').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])),
      ...extraEnv,
    },
  })
  const base = `http://127.0.0.1:${port}`
  await waitHttp(`${base}/healthz`, child)
  return { child, base, pid: child.pid }
}

async function startBare(url) {
  const port = await freePort()
  const bareArgs = (env.BENCH_BARE_NODE_ARGS ?? '').split(' ').filter(Boolean) // as BENCH_SERVICE_NODE_ARGS, for the bare server
  const child = spawnNode([...bareArgs, join(root, 'bench/bare-server.mjs')], {
    cwd: root,
    label: 'bare',
    cleanEnv: true,
    env: { ...baseEnv(), DATABASE_URL: url, DATABASE_POOL_MAX: String(POOL), PORT: String(port), HOST: '127.0.0.1' },
  })
  const base = `http://127.0.0.1:${port}`
  await waitHttp(`${base}/healthz`, child)
  return { child, base, pid: child.pid }
}

async function api(base, method, path, body) {
  const r = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  const text = await r.text()
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text.slice(0, 500)}`)
  return text ? JSON.parse(text) : null
}

async function withDb(url, fn) {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  try {
    return await fn(c)
  } finally {
    await c.end()
  }
}

// ---- measuring -------------------------------------------------------------------------------
/**
 * Service vs baseline: a warm-up of each, then ROUNDS measured runs per side in A B B A order
 * (the same duration and connections for both). Returns per-side aggregates: throughput over all
 * rounds (total requests / total seconds), p50/p99 the mean of the rounds', the service's peak RSS.
 */
async function compare({ service, baseline, connections = CONNECTIONS }) {
  const run = async (side, duration) => {
    const sampler = side.pid ? rssSampler(side.pid) : null
    const meter = side.pid ? cpuMeter(side.pid) : null
    const r = await load({ ...side.opts(), connections, duration })
    const mem = sampler?.stop()
    // e.g. the webhook: wait until what was acknowledged is processed, so a backlog does not run
    // during the other side's measurement; its time is reported (and its CPU counted).
    const settleMs = side.settle ? await side.settle() : 0
    return { ...r, mem, settleMs, cpu: meter?.stop(r.requests) ?? null }
  }
  if (WARMUP > 0) {
    await run(baseline, WARMUP)
    await run(service, WARMUP)
  }
  const runs = { service: [], baseline: [] }
  for (let i = 0; i < ROUNDS; i++) {
    const order = i % 2 === 0 ? ['baseline', 'service'] : ['service', 'baseline']
    for (const k of order) runs[k].push(await run(k === 'service' ? service : baseline, DURATION))
  }
  const agg = (rs) => {
    const requests = rs.reduce((a, r) => a + r.requests, 0)
    const secs = rs.reduce((a, r) => a + r.durationS, 0)
    const mean = (f) => rs.reduce((a, r) => a + f(r), 0) / rs.length
    return {
      rps: requests / secs,
      requests,
      p50: mean((r) => r.p50),
      p99: mean((r) => r.p99),
      non2xx: rs.reduce((a, r) => a + r.non2xx, 0),
      errors: rs.reduce((a, r) => a + r.errors + r.timeouts, 0),
      settleS: rs.reduce((a, r) => a + r.settleMs, 0) / 1000,
      secs,
      rounds: rs.map(({ mem, statusCodes, ...r }) => ({ ...r, rssPeak: mem?.peak })),
      rss: rs[0]?.mem ? { peak: Math.max(...rs.map((r) => r.mem.peak)), hwm: rs.at(-1).mem.hwm, end: rs.at(-1).mem.rss } : null,
      cpu: rs[0]?.cpu ? cpuMean(rs) : null,
    }
  }
  return { service: agg(runs.service), baseline: agg(runs.baseline), connections }
}

/** CPU ms per request over several runs, weighted by their requests. */
function cpuMean(rs) {
  const out = {}
  for (const k of ['server', 'postgres', 'generator', 'machine']) {
    let sum = 0
    let n = 0
    for (const r of rs) if (r.cpu?.[k] != null) (sum += r.cpu[k] * r.requests), (n += r.requests)
    out[k] = n > 0 ? sum / n : null
  }
  return out
}

const ms2 = (x) => (x == null ? '?' : x.toFixed(x < 1 ? 3 : 2))
/**
 * "CPU ms/request: ..." for a row's notes: where a request's time goes, on both sides, and the
 * whole machine's busy time in the same runs. Parts that add up to more than the machine was busy
 * are flagged: one of them is misread (a reference run once showed PostgreSQL at 13.7 ms per
 * 75-object request, more than two cores could give at that rate).
 */
function cpuNote(s, b) {
  if (!s.cpu || !b.cpu) return null
  const side = (c) => {
    const parts = `server ${ms2(c.server)} + PostgreSQL ${ms2(c.postgres)} + load generator ${ms2(c.generator)}`
    if (c.machine == null) return parts
    const sum = (c.server ?? 0) + (c.postgres ?? 0) + (c.generator ?? 0)
    return `${parts} (machine ${ms2(c.machine)}${sum > c.machine * 1.1 ? ': the parts exceed it, one is misread' : ''})`
  }
  return `CPU ms per request: service ${side(s.cpu)}; baseline ${side(b.cpu)}`
}

function row({ workload, name, unit, per = 1, cmp, baselineName, targets = [], notes = [] }) {
  const s = cmp.service
  const b = cmp.baseline
  const n = [...notes]
  const cpu = cpuNote(s, b)
  if (cpu) n.push(cpu)
  if (cmp.connections !== CONNECTIONS) n.unshift(`${cmp.connections} connection${cmp.connections === 1 ? '' : 's'}`)
  if (s.non2xx || s.errors) n.push(`service: ${s.non2xx} non-2xx, ${s.errors} errors`)
  if (b.non2xx || b.errors) n.push(`baseline: ${b.non2xx} non-2xx, ${b.errors} errors`)
  return {
    workload,
    name,
    unit,
    value: s.rps * per,
    p50: s.p50,
    p99: s.p99,
    requests: s.requests,
    rss: s.rss,
    baseline: { name: baselineName, unit, value: b.rps * per, p50: b.p50, p99: b.p99, requests: b.requests },
    ratio: s.rps / b.rps,
    connections: cmp.connections,
    targets,
    notes: n,
    rounds: { service: s.rounds, baseline: b.rounds },
  }
}

const fmt = (n) => Math.round(n).toLocaleString('en-US')
const target = (text, measured, met) => ({ text, measured, met })

// ---- workloads on the main database ----------------------------------------------------------
async function setupMain(name) {
  const url = await createDatabase(name)
  await migratePostgres(url)
  const svc = await startService(url, 'service')
  const bare = await startBare(url)
  await api(svc.base, 'POST', '/whatsapp/numbers', { phone_number_id: PNID })
  const group = (await api(svc.base, 'POST', '/subscription-groups', { name: 'promos', channel: 'whatsapp', category: 'marketing', phone_number_id: PNID })).id
  await api(svc.base, 'POST', '/subscription-groups', { name: 'orders', channel: 'whatsapp', category: 'utility' })
  const t0 = Date.now()
  for (let i = 0; i < CONTACTS; i += 5000) {
    const events = []
    for (let n = i; n < Math.min(CONTACTS, i + 5000); n++) events.push({ phone: phone(n), subscription_group_id: group, state: n % 4 === 0 ? 'unsubscribed' : 'subscribed' })
    await api(svc.base, 'POST', '/consent/events', { events })
  }
  const seedS = (Date.now() - t0) / 1000
  await withDb(url, async (c) => {
    await c.query(
      `INSERT INTO bench_kv (id, state, occurred_at, event_id)
       SELECT '+1415' || lpad((2000000 + n)::text, 7, '0'), CASE WHEN n % 4 = 0 THEN 'unsubscribed' ELSE 'subscribed' END, now(), gen_random_uuid()
         FROM generate_series(0, $1::int - 1) n`,
      [CONTACTS],
    )
    // Freshly loaded tables have no planner statistics until autovacuum gets to them.
    await c.query('VACUUM ANALYZE')
  })
  log(`main database seeded: ${fmt(CONTACTS)} contacts through POST /consent/events in ${seedS.toFixed(1)} s`)
  return { name, url, svc, bare, group }
}

/** A phone of the seeded contacts must answer a known state, or the load would measure misses. */
async function expectKnown(base, group, p) {
  const r = await api(base, 'GET', `/consent/check?phone=${encodeURIComponent(p)}&subscription_group_id=${group}`)
  const state = (r.results?.[0] ?? r).state // the GET form answers one result
  if (state !== 'subscribed' && state !== 'unsubscribed') throw new Error(`seeded phone ${p} answers ${JSON.stringify(r).slice(0, 300)}`)
}

async function checkWorkload(ctx) {
  await expectKnown(ctx.svc.base, ctx.group, phone(CONTACTS - 1))
  let k = 0
  const pick = () => phone((k++ * 7919) % CONTACTS)
  const cmp = await compare({
    service: { pid: ctx.svc.pid, opts: () => ({ url: ctx.svc.base, headers: { authorization: headers.authorization }, requests: [{ method: 'GET', setupRequest: (r) => ({ ...r, path: `/consent/check?phone=${encodeURIComponent(pick())}&subscription_group_id=${ctx.group}` }) }] }) },
    baseline: { pid: ctx.bare.pid, opts: () => ({ url: ctx.bare.base, requests: [{ method: 'GET', setupRequest: (r) => ({ ...r, path: `/pk?id=${encodeURIComponent(pick())}` }) }] }) },
  })
  const r = row({ workload: 'check', name: 'GET /consent/check (1 phone)', unit: 'req/s', cmp, baselineName: 'bare PK SELECT', notes: [`${fmt(CONTACTS)} contacts`] })
  r.targets = [
    target(`check: >= 80% of bare throughput`, `${(r.ratio * 100).toFixed(1)}%`, r.ratio >= 0.8),
    target(`check: p99 <= 5 ms at ${CONNECTIONS} connections`, `${r.p99.toFixed(2)} ms`, r.p99 <= 5),
  ]
  return [r, await checkAlone(ctx, pick), await stackCeiling(ctx, pick)]
}

/**
 * The same check with statement sharing off (CHECK_GROUP_CONCURRENCY=0): one statement per check,
 * as the bare route does. What the row above owes to checks answered together.
 */
async function checkAlone(ctx, pick) {
  const svc = await startService(ctx.url, 'alone', undefined, { CHECK_GROUP_CONCURRENCY: '0' })
  try {
    await expectKnown(svc.base, ctx.group, phone(CONTACTS - 1))
    const cmp = await compare({
      service: { pid: svc.pid, opts: () => ({ url: svc.base, headers: { authorization: headers.authorization }, requests: [{ method: 'GET', setupRequest: (r) => ({ ...r, path: `/consent/check?phone=${encodeURIComponent(pick())}&subscription_group_id=${ctx.group}` }) }] }) },
      baseline: { pid: ctx.bare.pid, opts: () => ({ url: ctx.bare.base, requests: [{ method: 'GET', setupRequest: (r) => ({ ...r, path: `/pk?id=${encodeURIComponent(pick())}` }) }] }) },
    })
    return row({
      workload: 'check',
      name: 'GET /consent/check (1 phone), each check its own statement (CHECK_GROUP_CONCURRENCY=0)',
      unit: 'req/s',
      cmp,
      baselineName: 'bare PK SELECT',
      notes: ['one statement per check, like the bare route: the row above minus checks sharing statements'],
    })
  } finally {
    await stopChild(svc.child)
  }
}

/**
 * Where the check's time goes: the bare route's PK SELECT inside the service's own HTTP stack
 * (bench/stack-server.mjs: buildApp with auth, rate limit, metrics, request id, logger, validation)
 * against the bare route. Its ratio is the ceiling of the check ratio set by the stack alone; the
 * rest of the gap is the check's own work (group, normalisation, its query, the answer).
 */
async function stackCeiling(ctx, pick) {
  const stack = await startService(ctx.url, 'stack', ['bench/stack-server.mjs'])
  try {
    await api(stack.base, 'GET', `/pk?id=${encodeURIComponent(pick())}`)
    const cmp = await compare({
      service: { pid: stack.pid, opts: () => ({ url: stack.base, headers: { authorization: headers.authorization }, requests: [{ method: 'GET', setupRequest: (r) => ({ ...r, path: `/pk?id=${encodeURIComponent(pick())}` }) }] }) },
      baseline: { pid: ctx.bare.pid, opts: () => ({ url: ctx.bare.base, requests: [{ method: 'GET', setupRequest: (r) => ({ ...r, path: `/pk?id=${encodeURIComponent(pick())}` }) }] }) },
    })
    return row({
      workload: 'check',
      name: "ceiling: the bare PK SELECT route inside the service's HTTP stack (request id, API-key auth, rate limit, metrics, logger, validation)",
      unit: 'req/s',
      cmp,
      baselineName: 'bare PK SELECT',
      notes: ["the same handler as the bare route, in the service's app (bench/stack-server.mjs): the ceiling of the check ratio set by the stack alone"],
    })
  } finally {
    await stopChild(stack.child)
  }
}

async function batchWorkload(ctx) {
  const rows = []
  for (const n of [1000, 10000]) {
    const phones = Array.from({ length: n }, (_, i) => phone((i * 2) % CONTACTS))
    const cmp = await compare({
      connections: BATCH_CONNECTIONS,
      service: { pid: ctx.svc.pid, opts: () => ({ url: `${ctx.svc.base}/consent/check`, method: 'POST', headers, body: JSON.stringify({ subscription_group_id: ctx.group, phones }) }) },
      baseline: { pid: ctx.bare.pid, opts: () => ({ url: `${ctx.bare.base}/batch`, method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ids: phones }) }) },
    })
    const r = row({ workload: 'batch', name: `POST /consent/check (${fmt(n)} phones)`, unit: 'ids/s', per: n, cmp, baselineName: 'bare unnest SELECT' })
    if (n === 10000) r.targets = [target('batch: 10,000 identifiers p50 <= 100 ms', `${r.p50.toFixed(2)} ms`, r.p50 <= 100)]
    rows.push(r)
  }
  return rows
}

let seq = 0
function trackBody(group, objects) {
  const attributes = []
  for (let i = 0; i < objects; i++) attributes.push({ external_id: `bench-u-${seq++}`, subscription_groups: [{ subscription_group_id: group, subscription_state: 'subscribed' }] })
  return JSON.stringify({ attributes })
}

async function countEvents(url) {
  return withDb(url, async (c) => (await c.query(`SELECT count(*)::int AS n FROM consent_events WHERE type = 'consent'`)).rows[0].n)
}

async function trackWorkload(ctx) {
  const rows = []
  for (const objects of [1, 75]) {
    const before = await countEvents(ctx.url)
    let acked = 0
    let sent = 0
    const cmp = await compare({
      service: {
        pid: ctx.svc.pid,
        opts: () => ({
          url: `${ctx.svc.base}/users/track`,
          requests: [{ method: 'POST', headers, setupRequest: (r) => (sent++, { ...r, body: trackBody(ctx.group, objects) }), onResponse: (status) => (acked += status === 201 ? 1 : 0) }],
        }),
      },
      baseline: { pid: ctx.bare.pid, opts: () => ({ url: `${ctx.bare.base}/upsert`, requests: [{ method: 'POST', headers: { 'content-type': 'application/json' }, setupRequest: (r) => ({ ...r, body: trackBody(ctx.group, objects) }) }] }) },
    })
    await new Promise((r) => setTimeout(r, 1000)) // requests still in flight when autocannon stopped
    const events = (await countEvents(ctx.url)) - before
    // Requests in flight when a run ends are answered but not counted by autocannon: between acked and sent.
    const ok = events >= acked * objects && events <= sent * objects
    const name = objects === 1 ? 'POST /users/track (1 object, 1 group)' : `POST /users/track (${objects} objects)`
    const r = row({ workload: 'track', name, unit: objects === 1 ? 'req/s' : 'changes/s', per: objects, cmp, baselineName: 'bare insert+upsert', notes: [`ledger: ${fmt(events)} events for ${fmt(acked * objects)} acknowledged objects (${fmt(sent * objects)} sent)${ok ? '' : ' — MISMATCH'}`] })
    // The issue's targets: one object >= 70% of the bare route; 75 objects >= 20,000 changes/s.
    r.targets =
      objects === 1
        ? [target('track (1 object): >= 70% of bare throughput', `${(r.ratio * 100).toFixed(1)}%`, r.ratio >= 0.7)]
        : [target(`track: ${objects} objects >= 20,000 group changes/s`, `${fmt(r.value)}/s`, r.value >= 20000)]
    rows.push(r)
    if (objects === 1) rows.push(await roundTripCeiling(ctx))
    rows.push(await ledgerRowsCeiling(ctx, objects))
  }
  return rows
}

/**
 * The other ceiling of /users/track: only the rows the ledger must write for the objects (new
 * people: a contact, an identity, an event, a projection row each) in ONE statement into copies of
 * the ledger's tables with their indexes, against the bare insert+upsert. No append in this data
 * model can do better than this ratio, however few its round trips.
 */
async function ledgerRowsCeiling(ctx, objects) {
  const body = { method: 'POST', headers: { 'content-type': 'application/json' } }
  const cmp = await compare({
    service: { pid: ctx.bare.pid, opts: () => ({ url: `${ctx.bare.base}/ledger-rows`, requests: [{ ...body, setupRequest: (r) => ({ ...r, body: trackBody(ctx.group, objects) }) }] }) },
    baseline: { pid: ctx.bare.pid, opts: () => ({ url: `${ctx.bare.base}/upsert`, requests: [{ ...body, setupRequest: (r) => ({ ...r, body: trackBody(ctx.group, objects) }) }] }) },
  })
  return row({
    workload: 'track',
    name: `ceiling: the ledger's rows for ${objects} object${objects === 1 ? '' : 's'} alone (contact, identity, event, projection; one statement, the ledger's indexes)`,
    unit: objects === 1 ? 'req/s' : 'changes/s',
    per: objects,
    cmp,
    baselineName: 'bare insert+upsert',
    notes: ['no reads, locks, triggers, hashing or validation: the ceiling of any append into this data model (RSS is the bare server)'],
  })
}

/**
 * Where the time of a one-object /users/track goes: the bare insert+upsert again, but inside a
 * transaction with as many round trips as the ledger append makes (BEGIN sent with its one read,
 * ledger_prepare; the write pipelined with COMMIT), against the same bare statement alone. Its ratio is the ceiling of any
 * design that talks to PostgreSQL that many times per request on this machine.
 */
async function roundTripCeiling(ctx) {
  const READS = 1
  const body = { method: 'POST', headers: { 'content-type': 'application/json' } }
  const cmp = await compare({
    service: { pid: ctx.bare.pid, opts: () => ({ url: `${ctx.bare.base}/upsert-tx?reads=${READS}&begin=with-first&commit=with-write`, requests: [{ ...body, setupRequest: (r) => ({ ...r, body: trackBody(ctx.group, 1) }) }] }) },
    baseline: { pid: ctx.bare.pid, opts: () => ({ url: `${ctx.bare.base}/upsert`, requests: [{ ...body, setupRequest: (r) => ({ ...r, body: trackBody(ctx.group, 1) }) }] }) },
  })
  return row({
    workload: 'track',
    name: `ceiling: bare insert+upsert in ${READS + 1} round trips (BEGIN with ${READS} read, then the write pipelined with COMMIT)`,
    unit: 'req/s',
    cmp,
    baselineName: 'bare insert+upsert (1 round trip)',
    notes: ['the round trips of a one-object /users/track, with no work in them: the ceiling of the track ratio (RSS is the bare server)'],
  })
}

function stopWebhook(n) {
  const from = `1415${3000000 + n}` // valid numbers, apart from the seeded contacts (2000000 + n)
  const body = JSON.stringify({
    object: 'whatsapp_business_account',
    entry: [
      {
        id: '102290129340398',
        changes: [
          {
            value: {
              messaging_product: 'whatsapp',
              metadata: { display_phone_number: '15550783881', phone_number_id: PNID },
              contacts: [{ profile: { name: 'Bench Person' }, wa_id: from }],
              messages: [{ from, id: `wamid.bench.${n}`, timestamp: String(1750000000 + (n % 100000)), type: 'text', text: { body: 'STOP' } }],
            },
            field: 'messages',
          },
        ],
      },
    ],
  })
  return { body, headers: { 'content-type': 'application/json', 'x-hub-signature-256': `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}` } }
}

/** Waits (up to 120 s) until no inbox row is pending: the service may acknowledge first and process right after. */
async function drainInbox(url) {
  const t0 = Date.now()
  for (;;) {
    const { pending } = await withDb(url, async (c) => (await c.query(`SELECT count(*)::int AS pending FROM webhook_inbox WHERE status = 'pending'`)).rows[0])
    if (pending === 0 || Date.now() - t0 > 120_000) return Date.now() - t0
    await new Promise((r) => setTimeout(r, 100))
  }
}

async function webhookWorkload(ctx) {
  let n = 0
  let acked = 0
  let sent = 0
  const before = await countEvents(ctx.url)
  const cmp = await compare({
    service: {
      pid: ctx.svc.pid,
      opts: () => ({ url: `${ctx.svc.base}/webhooks/whatsapp`, requests: [{ method: 'POST', setupRequest: (r) => (sent++, { ...r, ...stopWebhook(n++) }), onResponse: (status) => (acked += status === 200 ? 1 : 0) }] }),
      settle: () => drainInbox(ctx.url),
    },
    baseline: { pid: ctx.bare.pid, opts: () => ({ url: `${ctx.bare.base}/upsert`, requests: [{ method: 'POST', setupRequest: (r) => ({ ...r, ...stopWebhook(n++) }) }] }) },
  })
  await new Promise((r) => setTimeout(r, 1000)) // requests still in flight when autocannon stopped
  await drainInbox(ctx.url)
  const { inbox, processed } = await withDb(ctx.url, async (c) => (await c.query(`SELECT count(*)::int AS inbox, count(*) FILTER (WHERE status = 'processed')::int AS processed FROM webhook_inbox`)).rows[0])
  const events = (await countEvents(ctx.url)) - before
  const ok = inbox >= acked && inbox <= sent && processed === inbox && events === 2 * inbox
  const r = row({
    workload: 'webhook',
    name: 'POST /webhooks/whatsapp (signed STOP, new person)',
    unit: 'req/s',
    cmp,
    baselineName: 'bare insert+upsert',
    notes: [
      cmp.service.settleS > 0.5
        ? `processing lagged the acks: ${cmp.service.settleS.toFixed(1)} s to drain after the measured runs; processed ${fmt(cmp.service.requests / (cmp.service.secs + cmp.service.settleS))}/s counting that`
        : null,
      `ledger: ${fmt(acked)} acked (${fmt(sent)} sent), inbox ${fmt(inbox)} (${fmt(processed)} processed), ${fmt(events)} events (2 groups)${ok ? '' : ' — MISMATCH'}`,
    ].filter(Boolean),
  })
  r.targets = [target('webhook: >= 50% of bare throughput', `${(r.ratio * 100).toFixed(1)}%`, r.ratio >= 0.5), target('webhook: ack p99 <= 250 ms', `${r.p99.toFixed(2)} ms`, r.p99 <= 250)]
  return [r]
}

// ---- import: bench/import.mjs as a child process ----------------------------------------------
async function importWorkload() {
  const child = spawnNode([join(root, 'bench/import.mjs')], {
    cwd: root,
    label: 'import',
    env: { BENCH_ROWS: String(IMPORT_ROWS), BENCH_MACHINERY: '0', BENCH_JSON: '1' },
  })
  const { code, signal } = await child.exited
  if (code !== 0) throw new Error(`bench/import.mjs exited ${code ?? signal}:\n${child.output.slice(-2000)}`)
  const j = parseImportOutput(child.output)
  if (!j) throw new Error(`could not read bench/import.mjs output:\n${child.output.slice(-2000)}`)
  const peak = j.rss ? Math.max(j.rss.uploadPeak, j.rss.processingPeak) : null
  const r = {
    workload: 'import',
    name: `CSV import end to end (${fmt(IMPORT_ROWS)} rows)`,
    unit: 'rows/s',
    value: j.endToEndRowsPerS,
    p50: null,
    p99: null,
    rss: j.rss ? { peak, hwm: j.rss.hwm } : null,
    baseline: { name: 'raw COPY of the file', unit: 'rows/s', value: j.copyRowsPerS },
    ratio: j.copyRowsPerS ? j.endToEndRowsPerS / j.copyRowsPerS : null,
    notes: [
      `${j.endToEndS} s end to end${j.copyS ? `, COPY ${j.copyS} s` : ''}`,
      j.uploadRowsPerS ? `upload ${fmt(j.uploadRowsPerS)} rows/s, processing ${fmt(j.processingRowsPerS)} rows/s` : null,
      j.status ? `${j.status.status}: ${fmt(j.status.applied)} applied, ${fmt(j.status.rejected)} rejected` : null,
      'by bench/import.mjs',
    ].filter(Boolean),
    detail: j,
  }
  const hwm = j.rss?.hwm ?? null
  r.targets = [
    target('import: >= 20% of raw COPY', r.ratio == null ? 'n/a' : `${(r.ratio * 100).toFixed(1)}%`, r.ratio == null ? null : r.ratio >= 0.2),
    target('import: service RSS <= 300 MB (VmHWM)', hwm == null ? 'n/a' : `${hwm} MB`, hwm == null ? null : hwm <= 300),
  ]
  if (j.status && j.status.status !== 'completed') r.notes.push('IMPORT DID NOT COMPLETE')
  const rows = [r]
  if (j.ceilingRowsPerS && j.copyRowsPerS) {
    // The same file's rows written straight into copies of the ledger's tables with their indexes,
    // nothing else (bench/import.mjs, ledgerWriteCeiling): the ceiling of the import ratio.
    rows.push({
      workload: 'import',
      name: "ceiling: the import's ledger rows alone (5 set-based INSERT ... SELECT into the ledger's indexed tables, no validation, lookups, locks or triggers)",
      unit: 'rows/s',
      value: j.ceilingRowsPerS,
      p50: null,
      p99: null,
      rss: null,
      baseline: { name: 'raw COPY of the file', unit: 'rows/s', value: j.copyRowsPerS },
      ratio: j.ceilingRowsPerS / j.copyRowsPerS,
      notes: [`${j.ceilingS} s for ${fmt(IMPORT_ROWS)} rows: a contact, an identity, an exactly-once key, an event and a projection row each; no import can reach a higher ratio on this data model`],
      targets: [],
    })
  }
  return rows
}

// ---- scale: synthetic ledgers of 10^5 and 10^7 events -----------------------------------------
/**
 * SYNTHETIC data, set-based (generate_series), straight into the tables: `events` ledger rows over
 * events/10 contacts (one phone each), two groups, and the consent_state projection of those
 * events. Hashes are placeholders (they do not chain): this measures the check's latency against
 * the size of the tables, not verification. FK triggers are skipped (session_replication_role =
 * replica; the data is consistent by construction) and consent_events' indexes are built after
 * the load, which is much faster than maintaining them row by row. Then VACUUM ANALYZE of the
 * check's tables and ANALYZE of everything.
 */
async function seedSynthetic(url, events) {
  const contacts = Math.max(1, Math.floor(events / EVENTS_PER_CONTACT))
  const rounds = Math.floor(events / contacts)
  const t0 = Date.now()
  await withDb(url, async (c) => {
    await c.query(`SET session_replication_role = replica`)
    await c.query(`SET synchronous_commit = off`)
    await c.query(`SET maintenance_work_mem = '256MB'`)
    const G = ['22222222-2222-4222-8222-000000000001', '22222222-2222-4222-8222-000000000002']
    await c.query(`INSERT INTO workspaces (id, name) VALUES ($1, 'default') ON CONFLICT DO NOTHING`, [WS])
    await c.query(`INSERT INTO workspace_settings (workspace_id) VALUES ($1) ON CONFLICT DO NOTHING`, [WS])
    await c.query(`INSERT INTO subscription_groups (workspace_id, id, name, channel, category) VALUES ($1, $2, 'promos', 'whatsapp', 'marketing'), ($1, $3, 'orders', 'whatsapp', 'utility')`, [WS, ...G])
    const cid = (x) => `md5('c' || ${x})::uuid`
    const ph = (x) => `'+1415' || lpad((2000000 + ${x})::text, 7, '0')`
    await c.query(`INSERT INTO contacts (workspace_id, id, chain_length) SELECT $1, ${cid('c')}, $3 FROM generate_series(0, $2::int - 1) c`, [WS, contacts, rounds])
    await c.query(`INSERT INTO identities (workspace_id, type, value, contact_id) SELECT $1, 'phone', ${ph('c')}, ${cid('c')} FROM generate_series(0, $2::int - 1) c`, [WS, contacts])
    // consent_events: drop its indexes, load, rebuild.
    const pk = (await c.query(`SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = 'consent_events'::regclass AND contype = 'p'`)).rows
    const idx = (
      await c.query(
        `SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'consent_events'
            AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = 'consent_events'::regclass)`,
      )
    ).rows
    for (const i of idx) await c.query(`DROP INDEX "${i.indexname}"`)
    for (const p of pk) await c.query(`ALTER TABLE consent_events DROP CONSTRAINT "${p.conname}"`)
    // Event i (0-based): contact i % C, round r = i / C, group r % 2, state by (r + c) % 4.
    await c.query(
      `INSERT INTO consent_events (workspace_id, id, event_id, contact_id, type, subscription_group_id, state, occurred_at, recorded_at,
                                   source, method, evidence, identity_type, identity_value, actor, prev_hash, hash)
       SELECT $1, i + 1, md5('e' || i)::uuid, ${cid('i % $3')}, 'consent',
              CASE WHEN (i / $3) % 2 = 0 THEN $4::uuid ELSE $5::uuid END,
              CASE WHEN ((i / $3) + i % $3) % 4 = 0 THEN 'unsubscribed' ELSE 'subscribed' END,
              timestamptz '2025-01-01' + i * interval '1 second', timestamptz '2025-01-01' + i * interval '1 second',
              'api', 'web_form', '{"consent_text":"Yes, send me offers on WhatsApp"}'::jsonb, 'phone', ${ph('i % $3')}, 'key:bench',
              md5('p' || i) || md5('q' || i), md5('h' || i) || md5('k' || i)
         FROM generate_series(0::bigint, $2::bigint - 1) i`,
      [WS, contacts * rounds, contacts, ...G],
    )
    const loadedS = (Date.now() - t0) / 1000
    for (const p of pk) await c.query(`ALTER TABLE consent_events ADD CONSTRAINT "${p.conname}" ${p.def}`)
    for (const i of idx) await c.query(i.indexdef)
    await c.query(`SELECT setval('consent_events_id_seq', $1)`, [contacts * rounds])
    // The projection: for each contact and group, its latest event (rounds R-1 and R-2).
    await c.query(
      `INSERT INTO consent_state (workspace_id, contact_id, subscription_group_id, state, occurred_at, event_seq, event_id, source)
       SELECT $1, ${cid('c')}, CASE WHEN r % 2 = 0 THEN $4::uuid ELSE $5::uuid END,
              CASE WHEN (r + c) % 4 = 0 THEN 'unsubscribed' ELSE 'subscribed' END,
              timestamptz '2025-01-01' + (r::bigint * $2 + c) * interval '1 second', r::bigint * $2 + c + 1, md5('e' || (r::bigint * $2 + c))::uuid, 'api'
         FROM generate_series(0, $2::int - 1) c, (SELECT unnest(ARRAY[$3::int - 1, $3::int - 2]) AS r) rr
        WHERE r >= 0`,
      [WS, contacts, rounds, ...G],
    )
    await c.query(`SET session_replication_role = origin`)
    // Every table, consent_events too: otherwise autovacuum takes the freshly loaded ledger on in
    // the middle of the measured runs (reading all of it), which no steady-state server does.
    await c.query(`VACUUM ANALYZE contacts, identities, consent_state, subscription_groups, platform_stops, workspaces, workspace_settings, consent_events`)
    await c.query(`ANALYZE`)
    // A server in steady state has written its dirty pages out: without this, the measured runs
    // would pay for the bulk load's write-back as the buffer pool evicts them.
    await c.query(`CHECKPOINT`)
    const size = (await c.query(`SELECT pg_size_pretty(pg_database_size(current_database())) AS s`)).rows[0].s
    log(`synthetic ledger: ${fmt(contacts * rounds)} events, ${fmt(contacts)} contacts; rows in ${loadedS.toFixed(0)} s, indexed + analysed in ${((Date.now() - t0) / 1000 - loadedS).toFixed(0)} s; database ${size}`)
  })
  return { events: contacts * rounds, contacts, group: '22222222-2222-4222-8222-000000000001', seconds: (Date.now() - t0) / 1000 }
}

async function scaleWorkload(pid) {
  const smallName = `cl_bench_small_${pid}`
  const bigName = `cl_bench_big_${pid}`
  const smallUrl = await createDatabase(smallName)
  const bigUrl = await createDatabase(bigName)
  let small
  let big
  try {
    await migratePostgres(smallUrl)
    await migratePostgres(bigUrl)
    const s = await seedSynthetic(smallUrl, SMALL_EVENTS)
    log(`loading ${fmt(BIG_EVENTS)} synthetic events (BENCH_BIG_EVENTS)...`)
    const b = await seedSynthetic(bigUrl, BIG_EVENTS)
    small = await startService(smallUrl, 'service-1e5')
    big = await startService(bigUrl, 'service-big')
    await expectKnown(small.base, s.group, phone(s.contacts - 1))
    await expectKnown(big.base, b.group, phone(b.contacts - 1))
    let ks = 0
    let kb = 0
    const get = (svc, path) => ({ url: svc.base, headers: { authorization: headers.authorization }, requests: [{ method: 'GET', setupRequest: (r) => ({ ...r, path: path() }) }] })
    const cmp = await compare({
      service: { pid: big.pid, opts: () => get(big, () => `/consent/check?phone=${encodeURIComponent(phone((kb++ * 7919) % b.contacts))}&subscription_group_id=${b.group}`) },
      baseline: { pid: small.pid, opts: () => get(small, () => `/consent/check?phone=${encodeURIComponent(phone((ks++ * 7919) % s.contacts))}&subscription_group_id=${s.group}`) },
    })
    const exp = (n) => (Number.isInteger(Math.log10(n)) ? `10^${Math.log10(n)}` : fmt(n))
    const r = row({
      workload: 'scale',
      name: `GET /consent/check, ledger of ${exp(b.events)} events`,
      unit: 'req/s',
      cmp,
      baselineName: `same, ledger of ${exp(s.events)} events`,
      notes: [`synthetic ledgers (SQL generate_series): ${fmt(b.contacts)} vs ${fmt(s.contacts)} contacts, 2 groups; loaded in ${b.seconds.toFixed(0)} s`],
    })
    // Saturated (10 connections as fast as they go), p99 is mostly queueing: about connections /
    // throughput. How a check's own latency grows with the ledger is read with one client sending
    // its next check when the last is answered: no queue, nothing shared. (autocannon's
    // overallRate sends each second's quota in a burst at the start of the second: a queue again.)
    const paced = await compare({
      connections: 1,
      service: { pid: big.pid, opts: () => get(big, () => `/consent/check?phone=${encodeURIComponent(phone((kb++ * 7919) % b.contacts))}&subscription_group_id=${b.group}`) },
      baseline: { pid: small.pid, opts: () => get(small, () => `/consent/check?phone=${encodeURIComponent(phone((ks++ * 7919) % s.contacts))}&subscription_group_id=${s.group}`) },
    })
    const p = row({
      workload: 'scale',
      name: `GET /consent/check from 1 client, ledger of ${exp(b.events)} events`,
      unit: 'req/s',
      cmp: paced,
      baselineName: `same, ledger of ${exp(s.events)} events`,
      notes: [`the same ledgers: the latency of a check without queueing; saturated (row above): p99 ${r.p99.toFixed(2)} vs ${r.baseline.p99.toFixed(2)} ms`],
    })
    const ratio = p.p99 / p.baseline.p99
    p.p99Ratio = ratio
    p.targets = [target(`scale: p99 at ${exp(b.events)} events within 1.5x of ${exp(s.events)} (1 client)`, `${p.p99.toFixed(2)} vs ${p.baseline.p99.toFixed(2)} ms (${ratio.toFixed(2)}x)`, ratio <= 1.5)]
    return [r, p]
  } finally {
    await stopChild(small?.child)
    await stopChild(big?.child)
    await dropDatabase(smallName)
    await dropDatabase(bigName)
  }
}

// ---- main ------------------------------------------------------------------------------------
async function main() {
  installCleanup()
  const pgVersion = (await adminQuery('SHOW server_version')).rows[0].server_version
  const machine = describeMachine(pgVersion)
  const startedAt = new Date().toISOString()
  const result = {
    version: 1,
    startedAt,
    command: `node bench/run.mjs ${argv.join(' ')}`.trim(),
    settings: { durationS: DURATION, rounds: ROUNDS, warmupS: WARMUP, connections: CONNECTIONS, batchConnections: BATCH_CONNECTIONS, contacts: CONTACTS, pool: POOL, importRows: IMPORT_ROWS, smallEvents: SMALL_EVENTS, bigEvents: BIG_EVENTS },
    machine,
    selected,
    skipped: ALL.filter((w) => !selected.includes(w)),
    rows: [],
    errors: [],
    notes: [
      'Ratio = service throughput / baseline throughput, both measured in this run with the same connections and duration.',
      'The scale row is synthetic: ledgers generated with set-based SQL; hashes do not chain (latency only).',
    ],
  }
  log(`workloads: ${selected.join(', ')}; ${ROUNDS} x ${DURATION} s per side after ${WARMUP} s warm-up; ${CONNECTIONS} connections`)
  const pid = process.pid
  const mainWork = selected.filter((w) => ['check', 'batch', 'track', 'webhook'].includes(w))
  if (mainWork.length) {
    let ctx
    try {
      ctx = await setupMain(`cl_bench_main_${pid}`)
      result.machine.serviceRssAfterSeedMB = memOf(ctx.svc.pid)?.rss
      const fns = { check: checkWorkload, batch: batchWorkload, track: trackWorkload, webhook: webhookWorkload }
      for (const w of mainWork) {
        log(`-- ${w}`)
        try {
          const rows = await fns[w](ctx)
          result.rows.push(...rows)
          for (const r of rows) log(`   ${r.name}: ${fmt(r.value)} ${r.unit} (p50 ${r.p50?.toFixed(2)} / p99 ${r.p99?.toFixed(2)} ms) vs ${r.baseline.name} ${fmt(r.baseline.value)}: ${(r.ratio * 100).toFixed(1)}%`)
        } catch (err) {
          log(`   ${w} failed: ${err.stack}`)
          result.errors.push({ workload: w, message: err.message })
        }
      }
    } catch (err) {
      log(`setup failed: ${err.stack}`)
      result.errors.push({ workload: mainWork.join(','), message: err.message })
    } finally {
      if (ctx) {
        await stopChild(ctx.svc.child)
        await stopChild(ctx.bare.child)
      }
      await dropDatabase(`cl_bench_main_${pid}`).catch(() => {})
    }
  }
  if (selected.includes('import')) {
    log('-- import (bench/import.mjs)')
    try {
      const rows = await importWorkload()
      result.rows.push(...rows)
    } catch (err) {
      log(`   import failed: ${err.stack}`)
      result.errors.push({ workload: 'import', message: err.message.slice(0, 500) })
    }
  }
  if (selected.includes('scale')) {
    log('-- scale')
    try {
      result.rows.push(...(await scaleWorkload(pid)))
    } catch (err) {
      log(`   scale failed: ${err.stack}`)
      result.errors.push({ workload: 'scale', message: err.message })
    }
  }
  result.finishedAt = new Date().toISOString()
  result.machine.loadavgEnd = os.loadavg().map((x) => Math.round(x * 100) / 100)
  const md = toMarkdown(result)
  process.stdout.write('\n' + md)
  if (SAVE) {
    mkdirSync(OUT, { recursive: true })
    const stamp = `${startedAt.slice(0, 16).replace(':', '')}`
    const host = machine.host.replace(/[^A-Za-z0-9_.-]/g, '_')
    const base = join(OUT, `${stamp}-${host}`)
    writeFileSync(`${base}.json`, JSON.stringify(result, null, 2) + '\n')
    writeFileSync(`${base}.md`, md)
    copyFileSync(`${base}.md`, join(OUT, 'latest.md'))
    copyFileSync(`${base}.json`, join(OUT, 'latest.json'))
    log(`results: ${base}.json, ${base}.md, ${join(OUT, 'latest.md')}`)
  }
  if (result.errors.length) process.exitCode = 1
}

try {
  await main()
} finally {
  await cleanup()
}
