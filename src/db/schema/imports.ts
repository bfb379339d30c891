/**
 * Bulk CSV imports: the import, its staged rows and its refused rows (docs/import.md).
 */
import { sql } from 'drizzle-orm'
import { bigint, index, integer, pgTable, primaryKey, text, uniqueIndex, uuid } from 'drizzle-orm/pg-core'
import { ts } from './columns.js'
import { workspaces } from './workspaces.js'

/**
 * Bulk CSV imports (docs/import.md). One row per uploaded file; the worker (src/import/worker.ts)
 * commits its progress here in the same transaction as each batch of ledger events, so a crash
 * resumes after `last_seq`. Counters: rows_applied + rows_rejected + rows_duplicate = rows processed.
 */
export const imports = pgTable(
  'imports',
  {
    workspaceId: uuid('workspace_id')
      .notNull()
      .references(() => workspaces.id),
    id: uuid('id').notNull(),
    /** queued | running | completed | failed */
    status: text('status').notNull().default('queued'),
    /** Free text from `?source_label=`, copied into every event's evidence. */
    sourceLabel: text('source_label'),
    /** Default group for rows whose subscription_group_id cell is empty. */
    defaultSubscriptionGroupId: uuid('default_subscription_group_id'),
    /** Default state for rows whose subscription_state cell is empty. */
    defaultSubscriptionState: text('default_subscription_state'),
    /** The header row as written in the file. */
    columns: text('columns').array().notNull(),
    /** Size and sha256 hex of the uploaded bytes (an Idempotency-Key replay must send the same file). */
    fileBytes: bigint('file_bytes', { mode: 'number' }).notNull(),
    fileSha256: text('file_sha256').notNull(),
    /** Idempotency-Key of the upload; kept for the life of the import (a re-post never imports twice). */
    idempotencyKey: text('idempotency_key'),
    /** Who uploaded: `key:<api key id>`; and the upload's request id. */
    createdBy: text('created_by').notNull(),
    requestId: text('request_id'),
    /** Data rows in the file (the header and blank lines excluded). */
    rowsTotal: integer('rows_total').notNull(),
    /** Staged rows processed, in `import_rows.seq` order: the resume point after a crash. */
    lastSeq: integer('last_seq').notNull().default(0),
    rowsProcessed: integer('rows_processed').notNull().default(0),
    rowsApplied: integer('rows_applied').notNull().default(0),
    rowsRejected: integer('rows_rejected').notNull().default(0),
    rowsDuplicate: integer('rows_duplicate').notNull().default(0),
    /** Failed batch attempts since the last progress (the worker shrinks the batch on repeated failure). */
    attempts: integer('attempts').notNull().default(0),
    /** Why the import failed (status failed) or the last batch error. */
    lastError: text('last_error'),
    createdAt: ts('created_at').notNull().defaultNow(),
    startedAt: ts('started_at'),
    finishedAt: ts('finished_at'),
    updatedAt: ts('updated_at').notNull().defaultNow(),
    /** When the staging rows were deleted (after the import finished). */
    stagingPurgedAt: ts('staging_purged_at'),
  },
  (t) => [
    primaryKey({ columns: [t.workspaceId, t.id] }),
    uniqueIndex('imports_idempotency_key').on(t.workspaceId, t.idempotencyKey),
    index('imports_list_idx').on(t.workspaceId, t.createdAt, t.id),
    // The worker's queue: only unfinished imports are indexed.
    index('imports_pending_idx').on(t.createdAt).where(sql`status IN ('queued', 'running')`),
  ],
)

/**
 * Staging: the parsed rows of an uploaded file, written by COPY before the 202 and read by the
 * worker in row order. Deleted once the import has finished. No foreign key (COPY speed); rows
 * are only ever written in the same transaction as their `imports` row.
 */
export const importRows = pgTable(
  'import_rows',
  {
    workspaceId: uuid('workspace_id').notNull(),
    importId: uuid('import_id').notNull(),
    /**
     * 1, 2, 3... in file order, without gaps: batches are ranges of it (`seq BETWEEN a AND b`), a
     * plan that stays an index range scan whatever the planner knows of a freshly COPYed table.
     */
    seq: integer('seq').notNull(),
    /** Spreadsheet row number (the header is row 1; blank lines are not staged but counted). */
    rowNumber: integer('row_number').notNull(),
    /**
     * The record's fields in file order (matched to the header through `imports.columns`), as a
     * JSON array of strings: cheaper than text[] to write by COPY and to read back.
     */
    fields: text('fields').notNull(),
    /** md5 of the row's normalised content (identities, group, state, occurred_at), as a uuid. */
    key: uuid('key').notNull(),
    /** Set at upload when the same content appeared earlier in the file: that row's number. */
    dupOf: integer('dup_of'),
  },
  (t) => [primaryKey({ columns: [t.workspaceId, t.importId, t.seq] })],
)

/** Refused rows of an import: the `GET /imports/{id}/errors` report. */
export const importErrors = pgTable(
  'import_errors',
  {
    workspaceId: uuid('workspace_id').notNull(),
    importId: uuid('import_id').notNull(),
    rowNumber: integer('row_number').notNull(),
    /** The CSV column at fault (header name), or '' when the row as a whole is refused. */
    column: text('column').notNull(),
    code: text('code').notNull(),
    message: text('message').notNull(),
  },
  (t) => [primaryKey({ columns: [t.workspaceId, t.importId, t.rowNumber] })],
)
