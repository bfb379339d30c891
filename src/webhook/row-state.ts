/**
 * The inbox row's way through processing (statuses in inbox-repository.ts): a row is locked
 * (`FOR UPDATE`), its signals are appended and its new status recorded in ONE transaction, so it is
 * either processed with all its events or not at all; a crash leaves it `pending` and the sweep
 * (plugin.ts) finishes it. A transaction that loses a race (deadlock, serialization, a unique key)
 * is retried; processing errors never reach Meta: the row becomes `failed` (kept, listed,
 * replayable).
 *
 * Out-of-order delivery (docs/webhook.md "What a restore gives back"). Opt-outs and stops have
 * fixed groups, so the ordering rule settles them in any order. A restore (START/UNSTOP, resume)
 * that finds NO opt-out to restore is `deferred`: it records nothing yet, and is re-evaluated
 * whenever an opt-out for the same number is applied (for DEFER_DAYS), so "START, then the older
 * STOP" ends as "STOP, then START". Known limit: a restore evaluated against an older opt-out is
 * not revised when an opt-out between the two arrives later (the ledger cannot take an event back).
 */
import type { Sql } from '../db/sql.js'
import type { Ledger } from '../ledger/ledger-service.js'
import type { InboxRepository, InboxStatus } from './inbox-repository.js'
import { workRows, type RowWork, type WorkContext } from './row-work.js'

/** Why a row is processed: decides whether a busy row is waited for and which statuses qualify. */
export type ProcessMode =
  /** Just received in this request. */
  | 'fresh'
  /** POST /webhooks/whatsapp/inbox/{id}/replay: any status. */
  | 'replay'
  /** Startup / periodic sweep: pending rows (a crash), unmapped rows whose numbers are mapped now. */
  | 'sweep'
  /** Its number was just mapped. */
  | 'mapped'
  /** An opt-out arrived that a deferred restore may have been waiting for. */
  | 'deferred'

const QUALIFIES: Record<ProcessMode, InboxStatus[] | null> = {
  fresh: null,
  replay: null,
  sweep: ['pending', 'unmapped'],
  mapped: ['unmapped'],
  deferred: ['deferred'],
}

export interface ProcessContext extends WorkContext {
  /** receive: the workspace whose own webhook URL received the payload (absent: the operator's URL). */
  workspaceId?: string
}

export interface RowDeps {
  sql: Sql
  ledger: Ledger
  inbox: InboxRepository
  onStatus?: (status: InboxStatus) => void
}

const RETRYABLE = new Set(['40P01', '40001', '23505'])
const ATTEMPTS = 3
/** Deferred rows re-evaluated after one opt-out, at most. */
const DEFERRED_BATCH = 100

/** The SQLSTATE of an error, or of the error it wraps (Drizzle wraps them as `cause`). */
const sqlStateOf = (err: unknown): string | undefined => (err as { code?: string }).code ?? (err as { cause?: { code?: string } }).cause?.code

/** Runs `run` again, up to ATTEMPTS times in all, while it fails with a retryable SQLSTATE. */
async function withRetries<T>(run: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run()
    } catch (err) {
      const code = sqlStateOf(err)
      if (code && RETRYABLE.has(code) && attempt < ATTEMPTS) continue
      throw err
    }
  }
}

/** A processed row's status and note, from what happened to its signals. */
function rowStatus(work: RowWork): { status: InboxStatus; lastError: string | null } {
  if (work.failed) return { status: 'failed', lastError: work.failed }
  const { rejected } = work
  if (rejected.size > 0) return { status: 'failed', lastError: `rejected by the ledger: ${[...rejected].map(([code, n]) => `${code} x${n}`).join(', ')}` }
  if (work.unmapped) return { status: 'unmapped', lastError: null }
  if (work.deferred) return { status: 'deferred', lastError: 'waiting for an opt-out to restore (START/UNSTOP or resume arrived first)' }
  return { status: 'processed', lastError: null }
}

/** Processes one row; null when skipped (busy elsewhere, or no longer in a qualifying status). */
export async function processRow(deps: RowDeps, id: string, mode: ProcessMode, ctx: ProcessContext): Promise<InboxStatus | null> {
  let outcome: { status: InboxStatus; optOut: Set<string>; deferredWaiting: boolean } | null
  try {
    outcome = await withRetries(() =>
      deps.sql.tx(async (tx) => {
        const row = await deps.inbox.lockForProcessing(tx, id, mode !== 'fresh' && mode !== 'replay')
        if (!row) return null
        const qualifies = QUALIFIES[mode]
        if (qualifies && !qualifies.includes(row.status)) return null
        const [work] = await workRows(tx, deps.ledger, [row], ctx, true)
        const { status, lastError } = rowStatus(work!)
        // Completing deferred restores is one level only: a restore never produces an opt-out.
        const { deferredWaiting } = await deps.inbox.finish(tx, id, status, lastError, mode === 'deferred' ? [] : [...work!.optOut])
        return { status, optOut: work!.optOut, deferredWaiting }
      }),
    )
  } catch (err) {
    ctx.log.error({ err, inboxId: id, mode }, 'webhook processing failed; the payload is kept as failed')
    await deps.inbox.fail(id, `processing_error: ${sqlStateOf(err) ?? 'unexpected'} (see the service log)`)
    deps.onStatus?.('failed')
    return 'failed'
  }
  if (!outcome) return null
  deps.onStatus?.(outcome.status)
  if (outcome.deferredWaiting) {
    for (const other of await deps.inbox.deferredIds([...outcome.optOut], id, DEFERRED_BATCH)) await processRow(deps, other, 'deferred', ctx)
  }
  return outcome.status
}

/**
 * Several `pending` rows in ONE transaction: signals are planned row by row, their items appended
 * together (one ledger append per workspace; see workRows). Rows held elsewhere or already
 * processed are skipped. Throws (and changes nothing) if the batch cannot be processed whole.
 */
export async function processBatch(deps: RowDeps, ids: string[], ctx: ProcessContext): Promise<void> {
  const done = await withRetries(() =>
    deps.sql.tx(async (tx) => {
      const works = await workRows(tx, deps.ledger, await deps.inbox.lockPendingForProcessing(tx, ids), ctx, false)
      const outcomes = works.map((w) => ({ id: w.row.id, ...rowStatus(w) }))
      const numbers = [...new Set(works.flatMap((w) => [...w.optOut]))]
      const waiting = works.length > 0 ? await deps.inbox.finishMany(tx, outcomes, numbers) : new Set<string>()
      // A restore deferred in this very batch waits on an opt-out applied after it in the batch.
      const deferredHere = new Set(works.filter((_, i) => outcomes[i]!.status === 'deferred').flatMap((w) => w.row.phone_number_ids))
      for (const n of numbers) if (deferredHere.has(n)) waiting.add(n)
      return { statuses: outcomes.map((o) => o.status), waiting }
    }),
  )
  for (const status of done.statuses) deps.onStatus?.(status)
  if (done.waiting.size > 0) {
    for (const other of await deps.inbox.deferredIds([...done.waiting], '0', DEFERRED_BATCH)) await processRow(deps, other, 'deferred', ctx)
  }
}
