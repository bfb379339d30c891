/**
 * The in-process import worker: a loop that processes batches (processor.ts) while there is work,
 * sleeps `pollMs` when there is none (or until `wake()`, called after an upload commits), and
 * deletes the staging rows of finished imports when idle. Several instances run one loop each and
 * share the queue through `FOR UPDATE SKIP LOCKED`.
 *
 * Failures: a transient database error (deadlock, serialization, lost connection...) retries the
 * same batch with a growing delay. Any other error halves that import's batch size, isolating the
 * row at fault; a one-row batch that still fails refuses that row (`processing_error`) and the
 * import goes on. Only when even that cannot be recorded is the import marked `failed`.
 */
import type { FastifyBaseLogger } from 'fastify'
import type { Sql } from '../db/sql.js'
import { isConnectionError } from '../db/connection-errors.js'
import type { Ledger } from '../ledger/ledger-service.js'
import { finishedWithStaging, markFailed, purgeStagingChunk, recordAttemptFailure } from './import-repository.js'
import { BatchError, createReadAhead, processNextBatch, skipPoisonRow, type ProcessorDeps } from './processor.js'

export interface ImportWorkerOptions {
  /** Rows per batch (one transaction, one ledger append). */
  batchSize?: number
  /** Idle polling interval. */
  pollMs?: number
}

/**
 * Rows per batch. Larger batches amortise the per-transaction cost, but the ledger's working set
 * grows with the batch. Peak RSS of the service over a whole 1,000,000-row import
 * (bench/import.mjs, target: <= 300 MB): ~320 MB at 5,000 rows; at 2,500, 292-297 MB in the
 * morning runs of 2026-12-01 and 306-330 MB in the afternoon's (same code); at 1,500, 299 MB; at
 * 1,000, 274 MB, for 3% less throughput (11.8k vs 12.0-12.5k rows/s).
 */
export const DEFAULT_BATCH_SIZE = 1000

/** Serialization, deadlock, a racing insert, insufficient resources, lock not available. */
const TRANSIENT_SQLSTATE = /^(40001|40P01|23505|53...|55P03)$/

function isTransient(err: unknown): boolean {
  if (isConnectionError(err)) return true
  const code = (err as { code?: unknown }).code
  return typeof code === 'string' && TRANSIENT_SQLSTATE.test(code)
}

export function createImportWorker(deps: { sql: Sql; ledger: Ledger; log: FastifyBaseLogger }, opts: ImportWorkerOptions = {}) {
  const batchSize = opts.batchSize ?? DEFAULT_BATCH_SIZE
  const pollMs = opts.pollMs ?? 1000
  const pdeps: ProcessorDeps = deps
  /** Batch size per import after failures (absent: the default). */
  const sizes = new Map<string, number>()
  let running = false
  let loop: Promise<void> | null = null
  const pipeline = createReadAhead(deps.sql, deps.ledger)
  let wakeUp: (() => void) | null = null
  let wakePending = false

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      if (wakePending || !running) {
        wakePending = false
        return resolve()
      }
      const timer = setTimeout(done, ms)
      function done() {
        clearTimeout(timer)
        wakeUp = null
        resolve()
      }
      wakeUp = done
    })

  async function onFailure(err: unknown): Promise<void> {
    if (!(err instanceof BatchError)) {
      // An outage is expected to pass (the loop retries): warn, without the stack.
      if (isConnectionError(err)) deps.log.warn({ err: { message: (err as Error).message } }, 'import worker: database unavailable; retrying')
      else deps.log.error({ err }, 'import worker: cannot reach the queue')
      await sleep(2000)
      return
    }
    const { imp, cause } = err
    let attempts = 0
    try {
      attempts = await recordAttemptFailure(deps.sql, imp, err.message)
    } catch {
      // The database itself is unreachable: wait and retry.
      await sleep(2000)
      return
    }
    const transient = isTransient(cause) && attempts <= 5
    deps.log.warn({ err: cause, importId: imp.id, attempts, transient }, 'import batch failed')
    if (!transient) {
      const size = sizes.get(imp.id) ?? batchSize
      if (size > 1) sizes.set(imp.id, Math.ceil(size / 2))
      else {
        try {
          await skipPoisonRow(pdeps, imp, err.message)
          sizes.delete(imp.id)
        } catch (e) {
          deps.log.error({ err: e, importId: imp.id }, 'import failed: a row can be neither processed nor refused')
          await markFailed(deps.sql, imp, `staged row ${imp.last_seq + 1} could not be processed: ${err.message}`).catch(() => {})
        }
      }
    }
    await sleep(Math.min(5000, 50 * 2 ** Math.min(attempts, 10)))
  }

  async function purgeFinished(): Promise<void> {
    const list = await finishedWithStaging(deps.sql, 5)
    for (const f of list) {
      // A new upload (wake) or a shutdown interrupts the purge; it resumes when idle again.
      while (running && !wakePending && (await purgeStagingChunk(deps.sql, f.workspace_id, f.id, 20_000)));
      if (!running || wakePending) return
    }
  }

  async function run(): Promise<void> {
    while (running) {
      try {
        const out = await processNextBatch(pdeps, (id) => sizes.get(id) ?? batchSize, [], pipeline)
        if (out) {
          deps.log.debug({ importId: out.imp.id, rows: out.processed, ahead: out.ahead, ms: out.ms }, 'import batch')
          const size = sizes.get(out.imp.id)
          // After a success, a shrunk batch grows back.
          if (size !== undefined) {
            if (out.done || size * 2 >= batchSize) sizes.delete(out.imp.id)
            else sizes.set(out.imp.id, size * 2)
          }
          if (out.done) deps.log.info({ importId: out.imp.id }, 'import completed')
          continue
        }
        await purgeFinished()
        await sleep(pollMs)
      } catch (err) {
        if (!running) break
        await onFailure(err).catch(() => {})
      }
    }
  }

  return {
    start() {
      if (running) return
      running = true
      loop = run()
    },
    /** Stop after the batch in progress (it commits or rolls back whole). */
    async stop() {
      running = false
      wakeUp?.()
      await loop
      loop = null
    },
    /** New work: skip the rest of the idle sleep. */
    wake() {
      if (wakeUp) wakeUp()
      else wakePending = true
    },
    /** Tests: process batches until none is left (no loop needed). */
    async drain(): Promise<number> {
      let batches = 0
      for (;;) {
        const out = await processNextBatch(pdeps, (id) => sizes.get(id) ?? batchSize, [], pipeline)
        if (!out) return batches
        batches++
      }
    },
  }
}

export type ImportWorker = ReturnType<typeof createImportWorker>
