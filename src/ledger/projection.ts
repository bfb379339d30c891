/**
 * The projections of the ledger the pre-send check reads, and their fold from the ledger alone:
 *   consent_state: per (contact, group) the winning event by the ordering rule (ordering.ts);
 *   platform_stops: per (contact, business number) the latest Meta stop/resume signal (an event
 *     with platform_stop set; its number is evidence.phone_number_id): latest occurred_at; on
 *     equal occurred_at a stop beats a resume; then the later ledger id.
 * The events of merged-away contacts count for their survivor. The append keeps both current
 * incrementally; `recomputeProjection` brings rows back to the fold (after a merge, and the repair);
 * `projectionDifferences` compares them (POST /audit/verify). Both tables refuse writes outside a
 * transaction marked with PROJECTION_WRITE (migration 0019, docs/audit.md).
 */
import type { Sql } from '../db/sql.js'
import { WINNER_ORDER } from './ordering.js'

export { WINNER_ORDER }

/** Each contact in scope ($2; null: all) and the live contact its events count for. */
const MEMBERS = `
  members AS (
    SELECT c.id AS member, COALESCE(c.merged_into, c.id) AS root
      FROM contacts c
     WHERE c.workspace_id = $1 AND ($2::uuid[] IS NULL OR c.id = ANY($2::uuid[]) OR c.merged_into = ANY($2::uuid[]))
  )`

/** The fold of the ledger, as rows (contact_id = the live contact the events count for). */
export const FOLD_SQL = `
  WITH ${MEMBERS}
  SELECT DISTINCT ON (m.root, e.subscription_group_id)
         m.root AS contact_id, e.subscription_group_id, e.state, e.occurred_at, e.id AS event_seq, e.event_id, e.source
    FROM consent_events e
    JOIN members m ON m.member = e.contact_id
   WHERE e.workspace_id = $1 AND e.type = 'consent'
   ORDER BY m.root, e.subscription_group_id, ${WINNER_ORDER}`

/** The transaction-local setting that lets a transaction write the projections (migration 0019). */
export const PROJECTION_WRITE = 'consent_ledger.projection_write'

/** Mark the current transaction as one that may write the projections (the repair). */
export async function allowProjectionWrite(sql: Sql): Promise<void> {
  await sql.query(`SELECT set_config('${PROJECTION_WRITE}', 'on', true)`)
}

/** The fold of the platform stops, as rows (contact_id = the live contact the events count for). */
export const STOP_FOLD_SQL = `
  WITH ${MEMBERS}
  SELECT DISTINCT ON (m.root, e.evidence->>'phone_number_id')
         m.root AS contact_id, e.evidence->>'phone_number_id' AS phone_number_id, e.platform_stop = 'stop' AS stopped,
         e.occurred_at, e.event_id
    FROM consent_events e
    JOIN members m ON m.member = e.contact_id
   WHERE e.workspace_id = $1 AND e.type = 'consent' AND e.platform_stop IS NOT NULL AND e.evidence ? 'phone_number_id'
   ORDER BY m.root, e.evidence->>'phone_number_id', e.occurred_at DESC, (e.platform_stop = 'stop') DESC, e.id DESC`

/** Projection rows in scope: of the given live contacts and of the contacts merged into them (null: all). */
const inScope = (col: string) =>
  `($2::uuid[] IS NULL OR ${col} = ANY(ARRAY(SELECT c.id FROM contacts c
                                              WHERE c.workspace_id = $1 AND (c.id = ANY($2::uuid[]) OR c.merged_into = ANY($2::uuid[])))))`

export interface RecomputeCounts {
  consent_state: { written: number; deleted: number }
  platform_stops: { written: number; deleted: number }
}

/**
 * Bring the projection rows of the given live contacts (null: the whole workspace) to the fold of
 * the ledger: rows that differ are written, rows the fold does not have (a merged-away contact's,
 * or any row no event accounts for) are deleted; rows already equal are not touched (so a rebuild
 * under REPEATABLE READ conflicts only with appends to the rows it changes). Must run in a
 * transaction allowed to write the projections (the append's, or allowProjectionWrite).
 */
export async function recomputeProjection(sql: Sql, workspaceId: string, contactIds: string[] | null): Promise<RecomputeCounts> {
  const count = async (text: string) => Number((await sql.query<{ n: number }>(text, [workspaceId, contactIds]))[0]!.n)
  const stateWritten = await count(
    `WITH fold AS (${FOLD_SQL}),
     fix AS (SELECT f.* FROM fold f
               LEFT JOIN consent_state s ON s.workspace_id = $1 AND s.contact_id = f.contact_id AND s.subscription_group_id = f.subscription_group_id
              WHERE s.contact_id IS NULL
                 OR (s.state, s.occurred_at, s.event_seq, s.event_id, s.source) IS DISTINCT FROM (f.state, f.occurred_at, f.event_seq, f.event_id, f.source)),
     w AS (INSERT INTO consent_state (workspace_id, contact_id, subscription_group_id, state, occurred_at, event_seq, event_id, source, updated_at)
           SELECT $1, contact_id, subscription_group_id, state, occurred_at, event_seq, event_id, source, now() FROM fix
           ON CONFLICT (workspace_id, contact_id, subscription_group_id) DO UPDATE
              SET state = excluded.state, occurred_at = excluded.occurred_at, event_seq = excluded.event_seq,
                  event_id = excluded.event_id, source = excluded.source, updated_at = now()
           RETURNING 1)
     SELECT count(*)::int AS n FROM w`,
  )
  const stateDeleted = await count(
    `WITH fold AS (${FOLD_SQL}),
     d AS (DELETE FROM consent_state s
            WHERE s.workspace_id = $1 AND ${inScope('s.contact_id')}
              AND NOT EXISTS (SELECT 1 FROM fold f WHERE f.contact_id = s.contact_id AND f.subscription_group_id = s.subscription_group_id)
           RETURNING 1)
     SELECT count(*)::int AS n FROM d`,
  )
  const stopsWritten = await count(
    `WITH fold AS (${STOP_FOLD_SQL}),
     fix AS (SELECT f.* FROM fold f
               LEFT JOIN platform_stops p ON p.workspace_id = $1 AND p.contact_id = f.contact_id AND p.phone_number_id = f.phone_number_id
              WHERE p.contact_id IS NULL OR (p.stopped, p.occurred_at, p.event_id) IS DISTINCT FROM (f.stopped, f.occurred_at, f.event_id)),
     w AS (INSERT INTO platform_stops (workspace_id, contact_id, phone_number_id, stopped, occurred_at, event_id, updated_at)
           SELECT $1, contact_id, phone_number_id, stopped, occurred_at, event_id, now() FROM fix
           ON CONFLICT (workspace_id, contact_id, phone_number_id) DO UPDATE
              SET stopped = excluded.stopped, occurred_at = excluded.occurred_at, event_id = excluded.event_id, updated_at = now()
           RETURNING 1)
     SELECT count(*)::int AS n FROM w`,
  )
  const stopsDeleted = await count(
    `WITH fold AS (${STOP_FOLD_SQL}),
     d AS (DELETE FROM platform_stops p
            WHERE p.workspace_id = $1 AND ${inScope('p.contact_id')}
              AND NOT EXISTS (SELECT 1 FROM fold f WHERE f.contact_id = p.contact_id AND f.phone_number_id = p.phone_number_id)
           RETURNING 1)
     SELECT count(*)::int AS n FROM d`,
  )
  return { consent_state: { written: stateWritten, deleted: stateDeleted }, platform_stops: { written: stopsWritten, deleted: stopsDeleted } }
}

export type DifferenceKind = 'missing' | 'extra' | 'wrong_winner' | 'wrong_state'

/** One row of a projection that is not what the fold of the ledger says. */
export interface ProjectionDifference {
  table: 'consent_state' | 'platform_stops'
  /**
   * missing: the fold has the row, the table does not; extra: the table has a row no event
   * accounts for (or one of a merged-away contact); wrong_winner: the row names another event
   * than the winner; wrong_state: it names the winner but not its state, time or source.
   */
  kind: DifferenceKind
  contact_id: string
  subscription_group_id: string | null
  phone_number_id: string | null
  expected: Record<string, unknown> | null
  found: Record<string, unknown> | null
}

const iso = (d: Date | string) => new Date(d).toISOString()

/**
 * The differences between the projections and the fold of the ledger, for the whole workspace,
 * in (table, contact, group/number) order: at most `limit` of them, and how many there are. Each
 * table is compared in one statement (one snapshot: a committed append changes both sides at once).
 */
export async function projectionDifferences(sql: Sql, workspaceId: string, limit: number): Promise<{ count: number; differences: ProjectionDifference[] }> {
  const kind = (winner: string) => `CASE WHEN p.contact_id IS NULL THEN 'missing' WHEN f.contact_id IS NULL THEN 'extra'
              WHEN ${winner} THEN 'wrong_winner' ELSE 'wrong_state' END`
  const states = await sql.query<{
    contact_id: string; g: string; kind: DifferenceKind; total: number
    f_state: string | null; f_occurred_at: Date | null; f_event_seq: string | null; f_event_id: string | null; f_source: string | null
    p_state: string | null; p_occurred_at: Date | null; p_event_seq: string | null; p_event_id: string | null; p_source: string | null
  }>(
    `WITH fold AS (${FOLD_SQL}),
     proj AS (SELECT * FROM consent_state s WHERE s.workspace_id = $1)
     SELECT COALESCE(f.contact_id, p.contact_id) AS contact_id, COALESCE(f.subscription_group_id, p.subscription_group_id) AS g,
            ${kind('(f.event_seq, f.event_id) IS DISTINCT FROM (p.event_seq, p.event_id)')} AS kind,
            f.state AS f_state, f.occurred_at AS f_occurred_at, f.event_seq::text AS f_event_seq, f.event_id AS f_event_id, f.source AS f_source,
            p.state AS p_state, p.occurred_at AS p_occurred_at, p.event_seq::text AS p_event_seq, p.event_id AS p_event_id, p.source AS p_source,
            count(*) OVER ()::int AS total
       FROM fold f FULL JOIN proj p ON p.contact_id = f.contact_id AND p.subscription_group_id = f.subscription_group_id
      WHERE p.contact_id IS NULL OR f.contact_id IS NULL
         OR (f.state, f.occurred_at, f.event_seq, f.event_id, f.source) IS DISTINCT FROM (p.state, p.occurred_at, p.event_seq, p.event_id, p.source)
      ORDER BY 1, 2 LIMIT $3`,
    [workspaceId, null, limit],
  )
  const stops = await sql.query<{
    contact_id: string; n: string; kind: DifferenceKind; total: number
    f_stopped: boolean | null; f_occurred_at: Date | null; f_event_id: string | null
    p_stopped: boolean | null; p_occurred_at: Date | null; p_event_id: string | null
  }>(
    `WITH fold AS (${STOP_FOLD_SQL}),
     proj AS (SELECT * FROM platform_stops p WHERE p.workspace_id = $1)
     SELECT COALESCE(f.contact_id, p.contact_id) AS contact_id, COALESCE(f.phone_number_id, p.phone_number_id) AS n,
            ${kind('f.event_id IS DISTINCT FROM p.event_id')} AS kind,
            f.stopped AS f_stopped, f.occurred_at AS f_occurred_at, f.event_id AS f_event_id,
            p.stopped AS p_stopped, p.occurred_at AS p_occurred_at, p.event_id AS p_event_id,
            count(*) OVER ()::int AS total
       FROM fold f FULL JOIN proj p ON p.contact_id = f.contact_id AND p.phone_number_id = f.phone_number_id
      WHERE p.contact_id IS NULL OR f.contact_id IS NULL
         OR (f.stopped, f.occurred_at, f.event_id) IS DISTINCT FROM (p.stopped, p.occurred_at, p.event_id)
      ORDER BY 1, 2 LIMIT $3`,
    [workspaceId, null, limit],
  )
  const differences: ProjectionDifference[] = [
    ...states.map((r): ProjectionDifference => ({
      table: 'consent_state',
      kind: r.kind,
      contact_id: r.contact_id,
      subscription_group_id: r.g,
      phone_number_id: null,
      expected: r.f_event_id === null ? null : { state: r.f_state, occurred_at: iso(r.f_occurred_at!), event_seq: r.f_event_seq, event_id: r.f_event_id, source: r.f_source },
      found: r.p_event_id === null ? null : { state: r.p_state, occurred_at: iso(r.p_occurred_at!), event_seq: r.p_event_seq, event_id: r.p_event_id, source: r.p_source },
    })),
    ...stops.map((r): ProjectionDifference => ({
      table: 'platform_stops',
      kind: r.kind,
      contact_id: r.contact_id,
      subscription_group_id: null,
      phone_number_id: r.n,
      expected: r.f_event_id === null ? null : { stopped: r.f_stopped, occurred_at: iso(r.f_occurred_at!), event_id: r.f_event_id },
      found: r.p_event_id === null ? null : { stopped: r.p_stopped, occurred_at: iso(r.p_occurred_at!), event_id: r.p_event_id },
    })),
  ]
  return { count: (states[0]?.total ?? 0) + (stops[0]?.total ?? 0), differences: differences.slice(0, limit) }
}

/**
 * The repair: bring the workspace's projections back to the fold of the ledger, in one REPEATABLE
 * READ transaction (the differences reported and the rows changed come from one snapshot). It
 * takes no lock: an append that changes a row the rebuild also changes makes one of the two fail
 * with a serialization error, and the rebuild is then retried from a new snapshot (up to 5 times).
 */
export async function rebuildProjection(
  sql: Sql,
  workspaceId: string,
  limit: number,
): Promise<{ count: number; differences: ProjectionDifference[]; changed: RecomputeCounts }> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await sql.tx(async (tx) => {
        await tx.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ')
        await allowProjectionWrite(tx)
        const before = await projectionDifferences(tx, workspaceId, limit)
        const changed = await recomputeProjection(tx, workspaceId, null)
        return { ...before, changed }
      })
    } catch (err) {
      if ((err as { code?: string }).code !== '40001' || attempt >= 5) throw err
    }
  }
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
