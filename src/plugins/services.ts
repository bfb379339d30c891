/**
 * Domain services, built once per app on the shared database and decorated for the routes.
 */
import fp from 'fastify-plugin'
import { createApiKeyService, type ApiKeyService } from '../auth/api-keys.js'
import { createGroupService, type GroupService } from '../groups/group-service.js'
import { createIdempotency, type Idempotency } from '../idempotency/idempotency.js'
import { createLedger, type Ledger } from '../ledger/ledger-service.js'
import { createAppendCoalescer, type AppendCoalescer } from '../ledger/append-coalescer.js'
import { createCheckService, type CheckService } from '../check/check-service.js'

declare module 'fastify' {
  interface FastifyInstance {
    ledger: Ledger
    /** Group commit of request appends (append-coalescer.ts). */
    appendGroups: AppendCoalescer
    apiKeys: ApiKeyService
    groups: GroupService
    idempotency: Idempotency
    checks: CheckService
  }
}

export default fp(
  async (app) => {
    const { sql, db } = app.database
    app.decorate(
      'ledger',
      createLedger({
        onAppended: (counts) => {
          for (const [source, n] of counts) app.metrics.ledgerAppends.inc({ source }, n)
        },
      }),
    )
    app.decorate(
      'appendGroups',
      createAppendCoalescer(sql, app.ledger, {
        concurrency: app.config.GROUP_COMMIT_CONCURRENCY,
        maxItems: app.config.GROUP_COMMIT_MAX_ITEMS,
        largeConcurrency: app.config.GROUP_COMMIT_LARGE_CONCURRENCY,
      }),
    )
    app.decorate('apiKeys', createApiKeyService(sql))
    app.decorate('groups', createGroupService(db))
    app.decorate('idempotency', createIdempotency(sql, app.config.IDEMPOTENCY_TTL_HOURS))
    app.decorate(
      'checks',
      createCheckService(sql, { concurrency: app.config.CHECK_GROUP_CONCURRENCY, maxItems: app.config.CHECK_GROUP_MAX_ITEMS }),
    )
    // onClose hooks run in reverse registration order: this one before the database (db.ts) closes.
    // A request whose client went away is no longer awaited by the server's close, but its unit may
    // still wait in a group-commit queue: it is appended (or answered) before the pool ends, instead
    // of failing on a closed pool.
    app.addHook('onClose', async () => {
      await Promise.all([app.appendGroups.idle(), app.checks.idle()])
    })
    await app.apiKeys.ensureRoot(app.config.CONSENT_ADMIN_KEY)
  },
  { name: 'services', dependencies: ['db', 'metrics'] },
)
