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
}

export async function openDatabase(opts: OpenOptions): Promise<Database> {
  if (opts.databaseUrl) {
    const pool = new pg.Pool({
      connectionString: opts.databaseUrl,
      max: opts.poolMax ?? 20,
      application_name: opts.applicationName ?? 'consent-ledger',
      // Hot statements are prepared by name and shaped so that one plan fits every call (arrays of
      // keys probed by primary key, LATERAL ... LIMIT 1), but PostgreSQL's default `auto` mode still
      // re-plans them per call (custom plans), which cost as much as running them: a one-object
      // /users/track went from 2.9 to 2.1 ms of sequential latency with generic plans (measured).
      // A startup option of each connection (`options` in DATABASE_URL replaces it).
      options: '-c plan_cache_mode=force_generic_plan',
    })
    // An idle client that errors (server restart) must not crash the process.
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
