/**
 * Uploads and reads of bulk imports (docs/import.md).
 *
 * An upload is ONE transaction: the parsed rows are staged (COPY on PostgreSQL, INSERTs on
 * PGlite), rows repeating an earlier row of the file are marked (one set-based statement), and
 * the `imports` row is inserted; the 202 goes out only after COMMIT, so an
 * acknowledged file is never lost, and an interrupted upload leaves nothing.
 *
 * Idempotency-Key: the key lives on the import itself, for the life of the import (a re-uploaded
 * file must never import twice, whatever the delay). The key is checked BEFORE the body is read:
 * a re-post streams the body only through sha256 (nothing stored) and answers the same import;
 * a different file or different query defaults with the same key answer 422; a second upload
 * with the key while the first is still streaming answers 409.
 */
import { randomUUID } from 'node:crypto'
import type { Readable } from 'node:stream'
import type { Database } from '../db/client.js'
import { runAfterCommit, type Sql } from '../db/sql.js'
import { DomainError, conflict, unprocessable } from '../errors/domain-error.js'
import type { ImportDefaults } from './columns.js'
import {
  findByIdempotencyKey,
  findGroup,
  insertImport,
  markDuplicates,
  tryLockIdempotencyKey,
  type ImportRecord,
} from './import-repository.js'
import { copySink, digestStream, insertSink, stageCsv } from './staging.js'

/** CSV bodies up to 1 GiB, streamed. */
export const MAX_UPLOAD_BYTES = 1024 * 1024 * 1024

export interface UploadRequest {
  workspaceId: string
  actor: string
  requestId: string
  idempotencyKey?: string
  defaults: ImportDefaults
  body: Readable
  limit?: number
}

export interface UploadOutcome {
  imp: ImportRecord
  replayed: boolean
  /** Milliseconds: parse + stage (COPY), marking repeated rows, commit. */
  ms?: { stage: number; duplicates: number; commit: number }
}

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/

function sameDefaults(imp: ImportRecord, d: ImportDefaults): boolean {
  return (
    (imp.default_subscription_group_id ?? null) === (d.subscriptionGroupId?.toLowerCase() ?? null) &&
    (imp.default_subscription_state ?? null) === (d.subscriptionState ?? null) &&
    (imp.source_label ?? null) === (d.sourceLabel ?? null)
  )
}

/** Runs `fn` in one transaction; on PostgreSQL with the raw client too (COPY needs it). */
async function inUploadTx<T>(database: Database, fn: (tx: Sql, client?: import('pg').PoolClient) => Promise<T>): Promise<T> {
  if (!database.pool) return database.sql.tx((tx) => fn(tx))
  const client = await database.pool.connect()
  const after: (() => void)[] = []
  const tx: Sql = {
    inTransaction: true,
    afterCommit: (f) => void after.push(f),
    async query<R>(text: string, params: unknown[] = []) {
      return (await client.query(text, params)).rows as R[]
    },
    async queryLast(text: string, params: unknown[] = []) {
      await client.query(text, params)
    },
    tx: (f) => f(tx),
  }
  let broken: unknown
  try {
    await client.query('BEGIN')
    const out = await fn(tx, client)
    await client.query('COMMIT')
    runAfterCommit(after)
    return out
  } catch (err) {
    // An aborted COPY can leave the connection mid-protocol: never hand it back to the pool.
    broken = err
    throw err
  } finally {
    client.release(broken ? true : undefined)
  }
}

/** The upload's defaults, its group id lower-cased; a default group must exist and be active. */
async function checkedDefaults(sql: Sql, req: UploadRequest): Promise<ImportDefaults> {
  const defaults: ImportDefaults = { ...req.defaults, subscriptionGroupId: req.defaults.subscriptionGroupId?.toLowerCase() ?? null }
  if (defaults.subscriptionGroupId) {
    const g = await findGroup(sql, req.workspaceId, defaults.subscriptionGroupId)
    if (!g || g.archived) {
      const code = g ? 'archived_subscription_group' : 'unknown_subscription_group'
      throw unprocessable(code, `subscription group ${defaults.subscriptionGroupId} ${g ? 'is archived' : 'does not exist'}`, [
        { pointer: '/querystring/subscription_group_id', code, message: g ? 'archived' : 'not found' },
      ])
    }
  }
  return defaults
}

/**
 * Inside the upload's transaction: the earlier import holding the Idempotency-Key (`prior`), or the
 * file staged, its repeated rows marked and its `imports` row inserted (`imp`, with timings).
 */
async function stageUpload(
  tx: Sql,
  client: import('pg').PoolClient | undefined,
  req: UploadRequest,
  defaults: ImportDefaults,
  limit: number,
  t0: number,
): Promise<{ prior: ImportRecord } | { imp: ImportRecord; ms: NonNullable<UploadOutcome['ms']> }> {
  const key = req.idempotencyKey
  if (key !== undefined) {
    if (!(await tryLockIdempotencyKey(tx, req.workspaceId, key))) {
      throw conflict('idempotency_in_flight', 'an upload with this Idempotency-Key is still in progress; retry later')
    }
    const prior = await findByIdempotencyKey(tx, req.workspaceId, key)
    if (prior) return { prior }
  }
  const id = randomUUID()
  const sink = client ? copySink(client, req.workspaceId, id) : insertSink(tx, req.workspaceId, id)
  const r = await stageCsv(req.body, sink, { limit, defaults })
  const t1 = performance.now()
  await markDuplicates(tx, req.workspaceId, id)
  const t2 = performance.now()
  const imp = await insertImport(tx, {
    workspaceId: req.workspaceId,
    id,
    sourceLabel: defaults.sourceLabel ?? null,
    defaultGroupId: defaults.subscriptionGroupId ?? null,
    defaultState: defaults.subscriptionState ?? null,
    columns: r.header,
    fileBytes: r.bytes,
    fileSha256: r.sha256,
    idempotencyKey: key ?? null,
    createdBy: req.actor,
    requestId: req.requestId,
    rowsTotal: r.rowsTotal,
  })
  // commit: the time from here to the answer, filled in by the caller after COMMIT.
  return { imp, ms: { stage: Math.round(t1 - t0), duplicates: Math.round(t2 - t1), commit: t2 } }
}

async function upload(database: Database, req: UploadRequest): Promise<UploadOutcome> {
  const limit = req.limit ?? MAX_UPLOAD_BYTES
  const key = req.idempotencyKey
  if (key !== undefined && !IDEMPOTENCY_KEY.test(key)) {
    throw new DomainError(400, 'invalid_idempotency_key', 'Idempotency-Key must be 1 to 255 visible ASCII characters')
  }
  const defaults = await checkedDefaults(database.sql, req)
  const t0 = performance.now()
  const staged = await inUploadTx(database, (tx, client) => stageUpload(tx, client, req, defaults, limit, t0))
  if ('imp' in staged) {
    const ms = { ...staged.ms, commit: Math.round(performance.now() - staged.ms.commit) }
    return { imp: staged.imp, replayed: false, ms }
  }
  // A re-post: read the body only to compare it with the first upload; nothing is stored.
  const prior = staged.prior
  const digest = await digestStream(req.body, limit)
  if (digest.sha256 !== prior.file_sha256 || !sameDefaults(prior, defaults)) {
    throw unprocessable('idempotency_key_reused', 'this Idempotency-Key was used for a different file or different query parameters')
  }
  return { imp: prior, replayed: true }
}

export function createImportService(database: Database) {
  return { upload: (req: UploadRequest) => upload(database, req) }
}

export type ImportService = ReturnType<typeof createImportService>
