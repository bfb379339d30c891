/**
 * A thin SQL runner shared by both databases (node-postgres pool and embedded PGlite), so the ledger
 * keeps its statements visible and set-based (unnest of arrays) and runs unchanged on either.
 * Drizzle (src/db/client.ts) serves the simple typed CRUD on top of the same connections.
 */
import pg from 'pg'
import type { PGlite, Transaction } from '@electric-sql/pglite'

export interface Sql {
  /**
   * Run one statement and return its rows. A `name` makes it a prepared statement on PostgreSQL
   * (planned once per connection): worth it on hot paths, where planning costs as much as running.
   */
  query<T = Record<string, unknown>>(text: string, params?: unknown[], name?: string): Promise<T[]>
  /** Run `fn` in a transaction; nested calls join the outer one. */
  tx<T>(fn: (sql: Sql) => Promise<T>): Promise<T>
  /** True inside a transaction. */
  readonly inTransaction: boolean
  /**
   * Run `fn` once the outermost transaction has committed (at once outside one; never if it rolls
   * back): for effects that must not count what did not happen, such as metrics.
   */
  afterCommit(fn: () => void): void
}

/** Callbacks of one transaction, run after its COMMIT (an exception in one does not stop the rest). */
export function runAfterCommit(fns: (() => void)[]) {
  for (const fn of fns) {
    try {
      fn()
    } catch {
      // metrics and the like: never the transaction's outcome
    }
  }
}

export function poolSql(pool: pg.Pool): Sql {
  const self: Sql = {
    inTransaction: false,
    async query<T>(text: string, params: unknown[] = [], name?: string) {
      const r = await pool.query(name ? { name, text, values: params } : { text, values: params })
      return r.rows as T[]
    },
    afterCommit: (fn) => fn(),
    async tx<T>(fn: (sql: Sql) => Promise<T>) {
      const client = await pool.connect()
      // BEGIN goes out with the transaction's first statement (see clientSql): one round trip less.
      const state: TxState = { begun: false, after: [] }
      try {
        const result = await fn(clientSql(client, state))
        if (state.begun) await client.query('COMMIT')
        runAfterCommit(state.after)
        return result
      } catch (err) {
        if (state.begun) await client.query('ROLLBACK').catch(() => {})
        throw err
      } finally {
        client.release()
      }
    },
  }
  return self
}

/**
 * A statement that is one function call on parameters only (`SELECT * FROM f($1, $2::uuid[])`):
 * planning it is trivial, so it can travel as a simple query with its values inlined as literals.
 */
const FUNCTION_CALL = /^SELECT \* FROM [a-z_][a-z0-9_]*\((?:\$\d+(?:::[a-z0-9_]+(?:\[\])?)?(?:, )?)*\)$/

/**
 * `s` as a string literal, exactly as node-postgres's escapeLiteral writes it ('' for ', and the
 * E'' form with doubled backslashes when there is a backslash), by whole-string replacement:
 * escapeLiteral appends one character at a time, which on a 75-object append's arrays (tens of
 * kilobytes) built long rope strings that V8 then had to flatten.
 */
export function quoteLiteral(s: string): string {
  const q = s.includes("'") ? s.replaceAll("'", "''") : s
  return s.includes('\\') ? ` E'${q.replaceAll('\\', '\\\\')}'` : `'${q}'`
}

/** The statement with each $n replaced by its value as a quoted literal, as node-postgres would send it. */
function inlineParams(text: string, params: unknown[]): string {
  return text.replace(/\$(\d+)/g, (_, n: string) => {
    const v = (pg as unknown as { utils: { prepareValue(v: unknown): unknown } }).utils.prepareValue(params[Number(n) - 1])
    return v === null || v === undefined ? 'NULL' : quoteLiteral(String(v))
  })
}

/**
 * The Sql of one pooled transaction. BEGIN is sent lazily, with the first statement: a function
 * call (ledger_prepare, the first statement of a ledger append) travels with it in ONE simple query
 * (`BEGIN; SELECT * FROM f('...')`); any other first statement is preceded by its own BEGIN. A
 * transaction that runs no statement sends neither BEGIN nor COMMIT. (Round trips are most of the
 * cost of a small append: node-postgres waits for each answer before it sends the next statement.)
 */
interface TxState {
  begun: boolean
  after: (() => void)[]
}

function clientSql(client: pg.PoolClient, state: TxState): Sql {
  const self: Sql = {
    inTransaction: true,
    afterCommit: (fn) => void state.after.push(fn),
    async query<T>(text: string, params: unknown[] = [], name?: string) {
      if (!state.begun) {
        state.begun = true
        if (params.length > 0 && FUNCTION_CALL.test(text) && !params.some((p) => Buffer.isBuffer(p))) {
          const results = (await client.query(`BEGIN; ${inlineParams(text, params)}`)) as unknown as pg.QueryResult[]
          return results[1]!.rows as T[]
        }
        await client.query('BEGIN')
      }
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
    afterCommit: (fn) => fn(),
    async query<T>(text: string, params: unknown[] = []) {
      const r = await db.query<T>(text, params)
      return r.rows
    },
    async tx<T>(fn: (sql: Sql) => Promise<T>) {
      const after: (() => void)[] = []
      const result = await db.transaction((t) => fn(pgliteTxSql(t, after)))
      runAfterCommit(after)
      return result
    },
  }
}

function pgliteTxSql(t: Transaction, after: (() => void)[]): Sql {
  const self: Sql = {
    inTransaction: true,
    afterCommit: (fn) => void after.push(fn),
    async query<T>(text: string, params: unknown[] = []) {
      const r = await t.query<T>(text, params)
      return r.rows
    },
    tx: (fn) => fn(self),
  }
  return self
}
