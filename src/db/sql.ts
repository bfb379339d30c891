/**
 * A thin SQL runner shared by both databases (node-postgres pool and embedded PGlite), so the ledger
 * keeps its statements visible and set-based (unnest of arrays) and runs unchanged on either.
 * Drizzle (src/db/client.ts) serves the simple typed CRUD on top of the same connections.
 */
import type pg from 'pg'
import type { PGlite, Transaction } from '@electric-sql/pglite'

export interface Sql {
  /** Run one statement and return its rows. */
  /**
   * Run one statement and return its rows. A `name` makes it a prepared statement on PostgreSQL
   * (planned once per connection): worth it on hot paths, where planning costs as much as running.
   */
  query<T = Record<string, unknown>>(text: string, params?: unknown[], name?: string): Promise<T[]>
  /** Run `fn` in a transaction; nested calls join the outer one. */
  tx<T>(fn: (sql: Sql) => Promise<T>): Promise<T>
  /** True inside a transaction. */
  readonly inTransaction: boolean
}

export function poolSql(pool: pg.Pool): Sql {
  const self: Sql = {
    inTransaction: false,
    async query<T>(text: string, params: unknown[] = [], name?: string) {
      const r = await pool.query(name ? { name, text, values: params } : { text, values: params })
      return r.rows as T[]
    },
    async tx<T>(fn: (sql: Sql) => Promise<T>) {
      const client = await pool.connect()
      try {
        await client.query('BEGIN')
        const inner = clientSql(client)
        const result = await fn(inner)
        await client.query('COMMIT')
        return result
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {})
        throw err
      } finally {
        client.release()
      }
    },
  }
  return self
}

function clientSql(client: pg.PoolClient): Sql {
  const self: Sql = {
    inTransaction: true,
    async query<T>(text: string, params: unknown[] = [], name?: string) {
      const r = await client.query(name ? { name, text, values: params } : { text, values: params })
      return r.rows as T[]
    },
    tx: (fn) => fn(self),
  }
  return self
}

export function pgliteSql(db: PGlite): Sql {
  return {
    inTransaction: false,
    async query<T>(text: string, params: unknown[] = []) {
      const r = await db.query<T>(text, params)
      return r.rows
    },
    tx<T>(fn: (sql: Sql) => Promise<T>) {
      return db.transaction((t) => fn(pgliteTxSql(t)))
    },
  }
}

function pgliteTxSql(t: Transaction): Sql {
  const self: Sql = {
    inTransaction: true,
    async query<T>(text: string, params: unknown[] = []) {
      const r = await t.query<T>(text, params)
      return r.rows
    },
    tx: (fn) => fn(self),
  }
  return self
}
