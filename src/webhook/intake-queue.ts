/**
 * When a committed inbox row is processed. A few rows at a time are processed inside their own
 * request, so the answer carries the final status; beyond that, or while acknowledged rows wait, a
 * row is acknowledged as `pending` and joins an in-process FIFO that is processed right after, in
 * batches (one transaction and one ledger append per workspace for many rows), which keeps the
 * webhook's answers fast under a burst. A crash loses nothing: queued rows stay `pending` in the
 * inbox for the sweep (plugin.ts). Why and how it performs: docs/performance.md.
 */
import type { InboxStatus } from './inbox-repository.js'
import type { ProcessContext } from './row-state.js'

export interface IntakeQueueOptions {
  /** Rows processed inside their own request at once, at most (0: always queue). */
  inlineMax: number
  /** Queued rows per batch, at most. */
  batchSize: number
  /** Processes one row now; null when it was skipped. Never used to reject a payload. */
  processOne(id: string, ctx: ProcessContext): Promise<InboxStatus | null>
  /** Processes queued rows together; throws (changing nothing) when the batch cannot be processed whole. */
  processBatch(ids: string[], ctx: ProcessContext): Promise<void>
}

export function createIntakeQueue(opts: IntakeQueueOptions) {
  let inline = 0
  /** Committed, acknowledged, not processed yet (FIFO). */
  const queue: { id: string; ctx: ProcessContext }[] = []
  let draining: Promise<void> | null = null

  /** Processes the queue in batches until it is empty. Never rejects. */
  async function drain(): Promise<void> {
    // Let the acknowledgements of this tick go out first, and more rows join the first batch.
    await new Promise((r) => setImmediate(r))
    try {
      while (queue.length > 0) {
        const batch = queue.splice(0, opts.batchSize)
        const ctx = batch[0]!.ctx
        try {
          await opts.processBatch(
            batch.map((b) => b.id),
            ctx,
          )
        } catch (err) {
          // One row at a time instead: each row ends processed or failed on its own.
          ctx.log.warn({ err, rows: batch.length }, 'webhook batch failed; processing its rows one by one')
          for (const b of batch) await opts.processOne(b.id, b.ctx).catch((e) => b.ctx.log.error({ err: e, inboxId: b.id }, 'webhook processing failed; the payload is kept'))
        }
      }
    } finally {
      draining = null
    }
  }

  return {
    /**
     * Processes a just-committed row now, or queues it; answers the status to acknowledge with.
     * Never throws: the row is committed, and Meta must get its 200.
     */
    async admit(id: string, ctx: ProcessContext): Promise<InboxStatus> {
      // In arrival order: while rows wait in the queue, a new row joins them rather than overtake.
      if (inline >= opts.inlineMax || queue.length > 0 || draining) {
        queue.push({ id, ctx })
        draining ??= drain()
        return 'pending'
      }
      inline++
      try {
        return (await opts.processOne(id, ctx)) ?? 'pending'
      } catch (err) {
        ctx.log.error({ err, inboxId: id }, 'webhook processing failed; the payload is kept')
        return 'pending'
      } finally {
        inline--
      }
    },

    /** Resolves once every acknowledged row in the queue is processed (shutdown, tests). */
    async idle(): Promise<void> {
      while (draining) await draining
    },
  }
}

export type IntakeQueue = ReturnType<typeof createIntakeQueue>
