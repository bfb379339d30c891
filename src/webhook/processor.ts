/**
 * Webhook processing: inbox row → signals → ledger items, through the one append path. The pieces:
 *   - intake-queue.ts  when a committed row is processed (inside its request, or queued in batches);
 *   - row-state.ts     the row's way through processing (lock, work, status, retries, deferred rows);
 *   - row-work.ts      the one loop over a row's signals (routing, planning, appending);
 *   - signal-plan.ts   what each signal records, pure (docs/webhook.md).
 *
 * Durability. `receive` commits the raw payload first (its own statement), then processes it in the
 * same request when it can. A crash after the commit leaves the row `pending`, and the startup /
 * periodic sweep (plugin.ts) finishes it. Processing errors never reach Meta.
 */
import { createHash } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { Sql } from '../db/sql.js'
import type { Ledger } from '../ledger/ledger-service.js'
import { phoneNumberIdsOf } from './map-payload.js'
import type { InboxRepository, InboxStatus } from './inbox-repository.js'
import { createIntakeQueue, type IntakeQueue } from './intake-queue.js'
import { processBatch, processRow, type ProcessContext, type ProcessMode, type RowDeps } from './row-state.js'

export type { ProcessContext, ProcessMode } from './row-state.js'

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex')

/** Rows acknowledged under load are processed together, this many per transaction at most. */
export const QUEUE_BATCH = 200

export interface WebhookProcessorOptions {
  /**
   * At most this many payloads are processed inside their own request at a time; beyond that (or
   * while acknowledged rows wait), a payload is acknowledged once committed and processed right
   * after, together with the others waiting (intake-queue.ts). 0: always queue.
   */
  inlineMax?: number
}

/**
 * Commits the authentic raw payload, then processes it. Never throws once the row is committed:
 * Meta must get its 200 for every authentic payload.
 */
async function receive(inbox: InboxRepository, intake: IntakeQueue, onStatus: RowDeps['onStatus'], raw: Buffer, ctx: ProcessContext): Promise<{ id: string; status: InboxStatus }> {
  // PostgreSQL text cannot hold NUL; valid JSON never contains a raw one. body_sha256 is of the bytes.
  const text = raw.toString('utf8').replaceAll('\u0000', '\uFFFD')
  const digest = sha256(raw)
  let payload: unknown
  try {
    payload = JSON.parse(text)
  } catch {
    const stored = await inbox.insert(text, digest, [], 'failed', 'malformed_json: the body is not valid JSON', ctx.workspaceId ?? null)
    if (!stored.duplicate) onStatus?.('failed')
    return { id: stored.id, status: stored.status }
  }
  const stored = await inbox.insert(text, digest, phoneNumberIdsOf(payload), 'pending', null, ctx.workspaceId ?? null)
  // A replayed body is stored once: its first row answers (the sweep finishes it if still pending).
  if (stored.duplicate) return { id: stored.id, status: stored.status }
  return { id: stored.id, status: await intake.admit(stored.id, ctx) }
}

export function createWebhookProcessor(
  deps: { sql: Sql; ledger: Ledger; inbox: InboxRepository; onStatus?: (status: InboxStatus) => void; log?: FastifyBaseLogger },
  opts: WebhookProcessorOptions = {},
) {
  const { inbox } = deps
  const process = (id: string, mode: ProcessMode, ctx: ProcessContext) => processRow(deps, id, mode, ctx)
  const intake = createIntakeQueue({
    inlineMax: opts.inlineMax ?? 4,
    batchSize: QUEUE_BATCH,
    processOne: (id, ctx) => process(id, 'fresh', ctx),
    processBatch: (ids, ctx) => processBatch(deps, ids, ctx),
  })

  /** Reprocesses the unmapped rows that name a number just mapped; returns how many were processed. */
  async function afterMapping(phoneNumberId: string, ctx: ProcessContext): Promise<number> {
    let n = 0
    for (const id of await inbox.unmappedIds(phoneNumberId, 1000)) {
      if ((await process(id, 'mapped', ctx)) !== null) n++
    }
    return n
  }

  /**
   * Finishes what a crash or a lost race left: pending rows untouched for `staleMs`, unmapped rows
   * whose numbers are all mapped by now; and retires deferred rows older than DEFER_DAYS.
   */
  async function sweep(staleMs: number, ctx: ProcessContext, limit = 500): Promise<number> {
    let n = 0
    for (const id of await inbox.pendingIds(staleMs, limit)) if ((await process(id, 'sweep', ctx)) !== null) n++
    for (const id of await inbox.unmappedIds(null, limit)) if ((await process(id, 'sweep', ctx)) !== null) n++
    await inbox.expireDeferred()
    return n
  }

  return {
    receive: (raw: Buffer, ctx: ProcessContext) => receive(inbox, intake, deps.onStatus, raw, ctx),
    process,
    afterMapping,
    sweep,
    idle: intake.idle,
  }
}

export type WebhookProcessor = ReturnType<typeof createWebhookProcessor>
