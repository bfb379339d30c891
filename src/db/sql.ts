/**
 * A thin SQL runner shared by both databases (node-postgres pool and embedded PGlite), so the ledger
 * keeps its statements visible and set-based (unnest of arrays) and runs unchanged on either.
 * Drizzle (src/db/client.ts) serves the simple typed CRUD on top of the same connections.
 */
import pg from 'pg'
import type { PGlite, Transaction } from '@electric-sql/pglite'
import { isConnectionError } from './connection-errors.js'

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

/** Errors of a statement sent with the COMMIT that PostgreSQL refused: the transaction rolled back. */
const rolledBackErrors = new WeakSet<object>()

/**
 * Did this error, thrown by a transaction's commit, come from a statement sent with the COMMIT
 * (queryLast) that PostgreSQL refused? Then nothing of the transaction committed (the COMMIT of an
 * aborted transaction is a ROLLBACK); any other error of a commit leaves the outcome unknown.
 */
export function rolledBack(err: unknown): boolean {
  return typeof err === 'object' && err !== null && rolledBackErrors.has(err)
}

/** A statement as node-postgres takes it: named (prepared once per connection) or not. */
const config = (text: string, values: unknown[], name?: string) => (name ? { name, text, values } : { text, values })
const statement = (d: Deferred) => config(d.text, d.values, d.name)

/**
 * Two statements of one transaction in one round trip: node-postgres's pipeline mode (8.23+; each
 * its own Sync; the server runs the second without waiting for us to read the first's answer),
 * switched on for these two only (it refuses COPY, which the import runs on clients of the same
 * pool), and both in one write to the socket (each write costs its sender ~0.1 ms of CPU on the
 * VMs we measure on; in pipeline mode a query is written as it is queued, so the stream is corked
 * around the two: cork nests with the one node-postgres puts around an extended query). If the
 * first fails, the transaction is aborted, and the second is refused (or, a COMMIT, answered with
 * ROLLBACK).
 */
async function pipelined(client: pg.PoolClient, first: pg.QueryConfig, second: pg.QueryConfig | string): Promise<[PromiseSettledResult<pg.QueryResult>, PromiseSettledResult<pg.QueryResult>]> {
  const c = client as pg.PoolClient & { pipeline: boolean; connection?: { stream?: { cork?(): void; uncork?(): void } } }
  const stream = c.connection?.stream
  c.pipeline = true
  try {
    let sent: [Promise<pg.QueryResult>, Promise<pg.QueryResult>]
    stream?.cork?.()
    try {
      sent = [client.query(first), client.query(second)]
    } finally {
      stream?.uncork?.()
    }
    return await Promise.allSettled(sent)
  } finally {
    c.pipeline = false
  }
}

/** The held-back statement and COMMIT in one round trip (see pipelined). */
async function commitWith(client: pg.PoolClient, d: Deferred): Promise<void> {
  const [write, commit] = await pipelined(client, statement(d), 'COMMIT')
  if (write.status === 'rejected') {
    // Refused by PostgreSQL (an error response): the COMMIT behind it rolled back. An error of the
    // connection fails both, and leaves the outcome unknown.
    if (commit.status === 'fulfilled') rolledBackErrors.add(write.reason as object)
    throw write.reason
  }
  if (commit.status === 'rejected') throw commit.reason
}

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
          await commitWith(client, last)
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
    const v = prepareValue(params[Number(n) - 1])
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
        if (params.length > 0 && FUNCTION_CALL.test(text) && !params.some((p) => Buffer.isBuffer(p))) {
          const results = (await client.query(`BEGIN; ${inlineParams(text, params)}`)) as unknown as pg.QueryResult[]
          return results[1]!.rows as T[]
        }
        await client.query('BEGIN')
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
