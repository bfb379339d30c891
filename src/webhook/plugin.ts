/**
 * The WhatsApp webhook services (fastify-plugin `whatsapp`): the inbox processor, the numbers and
 * inbox repositories, decorated as `app.whatsapp` for the routes; and the sweep that makes a
 * `kill -9` after the inbox commit lose nothing:
 *   - on start (onReady, awaited, so an instance answers only once it has caught up): every
 *     `pending` row (whatever a crash left between commit and processing), and `unmapped` rows
 *     whose numbers are all mapped by now;
 *   - then every SWEEP_INTERVAL_MS: the same, for pending rows untouched for STALE_PENDING_MS
 *     (an instance that died mid-request while others live on), and deferred rows are retired
 *     after DEFER_DAYS.
 * Several instances may sweep at once: rows are locked with SKIP LOCKED and every item has its
 * exactly-once key, so a row processed twice appends nothing twice.
 * Under load, acknowledged rows wait in an in-process queue and are processed in batches right
 * after (processor.ts, WEBHOOK_INLINE_MAX); shutdown waits for that queue.
 * Metrics: `whatsapp_inbox_processed_total{status}`.
 */
import fp from 'fastify-plugin'
import { Counter } from 'prom-client'
import { createInboxRepository, type InboxRepository } from './inbox-repository.js'
import { createNumbersRepository, type NumbersRepository } from './numbers-repository.js'
import { createWebhookProcessor, type WebhookProcessor } from './processor.js'

declare module 'fastify' {
  interface FastifyInstance {
    whatsapp: {
      processor: WebhookProcessor
      inbox: InboxRepository
      numbers: NumbersRepository
    }
  }
}

export const SWEEP_INTERVAL_MS = 30_000
export const STALE_PENDING_MS = 30_000
/** Rows processed synchronously at start; the periodic sweep takes the rest. */
const STARTUP_LIMIT = 1000

export default fp(
  async (app) => {
    const { sql } = app.database
    const processed = new Counter({
      name: 'whatsapp_inbox_processed_total',
      help: 'WhatsApp webhook inbox rows processed, by resulting status',
      labelNames: ['status'] as const,
      registers: [app.metrics.registry],
    })
    const inbox = createInboxRepository(sql, { groupConcurrency: app.config.GROUP_COMMIT_CONCURRENCY, groupMax: app.config.GROUP_COMMIT_MAX_ITEMS })
    const processor = createWebhookProcessor(
      { sql, ledger: app.ledger, inbox, onStatus: (status) => processed.inc({ status }) },
      { inlineMax: app.config.WEBHOOK_INLINE_MAX },
    )
    app.decorate('whatsapp', { processor, inbox, numbers: createNumbersRepository(sql) })

    const log = app.log.child({ component: 'whatsapp-inbox' })
    let timer: NodeJS.Timeout | undefined
    let running: Promise<unknown> = Promise.resolve()
    let closing = false
    const sweep = (staleMs: number, limit?: number) => {
      running = running
        .then(() => (closing ? 0 : processor.sweep(staleMs, { log }, limit)))
        .then((n) => {
          if (n) log.info({ rows: n }, 'webhook inbox sweep processed rows')
        })
        .catch((err) => log.error({ err }, 'webhook inbox sweep failed'))
      return running
    }

    app.addHook('onReady', async () => {
      await sweep(0, STARTUP_LIMIT)
      timer = setInterval(() => void sweep(STALE_PENDING_MS), SWEEP_INTERVAL_MS)
      timer.unref()
    })
    app.addHook('preClose', async () => {
      closing = true
      if (timer) clearInterval(timer)
      // Acknowledged rows waiting in the queue are processed before the database closes (a crash
      // instead leaves them pending for the next start's sweep).
      await processor.idle()
      await running
    })
    // After the server closed: payloads of requests still in flight during preClose (or whose
    // client went away) are committed, and the rows they queued processed, before the database
    // closes (onClose hooks run in reverse registration order).
    app.addHook('onClose', async () => {
      await inbox.idle()
      await processor.idle()
    })
  },
  { name: 'whatsapp', dependencies: ['db', 'services', 'metrics'] },
)
