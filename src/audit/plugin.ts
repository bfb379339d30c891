/**
 * The Auditor API's service (fastify-plugin `audit`): decorates `app.audit` and runs the checkpoint
 * job (scheduler.ts) from onReady until preClose.
 *
 * - CHECKPOINT_SIGNING_KEY unset: checkpoints are DISABLED (logged at start). We do not invent
 *   an ephemeral key: its signatures could not be checked after a restart, which is worse than
 *   none. The chains still verify; /audit/checkpoints says `enabled: false`, creating one answers
 *   409 `checkpoints_disabled`, and proofs carry `checkpoint_status: "checkpoints_disabled"`.
 * - CHECKPOINT_INTERVAL_MS=0 turns the background job off (checkpoints are then taken only through
 *   `POST /audit/checkpoints` or `app.audit.createCheckpoint`).
 * - DATABASE_READ_URL (PostgreSQL): the audit reads that may lag (events, export, state, proof,
 *   verify) go to that replica through a pool of its own; checkpoints are always created on the
 *   primary.
 */
import fp from 'fastify-plugin'
import { openDatabase, type Database } from '../db/client.js'
import type { Sql } from '../db/sql.js'
import { createCheckpoint, disabledError, type CreateResult } from './checkpoints.js'
import { createScheduler } from './scheduler.js'
import { createSigner, parseSigningKey, type Signer } from './signing.js'

export interface AuditService {
  /** Where audit reads go (the replica when DATABASE_READ_URL is set). */
  readSql: Sql
  signer: Signer | null
  /** Take a checkpoint of the workspace now (no-op answer when nothing changed, unless force). */
  createCheckpoint(workspaceId: string, opts?: { force?: boolean }): Promise<CreateResult>
  /** Run one tick of the background job now (tests). */
  runCheckpointJob(): Promise<void>
}

declare module 'fastify' {
  interface FastifyInstance {
    audit: AuditService
  }
}

export default fp(
  async (app) => {
    const config = app.config
    const signer = config.CHECKPOINT_SIGNING_KEY ? createSigner(parseSigningKey(config.CHECKPOINT_SIGNING_KEY)) : null
    if (!signer) {
      // info, not warn: running without checkpoints is a supported configuration (the routes say so).
      app.log.info('CHECKPOINT_SIGNING_KEY is not set: signed checkpoints are disabled (hash chains are still kept and verifiable)')
    }

    let readSql: Sql = app.database.sql
    let replica: Database | null = null
    if (config.DATABASE_READ_URL && app.database.kind === 'postgres') {
      replica = await openDatabase({
        databaseUrl: config.DATABASE_READ_URL,
        dataDir: config.DATA_DIR,
        poolMax: Math.max(2, Math.ceil(config.DATABASE_POOL_MAX / 4)),
        applicationName: 'consent-ledger-audit-read',
        connectTimeoutMs: config.DATABASE_CONNECT_TIMEOUT_MS,
        onConnectionError: (err) => app.log.warn({ err: { message: err.message } }, 'read replica connection lost'),
      })
      readSql = replica.sql
    }

    const sql = app.database.sql
    const scheduler =
      signer && config.CHECKPOINT_INTERVAL_MS > 0
        ? createScheduler({
            sql,
            signer,
            log: app.log,
            intervalMs: config.CHECKPOINT_INTERVAL_MS,
            everyEvents: config.CHECKPOINT_EVERY_EVENTS,
            pollMs: Math.min(config.CHECKPOINT_POLL_MS, config.CHECKPOINT_INTERVAL_MS),
          })
        : null

    const service: AuditService = {
      readSql,
      signer,
      async createCheckpoint(workspaceId, opts) {
        if (!signer) throw disabledError()
        return createCheckpoint(sql, signer, workspaceId, opts)
      },
      async runCheckpointJob() {
        if (!signer) throw disabledError()
        const job =
          scheduler ??
          createScheduler({
            sql,
            signer,
            log: app.log,
            intervalMs: config.CHECKPOINT_INTERVAL_MS,
            everyEvents: config.CHECKPOINT_EVERY_EVENTS,
            pollMs: config.CHECKPOINT_POLL_MS,
          })
        await job.runOnce()
      },
    }
    app.decorate('audit', service)

    if (scheduler) app.addHook('onReady', async () => scheduler.start())
    app.addHook('preClose', async () => {
      await scheduler?.stop()
    })
    app.addHook('onClose', async () => {
      await scheduler?.stop()
      await replica?.close()
    })
  },
  { name: 'audit', dependencies: ['config', 'db', 'services'] },
)
