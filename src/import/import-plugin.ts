/**
 * Bulk imports as an infrastructure plugin: decorates `imports` (uploads) and `importWorker` (the
 * background batch loop), starts the worker once the app is ready and stops it on close, after the
 * batch in progress (which commits or rolls back whole). With several instances, each runs a worker;
 * they share the queue through `FOR UPDATE SKIP LOCKED` (src/import/import-repository.ts).
 * https://fastify.dev/docs/latest/Reference/Hooks/#onready
 */
import fp from 'fastify-plugin'
import { createImportService, type ImportService } from './import-service.js'
import { createImportWorker, type ImportWorker, type ImportWorkerOptions } from './worker.js'

declare module 'fastify' {
  interface FastifyInstance {
    imports: ImportService
    importWorker: ImportWorker
  }
}

export interface ImportPluginOptions extends ImportWorkerOptions {
  /** Start the background worker (default true). */
  worker?: boolean
}

export default fp<ImportPluginOptions>(
  async (app, opts) => {
    app.decorate('imports', createImportService(app.database))
    const worker = createImportWorker({ sql: app.database.sql, ledger: app.ledger, log: app.log.child({ component: 'import-worker' }) }, opts)
    app.decorate('importWorker', worker)
    if (opts.worker !== false) app.addHook('onReady', async () => worker.start())
    // onClose hooks run in reverse registration order: this one before the database closes.
    app.addHook('onClose', async () => worker.stop())
  },
  { name: 'imports', dependencies: ['db', 'services'] },
)
