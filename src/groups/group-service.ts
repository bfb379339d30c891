/**
 * Subscription groups (docs/architecture.md): created, listed, renamed, archived, never deleted. Channel
 * and category become immutable once events reference the group (checked here for a clear 409, and
 * by a trigger in the database whatever the application does).
 */
import { and, asc, eq, isNull, sql as dsql } from 'drizzle-orm'
import type { Db } from '../db/client.js'
import type { Sql } from '../db/sql.js'
import { consentEvents, subscriptionGroups } from '../db/schema.js'
import { conflict, notFound } from '../errors/domain-error.js'

export type GroupRow = typeof subscriptionGroups.$inferSelect

export interface GroupInput {
  name: string
  channel: 'whatsapp' | 'sms'
  category: 'marketing' | 'utility' | 'authentication'
  phone_number_id?: string | null
  requires_opt_in?: boolean
}

export function toGroupDto(g: GroupRow) {
  return {
    id: g.id,
    name: g.name,
    channel: g.channel as GroupInput['channel'],
    category: g.category as GroupInput['category'],
    phone_number_id: g.phoneNumberId,
    requires_opt_in: g.requiresOptIn,
    created_at: g.createdAt.toISOString(),
    updated_at: g.updatedAt.toISOString(),
    archived_at: g.archivedAt ? g.archivedAt.toISOString() : null,
  }
}

/** Creates a group inside the caller's transaction (an Idempotency-Key's work and its stored answer commit together). */
export async function insertGroup(tx: Sql, workspaceId: string, input: GroupInput): Promise<GroupRow> {
  const [g] = await tx.query<GroupRow>(
    `INSERT INTO subscription_groups (workspace_id, name, channel, category, phone_number_id, requires_opt_in)
     VALUES ($1, $2, $3, $4, $5, $6)
     RETURNING workspace_id AS "workspaceId", id, name, channel, category, phone_number_id AS "phoneNumberId",
               requires_opt_in AS "requiresOptIn", created_at AS "createdAt", updated_at AS "updatedAt", archived_at AS "archivedAt"`,
    [workspaceId, input.name, input.channel, input.category, input.phone_number_id ?? null, input.requires_opt_in ?? true],
  )
  return { ...g!, createdAt: new Date(g!.createdAt), updatedAt: new Date(g!.updatedAt), archivedAt: g!.archivedAt ? new Date(g!.archivedAt) : null }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** Whether the group is archived, or null when the workspace has no such group (a malformed id included). */
export async function findGroupArchived(sql: Sql, workspaceId: string, id: string): Promise<{ archived: boolean } | null> {
  if (!UUID.test(id)) return null
  const [g] = await sql.query<{ archived: boolean }>(
    `SELECT archived_at IS NOT NULL AS archived FROM subscription_groups WHERE workspace_id = $1 AND id = $2`,
    [workspaceId, id.toLowerCase()],
  )
  return g ?? null
}

export function createGroupService(db: Db) {
  async function get(workspaceId: string, id: string): Promise<GroupRow> {
    if (!UUID.test(id)) throw notFound('subscription group')
    const [g] = await db
      .select()
      .from(subscriptionGroups)
      .where(and(eq(subscriptionGroups.workspaceId, workspaceId), eq(subscriptionGroups.id, id.toLowerCase())))
    if (!g) throw notFound('subscription group')
    return g
  }

  async function create(workspaceId: string, input: GroupInput): Promise<GroupRow> {
    const [g] = await db
      .insert(subscriptionGroups)
      .values({
        workspaceId,
        name: input.name,
        channel: input.channel,
        category: input.category,
        phoneNumberId: input.phone_number_id ?? null,
        requiresOptIn: input.requires_opt_in ?? true,
      })
      .returning()
    return g!
  }

  async function list(workspaceId: string, opts: { includeArchived?: boolean } = {}) {
    const where = opts.includeArchived
      ? eq(subscriptionGroups.workspaceId, workspaceId)
      : and(eq(subscriptionGroups.workspaceId, workspaceId), isNull(subscriptionGroups.archivedAt))
    return db.select().from(subscriptionGroups).where(where).orderBy(asc(subscriptionGroups.createdAt), asc(subscriptionGroups.id))
  }

  async function update(workspaceId: string, id: string, patch: Partial<GroupInput>): Promise<GroupRow> {
    const g = await get(workspaceId, id)
    const changesKind =
      (patch.channel !== undefined && patch.channel !== g.channel) || (patch.category !== undefined && patch.category !== g.category)
    if (changesKind) {
      const [used] = await db
        .select({ one: dsql<number>`1` })
        .from(consentEvents)
        .where(and(eq(consentEvents.workspaceId, workspaceId), eq(consentEvents.subscriptionGroupId, g.id)))
        .limit(1)
      if (used) throw conflict('group_in_use', 'channel and category cannot change once events reference the group')
    }
    const [u] = await db
      .update(subscriptionGroups)
      .set({
        name: patch.name ?? g.name,
        channel: patch.channel ?? g.channel,
        category: patch.category ?? g.category,
        phoneNumberId: patch.phone_number_id === undefined ? g.phoneNumberId : patch.phone_number_id,
        requiresOptIn: patch.requires_opt_in ?? g.requiresOptIn,
        updatedAt: new Date(),
      })
      .where(and(eq(subscriptionGroups.workspaceId, workspaceId), eq(subscriptionGroups.id, g.id)))
      .returning()
    return u!
  }

  async function archive(workspaceId: string, id: string): Promise<GroupRow> {
    const g = await get(workspaceId, id)
    if (g.archivedAt) return g
    const [u] = await db
      .update(subscriptionGroups)
      .set({ archivedAt: new Date(), updatedAt: new Date() })
      .where(and(eq(subscriptionGroups.workspaceId, workspaceId), eq(subscriptionGroups.id, g.id)))
      .returning()
    return u!
  }

  return { get, create, list, update, archive, insert: insertGroup, findArchived: findGroupArchived }
}

export type GroupService = ReturnType<typeof createGroupService>
