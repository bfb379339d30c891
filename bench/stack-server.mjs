#!/usr/bin/env node
/**
 * A ceiling of the single pre-send check (bench/run.mjs, check workload): the service's own HTTP
 * stack (buildApp from dist/ with the service's configuration and logger: request id, API-key
 * auth, rate limiting, metrics, per-request logger, query-string validation, workers) around the
 * bare server's route, verbatim: `GET /pk?id=` runs bench/bare-server.mjs's one primary-key SELECT
 * through its own pg pool and answers as the bare route does. Against the bare route, its ratio is
 * what the stack alone costs, so the check ratio splits into the stack's share and the check's.
 * Env: as the service (`consent-ledger serve`), plus DATABASE_URL pointing at the bench database
 * whose bench_kv the bare server created.
 */
import pg from 'pg'
import { buildApp } from '../dist/src/app.js'
import { loadConfig } from '../dist/src/config/env.js'
import { loggerOptions } from '../dist/src/logging.js'

const config = loadConfig()
const app = await buildApp(config, { logger: loggerOptions(config) })
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: Number(process.env.DATABASE_POOL_MAX ?? 20) })
app.addHook('onClose', async () => pool.end())

app.get(
  '/pk',
  {
    config: { scope: 'consent:read' },
    schema: { querystring: { type: 'object', required: ['id'], properties: { id: { type: 'string', minLength: 1, maxLength: 64 } } } },
  },
  async (request) => {
    const { rows } = await pool.query('SELECT id, state, occurred_at, event_id FROM bench_kv WHERE id = $1', [request.query.id])
    const r = rows[0]
    return { results: [{ identifier: request.query.id, allowed: r?.state === 'subscribed', state: r?.state ?? 'unknown', occurred_at: r?.occurred_at ?? null, event_id: r?.event_id ?? null }] }
  },
)

for (const signal of ['SIGTERM', 'SIGINT']) process.once(signal, () => app.close().then(() => process.exit(0)))
await app.listen({ port: config.PORT, host: config.HOST })
