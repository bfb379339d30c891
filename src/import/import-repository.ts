/**
 * Every SQL statement of bulk imports, one function per operation. All of them are
 * scoped by workspace_id except the worker's queue (`claimNext`), which serves every tenant.
 */
import type { Sql } from '../db/sql.js'
import { badRequest } from '../errors/domain-error.js'

export type ImportStatus = 'queued' | 'running' | 'completed' | 'failed'

/** An `imports` row as read by the service. */
export interface ImportRecord {
  workspace_id: string
  id: string
  status: ImportStatus
  source_label: string | null
  default_subscription_group_id: string | null
  default_subscription_state: string | null
  columns: string[]
  file_bytes: string | number
  file_sha256: string
  idempotency_key: string | null
  created_by: string
  request_id: string | null
  rows_total: number
  last_seq: number
  rows_processed: number
  rows_applied: number
  rows_rejected: number
  rows_duplicate: number
  attempts: number
  last_error: string | null
  created_at: Date
  started_at: Date | null
  finished_at: Date | null
  staging_purged_at: Date | null
}

const COLUMNS = `workspace_id, id, status, source_label, default_subscription_group_id, default_subscription_state, columns,
                 file_bytes, file_sha256, idempotency_key, created_by, request_id, rows_total, last_seq, rows_processed,
                 rows_applied, rows_rejected, rows_duplicate, attempts, last_error, created_at, started_at, finished_at,
                 staging_purged_at`

export interface NewImport {
  workspaceId: string
  id: string
  sourceLabel: string | null
  defaultGroupId: string | null
  defaultState: string | null
  columns: string[]
  fileBytes: number
  fileSha256: string
  idempotencyKey: string | null
  createdBy: string
  requestId: string | null
  rowsTotal: number
}

export async function insertImport(sql: Sql, n: NewImport): Promise<ImportRecord> {
  const [row] = await sql.query<ImportRecord>(
    `INSERT INTO imports (workspace_id, id, status, source_label, default_subscription_group_id, default_subscription_state, columns,
                          file_bytes, file_sha256, idempotency_key, created_by, request_id, rows_total)
     VALUES ($1, $2, 'queued', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
     RETURNING ${COLUMNS}`,
    [
      n.workspaceId,
      n.id,
      n.sourceLabel,
      n.defaultGroupId,
      n.defaultState,
      n.columns,
      n.fileBytes,
      n.fileSha256,
      n.idempotencyKey,
      n.createdBy,
      n.requestId,
      n.rowsTotal,
    ],
  )
  return row!
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export async function getImport(sql: Sql, workspaceId: string, id: string): Promise<ImportRecord | null> {
  if (!UUID.test(id)) return null
  const [row] = await sql.query<ImportRecord>(`SELECT ${COLUMNS} FROM imports WHERE workspace_id = $1 AND id = $2`, [workspaceId, id.toLowerCase()])
  return row ?? null
}

export async function findByIdempotencyKey(sql: Sql, workspaceId: string, key: string): Promise<ImportRecord | null> {
  const [row] = await sql.query<ImportRecord>(`SELECT ${COLUMNS} FROM imports WHERE workspace_id = $1 AND idempotency_key = $2`, [
    workspaceId,
    key,
  ])
  return row ?? null
}

/** Transaction-scoped lock on (workspace, Idempotency-Key) of uploads; false when another upload holds it. */
export async function tryLockIdempotencyKey(tx: Sql, workspaceId: string, key: string): Promise<boolean> {
  const [r] = await tx.query<{ ok: boolean }>(`SELECT pg_try_advisory_xact_lock(hashtextextended($1, 1)) AS ok`, [`import:${workspaceId}:${key}`])
  return r!.ok
}

export async function findGroup(sql: Sql, workspaceId: string, id: string): Promise<{ archived: boolean } | null> {
  if (!UUID.test(id)) return null
  const [row] = await sql.query<{ archived: boolean }>(
    `SELECT archived_at IS NOT NULL AS archived FROM subscription_groups WHERE workspace_id = $1 AND id = $2`,
    [workspaceId, id.toLowerCase()],
  )
  return row ?? null
}

// --- list ---------------------------------------------------------------------------------------

/** Opaque cursor: base64url of `i1:<id of the last import of the page>`. */
export const encodeImportCursor = (id: string) => Buffer.from(`i1:${id}`, 'utf8').toString('base64url')

function decodeImportCursor(cursor: string): string {
  const m = /^i1:([0-9a-f-]{36})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'))
  if (!m || !UUID.test(m[1]!)) {
    throw badRequest('invalid_cursor', 'cursor is not a next_cursor this API returned', [{ pointer: '/querystring/cursor', message: 'invalid cursor' }])
  }
  return m[1]!
}

/** Newest first, keyset on (created_at, id) through the cursor's own row. */
export async function listImports(
  sql: Sql,
  workspaceId: string,
  f: { limit: number; cursor?: string; status?: ImportStatus },
): Promise<{ imports: ImportRecord[]; next_cursor: string | null }> {
  const params: unknown[] = [workspaceId, f.limit + 1]
  const where: string[] = []
  if (f.cursor !== undefined) {
    params.push(decodeImportCursor(f.cursor))
    where.push(`(i.created_at, i.id) < (SELECT c.created_at, c.id FROM imports c WHERE c.workspace_id = $1 AND c.id = $${params.length})`)
  }
  if (f.status !== undefined) {
    params.push(f.status)
    where.push(`i.status = $${params.length}`)
  }
  const rows = await sql.query<ImportRecord>(
    `SELECT ${COLUMNS.replace(/(\w+)/g, 'i.$1')} FROM imports i
      WHERE i.workspace_id = $1${where.map((w) => ` AND ${w}`).join('')}
      ORDER BY i.created_at DESC, i.id DESC
      LIMIT $2`,
    params,
  )
  const more = rows.length > f.limit
  if (more) rows.length = f.limit
  return { imports: rows, next_cursor: more ? encodeImportCursor(rows[rows.length - 1]!.id) : null }
}

// --- worker -------------------------------------------------------------------------------------

/**
 * The oldest unfinished import nobody else is working on, locked for this transaction (one batch).
 * SKIP LOCKED lets several instances share the queue: each batch of an import runs under its row
 * lock, so two instances never process the same rows at once.
 */
export async function claimNext(tx: Sql, exclude: string[] = []): Promise<ImportRecord | null> {
  const [row] = await tx.query<ImportRecord>(
    `SELECT ${COLUMNS} FROM imports
      WHERE status IN ('queued', 'running') AND NOT (id = ANY($1::uuid[]))
      ORDER BY created_at, id
      LIMIT 1
      FOR UPDATE SKIP LOCKED`,
    [exclude],
  )
  return row ?? null
}

export interface StagedRecord {
  seq: number
  row_number: number
  /** The JSON array text written at upload. */
  fields: string
  /** The row number of an earlier row with the same content, if any. */
  dup_of: number | null
}

/**
 * The next `limit` staged rows after `afterSeq`: a closed range of the primary key, so the plan is
 * a bounded index scan even before the fresh rows have statistics (an open `> $n ORDER BY LIMIT`
 * was planned as a bitmap scan of every remaining row plus a sort: 0.3 s per batch at 1M rows).
 */
export async function fetchRows(tx: Sql, imp: ImportRecord, afterSeq: number, limit: number): Promise<StagedRecord[]> {
  return tx.query<StagedRecord>(
    `SELECT seq, row_number, fields, dup_of FROM import_rows
      WHERE workspace_id = $1 AND import_id = $2 AND seq > $3 AND seq <= $3 + $4
      ORDER BY seq`,
    [imp.workspace_id, imp.id, afterSeq, limit],
  )
}

export interface RowError {
  row: number
  column: string
  code: string
  message: string
}

export async function insertErrors(tx: Sql, imp: ImportRecord, errors: RowError[]): Promise<void> {
  if (errors.length === 0) return
  await tx.query(
    `INSERT INTO import_errors (workspace_id, import_id, row_number, "column", code, message)
     SELECT $1, $2, r, c, k, m FROM unnest($3::int[], $4::text[], $5::text[], $6::text[]) AS x(r, c, k, m)`,
    [imp.workspace_id, imp.id, errors.map((e) => e.row), errors.map((e) => e.column), errors.map((e) => e.code), errors.map((e) => e.message)],
  )
}

/**
 * After staging: every row whose content key appeared earlier in the file gets `dup_of`, the row
 * number of the first occurrence. One set-based statement over the staged rows (in the upload's
 * transaction); only the repeated rows are updated. The update finds its rows by `ctid` (they
 * were written by this very transaction, nobody else can move them): whatever the planner thinks
 * of a table it has no statistics for yet, that is a Tid Scan per row, never a rescan. (Joined on
 * `seq` instead, an unanalysed table got a nested loop over all rows per row: 4 minutes for
 * 20,000 rows.)
 */
export async function markDuplicates(tx: Sql, workspaceId: string, importId: string): Promise<number> {
  // Enough memory to sort a few million (key, seq) pairs without spilling (this transaction only).
  await tx.query(`SET LOCAL work_mem = '64MB'`)
  const r = await tx.query<{ n: number }>(
    `WITH upd AS (
       UPDATE import_rows r SET dup_of = d.first_row
         FROM (SELECT ctid AS tid, first_value(row_number) OVER w AS first_row, row_number() OVER w AS n
                 FROM import_rows WHERE workspace_id = $1 AND import_id = $2
               WINDOW w AS (PARTITION BY key ORDER BY seq)) d
        WHERE r.ctid = d.tid AND d.n > 1
        RETURNING 1)
     SELECT count(*)::int AS n FROM upd`,
    [workspaceId, importId],
  )
  return r[0]?.n ?? 0
}

export interface Progress {
  lastSeq: number
  processed: number
  applied: number
  rejected: number
  duplicate: number
  done: boolean
}

/** Progress of one batch, committed with the batch (so a crash resumes after `last_seq`). */
export async function recordProgress(tx: Sql, imp: ImportRecord, p: Progress): Promise<void> {
  await tx.query(
    `UPDATE imports
        SET status = CASE WHEN $3 THEN 'completed' ELSE 'running' END,
            last_seq = $4,
            rows_processed = rows_processed + $5,
            rows_applied = rows_applied + $6,
            rows_rejected = rows_rejected + $7,
            rows_duplicate = rows_duplicate + $8,
            attempts = 0,
            started_at = COALESCE(started_at, now()),
            finished_at = CASE WHEN $3 THEN clock_timestamp() END,
            updated_at = clock_timestamp()
      WHERE workspace_id = $1 AND id = $2`,
    [imp.workspace_id, imp.id, p.done, p.lastSeq, p.processed, p.applied, p.rejected, p.duplicate],
  )
}

/** A failed batch attempt (outside the failed transaction). Answers the attempt count. */
export async function recordAttemptFailure(sql: Sql, imp: ImportRecord, message: string): Promise<number> {
  const [r] = await sql.query<{ attempts: number }>(
    `UPDATE imports SET attempts = attempts + 1, last_error = $3, updated_at = clock_timestamp()
      WHERE workspace_id = $1 AND id = $2 RETURNING attempts`,
    [imp.workspace_id, imp.id, message.slice(0, 2000)],
  )
  return r?.attempts ?? 0
}

export async function markFailed(sql: Sql, imp: ImportRecord, message: string): Promise<void> {
  await sql.query(
    `UPDATE imports SET status = 'failed', last_error = $3, finished_at = clock_timestamp(), updated_at = clock_timestamp(),
                        started_at = COALESCE(started_at, now())
      WHERE workspace_id = $1 AND id = $2 AND status IN ('queued', 'running')`,
    [imp.workspace_id, imp.id, message.slice(0, 2000)],
  )
}

/** Finished imports whose staging rows are still there (deleted in the background). */
export async function finishedWithStaging(sql: Sql, limit: number): Promise<{ workspace_id: string; id: string }[]> {
  return sql.query(
    `SELECT workspace_id, id FROM imports WHERE status IN ('completed', 'failed') AND staging_purged_at IS NULL ORDER BY finished_at LIMIT $1`,
    [limit],
  )
}

/**
 * Deletes up to `chunk` staging rows of a finished import (the lowest `seq`s, a closed range);
 * answers false once none are left, after marking the import purged. Chunked so a 1 GiB import's
 * staging goes in short transactions that a shutdown does not have to wait for.
 */
export async function purgeStagingChunk(sql: Sql, workspaceId: string, id: string, chunk: number): Promise<boolean> {
  const [first] = await sql.query<{ seq: number | null }>(`SELECT min(seq) AS seq FROM import_rows WHERE workspace_id = $1 AND import_id = $2`, [
    workspaceId,
    id,
  ])
  if (first?.seq === null || first?.seq === undefined) {
    await sql.query(`UPDATE imports SET staging_purged_at = clock_timestamp() WHERE workspace_id = $1 AND id = $2`, [workspaceId, id])
    return false
  }
  await sql.query(`DELETE FROM import_rows WHERE workspace_id = $1 AND import_id = $2 AND seq >= $3 AND seq < $3 + $4`, [workspaceId, id, first.seq, chunk])
  return true
}

// --- error report -------------------------------------------------------------------------------

/**
 * The error lines with row numbers in (afterRow, uptoRow], in row order. A closed range of the
 * primary key, so each page is a bounded index scan (an open `> n ORDER BY LIMIT` could be planned
 * as a scan and sort of every remaining line, per page).
 */
export async function errorRange(sql: Sql, workspaceId: string, id: string, afterRow: number, uptoRow: number): Promise<RowError[]> {
  return sql.query<RowError>(
    `SELECT row_number AS row, "column" AS column, code, message FROM import_errors
      WHERE workspace_id = $1 AND import_id = $2 AND row_number > $3 AND row_number <= $4
      ORDER BY row_number`,
    [workspaceId, id, afterRow, uptoRow],
  )
}

export async function lastErrorRow(sql: Sql, workspaceId: string, id: string): Promise<number> {
  const [r] = await sql.query<{ max: number | null }>(`SELECT max(row_number) AS max FROM import_errors WHERE workspace_id = $1 AND import_id = $2`, [
    workspaceId,
    id,
  ])
  return r?.max ?? 0
}
