/**
 * One batch of one import, in ONE transaction: lock the import (SKIP LOCKED), read the next staged
 * rows, map them to ledger items, refuse rows repeating an earlier row of the file (marked at
 * upload), append through the ledger (the only writer), set the contacts' attributes, record
 * refused rows, and commit the progress with it all. A crash anywhere rolls the whole batch back; the next attempt starts at the
 * committed `last_seq`, and the ledger's exactly-once key `import:<id>:<row>` guards even that.
 *
 * Counting: every processed row is exactly one of applied, rejected (with an error line), or
 * duplicate (an error line with code `duplicate`, naming the earlier row it repeats, whatever became
 * of that row: if it was refused, its own line says why).
 */
import type { FastifyBaseLogger } from 'fastify'
import type { Sql } from '../db/sql.js'
import type { Ledger, ValidatedAppend } from '../ledger/ledger-service.js'
import type { AppendItem } from '../ledger/types.js'
import { applyAttributePatches, type AttributePatch } from '../contacts/contact-service.js'
import { columnOf, mapHeader, mapRow, type ColumnMap, type ImportDefaults } from './columns.js'
import { claimNext, fetchRows, insertErrors, recordProgress, type ImportRecord, type RowError, type StagedRecord } from './import-repository.js'

export interface ProcessorDeps {
  sql: Sql
  ledger: Ledger
  log: FastifyBaseLogger
}

export interface BatchOutcome {
  imp: ImportRecord
  processed: number
  done: boolean
  /** Its rows were read and validated ahead, while the previous batch's statements ran. */
  ahead: boolean
  /**
   * Milliseconds per step inside the batch's transaction (logged at debug level: where a batch
   * spends its time): fetch and map are the wait for the rows and their mapping and validation
   * (about 0 when done ahead); append is the ledger's reads and node work, and write holds the
   * ledger's write statement (held back and sent with the next statement, Sql.queryLast) with the
   * attributes, error lines and progress.
   */
  ms: { fetch: number; map: number; append: number; write: number }
}

/**
 * The rows of a batch read, mapped and validated, before (or at the start of) its transaction:
 * staged rows never change once uploaded, and validation reads nothing, so the worker prepares the
 * next batch while the current one's statements run in PostgreSQL (this process would otherwise
 * wait), and the next transaction uses it if it starts where it was read from.
 */
export interface PreparedBatch {
  importId: string
  fromSeq: number
  size: number
  rows: StagedRecord[]
  candidates: Candidate[]
  errors: RowError[]
  rejected: number
  duplicate: number
  validated: ValidatedAppend | null
  ms: { fetch: number; map: number }
}

/** Batches read ahead (the worker's): `take` answers one only if it starts at `fromSeq` with `size` rows. */
export interface BatchPipeline {
  take(importId: string, fromSeq: number, size: number): Promise<PreparedBatch | null> | null
  /** A batch knows where it ends: prepare the next one meanwhile. */
  ahead(imp: ImportRecord, fromSeq: number, size: number): void
}

/** An error inside a batch, with the import it was working on (for the worker's retry policy). */
export class BatchError extends Error {
  constructor(
    readonly imp: ImportRecord,
    readonly cause: unknown,
  ) {
    super(cause instanceof Error ? cause.message : String(cause))
  }
}

export const defaultsOf = (imp: ImportRecord): ImportDefaults => ({
  subscriptionGroupId: imp.default_subscription_group_id,
  subscriptionState: imp.default_subscription_state,
  sourceLabel: imp.source_label,
})

/** At most this much staged text (JSON of the fields) per batch, whatever the row count. */
export const MAX_BATCH_CHARS = 1024 * 1024

const headerCache = new Map<string, ColumnMap>()
function columnMapOf(imp: ImportRecord): ColumnMap {
  let map = headerCache.get(imp.id)
  if (!map) {
    map = mapHeader(imp.columns, defaultsOf(imp))
    if (headerCache.size > 100) headerCache.clear()
    headerCache.set(imp.id, map)
  }
  return map
}

interface Candidate {
  row: number
  item: AppendItem
  attributes: Record<string, string> | null
}

/**
 * Process the next batch of the oldest unfinished import that no one else holds. Answers null when
 * there is nothing to do. `sizeFor` gives the batch size for an import (the worker shrinks it
 * when a batch keeps failing).
 */
export async function processNextBatch(
  deps: ProcessorDeps,
  sizeFor: (importId: string) => number,
  exclude: string[] = [],
  pipeline?: BatchPipeline,
): Promise<BatchOutcome | null> {
  let claimed: ImportRecord | null = null
  try {
    return await deps.sql.tx(async (tx) => {
      const imp = await claimNext(tx, exclude)
      if (!imp) return null
      claimed = imp
      // The batch's commit need not wait for its WAL flush: events, progress and error lines commit
      // together, so a server crash can only lose a whole tail of committed batches, which the
      // next attempt re-processes from the surviving `last_seq` (and the exactly-once key
      // `import:<id>:<row>` makes that safe). Nothing acknowledged to a client depends on it: the
      // upload's 202 comes from its own, synchronous, commit.
      await tx.query(`SET LOCAL synchronous_commit = off`)
      return processBatch(tx, deps, imp, sizeFor(imp.id), pipeline)
    })
  } catch (err) {
    if (claimed) throw new BatchError(claimed, err)
    throw err
  }
}

/**
 * The worker's read-ahead: one next batch at a time, used only by a batch that starts where it was
 * read from, with its size (after a failure, a retry from the committed row, or a shrunk batch, it
 * is dropped and the batch reads its rows itself).
 */
export function createReadAhead(sql: Sql, ledger: Ledger): BatchPipeline {
  let next: { importId: string; fromSeq: number; size: number; batch: Promise<PreparedBatch | null> } | null = null
  return {
    take(importId, fromSeq, size) {
      const n = next
      next = null
      return n && n.importId === importId && n.fromSeq === fromSeq && n.size === size ? n.batch : null
    },
    ahead(imp, fromSeq, size) {
      // A failure here costs nothing: the batch reads its rows itself.
      next = { importId: imp.id, fromSeq, size, batch: prepareBatch(sql, ledger, imp, fromSeq, size).catch(() => null) }
    },
  }
}

const contextOf = (imp: ImportRecord) => ({
  workspaceId: imp.workspace_id,
  actor: `import:${imp.id}`,
  requestId: imp.request_id ?? undefined,
  // Rows without occurred_at take the upload time, the same on every attempt.
  receivedAt: new Date(imp.created_at),
})

/** Read the staged rows after `fromSeq` (at most `size`), map them to ledger items and validate those. */
export async function prepareBatch(sql: Sql, ledger: Ledger, imp: ImportRecord, fromSeq: number, size: number): Promise<PreparedBatch> {
  let t = performance.now()
  let rows = await fetchRows(sql, imp, fromSeq, size)
  // Wide rows (long consent texts, many attribute columns): a batch also stops at MAX_BATCH_CHARS
  // of staged text, so memory per batch stays bounded; the rows cut off come first next time.
  let chars = 0
  for (let i = 0; i < rows.length; i++) {
    chars += rows[i]!.fields.length
    if (chars > MAX_BATCH_CHARS && i > 0) {
      rows = rows.slice(0, i)
      break
    }
  }
  const msFetch = performance.now() - t
  t = performance.now()
  const map = columnMapOf(imp)
  const ctx = { importId: imp.id, defaults: defaultsOf(imp) }
  const errors: RowError[] = []
  let rejected = 0
  let duplicate = 0
  // Rows repeating an earlier row of the file were marked at upload (`dup_of`).
  const candidates: Candidate[] = []
  for (const r of rows) {
    if (r.dup_of !== null) {
      errors.push({ row: r.row_number, column: '', code: 'duplicate', message: `repeats row ${r.dup_of}` })
      duplicate++
      continue
    }
    const m = mapRow(map, ctx, r.row_number, JSON.parse(r.fields) as string[])
    if (m.kind === 'skip') continue
    if (m.kind === 'error') {
      errors.push({ row: r.row_number, column: m.column, code: m.code, message: m.message })
      rejected++
      continue
    }
    // The ledger writes the attributes of applied rows with the contact row it writes anyway.
    if (m.attributes) m.item.attributes = m.attributes
    candidates.push({ row: r.row_number, item: m.item, attributes: m.attributes })
  }
  const validated = candidates.length === 0 ? null : ledger.validateUnits([{ ctx: contextOf(imp), items: candidates.map((c) => c.item) }])
  return { importId: imp.id, fromSeq, size, rows, candidates, errors, rejected, duplicate, validated, ms: { fetch: msFetch, map: performance.now() - t } }
}

async function processBatch(tx: Sql, deps: ProcessorDeps, imp: ImportRecord, size: number, pipeline?: BatchPipeline): Promise<BatchOutcome> {
  let t = performance.now()
  const lap = () => {
    const now = performance.now()
    const d = Math.round((now - t) * 10) / 10
    t = now
    return d
  }
  const early = pipeline?.take(imp.id, imp.last_seq, size)
  const readAhead = early ? await early : null
  const pre = readAhead ?? (await prepareBatch(tx, deps.ledger, imp, imp.last_seq, size))
  // Read ahead: only the wait counts (as fetch). Read here: the prepare's own two steps.
  const waited = lap()
  const msFetch = readAhead ? waited : Math.round(pre.ms.fetch * 10) / 10
  const msMap = readAhead ? 0 : Math.round(pre.ms.map * 10) / 10
  const { rows, candidates, errors } = pre
  let { rejected, duplicate } = pre
  let applied = 0
  const lastSeq = rows.length > 0 ? rows[rows.length - 1]!.seq : imp.last_seq
  const done = lastSeq >= imp.rows_total
  if (!done) pipeline?.ahead(imp, lastSeq, size)

  const results = pre.validated === null ? [] : (await deps.ledger.appendValidated(tx, pre.validated))[0]!
  const msAppend = lap()

  const patches: AttributePatch[] = []
  candidates.forEach((c, i) => {
    const r = results[i]!
    if (r.status === 'applied' || r.status === 'duplicate') {
      // A ledger duplicate is this very row, applied by an attempt whose progress was lost: its
      // event exists exactly once, so it counts as applied (it cannot happen while progress and
      // events commit together; logged if it ever does).
      applied++
      if (r.status === 'duplicate') {
        deps.log.warn({ importId: imp.id, row: c.row }, 'import row was already in the ledger')
        // Applied rows had their attributes written by the ledger; a duplicate's are set here.
        if (c.attributes && r.contact_id) patches.push({ contactId: r.contact_id, set: c.attributes, remove: [] })
      }
    } else if (r.status === 'rejected') {
      rejected++
      errors.push({ row: c.row, column: columnOf(r.pointer, r.code), code: r.code, message: r.message })
    } else {
      rejected++
      errors.push({ row: c.row, column: '', code: 'processing_error', message: `unexpected ledger answer ${r.status}` })
    }
  })
  errors.sort((a, b) => a.row - b.row)

  if (patches.length > 0) await applyAttributePatches(tx, imp.workspace_id, patches)
  await insertErrors(tx, imp, errors)
  await recordProgress(tx, imp, { lastSeq, processed: applied + rejected + duplicate, applied, rejected, duplicate, done })
  if (done) headerCache.delete(imp.id)
  const ms = { fetch: msFetch, map: msMap, append: msAppend, write: lap() }
  return { imp, processed: applied + rejected + duplicate, done, ahead: readAhead !== null, ms }
}

/**
 * The last resort when even a one-row batch keeps failing: that row is refused with
 * `processing_error` and the import moves on (a bad row never stops an import).
 */
export async function skipPoisonRow(deps: ProcessorDeps, imp: ImportRecord, message: string): Promise<void> {
  await deps.sql.tx(async (tx) => {
    const [cur] = await tx.query<ImportRecord>(
      `SELECT workspace_id, id, last_seq, rows_total FROM imports WHERE workspace_id = $1 AND id = $2 AND status IN ('queued', 'running') FOR UPDATE`,
      [imp.workspace_id, imp.id],
    )
    if (!cur) return
    const rows = await fetchRows(tx, imp, cur.last_seq, 1)
    if (rows.length === 0) {
      await recordProgress(tx, imp, { lastSeq: cur.last_seq, processed: 0, applied: 0, rejected: 0, duplicate: 0, done: true })
      return
    }
    const { seq, row_number: row } = rows[0]!
    await insertErrors(tx, imp, [{ row, column: '', code: 'processing_error', message: `the row could not be processed: ${message}`.slice(0, 1000) }])
    await recordProgress(tx, imp, { lastSeq: seq, processed: 1, applied: 0, rejected: 1, duplicate: 0, done: seq >= cur.rows_total })
  })
}
