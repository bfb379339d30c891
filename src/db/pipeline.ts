/**
 * Pipelining: two statements of one transaction in one round trip. Why it exists: node-postgres
 * waits for each answer before it sends the next statement, and for a small append the round
 * trips, not the work, are most of the cost (docs/performance.md). The pooled Sql sends BEGIN with
 * the first statement of a transaction, and the ledger's write (queryLast) with the COMMIT or the
 * statement after it.
 */
import type pg from 'pg'

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

/**
 * Two statements in one round trip: node-postgres's pipeline mode (8.23+; each its own Sync; the
 * server runs the second without waiting for us to read the first's answer), switched on for these
 * two only (it refuses COPY, which the import runs on clients of the same pool), and both in one
 * write to the socket (each write has a CPU cost for its sender; in pipeline mode a query is
 * written as it is queued, so the stream is corked around the two: cork nests with the one
 * node-postgres puts around an extended query). If the first fails, the transaction is aborted,
 * and the second is refused (or, a COMMIT, answered with ROLLBACK).
 */
export async function pipelined(
  client: pg.PoolClient,
  first: pg.QueryConfig | string,
  second: pg.QueryConfig | string,
): Promise<[PromiseSettledResult<pg.QueryResult>, PromiseSettledResult<pg.QueryResult>]> {
  const c = client as pg.PoolClient & { pipeline: boolean; connection?: { stream?: { cork?(): void; uncork?(): void } } }
  const stream = c.connection?.stream
  c.pipeline = true
  try {
    let sent: [Promise<pg.QueryResult>, Promise<pg.QueryResult>]
    stream?.cork?.()
    try {
      sent = [client.query(first as pg.QueryConfig), client.query(second as pg.QueryConfig)]
    } finally {
      stream?.uncork?.()
    }
    return await Promise.allSettled(sent)
  } finally {
    c.pipeline = false
  }
}

/** A held-back statement and COMMIT in one round trip. */
export async function commitWith(client: pg.PoolClient, write: pg.QueryConfig): Promise<void> {
  const [written, commit] = await pipelined(client, write, 'COMMIT')
  if (written.status === 'rejected') {
    // Refused by PostgreSQL (an error response): the COMMIT behind it rolled back. An error of the
    // connection fails both, and leaves the outcome unknown.
    if (commit.status === 'fulfilled') rolledBackErrors.add(written.reason as object)
    throw written.reason
  }
  if (commit.status === 'rejected') throw commit.reason
}
