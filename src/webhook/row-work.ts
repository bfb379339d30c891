/**
 * The work on locked inbox rows, inside the processing transaction: each row's payload is parsed
 * and routed (number → workspace), each signal planned (signal-plan.ts) and its items appended
 * through the one append path (`ledger.append`, actor `meta-webhook`). One loop serves a single row
 * and a batch of rows; they differ only in when queued items go to the ledger.
 *
 * Routing. Each change's `metadata.phone_number_id` names the workspace (whatsapp_numbers). Signals
 * of unmapped numbers are skipped and the row stays `unmapped` until the number is mapped, when it
 * is reprocessed (already-applied signals are duplicates by their keys).
 */
import type { FastifyBaseLogger } from 'fastify'
import type { Sql } from '../db/sql.js'
import type { Ledger } from '../ledger/ledger-service.js'
import type { AppendItem } from '../ledger/types.js'
import { historyOf } from '../ledger/history.js'
import { planRestore } from '../ledger/restore.js'
import { keywordSettingsFrom } from './keyword-settings-repository.js'
import { mapPayload, phoneNumberIdsOf, type Signal } from './map-payload.js'
import { planSignal, type Plan, type WorkspaceContext } from './signal-plan.js'
import type { InboxRow, Routing } from './inbox-repository.js'

export const WEBHOOK_ACTOR = 'meta-webhook'
export const MALFORMED_JSON = 'malformed_json: the body is not valid JSON'

export type LockedRow = InboxRow & { routing: Routing }

/** What happened to one row's signals. */
export interface RowWork {
  row: LockedRow
  /** Ledger rejections by code. */
  rejected: Map<string, number>
  /** Numbers for which an opt-out or platform stop was applied. */
  optOut: Set<string>
  /** A restore found nothing to restore yet. */
  deferred: boolean
  /** Some number the payload names is mapped to no workspace. */
  unmapped: boolean
  /** Why the row failed before any signal (malformed JSON). */
  failed?: string
}

export interface WorkContext {
  requestId?: string
  log: FastifyBaseLogger
}

interface Queued {
  work: RowWork
  workspaceId: string
  phoneNumberId: string
  optOut: boolean
  item: AppendItem
}

/** Items waiting for the ledger; `flush` appends them, one ledger append per workspace. */
function createAppender(tx: Sql, ledger: Ledger, ctx: WorkContext) {
  let queued: Queued[] = []
  return {
    add(work: RowWork, workspaceId: string, phoneNumberId: string, plan: Plan) {
      for (const item of plan.items) queued.push({ work, workspaceId, phoneNumberId, optOut: !!plan.optOut, item })
    },
    async flush() {
      if (queued.length === 0) return
      const byWorkspace = new Map<string, Queued[]>()
      for (const q of queued) byWorkspace.set(q.workspaceId, [...(byWorkspace.get(q.workspaceId) ?? []), q])
      queued = []
      for (const [workspaceId, list] of byWorkspace) {
        const results = await ledger.append(
          tx,
          { workspaceId, actor: WEBHOOK_ACTOR, requestId: ctx.requestId, receivedAt: new Date(list[0]!.work.row.received_at) },
          list.map((q) => q.item),
        )
        results.forEach((r, i) => {
          const q = list[i]!
          if (r.status === 'rejected') q.work.rejected.set(r.code, (q.work.rejected.get(r.code) ?? 0) + 1)
          else if (r.status === 'applied' && q.optOut) q.work.optOut.add(q.phoneNumberId)
        })
      }
    },
  }
}

/** A signal's plan; a restore first reads the person's history (after what is queued is appended, so it sees it). */
async function planOf(tx: Sql, w: WorkspaceContext, signal: Signal, row: LockedRow, flush: () => Promise<void>): Promise<Plan> {
  const step = planSignal(w, signal, row)
  if ('plan' in step) return step.plan
  await flush()
  const { kind, identities, at } = step.needs
  return step.finish(planRestore(await historyOf(tx, w.id, identities, at), kind))
}

function parse(raw: string): { ok: true; payload: unknown } | { ok: false } {
  try {
    return { ok: true, payload: JSON.parse(raw) }
  } catch {
    return { ok: false }
  }
}

/**
 * Plans and appends the signals of `rows`, in order. With `eachSignal`, every signal's items are
 * appended before the next signal is planned; otherwise items are queued across rows and appended
 * together, except that a signal whose plan reads the ledger first appends what is queued, so the
 * outcome is as if the rows had been processed one after the other.
 */
export async function workRows(tx: Sql, ledger: Ledger, rows: LockedRow[], ctx: WorkContext, eachSignal: boolean): Promise<RowWork[]> {
  const appender = createAppender(tx, ledger, ctx)
  const works: RowWork[] = []
  for (const row of rows) {
    const work: RowWork = { row, rejected: new Map(), optOut: new Set(), deferred: false, unmapped: false }
    works.push(work)
    const parsed = parse(row.raw_body)
    if (!parsed.ok) {
      work.failed = MALFORMED_JSON
      continue
    }
    // Routing (number → workspace, keyword settings, groups) came with the row lock.
    const mapping = new Map(Object.entries(row.routing.numbers))
    work.unmapped = phoneNumberIdsOf(parsed.payload).some((n) => !mapping.has(n))
    const workspaces = new Map<string, WorkspaceContext>(
      row.routing.workspaces.map((w) => [w.id, { id: w.id, settings: keywordSettingsFrom(w.keywords), groups: w.groups }]),
    )
    for (const signal of mapPayload(parsed.payload)) {
      const workspaceId = mapping.get(signal.phoneNumberId)
      const w = workspaceId ? workspaces.get(workspaceId) : undefined
      if (!workspaceId || !w) continue
      const plan = await planOf(tx, w, signal, row, appender.flush)
      if (plan.deferred) work.deferred = true
      appender.add(work, workspaceId, signal.phoneNumberId, plan)
      if (eachSignal) await appender.flush()
    }
  }
  await appender.flush()
  for (const work of works) {
    if (work.rejected.size > 0) ctx.log.warn({ inboxId: work.row.id, rejected: Object.fromEntries(work.rejected) }, 'webhook items rejected by the ledger; the payload is kept as failed')
  }
  return works
}
