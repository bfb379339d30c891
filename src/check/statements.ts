/**
 * The two statements that answer a check from the projection (identities ⋈ consent_state, plus the
 * platform stops), never the ledger and never a query per identifier. Both are PL/pgSQL functions
 * (migration 0015) whose every read is a key probe (sequential scans off, LATERAL subqueries): as
 * plain prepared statements they kept a plan made while a table was small (platform_stops analyzed
 * empty: a full scan per checked contact) for the life of the connection.
 */
import type { Sql } from '../db/sql.js'
import { normalizeIdentity } from '../contacts/identity.js'
import { decide, needsStops, type CheckResult, type CheckTarget, type GroupRow, type Identifier, type StateRow } from './decide.js'

const E164 = /^\+[1-9]\d{6,14}$/

/** Identifiers per statement of a batch check, and how many statements one batch runs at once. */
const BATCH_CHUNK = 2_500
const MAX_CHUNKS = 4

type Row = StateRow & { ord: number; stop: string | null }

/** Normalised form of an identifier; E.164 input (the common case) skips the phone parser. */
const normalize = (i: Identifier) => (i.type === 'phone' && E164.test(i.value) ? i.value : normalizeIdentity(i.type, i.value))

/**
 * One identifier (GET, the pre-send hot path): consent_check_one, a plain two-index lookup with its
 * stops in a subquery (one contact, one probe: cheaper than the batch form), and only the columns
 * the answer needs. occurred_at comes formatted as Date#toISOString() would (ms precision, as
 * stored), so no Date object is made.
 */
export async function checkOne(sql: Sql, workspaceId: string, groups: GroupRow[], target: CheckTarget, ident: Identifier): Promise<CheckResult> {
  const value = normalize(ident)
  const rows = await sql.query<StateRow & { stopped: string[] | null }>(
    `SELECT * FROM consent_check_one($1, $2, $3, $4::uuid[], $5)`,
    [workspaceId, ident.type, value ?? '', groups.map((g) => g.id), needsStops(groups)],
    'consent-check-single',
  )
  // One row per state of a checked group (one with g NULL when the contact has none); none when
  // the identifier has no contact.
  const first = rows[0]
  return decide(ident, value !== null, groups, target, first?.g === null ? undefined : rows, first?.stopped ?? undefined)
}

/**
 * consent_check_many: one row per (identifier, state of a checked group); identifiers without a
 * contact are absent. Flat rows rather than json_agg, which is several times dearer to build. The
 * identifiers' contacts are found once (MATERIALIZED) and the platform stops come as rows of their
 * own appended after the states, not as an array aggregated per identifier in the select list,
 * which would cost as much as the rest of a large check (docs/performance.md).
 *
 * A batch is cut into chunks of BATCH_CHUNK identifiers queried at once on separate pooled
 * connections: PostgreSQL runs them on as many cores, and this process handles the rows of one
 * chunk while the others execute. Each identifier is answered from one statement's snapshot, as
 * every check is; a batch promises no snapshot across identifiers (a consent recorded mid-request
 * may show for some and not others).
 */
async function queryChunks(sql: Sql, workspaceId: string, groups: GroupRow[], types: string[], values: string[]): Promise<Row[]> {
  const needStops = needsStops(groups)
  const groupIds = groups.map((g) => g.id)
  const chunks = Math.min(MAX_CHUNKS, Math.ceil(values.length / BATCH_CHUNK))
  const size = Math.ceil(values.length / chunks)
  const parts = await Promise.all(
    Array.from({ length: chunks }, async (_, c) => {
      const off = c * size
      const part = await sql.query<Row>(
        `SELECT * FROM consent_check_many($1, $2::text[], $3::text[], $4::uuid[], $5)`,
        [workspaceId, types.slice(off, off + size), values.slice(off, off + size), groupIds, needStops],
        'consent-check',
      )
      if (off > 0) for (const r of part) r.ord = Number(r.ord) + off
      return part
    }),
  )
  return parts.length === 1 ? parts[0]! : parts.flat()
}

/** Many identifiers (a batch, or single checks sharing a statement), answered in input order. */
export async function checkMany(sql: Sql, workspaceId: string, groups: GroupRow[], target: CheckTarget, identifiers: Identifier[]): Promise<CheckResult[]> {
  const normalized = identifiers.map(normalize)
  const types: string[] = []
  const values: string[] = []
  normalized.forEach((v, k) => {
    types.push(identifiers[k]!.type)
    values.push(v ?? '')
  })
  const rows = await queryChunks(sql, workspaceId, groups, types, values)
  // Per identifier (array index = input position): its state rows and its stopped numbers.
  // Plain arrays and the driver's own row objects: a 10,000-identifier answer is GC-bound.
  const statesOf: (Row[] | undefined)[] = new Array(identifiers.length)
  const stoppedOf: (string[] | undefined)[] = new Array(identifiers.length)
  for (const r of rows) {
    const k = Number(r.ord) - 1
    if (r.stop !== null) (stoppedOf[k] ??= []).push(r.stop)
    if (r.g !== null) (statesOf[k] ??= []).push(r)
  }
  return identifiers.map((ident, k) => decide(ident, normalized[k] !== null, groups, target, statesOf[k], stoppedOf[k]))
}
