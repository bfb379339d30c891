/**
 * Inserts into the webhook inbox (`webhook_inbox`, see inbox-repository.ts): the raw payload,
 * committed before Meta gets its 200. Payloads that arrive while earlier inserts run share one
 * statement (group commit, src/db/group-commit.ts; why: docs/performance.md).
 */
import type { Sql } from '../db/sql.js'
import type { Settled } from '../db/group-commit.js'
import type { InboxStatus } from './inbox-repository.js'

export interface NewRow {
  raw: string
  sha256: string
  phoneNumberIds: string[]
  status: InboxStatus
  lastError: string | null
  /** The workspace whose own webhook URL received it; null: the operator's URL. */
  workspaceId: string | null
}

/** An insert's answer: the row's id and status, and whether the body was already stored (a replay). */
export interface Stored {
  id: string
  status: InboxStatus
  duplicate: boolean
}

/**
 * A replayed body (same bytes, same tenancy) is not stored again: the unique index
 * webhook_inbox_body_key (migration 0016) makes the INSERT do nothing, and the caller gets the row
 * stored first.
 */
const insertOne = (sql: Sql, r: NewRow) =>
  sql.query<{ id: string; status: InboxStatus }>(
    `INSERT INTO webhook_inbox (raw_body, body_sha256, phone_number_ids, status, last_error, workspace_id) VALUES ($1, $2, $3::text[], $4, $5, $6)
     ON CONFLICT DO NOTHING RETURNING id::text AS id, status`,
    [r.raw, r.sha256, r.phoneNumberIds, r.status, r.lastError, r.workspaceId],
  )

/**
 * The rows already stored for replayed bodies. Read in a statement of its own, after the INSERT:
 * the INSERT's snapshot may predate the row it conflicted with (committed meanwhile by another
 * request, or earlier in the same grouped statement).
 */
async function storedFirst(sql: Sql, rows: NewRow[]): Promise<Map<string, { id: string; status: InboxStatus }>> {
  const found = await sql.query<{ id: string; status: InboxStatus; sha: string; ws: string | null }>(
    `SELECT i.id::text AS id, i.status, i.body_sha256 AS sha, i.workspace_id::text AS ws FROM webhook_inbox i
      WHERE i.body_sha256 = ANY($1::text[]) AND i.legacy_duplicate_of IS NULL`,
    [rows.map((r) => r.sha256)],
  )
  return new Map(found.map((f) => [`${f.ws ?? ''}|${f.sha}`, { id: f.id, status: f.status }]))
}

const keyOf = (r: NewRow) => `${r.workspaceId ?? ''}|${r.sha256}`

/** Fills in the replays of `rows` (null in `answers`) with the rows stored first. */
async function resolveReplays(sql: Sql, rows: NewRow[], answers: ({ id: string; status: InboxStatus } | null)[]): Promise<Settled<Stored>[]> {
  const replays = rows.filter((_, i) => answers[i] === null)
  const first = replays.length > 0 ? await storedFirst(sql, replays) : new Map()
  return answers.map((a, i): Settled<Stored> => {
    if (a) return { ok: true, value: { ...a, duplicate: false } }
    const f = first.get(keyOf(rows[i]!))
    return f ? { ok: true, value: { ...f, duplicate: true } } : { ok: false, error: new Error('webhook inbox: a replayed body has no stored row') }
  })
}

/**
 * Several payloads in ONE autocommit INSERT: one round trip and one commit (one WAL flush) for
 * payloads that arrived while the previous inserts were running. Ids are drawn in arrival order.
 * If the statement fails, each payload is inserted alone, so one cannot fail another.
 */
export async function insertMany(sql: Sql, rows: NewRow[]): Promise<Settled<Stored>[]> {
  if (rows.length > 1) {
    let answers: ({ id: string; status: InboxStatus } | null)[] | null = null
    try {
      const out = await sql.query<{ id: string | null; status: InboxStatus | null }>(
        `WITH x AS (SELECT nextval('webhook_inbox_id_seq') AS id, u.*
                      FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::uuid[]) WITH ORDINALITY AS u(raw, sha, numbers, status, err, ws, ord)),
              ins AS (INSERT INTO webhook_inbox (id, raw_body, body_sha256, phone_number_ids, status, last_error, workspace_id) OVERRIDING SYSTEM VALUE
                      SELECT x.id, x.raw, x.sha, ARRAY(SELECT json_array_elements_text(x.numbers::json)), x.status, x.err, x.ws FROM x
                      ON CONFLICT DO NOTHING RETURNING id, status)
         SELECT ins.id::text AS id, ins.status FROM x LEFT JOIN ins ON ins.id = x.id ORDER BY x.ord`,
        [
          rows.map((r) => r.raw),
          rows.map((r) => r.sha256),
          rows.map((r) => JSON.stringify(r.phoneNumberIds)),
          rows.map((r) => r.status),
          rows.map((r) => r.lastError),
          rows.map((r) => r.workspaceId),
        ],
        'inbox-insert-many',
      )
      answers = out.map((r) => (r.id === null ? null : { id: r.id, status: r.status! }))
    } catch {
      // each alone, below
    }
    if (answers) return resolveReplays(sql, rows, answers)
  }
  const out: Settled<Stored>[] = []
  for (const r of rows) {
    try {
      const [row] = await insertOne(sql, r)
      out.push(...(await resolveReplays(sql, [r], [row ?? null])))
    } catch (error) {
      out.push({ ok: false, error })
    }
  }
  return out
}
