#!/usr/bin/env node
/**
 * The raw baseline of the benchmark suite: a bare Fastify server (no auth, no validation schemas,
 * no plugins, logger off) on the same PostgreSQL through pg, run as a child process exactly like
 * the service. Env: DATABASE_URL, PORT, HOST (127.0.0.1), DATABASE_POOL_MAX (20, the service's
 * default). Routes:
 *
 *  GET  /pk?id=<phone>    ONE primary-key SELECT (bench_kv, seeded with the same phones as the
 *                         service's contacts): the floor of the single check.
 *  POST /batch {ids:[]}   ONE set-based SELECT of the ids (unnest WITH ORDINALITY LEFT JOIN
 *                         bench_kv), answered in input order: the floor of the batch check.
 *  POST /upsert <json>    ONE insert+upsert statement: every object of the body (Braze
 *                         `attributes[]`, or the messages of a Meta webhook) is appended to
 *                         bench_events and upserted into bench_state in a single CTE statement
 *                         (append + projection, what the ledger does at minimum): the floor of
 *                         /users/track and the webhook.
 *  POST /ledger-rows <json>  the rows the ledger writes for the body's Braze objects (new people): a
 *                         contact, an identity, an event and a projection row each, in ONE
 *                         statement, into copies of the ledger's tables WITH their indexes (no
 *                         reads, locks, triggers or hashing): the floor of any append in this
 *                         data model.
 *  POST /upsert-tx?reads=N[&begin=with-first][&commit=with-write]  the same insert+upsert inside BEGIN ... COMMIT
 *                         after N primary-key SELECTs on bench_kv, one round trip each: the floor of
 *                         any design that talks to PostgreSQL that many times per request, as the
 *                         ledger append does (BEGIN with its one read, then the write pipelined with
 *                         COMMIT: two round trips).
 */
import Fastify from 'fastify'
import pg from 'pg'
// Time-ordered ids from the ledger's own generator (random ones would scatter every B-tree insert).
import { uuidv7 } from '../dist/src/ledger/uuid7.js'

/** The service's default workspace (src/auth/api-keys.ts). */
const WORKSPACE = '00000000-0000-4000-8000-000000000001'

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: Number(process.env.DATABASE_POOL_MAX ?? 20) })
await pool.query(`CREATE TABLE IF NOT EXISTS bench_kv (id text PRIMARY KEY, state text NOT NULL, occurred_at timestamptz NOT NULL, event_id uuid NOT NULL)`)
await pool.query(`CREATE TABLE IF NOT EXISTS bench_events (id bigserial PRIMARY KEY, key text NOT NULL, body jsonb NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now())`)
await pool.query(`CREATE TABLE IF NOT EXISTS bench_state (key text PRIMARY KEY, event_id bigint NOT NULL, n int NOT NULL DEFAULT 1)`)

// Copies of the ledger's tables (the service's migrations ran on this database), indexes included.
const LEDGER_COPIES = { contacts: 'bare_contacts', identities: 'bare_identities', consent_events: 'bare_events', consent_state: 'bare_state' }
const ledgerTables = (await pool.query(`SELECT to_regclass('consent_state') IS NOT NULL AS ok`)).rows[0].ok
if (ledgerTables) for (const [from, to] of Object.entries(LEDGER_COPIES)) await pool.query(`CREATE TABLE IF NOT EXISTS ${to} (LIKE ${from} INCLUDING DEFAULTS INCLUDING INDEXES)`)

const app = Fastify({ bodyLimit: 3 * 1024 * 1024 })

app.get('/healthz', async () => ({ ok: true }))

app.get('/pk', async (request) => {
  const { rows } = await pool.query('SELECT id, state, occurred_at, event_id FROM bench_kv WHERE id = $1', [request.query.id])
  const r = rows[0]
  return { results: [{ identifier: request.query.id, allowed: r?.state === 'subscribed', state: r?.state ?? 'unknown', occurred_at: r?.occurred_at ?? null, event_id: r?.event_id ?? null }] }
})

app.post('/batch', async (request) => {
  const ids = request.body.ids
  const { rows } = await pool.query(
    `SELECT q.id, k.state, k.occurred_at, k.event_id
       FROM unnest($1::text[]) WITH ORDINALITY AS q(id, ord) LEFT JOIN bench_kv k ON k.id = q.id ORDER BY q.ord`,
    [ids],
  )
  return { results: rows.map((r) => ({ identifier: r.id, allowed: r.state === 'subscribed', state: r.state ?? 'unknown', occurred_at: r.occurred_at, event_id: r.event_id })) }
})

function keysOf(body) {
  if (Array.isArray(body?.attributes)) return body.attributes.map((a, i) => [String(a.external_id ?? a.phone ?? i), a])
  if (Array.isArray(body?.entry)) {
    const out = []
    for (const e of body.entry) for (const c of e.changes ?? []) for (const m of c.value?.messages ?? []) out.push([m.id, m])
    return out
  }
  return [[String(Math.random()), body]]
}

const UPSERT = `WITH ev AS (
       INSERT INTO bench_events (key, body) SELECT k, b FROM unnest($1::text[], $2::jsonb[]) AS t(k, b) RETURNING id, key
     )
     INSERT INTO bench_state (key, event_id) SELECT key, id FROM ev
     ON CONFLICT (key) DO UPDATE SET event_id = excluded.event_id, n = bench_state.n + 1`

app.post('/upsert', async (request, reply) => {
  const kv = keysOf(request.body)
  await pool.query(UPSERT, [kv.map((x) => x[0]), kv.map((x) => JSON.stringify(x[1]))])
  reply.code(201)
  return { message: 'success', processed: kv.length }
})

const LEDGER_ROWS = `WITH c AS (
       INSERT INTO bare_contacts (workspace_id, id, chain_head, chain_length) SELECT $1, x.id, $5, 1 FROM unnest($2::uuid[]) AS x(id)
     ), i AS (
       INSERT INTO bare_identities (workspace_id, type, value, contact_id) SELECT $1, 'external_id', x.v, x.id FROM unnest($2::uuid[], $3::text[]) AS x(id, v)
     ), e AS (
       INSERT INTO bare_events (workspace_id, event_id, contact_id, subscription_group_id, state, occurred_at, recorded_at, source, evidence,
                                identity_type, identity_value, actor, prev_hash, hash)
       SELECT $1, x.e, x.id, x.g, 'subscribed', now(), now(), 'braze', '{}', 'external_id', x.v, 'bench', $5, $5
         FROM unnest($2::uuid[], $3::text[], $4::uuid[], $6::uuid[]) AS x(id, v, e, g)
       RETURNING id, event_id, contact_id, subscription_group_id
     )
     INSERT INTO bare_state (workspace_id, contact_id, subscription_group_id, state, occurred_at, event_seq, event_id, source)
     SELECT $1, contact_id, subscription_group_id, 'subscribed', now(), id, event_id, 'braze' FROM e
     ON CONFLICT (workspace_id, contact_id, subscription_group_id) DO UPDATE SET state = excluded.state, event_seq = excluded.event_seq, event_id = excluded.event_id`

app.post('/ledger-rows', async (request, reply) => {
  const objs = request.body?.attributes ?? []
  await pool.query({
    name: 'bare-ledger-rows',
    text: LEDGER_ROWS,
    values: [WORKSPACE, objs.map(() => uuidv7()), objs.map((o) => String(o.external_id)), objs.map(() => uuidv7()), 'f'.repeat(64), objs.map((o) => o.subscription_groups[0].subscription_group_id)],
  })
  reply.code(201)
  return { message: 'success', processed: objs.length }
})

app.post('/upsert-tx', async (request, reply) => {
  const kv = keysOf(request.body)
  const reads = Number(request.query.reads ?? 3)
  const client = await pool.connect()
  try {
    let i = 0
    if (request.query.begin === 'with-first' && reads > 0) {
      // As the service's pooled transactions do (src/db/sql.ts): BEGIN travels with the first read.
      await client.query(`BEGIN; SELECT id, state FROM bench_kv WHERE id = ${pg.escapeLiteral(kv[0]?.[0] ?? '')}`)
      i = 1
    } else {
      await client.query('BEGIN')
    }
    for (; i < reads; i++) await client.query({ name: 'bare-read', text: 'SELECT id, state FROM bench_kv WHERE id = $1', values: [kv[0]?.[0] ?? ''] })
    const upsert = { name: 'bare-upsert', text: UPSERT, values: [kv.map((x) => x[0]), kv.map((x) => JSON.stringify(x[1]))] }
    if (request.query.commit === 'with-write') {
      // As the ledger's write does (src/db/sql.ts, pipelined): with its COMMIT, in one socket write.
      client.pipeline = true
      try {
        client.connection.stream.cork()
        let sent
        try {
          sent = [client.query(upsert), client.query('COMMIT')]
        } finally {
          client.connection.stream.uncork()
        }
        await Promise.all(sent)
      } finally {
        client.pipeline = false
      }
    } else {
      await client.query(upsert)
      await client.query('COMMIT')
    }
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {})
    throw err
  } finally {
    client.release()
  }
  reply.code(201)
  return { message: 'success', processed: kv.length }
})

await app.listen({ port: Number(process.env.PORT ?? 0), host: process.env.HOST ?? '127.0.0.1' })
const stop = async () => {
  await app.close()
  await pool.end()
  process.exit(0)
}
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
