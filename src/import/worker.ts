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
 * grows with the batch: 1,000 keeps the service's peak memory over a 1,000,000-row import
 * (bench/import.mjs) under its 300 MB target for a few percent of throughput (docs/performance.md).
 */
export const DEFAULT_BATCH_SIZE = 1000

/** Serialization, deadlock, a racing insert, insufficient resources, lock not available. */
const TRANSIENT_SQLSTATE = /^(40001|40P01|23505|53...|55P03)$/

function isTransient(err: unknown): boolean {
  if (isConnectionError(err)) return true
  const code = (err as { code?: unknown }).code
  return typeof code === 'string' && TRANSIENT_SQLSTATE.test(code)
}

/**
 * The loop's idle sleep: `wake()` ends it early, or, when nothing sleeps, makes the next sleep
 * return at once (`pending` until then); a stopped loop never sleeps.
 */
function createSleeper(isRunning: () => boolean) {
  let wakeUp: (() => void) | null = null
  let wakePending = false
  return {
    sleep: (ms: number) =>
      new Promise<void>((resolve) => {
        if (wakePending || !isRunning()) {
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
      }),
    wake() {
      if (wakeUp) wakeUp()
      else wakePending = true
    },
    /** Ends a sleep in progress without leaving a wake pending (stop). */
    interrupt: () => wakeUp?.(),
    get pending() {
      return wakePending
    },
  }
}

type Sleeper = ReturnType<typeof createSleeper>

/**
 * Batch size per import: halved after a failure to isolate the row at fault, doubled back after
 * each success (absent: the default).
 */
function createBatchSizes(batchSize: number) {
  const sizes = new Map<string, number>()
  return {
    of: (id: string) => sizes.get(id) ?? batchSize,
    /** Halves the import's batch; false when it is already one row. */
    shrink(id: string): boolean {
      const size = sizes.get(id) ?? batchSize
      if (size <= 1) return false
      sizes.set(id, Math.ceil(size / 2))
      return true
    },
    grow(id: string, done: boolean) {
      const size = sizes.get(id)
      if (size === undefined) return
      if (done || size * 2 >= batchSize) sizes.delete(id)
      else sizes.set(id, size * 2)
    },
    forget: (id: string) => sizes.delete(id),
  }
}

interface WorkerContext {
  deps: { sql: Sql; ledger: Ledger; log: FastifyBaseLogger }
  pdeps: ProcessorDeps
  sizes: ReturnType<typeof createBatchSizes>
  sleeper: Sleeper
  isRunning: () => boolean
}

/** A failed batch: retried when transient, else its batch shrinks down to the one row that is then refused. */
async function onFailure(w: WorkerContext, err: unknown): Promise<void> {
  const { deps, sizes, sleeper } = w
  if (!(err instanceof BatchError)) {
    // An outage is expected to pass (the loop retries): warn, without the stack.
    if (isConnectionError(err)) deps.log.warn({ err: { message: (err as Error).message } }, 'import worker: database unavailable; retrying')
    else deps.log.error({ err }, 'import worker: cannot reach the queue')
    await sleeper.sleep(2000)
    return
  }
  const { imp, cause } = err
  let attempts = 0
  try {
    attempts = await recordAttemptFailure(deps.sql, imp, err.message)
  } catch {
    // The database itself is unreachable: wait and retry.
    await sleeper.sleep(2000)
    return
  }
  const transient = isTransient(cause) && attempts <= 5
  deps.log.warn({ err: cause, importId: imp.id, attempts, transient }, 'import batch failed')
  if (!transient && !sizes.shrink(imp.id)) {
    try {
      await skipPoisonRow(w.pdeps, imp, err.message)
      sizes.forget(imp.id)
    } catch (e) {
      deps.log.error({ err: e, importId: imp.id }, 'import failed: a row can be neither processed nor refused')
      await markFailed(deps.sql, imp, `staged row ${imp.last_seq + 1} could not be processed: ${err.message}`).catch(() => {})
    }
  }
  await sleeper.sleep(Math.min(5000, 50 * 2 ** Math.min(attempts, 10)))
}

async function purgeFinished(w: WorkerContext): Promise<void> {
  const list = await finishedWithStaging(w.deps.sql, 5)
  for (const f of list) {
    // A new upload (wake) or a shutdown interrupts the purge; it resumes when idle again.
    while (w.isRunning() && !w.sleeper.pending && (await purgeStagingChunk(w.deps.sql, f.workspace_id, f.id, 20_000)));
    if (!w.isRunning() || w.sleeper.pending) return
  }
}

async function runLoop(w: WorkerContext, pipeline: ReturnType<typeof createReadAhead>, pollMs: number): Promise<void> {
  const { deps, sizes } = w
  while (w.isRunning()) {
    try {
      const out = await processNextBatch(w.pdeps, sizes.of, [], pipeline)
      if (out) {
        deps.log.debug({ importId: out.imp.id, rows: out.processed, ahead: out.ahead, ms: out.ms }, 'import batch')
        sizes.grow(out.imp.id, out.done)
        if (out.done) deps.log.info({ importId: out.imp.id }, 'import completed')
        continue
      }
      await purgeFinished(w)
      await w.sleeper.sleep(pollMs)
    } catch (err) {
      if (!w.isRunning()) break
      await onFailure(w, err).catch(() => {})
    }
  }
}

export function createImportWorker(deps: { sql: Sql; ledger: Ledger; log: FastifyBaseLogger }, opts: ImportWorkerOptions = {}) {
  const pollMs = opts.pollMs ?? 1000
  let running = false
  let loop: Promise<void> | null = null
  const isRunning = () => running
  const w: WorkerContext = { deps, pdeps: deps, sizes: createBatchSizes(opts.batchSize ?? DEFAULT_BATCH_SIZE), sleeper: createSleeper(isRunning), isRunning }
  const pipeline = createReadAhead(deps.sql, deps.ledger)

  return {
    start() {
      if (running) return
      running = true
      loop = runLoop(w, pipeline, pollMs)
    },
    /** Stop after the batch in progress (it commits or rolls back whole). */
    async stop() {
      running = false
      w.sleeper.interrupt()
      await loop
      loop = null
    },
    /** New work: skip the rest of the idle sleep. */
    wake: () => w.sleeper.wake(),
    /** Tests: process batches until none is left (no loop needed). */
    async drain(): Promise<number> {
      let batches = 0
      for (;;) {
        const out = await processNextBatch(w.pdeps, w.sizes.of, [], pipeline)
        if (!out) return batches
        batches++
      }
    },
  }
}

export type ImportWorker = ReturnType<typeof createImportWorker>
