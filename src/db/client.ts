/**
 * Opens the database named by the configuration: PostgreSQL when DATABASE_URL is set, otherwise
 * embedded PGlite persisted in DATA_DIR. No module-level singletons, so tests can point elsewhere.
 */
import pg from 'pg'
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres'
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite'
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core'
import { PGlite } from '@electric-sql/pglite'
import { mkdirSync } from 'node:fs'
import * as schema from './schema.js'
import { pgliteSql, poolSql, type Sql } from './sql.js'

export type Db = PgDatabase<PgQueryResultHKT, typeof schema>

export interface Database {
  kind: 'postgres' | 'pglite'
  /** Raw, set-based SQL (the ledger). */
  sql: Sql
  /** Typed CRUD. */
  db: Db
  /** Pool statistics for /metrics (PGlite has one connection). */
  poolStats(): { total: number; idle: number; waiting: number }
  close(): Promise<void>
  /** For migrations and tests: the underlying handle. */
  pool?: pg.Pool
  pglite?: PGlite
}

// int8 as string (ledger ids exceed 2^53 one day); numeric stays a string too.
pg.types.setTypeParser(20, (v) => v)

export interface OpenOptions {
  databaseUrl?: string
  dataDir: string
  poolMax?: number
  applicationName?: string
  /**
   * How long a request waits for a new connection before it fails (and answers 503): during an
   * outage a request must answer in bounded time, not wait for the TCP timeout. Default 5 s.
   */
  connectTimeoutMs?: number
  /** Told of every connection that breaks (server restart, failover, terminated backend). */
  onConnectionError?: (err: Error) => void
}

export async function openDatabase(opts: OpenOptions): Promise<Database> {
  if (opts.databaseUrl) {
    const pool = new pg.Pool({
      connectionString: opts.databaseUrl,
      max: opts.poolMax ?? 20,
      application_name: opts.applicationName ?? 'consent-ledger',
      // Hot statements are prepared by name and shaped so that one plan fits every call (arrays of
      // keys probed by primary key, LATERAL ... LIMIT 1), but PostgreSQL's default `auto` mode still
      // re-plans them per call (custom plans), which cost as much as running them
      // (docs/performance.md).
      // A startup option of each connection (`options` in DATABASE_URL replaces it).
      options: '-c plan_cache_mode=force_generic_plan',
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 5000,
      // A peer that vanished without a FIN (failover, network partition) is noticed by TCP keepalive.
      keepAlive: true,
    })
    // node-postgres emits 'error' on a client whose connection breaks. The pool listens on idle
    // clients only; a checked-out one (a transaction, an upload's COPY) without a listener would
    // turn a database restart into an uncaught exception that ends the process. So every client
    // gets a listener for its whole life: the statement in flight fails on its own (and the
    // request answers 503), and the client, no longer queryable, is dropped when released.
    const onError = (err: Error) => opts.onConnectionError?.(err)
    pool.on('connect', (client) => client.on('error', onError))
    // The pool re-emits an idle client's error: reported already by the listener above.
    pool.on('error', () => {})
    return {
      kind: 'postgres',
      sql: poolSql(pool),
      db: drizzlePg(pool, { schema }) as unknown as Db,
      poolStats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
      close: () => pool.end(),
      pool,
    }
  }
  const dir = opts.dataDir
  if (!dir.startsWith('memory://')) mkdirSync(dir, { recursive: true })
  const pglite = await PGlite.create(dir)
  return {
    kind: 'pglite',
    sql: pgliteSql(pglite),
    db: drizzlePglite(pglite, { schema }) as unknown as Db,
    poolStats: () => ({ total: 1, idle: 1, waiting: 0 }),
    close: () => pglite.close(),
    pglite,
  }
}
