/**
 * Read side of Braze's `GET /subscription/user/status`: for each identifier given, the person's
 * status in every (non-archived) subscription group of the workspace, one page of groups at a time.
 * Reads the projection (consent_state), never the ledger, and creates nothing: an identifier never
 * seen answers "Unknown" for every group. Three statements whatever the number of identifiers.
 */
import type { Sql } from '../db/sql.js'
import { normalizeIdentity } from '../contacts/identity.js'
import type { BrazeItemError, BrazeStatus } from '../schemas/braze.js'
import { toBrazeStatus } from './errors.js'

export interface UserStatusIdentifier {
  type: 'external_id' | 'phone'
  /** As given by the caller. */
  value: string
  /** Where it came from, for errors[]. */
  input_array: string
  index: number
}

export interface UserStatusPage {
  users: {
    external_id: string | null
    phone: string | null
    subscription_groups: { id: string; name: string; channel: string; status: BrazeStatus }[]
  }[]
  total_count: number
  errors: BrazeItemError[]
}

export async function listUserSubscriptionStatus(
  sql: Sql,
  workspaceId: string,
  identifiers: UserStatusIdentifier[],
  page: { limit: number; offset: number },
): Promise<UserStatusPage> {
  const errors: BrazeItemError[] = []
  // Normalise, drop invalid ones (reported) and repeats of the same person-identifier.
  const wanted: { type: string; value: string }[] = []
  const seen = new Set<string>()
  for (const i of identifiers) {
    const value = normalizeIdentity(i.type, i.value)
    if (value === null) {
      errors.push({
        type: i.type === 'phone' ? 'INVALID_PHONE' : 'INVALID_EXTERNAL_ID',
        input_array: i.input_array,
        index: i.index,
        message: `${i.type} ${JSON.stringify(i.value)} is not valid`,
      })
      continue
    }
    const k = `${i.type}\u0000${value}`
    if (seen.has(k)) continue
    seen.add(k)
    wanted.push({ type: i.type, value })
  }

  const [count] = await sql.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM subscription_groups WHERE workspace_id = $1 AND archived_at IS NULL`,
    [workspaceId],
  )
  const groups = await sql.query<{ id: string; name: string; channel: string }>(
    `SELECT id, name, channel FROM subscription_groups
      WHERE workspace_id = $1 AND archived_at IS NULL
      ORDER BY created_at, id
      LIMIT $2 OFFSET $3`,
    [workspaceId, page.limit, page.offset],
  )

  const rows =
    wanted.length === 0
      ? []
      : await sql.query<{ ord: number; external_id: string | null; phone: string | null; states: Record<string, string> | null }>(
          `SELECT q.ord::int AS ord,
                  (SELECT e.value FROM identities e
                    WHERE e.workspace_id = $1 AND e.contact_id = i.contact_id AND e.type = 'external_id'
                    ORDER BY e.created_at, e.value LIMIT 1) AS external_id,
                  (SELECT p.value FROM identities p
                    WHERE p.workspace_id = $1 AND p.contact_id = i.contact_id AND p.type = 'phone'
                    ORDER BY p.created_at, p.value LIMIT 1) AS phone,
                  (SELECT json_object_agg(s.subscription_group_id, s.state) FROM consent_state s
                    WHERE s.workspace_id = $1 AND s.contact_id = i.contact_id AND s.subscription_group_id = ANY($4::uuid[])) AS states
             FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS q(type, value, ord)
             JOIN identities i ON i.workspace_id = $1 AND i.type = q.type AND i.value = q.value`,
          [workspaceId, wanted.map((w) => w.type), wanted.map((w) => w.value), groups.map((g) => g.id)],
        )
  const byOrd = new Map(rows.map((r) => [Number(r.ord) - 1, r]))

  const users = wanted.map((w, k) => {
    const row = byOrd.get(k)
    return {
      // The identifier asked about is shown as asked (normalised); the other one from the contact.
      external_id: w.type === 'external_id' ? w.value : (row?.external_id ?? null),
      phone: w.type === 'phone' ? w.value : (row?.phone ?? null),
      subscription_groups: groups.map((g) => ({ id: g.id, name: g.name, channel: g.channel, status: toBrazeStatus(row?.states?.[g.id]) })),
    }
  })
  return { users, total_count: count!.n, errors }
}
