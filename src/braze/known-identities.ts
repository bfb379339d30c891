/**
 * Which of the given identifiers some contact of the workspace already holds: the test behind
 * /users/track's `_update_existing_only` (an object that names nobody known creates nothing).
 */
import type { Sql } from '../db/sql.js'
import { normalizeIdentity } from '../contacts/identity.js'
import type { RawIdentity } from '../ledger/types.js'

/** Key of an identity in the returned set: `${type}\u0000${normalized value}`. */
export const identityKey = (type: string, value: string | null) => `${type}\u0000${value}`

export async function existingIdentities(sql: Sql, workspaceId: string, identities: RawIdentity[]): Promise<Set<string>> {
  const wanted = identities.flatMap((i) => {
    const value = normalizeIdentity(i.type, i.value)
    return value === null ? [] : [{ type: i.type, value }]
  })
  if (wanted.length === 0) return new Set()
  const rows = await sql.query<{ type: string; value: string }>(
    `SELECT i.type, i.value FROM identities i JOIN unnest($2::text[], $3::text[]) AS q(type, value) ON i.type = q.type AND i.value = q.value
      WHERE i.workspace_id = $1`,
    [workspaceId, wanted.map((w) => w.type), wanted.map((w) => w.value)],
  )
  return new Set(rows.map((r) => identityKey(r.type, r.value)))
}
