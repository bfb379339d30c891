/**
 * A person's consent history, read from the ledger for a restore (START/UNSTOP, Meta's `resume`;
 * the rule itself is the pure planRestore in restore.ts, docs/webhook.md "What a restore gives
 * back"). The reads live in the ledger module so that no caller outside it queries
 * `consent_events` or resolves merged contacts on its own.
 */
import type { Sql } from '../db/sql.js'
import { normalizeIdentity } from '../contacts/identity.js'
import type { HistoryEvent } from './restore.js'
import type { RawIdentity } from './types.js'

/** Live contacts holding any of the identities, and every contact merged into them. */
export async function membersOf(tx: Sql, workspaceId: string, identities: RawIdentity[]): Promise<string[]> {
  const types: string[] = []
  const values: string[] = []
  for (const i of identities) {
    const v = normalizeIdentity(i.type, i.value, i.unverified)
    if (v !== null) {
      types.push(i.type)
      values.push(v)
    }
  }
  if (types.length === 0) return []
  const rows = await tx.query<{ id: string }>(
    `SELECT c.id::text AS id FROM contacts c
      WHERE c.workspace_id = $1
        AND COALESCE(c.merged_into, c.id) IN (
              SELECT i.contact_id FROM identities i
                JOIN unnest($2::text[], $3::text[]) AS q(type, value) ON q.type = i.type AND q.value = i.value
               WHERE i.workspace_id = $1)`,
    [workspaceId, types, values],
  )
  return rows.map((r) => r.id)
}

/** The person's consent events that occurred at or before `at` (every contact merged in). */
export async function historyOf(tx: Sql, workspaceId: string, identities: RawIdentity[], at: Date): Promise<HistoryEvent[]> {
  const members = await membersOf(tx, workspaceId, identities)
  if (members.length === 0) return []
  const rows = await tx.query<{
    id: string
    g: string
    state: 'subscribed' | 'unsubscribed'
    occurred_at: Date
    source: string
    platform_stop: string | null
    keyword_action: string | null
    signal_key: string | null
    phone_number_id: string | null
    message_id: string | null
  }>(
    `SELECT e.id::text AS id, e.subscription_group_id::text AS g, e.state, e.occurred_at, e.source, e.platform_stop,
            e.evidence->>'keyword_action' AS keyword_action, e.evidence->>'signal_key' AS signal_key,
            e.evidence->>'phone_number_id' AS phone_number_id, e.evidence->>'message_id' AS message_id
       FROM consent_events e
      WHERE e.workspace_id = $1 AND e.contact_id = ANY($2::uuid[]) AND e.type = 'consent' AND e.occurred_at <= $3`,
    [workspaceId, members, at.toISOString()],
  )
  return rows.map((r) => ({
    id: BigInt(r.id),
    group: r.g,
    state: r.state,
    occurredAt: new Date(r.occurred_at).getTime(),
    source: r.source,
    platformStop: r.platform_stop,
    keywordAction: r.keyword_action,
    signalKey: r.signal_key,
    phoneNumberId: r.phone_number_id,
    messageId: r.message_id,
  }))
}
