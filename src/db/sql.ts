/**
 * A thin SQL runner shared by both databases (node-postgres pool and embedded PGlite), so the ledger
 * keeps its statements visible and set-based (unnest of arrays) and runs unchanged on either.
 * Drizzle (src/db/client.ts) serves the simple typed CRUD on top of the same connections.
 */
import pg from 'pg'
import type { PGlite, Transaction } from '@electric-sql/pglite'
import { isConnectionError } from './connection-errors.js'
import { commitWith, pipelined } from './pipeline.js'

export { rolledBack } from './pipeline.js'

export interface Sql {
  /**
   * Run one statement and return its rows. A `name` makes it a prepared statement on PostgreSQL
   * (planned once per connection): worth it on hot paths, where planning costs as much as running.
   */
  query<T = Record<string, unknown>>(text: string, params?: unknown[], name?: string): Promise<T[]>
  /**
   * Run a statement whose rows nobody reads (the ledger's write). In a pooled transaction it is
   * held back and sent with what follows it, pipelined (one round trip for both): the COMMIT, or
   * the next statement. Its error is thrown there; thrown by the commit, it is marked (rolledBack):
   * the transaction did not commit.
   */
  queryLast(text: string, params?: unknown[], name?: string): Promise<void>
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

/** node-postgres's conversion of a parameter to what goes on the wire. */
const prepareValue = (pg as unknown as { utils: { prepareValue(v: unknown): unknown } }).utils.prepareValue

/** A statement as node-postgres takes it: named (prepared once per connection) or not. */
const config = (text: string, values: unknown[], name?: string) => (name ? { name, text, values } : { text, values })
const statement = (d: Deferred) => config(d.text, d.values, d.name)

export function poolSql(pool: pg.Pool): Sql {
  const self: Sql = {
    inTransaction: false,
    async query<T>(text: string, params: unknown[] = [], name?: string) {
      const r = await pool.query(config(text, params, name))
      return r.rows as T[]
    },
    async queryLast(text: string, params: unknown[] = [], name?: string) {
      await self.query(text, params, name)
    },
    afterCommit: (fn) => fn(),
    async tx<T>(fn: (sql: Sql) => Promise<T>) {
      const client = await pool.connect()
      // BEGIN goes out with the transaction's first statement (see clientSql): one round trip less.
      const state: TxState = { begun: false, after: [] }
      let broken: Error | undefined
      try {
        const result = await fn(clientSql(client, state))
        const last = state.deferred
        state.deferred = undefined
        if (last) {
          // The transaction ends here whatever the answer (committed, or rolled back by an error).
          state.begun = false
          await commitWith(client, statement(last))
        } else if (state.begun) await client.query('COMMIT')
        runAfterCommit(state.after)
        return result
      } catch (err) {
        // A broken connection goes back with its error, so the pool discards it instead of
        // handing it to the next request.
        if (isConnectionError(err)) broken = err as Error
        else if (state.begun) await client.query('ROLLBACK').catch((e: Error) => void (broken = e))
        throw err
      } finally {
        client.release(broken)
      }
    },
  }
  return self
}

/**
 * The state of one pooled transaction. BEGIN is sent lazily, pipelined with the first statement
 * (one round trip for both: see pipeline.ts); a transaction that runs no statement sends neither
 * BEGIN nor COMMIT.
 */
interface TxState {
  begun: boolean
  after: (() => void)[]
  /** A statement of queryLast not sent yet. */
  deferred?: Deferred
}

interface Deferred {
  text: string
  /** Already converted to what goes on the wire (pg's prepareValue): nothing can fail client-side once sent. */
  values: unknown[]
  name?: string
}

function clientSql(client: pg.PoolClient, state: TxState): Sql {
  const self: Sql = {
    inTransaction: true,
    afterCommit: (fn) => void state.after.push(fn),
    async query<T>(text: string, params: unknown[] = [], name?: string) {
      if (state.deferred) {
        // The held-back statement and this one in one round trip; its error is the one thrown.
        const d = state.deferred
        state.deferred = undefined
        const [held, next] = await pipelined(client, statement(d), config(text, params, name))
        if (held.status === 'rejected') throw held.reason
        if (next.status === 'rejected') throw next.reason
        return next.value.rows as T[]
      }
      if (!state.begun) {
        state.begun = true
        // BEGIN and this statement in one round trip; if BEGIN failed, so did this.
        const [begin, first] = await pipelined(client, 'BEGIN', config(text, params, name))
        if (begin.status === 'rejected') throw begin.reason
        if (first.status === 'rejected') throw first.reason
        return first.value.rows as T[]
      }
      const r = await client.query(config(text, params, name))
      return r.rows as T[]
    },
    async queryLast(text: string, params: unknown[] = [], name?: string) {
      if (state.deferred) {
        const d = state.deferred
        state.deferred = undefined
        await client.query(statement(d))
      }
      // The first statement of a transaction goes out at once (with its BEGIN).
      if (!state.begun) {
        await self.query(text, params, name)
        return
      }
      // Converted now: a value that cannot be sent fails here, not after the COMMIT went out.
      state.deferred = { text, values: params.map((v) => prepareValue(v)), name }
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
    async queryLast(text: string, params: unknown[] = []) {
      await db.query(text, params)
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
    async queryLast(text: string, params: unknown[] = []) {
      await t.query(text, params)
    },
    tx: (fn) => fn(self),
  }
  return self
}
