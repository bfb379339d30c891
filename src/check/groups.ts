/**
 * The subscription groups a check is answered against. A group named by id is cached briefly (only
 * found groups; a miss always asks the database): requires_opt_in edits reach other instances within
 * GROUP_CACHE_MS, and `forget` drops a workspace's entries on this instance at once.
 */
import type { Sql } from '../db/sql.js'
import { DomainError, notFound } from '../errors/domain-error.js'
import type { CheckTarget, GroupRow } from './decide.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** How long a group looked up by id is reused: groups change rarely and their kind never once used. */
const GROUP_CACHE_MS = 5_000

export function createGroupLookup(sql: Sql) {
  const groupCache = new Map<string, { row: GroupRow; until: number }>()

  function forget(workspaceId: string) {
    for (const k of groupCache.keys()) if (k.startsWith(`${workspaceId}/`)) groupCache.delete(k)
  }

  async function byId(workspaceId: string, groupId: string): Promise<GroupRow[]> {
    if (!UUID.test(groupId)) throw notFound('subscription group')
    const id = groupId.toLowerCase()
    const key = `${workspaceId}/${id}`
    const hit = groupCache.get(key)
    if (hit && hit.until > Date.now()) return [hit.row]
    const rows = await sql.query<GroupRow>(
      `SELECT id, channel, category, phone_number_id, requires_opt_in FROM subscription_groups WHERE workspace_id = $1 AND id = $2`,
      [workspaceId, id],
      'consent-check-group',
    )
    if (rows.length === 0) throw notFound('subscription group')
    if (groupCache.size > 10_000) groupCache.clear()
    groupCache.set(key, { row: rows[0]!, until: Date.now() + GROUP_CACHE_MS })
    return rows
  }

  async function groupsFor(workspaceId: string, target: CheckTarget): Promise<GroupRow[]> {
    if (target.subscription_group_id !== undefined) return byId(workspaceId, target.subscription_group_id)
    const rows = await sql.query<GroupRow>(
      `SELECT id, channel, category, phone_number_id, requires_opt_in FROM subscription_groups
        WHERE workspace_id = $1 AND channel = $2 AND category = $3 AND archived_at IS NULL
          AND (phone_number_id IS NULL OR $4::text IS NULL OR phone_number_id = $4)
        ORDER BY phone_number_id NULLS LAST, created_at, id`,
      [workspaceId, target.channel, target.category, target.phone_number_id ?? null],
    )
    if (rows.length === 0) {
      throw new DomainError(422, 'no_matching_subscription_group', `no active ${target.channel} ${target.category} subscription group matches`)
    }
    return rows
  }

  return { groupsFor, forget }
}

export type GroupLookup = ReturnType<typeof createGroupLookup>
