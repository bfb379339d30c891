/**
 * The consent_state projection: per (contact, group) the winning event by the ordering rule
 *   latest occurred_at; on equal occurred_at `unsubscribed`; then the later ledger id.
 * The append keeps it current incrementally; `recomputeProjection` rebuilds it from the ledger
 * alone (after a merge, and for verification), counting the events of merged-away contacts for
 * their survivor.
 */
import type { Sql } from '../db/sql.js'

/** SQL ORDER BY that puts the winning event first. */
export const WINNER_ORDER = `e.occurred_at DESC, (e.state = 'unsubscribed') DESC, e.id DESC`

/** The fold of the ledger, as rows (contact_id = the live contact the events count for). */
export const FOLD_SQL = `
  WITH members AS (
    SELECT c.id AS member, COALESCE(c.merged_into, c.id) AS root
      FROM contacts c
     WHERE c.workspace_id = $1 AND ($2::uuid[] IS NULL OR c.id = ANY($2::uuid[]) OR c.merged_into = ANY($2::uuid[]))
  )
  SELECT DISTINCT ON (m.root, e.subscription_group_id)
         m.root AS contact_id, e.subscription_group_id, e.state, e.occurred_at, e.id AS event_seq, e.event_id, e.source
    FROM consent_events e
    JOIN members m ON m.member = e.contact_id
   WHERE e.workspace_id = $1 AND e.type = 'consent'
   ORDER BY m.root, e.subscription_group_id, ${WINNER_ORDER}`

/** Rebuild the projection rows of the given live contacts (null: the whole workspace). */
export async function recomputeProjection(sql: Sql, workspaceId: string, contactIds: string[] | null): Promise<void> {
  await sql.query(
    `WITH fold AS (${FOLD_SQL})
     INSERT INTO consent_state (workspace_id, contact_id, subscription_group_id, state, occurred_at, event_seq, event_id, source, updated_at)
     SELECT $1, contact_id, subscription_group_id, state, occurred_at, event_seq, event_id, source, now() FROM fold
     ON CONFLICT (workspace_id, contact_id, subscription_group_id) DO UPDATE
        SET state = excluded.state, occurred_at = excluded.occurred_at, event_seq = excluded.event_seq,
            event_id = excluded.event_id, source = excluded.source, updated_at = now()`,
    [workspaceId, contactIds],
  )
  // Projection rows of merged-away contacts no longer answer anything.
  await sql.query(
    `DELETE FROM consent_state s USING contacts c
      WHERE s.workspace_id = $1 AND c.workspace_id = $1 AND c.id = s.contact_id AND c.merged_into IS NOT NULL
        AND ($2::uuid[] IS NULL OR c.merged_into = ANY($2::uuid[]))`,
    [workspaceId, contactIds],
  )
}

export interface ProjectionRow {
  contact_id: string
  subscription_group_id: string
  state: string
  occurred_at: Date
  event_seq: string
  event_id: string
}

/** Compare the projection with a fresh fold of the ledger; returns the differences (empty = equal). */
export async function diffProjection(sql: Sql, workspaceId: string): Promise<{ missing: ProjectionRow[]; wrong: ProjectionRow[]; extra: ProjectionRow[] }> {
  const fold = await sql.query<ProjectionRow>(`SELECT contact_id, subscription_group_id, state, occurred_at, event_seq::text AS event_seq, event_id FROM (${FOLD_SQL}) f`, [workspaceId, null])
  const proj = await sql.query<ProjectionRow>(
    `SELECT contact_id, subscription_group_id, state, occurred_at, event_seq::text AS event_seq, event_id FROM consent_state WHERE workspace_id = $1`,
    [workspaceId],
  )
  const k = (r: ProjectionRow) => `${r.contact_id}/${r.subscription_group_id}`
  const p = new Map(proj.map((r) => [k(r), r]))
  const f = new Map(fold.map((r) => [k(r), r]))
  const missing: ProjectionRow[] = []
  const wrong: ProjectionRow[] = []
  const extra: ProjectionRow[] = []
  for (const [key, r] of f) {
    const q = p.get(key)
    if (!q) missing.push(r)
    else if (q.event_seq !== r.event_seq || q.state !== r.state) wrong.push(r)
  }
  for (const [key, r] of p) if (!f.has(key)) extra.push(r)
  return { missing, wrong, extra }
}
