#!/usr/bin/env node
/**
 * WhatsApp webhook benchmark, reported beside a baseline measured in the same run
 * (shared, noisy machines: absolute numbers mean little, ratios travel). Run: `npm run bench:webhook`
 * (builds first).
 *
 *  webhook    POST /webhooks/whatsapp of signed single-message STOP payloads (Meta's text message
 *             shape), every request from a different person with its own message id, over HTTP on
 *             127.0.0.1 (autocannon, BENCH_CONNECTIONS connections, BENCH_REQUESTS requests). Each
 *             request: HMAC check, inbox commit, then processing in the same request (routing,
 *             keyword rules, a new contact, one unsubscribed event per WhatsApp group, projection),
 *             then the 200. Reported: requests/s and the p50/p99 latency of the acknowledgement.
 *  baseline   a bare Fastify route on the same machine and the same PostgreSQL that parses the same
 *             bodies and does ONE `INSERT ... ON CONFLICT DO UPDATE` through pg: the floor of
 *             "HTTP + one durable write", i.e. what the inbox commit alone would cost.
 * After the run the ledger is checked: every acknowledged payload is in the inbox, processed, with
 * its events (nothing lost, nothing doubled).
 *
 * Needs PostgreSQL (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres): it
 * creates and drops its own database.
 */
import pg from 'pg'
import Fastify from 'fastify'
import autocannon from 'autocannon'
import { createHmac } from 'node:crypto'
import { buildApp } from '../dist/src/app.js'
import { loadConfig } from '../dist/src/config/env.js'
import { migratePostgres } from '../dist/src/db/migrate.js'

const admin = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
const name = `cl_bench_webhook_${process.pid}`
const url = new URL(admin)
url.pathname = `/${name}`
const KEY = 'bench-root-key-0123456789abcdef'
const SECRET = 'bench-app-secret'
const PNID = '106540352242922'
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10)
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 10000)
const POOL = Number(process.env.BENCH_POOL ?? 20)

async function adminQuery(sql) {
  const c = new pg.Client({ connectionString: admin })
  await c.connect()
  try {
    await c.query(sql)
  } finally {
    await c.end()
  }
}

/** Meta's text-message webhook (test/fixtures/meta-text.json shape), one message, signed. */
function stopWebhook(n, prefix) {
  const from = `1415${String(2000000 + n).padStart(7, '0')}`
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
              messages: [{ from, id: `wamid.${prefix}.${n}`, timestamp: String(1750000000 + (n % 100000)), type: 'text', text: { body: 'STOP' } }],
            },
            field: 'messages',
          },
        ],
      },
    ],
  })
  return { body, signature: `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}` }
}

/** One counter for every run: each request is a different person with a different message id. */
let seq = 0

function load(target, path, prefix, amount = REQUESTS) {
  return new Promise((resolve, reject) =>
    autocannon(
      {
        url: `${target}${path}`,
        connections: CONNECTIONS,
        amount,
        requests: [
          {
            method: 'POST',
            setupRequest: (req) => {
              const { body, signature } = stopWebhook(seq++, prefix)
              return { ...req, body, headers: { 'content-type': 'application/json', 'x-hub-signature-256': signature } }
            },
          },
        ],
      },
      (err, res) => (err ? reject(err) : resolve(res)),
    ),
  )
}

await adminQuery(`DROP DATABASE IF EXISTS ${name}`)
await adminQuery(`CREATE DATABASE ${name}`)
let app
let bare
let barePool
try {
  await migratePostgres(url.toString())
  app = await buildApp(
    loadConfig({
      DATABASE_URL: url.toString(),
      DATABASE_POOL_MAX: String(POOL),
      CONSENT_ADMIN_KEY: KEY,
      WHATSAPP_APP_SECRETS: SECRET,
      LOG_LEVEL: 'silent',
      RATE_LIMIT_MAX: '100000000',
    }),
  )
  await app.listen({ port: 0, host: '127.0.0.1' })
  const base = `http://127.0.0.1:${app.server.address().port}`
  const headers = { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }
  const post = async (path, body) => {
    const r = await fetch(base + path, { method: 'POST', headers, body: JSON.stringify(body) })
    if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`)
    return r.json()
  }
  await post('/whatsapp/numbers', { phone_number_id: PNID })
  await post('/subscription-groups', { name: 'promos', channel: 'whatsapp', category: 'marketing', phone_number_id: PNID })
  await post('/subscription-groups', { name: 'orders', channel: 'whatsapp', category: 'utility' })

  // Baseline: bare Fastify + one upsert through pg, same database server, same pool size.
  barePool = new pg.Pool({ connectionString: url.toString(), max: POOL })
  await barePool.query(`CREATE TABLE bench_baseline (id text PRIMARY KEY, body jsonb NOT NULL, n int NOT NULL DEFAULT 1)`)
  bare = Fastify({ bodyLimit: 3 * 1024 * 1024 })
  bare.post('/baseline', async (request) => {
    const id = request.body.entry[0].changes[0].value.messages[0].id
    await barePool.query(`INSERT INTO bench_baseline (id, body) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET n = bench_baseline.n + 1, body = excluded.body`, [
      id,
      request.body,
    ])
    return { received: true }
  })
  await bare.listen({ port: 0, host: '127.0.0.1' })
  const bareBase = `http://127.0.0.1:${bare.server.address().port}`

  // Warm-up of both (JIT, pools), then the measured runs.
  const warm = Math.min(500, REQUESTS)
  const warmBase = await load(bareBase, '/baseline', 'warm', warm)
  const warmHook = await load(base, '/webhooks/whatsapp', 'warm', warm)
  const baseline = await load(bareBase, '/baseline', 'base')
  const webhook = await load(base, '/webhooks/whatsapp', 'bench')
  const acked = webhook['2xx'] + warmHook['2xx']
  void warmBase

  // Correctness under load: every 2xx is stored, processed, and has exactly its events.
  const sql = app.database.sql
  const [inbox] = await sql.query(`SELECT count(*)::int AS n, count(*) FILTER (WHERE status = 'processed')::int AS processed FROM webhook_inbox`)
  const [ledger] = await sql.query(`SELECT count(*)::int AS events, count(DISTINCT contact_id)::int AS contacts FROM consent_events WHERE type = 'consent'`)

  const fmt = (r) => `${Math.round(r.requests.average)} req/s, p50 ${r.latency.p50} ms, p99 ${r.latency.p99} ms`
  console.log(`\n${REQUESTS} requests per run, ${CONNECTIONS} connections, pool ${POOL}`)
  console.log('benchmark | result | baseline (same run) | ratio')
  console.log(
    [
      'signed single-message STOP webhook (ack)',
      fmt(webhook),
      `bare Fastify + 1 upsert: ${fmt(baseline)}`,
      `throughput ${(webhook.requests.average / baseline.requests.average).toFixed(2)} of baseline, p99 ${(webhook.latency.p99 / Math.max(baseline.latency.p99, 1)).toFixed(1)}x`,
    ].join(' | '),
  )
  console.log(
    `check: ${webhook['2xx']} acknowledged (+${warmHook['2xx']} warm-up), ${webhook.non2xx} non-2xx, ${webhook.errors} errors; inbox ${inbox.n} rows (${inbox.processed} processed); ` +
      `ledger ${ledger.events} events for ${ledger.contacts} contacts (expected ${2 * acked} / ${acked}, warm-up included)`,
  )
  if (webhook.non2xx > 0 || baseline.non2xx > 0 || inbox.n !== acked || inbox.processed !== inbox.n || ledger.events !== 2 * acked) {
    console.log('WARNING: the ledger does not match the acknowledged requests')
    process.exitCode = 1
  }
} finally {
  if (bare) await bare.close()
  if (barePool) await barePool.end()
  if (app) await app.close()
  await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
}
