/**
 * Point-in-time state (`GET /audit/state`, docs/audit.md): the state per group as it was at `at`.
 *
 * - basis=recorded (default): "what would the check have said at that moment": the fold, by the
 *   ordering rule, of the consent events RECORDED (recorded_at) at or before `at`, over the contacts
 *   that counted together at `at` (merges recorded after `at` are not applied yet).
 * - basis=occurred: "what had the person done by then, as known now": the fold of the consent
 *   events that OCCURRED (occurred_at) at or before `at`, whenever they were recorded, over the
 *   person as known now (every contact merged into them, even later).
 *
 * Who "the person" is:
 * - `contact_id=` names a contact directly.
 * - `phone=` / `external_id=` / `bsuid=` name the contact that held that identifier AT `at`: the
 *   current holder, walked back through the ledger's `identity_moved_in` events (a recycled number
 *   moved to a new person after `at` answers for its previous holder). With basis=recorded an
 *   identifier first attached after `at` answers no groups (`identity_known_at_time: false`): the
 *   check would have said "unknown" then.
 * - Merges: a contact's own `contact_absorbed` event (recorded_at) is when it started counting for
 *   the survivor. basis=recorded answers for the contact the holder counted for at `at`, folding
 *   every contact that counted for it at `at`; basis=occurred for the holder's survivor now,
 *   folding all of its merged contacts.
 * - Limitation, stated plainly: the ledger records merges but not which of two merged contacts held
 *   an identifier before their merge, so for an identifier that arrived through a merge recorded
 *   after `at`, the answer is that of the surviving contact (the absorbed contact's own answer is
 *   available with `contact_id=`). `members` lists exactly which contacts were folded.
 *
 * Groups without any matching event are omitted (their state was unknown).
 */
import type { Sql } from '../db/sql.js'
import type { IdentityType } from '../contacts/identity.js'
import { lookupPhone } from '../contacts/identity.js'
import { badRequest, notFound } from '../errors/domain-error.js'
import { WINNER_ORDER } from '../ledger/projection.js'

export type Basis = 'recorded' | 'occurred'

export interface StateQuery {
  identifier?: { type: IdentityType; value: string }
  contactId?: string
  at: Date
  basis: Basis
}

export interface GroupStateAt {
  subscription_group_id: string
  name: string | null
  channel: string | null
  category: string | null
  state: string
  occurred_at: string
  recorded_at: string
  event_id: string
  source: string
  method: string | null
  platform_stop: string | null
}

export interface StateAt {
  at: string
  basis: Basis
  identifier: { type: IdentityType; value: string } | null
  identity_known_at_time: boolean | null
  contact_id: string
  current_contact_id: string
  members: string[]
  groups: GroupStateAt[]
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** The live root of a contact now (itself, or what it was merged into). */
async function rootNow(sql: Sql, workspaceId: string, contactId: string): Promise<string | null> {
  const [row] = await sql.query<{ root: string }>(
    `SELECT COALESCE(merged_into, id) AS root FROM contacts WHERE workspace_id = $1 AND id = $2`,
    [workspaceId, contactId],
  )
  return row?.root ?? null
}

async function familyNow(sql: Sql, workspaceId: string, root: string): Promise<string[]> {
  const rows = await sql.query<{ id: string }>(`SELECT id FROM contacts WHERE workspace_id = $1 AND (id = $2 OR merged_into = $2) ORDER BY id`, [workspaceId, root])
  return rows.map((r) => r.id)
}

/** The contact that held the identifier at `at`: walks back through its moves recorded after `at`. */
async function holderAt(sql: Sql, workspaceId: string, identifier: { type: string; value: string }, holderNow: string, at: Date): Promise<string> {
  let holder = holderNow
  let before: Date | null = null
  for (let guard = 0; guard < 1000; guard++) {
    const root = (await rootNow(sql, workspaceId, holder)) ?? holder
    const fam = await familyNow(sql, workspaceId, root)
    const moves: { from_contact: string | null; recorded_at: Date }[] = await sql.query(
      `SELECT e.evidence->>'from_contact_id' AS from_contact, e.recorded_at
         FROM consent_events e
        WHERE e.workspace_id = $1 AND e.contact_id = ANY($2::uuid[]) AND e.type = 'identity_moved_in'
          AND e.identity_type = $3 AND e.identity_value = $4 AND ($5::timestamptz IS NULL OR e.recorded_at < $5::timestamptz)
        ORDER BY e.recorded_at DESC, e.id DESC LIMIT 1`,
      [workspaceId, fam, identifier.type, identifier.value, before ? before.toISOString() : null],
    )
    const mv = moves[0]
    if (!mv || new Date(mv.recorded_at).getTime() <= at.getTime() || !mv.from_contact) break
    holder = mv.from_contact
    before = new Date(mv.recorded_at)
  }
  return holder
}

/** The contact the query names as of `at`, and whether its identifier was known then (basis=recorded). */
async function resolveHolder(
  sql: Sql,
  workspaceId: string,
  q: StateQuery,
): Promise<{ holder: string; identityKnown: boolean | null; identifier: StateAt['identifier'] }> {
  if (!q.identifier) {
    if (!q.contactId || !UUID.test(q.contactId)) throw notFound('contact')
    return { holder: q.contactId.toLowerCase(), identityKnown: null, identifier: null }
  }
  let value = q.identifier.value.trim()
  if (q.identifier.type === 'phone') {
    const p = lookupPhone(q.identifier.value)
    if (!p) throw badRequest('invalid_phone', `phone ${JSON.stringify(q.identifier.value)} is not a valid phone number`, [{ pointer: '/querystring/phone', message: 'invalid phone' }])
    value = p
  }
  const identifier = { type: q.identifier.type, value }
  const [row] = await sql.query<{ contact_id: string; created_at: Date }>(
    `SELECT contact_id, date_trunc('milliseconds', created_at) AS created_at FROM identities WHERE workspace_id = $1 AND type = $2 AND value = $3`,
    [workspaceId, identifier.type, identifier.value],
  )
  if (!row) throw notFound('contact')
  const holder = await holderAt(sql, workspaceId, identifier, row.contact_id, q.at)
  const identityKnown = q.basis === 'recorded' ? new Date(row.created_at).getTime() <= q.at.getTime() : null
  return { holder, identityKnown, identifier }
}

/** basis=recorded: the contact that `holder` counted for at `at`, and the contacts that counted with it (merge edges as they stood then). */
async function familyAt(sql: Sql, workspaceId: string, holder: string, candidates: string[], at: Date): Promise<{ subject: string; members: string[] }> {
  const edges = await sql.query<{ contact_id: string; into: string; recorded_at: Date }>(
    `SELECT e.contact_id, e.evidence->>'merged_into_contact_id' AS into, e.recorded_at
       FROM consent_events e
      WHERE e.workspace_id = $1 AND e.contact_id = ANY($2::uuid[]) AND e.type = 'contact_absorbed' AND e.recorded_at <= $3`,
    [workspaceId, candidates, at.toISOString()],
  )
  const into = new Map(edges.map((e) => [e.contact_id, e.into]))
  const rootAt = (c: string) => {
    let cur = c
    for (let i = 0; i < 1000 && into.has(cur); i++) cur = into.get(cur)!
    return cur
  }
  const subject = rootAt(holder)
  return { subject, members: candidates.filter((c) => rootAt(c) === subject) }
}

/** The winning consent event per group over `members`, by the ordering rule, among those at or before `at`. */
async function groupStatesAt(sql: Sql, workspaceId: string, members: string[], basis: StateQuery['basis'], at: Date): Promise<GroupStateAt[]> {
  const column = basis === 'occurred' ? 'occurred_at' : 'recorded_at'
  const rows = await sql.query<{
    subscription_group_id: string
    name: string | null
    channel: string | null
    category: string | null
    state: string
    occurred_at: Date
    recorded_at: Date
    event_id: string
    source: string
    method: string | null
    platform_stop: string | null
  }>(
    `SELECT w.*, g.name, g.channel, g.category
       FROM (SELECT DISTINCT ON (e.subscription_group_id)
                    e.subscription_group_id, e.state, e.occurred_at, e.recorded_at, e.event_id, e.source, e.method, e.platform_stop
               FROM consent_events e
              WHERE e.workspace_id = $1 AND e.contact_id = ANY($2::uuid[]) AND e.type = 'consent' AND e.${column} <= $3
              ORDER BY e.subscription_group_id, ${WINNER_ORDER}) w
       LEFT JOIN subscription_groups g ON g.workspace_id = $1 AND g.id = w.subscription_group_id
      ORDER BY w.subscription_group_id`,
    [workspaceId, members, at.toISOString()],
  )
  return rows.map((r) => ({
    subscription_group_id: r.subscription_group_id,
    name: r.name,
    channel: r.channel,
    category: r.category,
    state: r.state,
    occurred_at: new Date(r.occurred_at).toISOString(),
    recorded_at: new Date(r.recorded_at).toISOString(),
    event_id: r.event_id,
    source: r.source,
    method: r.method,
    platform_stop: r.platform_stop,
  }))
}

export async function stateAt(sql: Sql, workspaceId: string, q: StateQuery): Promise<StateAt> {
  const at = q.at
  const { holder, identityKnown, identifier } = await resolveHolder(sql, workspaceId, q)
  const current = await rootNow(sql, workspaceId, holder)
  if (!current) throw notFound('contact')
  const candidates = await familyNow(sql, workspaceId, current)
  const { subject, members } =
    q.basis === 'occurred' ? { subject: current, members: candidates } : await familyAt(sql, workspaceId, holder, candidates, at)
  const groups = identityKnown !== false ? await groupStatesAt(sql, workspaceId, members, q.basis, at) : []
  return {
    at: at.toISOString(),
    basis: q.basis,
    identifier,
    identity_known_at_time: identityKnown,
    contact_id: subject,
    current_contact_id: current,
    members,
    groups,
  }
}
