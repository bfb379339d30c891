/**
 * The webhook inbox (`webhook_inbox`): every authentic payload, committed raw before
 * Meta gets its 200. Every statement on the table lives here (the INSERTs in inbox-insert.ts).
 *
 * Status of a row:
 *   pending    committed, not processed yet (a crash between commit and processing leaves this;
 *              the startup / periodic sweep picks it up)
 *   processed  every signal applied (or a duplicate, or nothing to record)
 *   unmapped   some `phone_number_id` it names is not mapped to a workspace yet; the mapped parts
 *              are applied, the row is reprocessed when the number is mapped
 *   deferred   a START/UNSTOP or a Meta `resume` found no opt-out to restore yet; re-evaluated
 *              when an opt-out for the same number arrives (out-of-order delivery), for 7 days
 *   failed     processing threw, the JSON is malformed, or the ledger rejected an item (e.g. an
 *              invalid phone); kept, listed, replayable
 *
 * Visibility (no cross-workspace leak; tenancy in docs/webhook.md). A row that came
 * through a workspace's own webhook URL (`workspace_id`, signed with that workspace's own app
 * secret) is that workspace's alone, whole. A row that came through the operator's URL has no
 * workspace of its own: a caller sees it when it names a number the operator mapped to the
 * caller's workspace, and then only the changes of its own numbers (a workspace's own claims do
 * not count: they never receive the operator's payloads). Operator payloads naming a number the
 * operator mapped NOWHERE (and those without any number, e.g. malformed JSON) belong to no tenant
 * yet: only the root key (the operator) sees those. For other callers `unmapped` reads as
 * `processed`: their part of the row is done, and whether some other number is mapped is none of
 * their business.
 */
import type { Sql } from '../db/sql.js'
import { createGroupCommit } from '../db/group-commit.js'
import { insertMany, type NewRow, type Stored } from './inbox-insert.js'

export const INBOX_STATUSES = ['pending', 'processed', 'unmapped', 'deferred', 'failed'] as const
export type InboxStatus = (typeof INBOX_STATUSES)[number]
/** Listed by default: everything that still needs attention. */
export const KEPT_STATUSES: InboxStatus[] = ['pending', 'unmapped', 'deferred', 'failed']
/** How long a deferred restore waits for an older opt-out (Meta redelivers for up to 7 days). */
export const DEFER_DAYS = 7

export interface InboxRow {
  id: string
  received_at: Date
  raw_body: string
  body_sha256: string
  status: InboxStatus
  phone_number_ids: string[]
  attempts: number
  last_error: string | null
  processed_at: Date | null
  /** The workspace whose own webhook URL received it; null: the operator's URL. */
  workspace_id: string | null
}

/** Routing of a row's numbers, read with its lock (see lockForProcessing). */
export interface Routing {
  /** phone_number_id → workspace id, for the mapped numbers. */
  numbers: Record<string, string>
  workspaces: { id: string; keywords: unknown; groups: { id: string; category: string; phone_number_id: string | null }[] }[]
}

export interface Viewer {
  workspaceId: string
  isRoot: boolean
}

const COLUMNS = `i.id::text AS id, i.received_at, i.raw_body, i.body_sha256, i.status, i.phone_number_ids, i.attempts, i.last_error, i.processed_at, i.workspace_id::text AS workspace_id`

/**
 * What processing a row needs: its numbers' workspaces, keyword settings and active WhatsApp
 * groups, by the URL it came through (migrations 0010, 0017).
 */
const ROUTING = `webhook_routing(i.phone_number_ids, i.workspace_id)`

/** A mapping `w` that receives row `i`'s payloads (see the header). */
const ROUTES_ROW = `(CASE WHEN i.workspace_id IS NULL THEN w.mapped_by = 'operator' ELSE w.workspace_id = i.workspace_id END)`

/** $1 = workspace id, $2 = is root. True when the viewer may see row `i`. */
const VISIBLE = `(
  CASE WHEN i.workspace_id IS NOT NULL THEN i.workspace_id = $1 ELSE (
  i.phone_number_ids && ARRAY(SELECT w.phone_number_id FROM whatsapp_numbers w WHERE w.workspace_id = $1 AND w.mapped_by = 'operator')
  OR ($2::bool AND (cardinality(i.phone_number_ids) = 0 OR EXISTS (
        SELECT 1 FROM unnest(i.phone_number_ids) AS n(id)
         WHERE NOT EXISTS (SELECT 1 FROM whatsapp_numbers w WHERE w.phone_number_id = n.id AND w.mapped_by = 'operator'))))) END)`

/** The status as the viewer sees it (see the header). */
const EFFECTIVE_STATUS = `CASE WHEN i.status = 'unmapped' AND NOT $2::bool AND i.workspace_id IS NULL THEN 'processed' ELSE i.status END`

/**
 * Locks one row for processing (inside `tx`; with skipLocked, null when another worker holds
 * it) and reads, in the same statement, what routing it needs: the workspaces of the numbers it
 * names, with their keyword settings and active WhatsApp groups (one round trip).
 */
async function lockForProcessing(tx: Sql, id: string, skipLocked: boolean): Promise<(InboxRow & { routing: Routing }) | null> {
  // A function call (migration 0010): the first statement of the processing transaction
  // travels with its BEGIN (src/db/sql.ts).
  const [row] = await tx.query<InboxRow & { routing: Routing }>(`SELECT * FROM webhook_lock_for_processing($1::bigint, $2::boolean)`, [id, skipLocked])
  return row ?? null
}

/**
 * Locks several `pending` rows at once (SKIP LOCKED: rows another worker holds, or that were
 * processed meanwhile, are left out), with the same routing as lockForProcessing, in id order.
 */
async function lockPendingForProcessing(tx: Sql, ids: string[]): Promise<(InboxRow & { routing: Routing })[]> {
  return tx.query<InboxRow & { routing: Routing }>(
    `SELECT ${COLUMNS}, ${ROUTING} AS routing
       FROM webhook_inbox i WHERE i.id = ANY($1::bigint[]) AND i.status = 'pending'
      ORDER BY i.id FOR UPDATE OF i SKIP LOCKED`,
    [ids],
  )
}

/**
 * Records the outcomes of several rows (inside `tx`), and answers which of `optOutNumbers` have
 * deferred rows (outside this batch) waiting for an opt-out: one statement for the batch.
 */
async function finishMany(
  tx: Sql,
  outcomes: { id: string; status: InboxStatus; lastError: string | null }[],
  optOutNumbers: string[],
): Promise<Set<string>> {
  const [row] = await tx.query<{ waiting: string[] | null }>(
    `WITH done AS (
       UPDATE webhook_inbox w SET status = x.status, last_error = x.err, attempts = attempts + 1, processed_at = now(), updated_at = now()
         FROM unnest($1::bigint[], $2::text[], $3::text[]) AS x(id, status, err)
        WHERE w.id = x.id RETURNING w.id)
     SELECT ARRAY(SELECT DISTINCT n FROM unnest($4::text[]) AS n
                   WHERE (SELECT count(*) FROM done) > 0 AND EXISTS (
                     SELECT 1 FROM webhook_inbox d
                      WHERE d.status = 'deferred' AND n = ANY(d.phone_number_ids) AND d.id <> ALL($1::bigint[])
                        AND d.received_at > now() - make_interval(days => $5))) AS waiting`,
    [outcomes.map((o) => o.id), outcomes.map((o) => o.status), outcomes.map((o) => o.lastError), optOutNumbers, DEFER_DAYS],
  )
  return new Set(row?.waiting ?? [])
}

/**
 * Records the outcome (inside `tx`). With `optOutNumbers`, also answers whether deferred rows
 * naming one of them exist (in the same statement), so the common case costs no extra query.
 */
async function finish(tx: Sql, id: string, status: InboxStatus, lastError: string | null, optOutNumbers: string[] = []): Promise<{ deferredWaiting: boolean }> {
  const [row] = await tx.query<{ deferred_waiting: boolean }>(
    `WITH done AS (
       UPDATE webhook_inbox SET status = $2, last_error = $3, attempts = attempts + 1, processed_at = now(), updated_at = now() WHERE id = $1 RETURNING id)
     SELECT (SELECT count(*) FROM done) > 0 AND cardinality($4::text[]) > 0 AND EXISTS (
              SELECT 1 FROM webhook_inbox d
               WHERE d.status = 'deferred' AND d.phone_number_ids && $4::text[] AND d.id <> $1
                 AND d.received_at > now() - make_interval(days => $5)) AS deferred_waiting`,
    [id, status, lastError, optOutNumbers, DEFER_DAYS],
  )
  return { deferredWaiting: !!row?.deferred_waiting }
}

async function fail(sql: Sql, id: string, lastError: string): Promise<void> {
  await sql.query(`UPDATE webhook_inbox SET status = 'failed', last_error = $2, attempts = attempts + 1, updated_at = now() WHERE id = $1`, [id, lastError])
}

/** Pending rows untouched for `staleMs` (0 at startup: whatever a crash left). */
async function pendingIds(sql: Sql, staleMs: number, limit: number): Promise<string[]> {
  const rows = await sql.query<{ id: string }>(
    `SELECT id::text AS id FROM webhook_inbox WHERE status = 'pending' AND updated_at <= now() - make_interval(secs => $1::float8 / 1000)
      ORDER BY id LIMIT $2`,
    [staleMs, limit],
  )
  return rows.map((r) => r.id)
}

/** Unmapped rows naming `phoneNumberId` (null: rows whose numbers are all mapped by now). */
async function unmappedIds(sql: Sql, phoneNumberId: string | null, limit: number): Promise<string[]> {
  const rows =
    phoneNumberId !== null
      ? await sql.query<{ id: string }>(
          `SELECT id::text AS id FROM webhook_inbox WHERE status = 'unmapped' AND $1 = ANY(phone_number_ids) ORDER BY id LIMIT $2`,
          [phoneNumberId, limit],
        )
      : await sql.query<{ id: string }>(
          `SELECT i.id::text AS id FROM webhook_inbox i
            WHERE i.status = 'unmapped'
              AND NOT EXISTS (SELECT 1 FROM unnest(i.phone_number_ids) AS n(id)
                               WHERE NOT EXISTS (SELECT 1 FROM whatsapp_numbers w WHERE w.phone_number_id = n.id AND ${ROUTES_ROW}))
            ORDER BY i.id LIMIT $1`,
          [limit],
        )
  return rows.map((r) => r.id)
}

/** Deferred rows (younger than DEFER_DAYS) naming one of `numbers`. */
async function deferredIds(sql: Sql, numbers: string[], exceptId: string, limit: number): Promise<string[]> {
  const rows = await sql.query<{ id: string }>(
    `SELECT id::text AS id FROM webhook_inbox
      WHERE status = 'deferred' AND phone_number_ids && $1::text[] AND id <> $2::bigint
        AND received_at > now() - make_interval(days => $3)
      ORDER BY id LIMIT $4`,
    [numbers, exceptId, DEFER_DAYS, limit],
  )
  return rows.map((r) => r.id)
}

/** Deferred rows older than DEFER_DAYS: nothing will come to restore any more. */
async function expireDeferred(sql: Sql): Promise<number> {
  const rows = await sql.query(
    `UPDATE webhook_inbox SET status = 'processed', last_error = NULL, updated_at = now()
      WHERE status = 'deferred' AND received_at <= now() - make_interval(days => $1) RETURNING id`,
    [DEFER_DAYS],
  )
  return rows.length
}

async function getVisible(sql: Sql, viewer: Viewer, id: string): Promise<InboxRow | null> {
  if (!/^\d{1,18}$/.test(id)) return null
  const [row] = await sql.query<InboxRow>(
    `SELECT ${COLUMNS.replace('i.status,', `${EFFECTIVE_STATUS} AS status,`)} FROM webhook_inbox i WHERE i.id = $3::bigint AND ${VISIBLE}`,
    [viewer.workspaceId, viewer.isRoot, id],
  )
  return row ?? null
}

/** Newest first, keyset pagination on id. `statuses` filters on the status the viewer sees. */
async function listVisible(sql: Sql, viewer: Viewer, opts: { statuses: InboxStatus[]; before?: string; limit: number }): Promise<InboxRow[]> {
  return sql.query<InboxRow>(
    `SELECT ${COLUMNS.replace('i.status,', `${EFFECTIVE_STATUS} AS status,`)} FROM webhook_inbox i
      WHERE ${VISIBLE}
        AND ${EFFECTIVE_STATUS} = ANY($3::text[])
        AND ($4::bigint IS NULL OR i.id < $4::bigint)
      ORDER BY i.id DESC LIMIT $5`,
    [viewer.workspaceId, viewer.isRoot, opts.statuses, opts.before ?? null, opts.limit],
  )
}

/**
 * The numbers a viewer may see in a row: all of a row that came through its own URL; of an
 * operator row, the numbers the operator mapped to it and (root) those mapped nowhere.
 */
async function visibleNumbers(sql: Sql, viewer: Viewer, numbers: string[], row: Pick<InboxRow, 'workspace_id'>): Promise<Set<string>> {
  if (numbers.length === 0) return new Set()
  if (row.workspace_id !== null) return new Set(row.workspace_id === viewer.workspaceId ? numbers : [])
  const rows = await sql.query<{ id: string }>(
    `SELECT n.id FROM unnest($3::text[]) AS n(id)
       LEFT JOIN whatsapp_numbers w ON w.phone_number_id = n.id AND w.mapped_by = 'operator'
      WHERE w.workspace_id = $1 OR (w.workspace_id IS NULL AND $2::bool)`,
    [viewer.workspaceId, viewer.isRoot, numbers],
  )
  return new Set(rows.map((r) => r.id))
}

export interface InboxOptions {
  /** Group commit of inserts (src/db/group-commit.ts): statements at once; 0: one statement per payload. */
  groupConcurrency?: number
  /** Payloads per grouped INSERT at most. */
  groupMax?: number
}

export function createInboxRepository(sql: Sql, opts: InboxOptions = {}) {
  const inserts = createGroupCommit<NewRow, Stored>({
    concurrency: opts.groupConcurrency ?? 0,
    maxSize: opts.groupMax ?? 100,
    run: (rows) => insertMany(sql, rows),
  })
  /** A statement below, on the repository's own connection pool. */
  const on =
    <A extends unknown[], R>(statement: (sql: Sql, ...args: A) => R) =>
    (...args: A) =>
      statement(sql, ...args)
  return {
    /**
     * Commits the raw payload (autocommit; grouped with payloads arriving meanwhile, see
     * insertMany) and answers its row once committed; a body already stored for the same tenancy
     * answers that row (`duplicate`), and nothing is stored again.
     */
    insert(
      raw: string,
      sha256: string,
      phoneNumberIds: string[],
      status: InboxStatus = 'pending',
      lastError: string | null = null,
      workspaceId: string | null = null,
    ): Promise<Stored> {
      return inserts.submit({ raw, sha256, phoneNumberIds, status, lastError, workspaceId })
    },

    /** Resolves once every insert submitted so far is answered (shutdown). */
    idle: () => inserts.idle(),

    /** Grouped INSERTs run so far (tests). */
    get insertStatements() {
      return inserts.batches
    },

    lockForProcessing,
    lockPendingForProcessing,
    finishMany,
    finish,
    fail: on(fail),
    pendingIds: on(pendingIds),
    unmappedIds: on(unmappedIds),
    deferredIds: on(deferredIds),
    expireDeferred: on(expireDeferred),
    getVisible: on(getVisible),
    listVisible: on(listVisible),
    visibleNumbers: on(visibleNumbers),
  }
}

export type { Stored } from './inbox-insert.js'
export type InboxRepository = ReturnType<typeof createInboxRepository>
