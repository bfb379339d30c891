/**
 * Contacts: reads of a contact with its identities and its state per group, and an admin's edits
 * of its attributes and tags (bulk attribute writes: attribute-patches.ts). Consent itself is never
 * written here: that is the ledger's job (src/ledger/ledger-service.ts); contacts are created and
 * merged only through it.
 */
import { findUnstorable } from '../input/storable.js'
import type { Sql } from '../db/sql.js'
import { DomainError, badRequest, notFound } from '../errors/domain-error.js'
import { applyAttributePatches } from './attribute-patches.js'

export { applyAttributePatches, toPgArray, type AttributePatch } from './attribute-patches.js'

// ---------------------------------------------------------------------------------------------
// Reads and admin edits. Every statement is scoped by workspace_id; an id of another
// workspace is indistinguishable from one that does not exist (both: 404 `not_found`).
//
// Decision: a contact merged into another answers 404 too (it is no longer a live contact, and
// nothing can be written to it), but with code `contact_merged` and a detail naming the surviving
// contact, so an admin screen holding a stale id can follow it. This reveals nothing across
// workspaces: the survivor is in the same workspace.

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
/** Identities are listed in this order, then by age. */
const IDENTITY_ORDER = `array_position(ARRAY['external_id','phone','bsuid'], i.type), i.created_at, i.value`
const IDENTITIES_JSON = `COALESCE((SELECT json_agg(json_build_object('type', i.type, 'value', i.value) ORDER BY ${IDENTITY_ORDER})
                                 FROM identities i WHERE i.workspace_id = c.workspace_id AND i.contact_id = c.id), '[]'::json)`

export type IdentityDto = { type: 'external_id' | 'phone' | 'bsuid'; value: string }
export type GroupStateValue = 'subscribed' | 'unsubscribed' | 'unknown'

const iso = (v: Date | string) => new Date(v).toISOString()

/** The survivor a merged-away contact now lives in (following merge chains). */
async function survivorOf(sql: Sql, workspaceId: string, id: string): Promise<string | null> {
  const rows = await sql.query<{ id: string }>(
    `WITH RECURSIVE chain(id, merged_into, depth) AS (
       SELECT id, merged_into, 0 FROM contacts WHERE workspace_id = $1 AND id = $2
       UNION ALL
       SELECT c.id, c.merged_into, chain.depth + 1
         FROM contacts c JOIN chain ON c.workspace_id = $1 AND c.id = chain.merged_into
        WHERE chain.depth < 64)
     SELECT id FROM chain WHERE merged_into IS NULL LIMIT 1`,
    [workspaceId, id],
  )
  return rows[0]?.id ?? null
}

async function mergedError(sql: Sql, workspaceId: string, id: string): Promise<DomainError> {
  const survivor = await survivorOf(sql, workspaceId, id)
  return new DomainError(
    404,
    'contact_merged',
    survivor ? `contact ${id} was merged into contact ${survivor}` : `contact ${id} was merged into another contact`,
  )
}

/**
 * The live contact with this id, or a 404 (`not_found` for unknown or foreign ids, `contact_merged`
 * for a merged-away one). With `lock`, the row is locked for the caller's transaction.
 */
export async function requireLiveContact(sql: Sql, workspaceId: string, rawId: string, opts: { lock?: boolean } = {}): Promise<string> {
  if (!UUID.test(rawId)) throw notFound('contact')
  const id = rawId.toLowerCase()
  const [row] = await sql.query<{ merged_into: string | null }>(
    `SELECT merged_into FROM contacts WHERE workspace_id = $1 AND id = $2${opts.lock ? ' FOR UPDATE' : ''}`,
    [workspaceId, id],
  )
  if (!row) throw notFound('contact')
  if (row.merged_into) throw await mergedError(sql, workspaceId, id)
  return id
}

// --- list -----------------------------------------------------------------------------------

export interface ContactListFilter {
  /** Substring of any identity value (case-insensitive). */
  q?: string
  /** The contact has all of these tags. */
  tags?: string[]
  /** attributes->>key = value, for each pair. */
  attributes?: [string, string][]
  subscriptionGroupId?: string
  state?: GroupStateValue
  /** Opaque cursor from a previous page. */
  cursor?: string
  limit: number
}

export interface ContactSummary {
  id: string
  identities: IdentityDto[]
  attributes: Record<string, unknown>
  tags: string[]
  created_at: string
  updated_at: string
  consent?: { subscription_group_id: string; state: GroupStateValue; occurred_at: string | null; event_id: string | null }
}

/**
 * Cursors are opaque base64url of `c1:<last contact id>`. Pages are in contact id order: the
 * primary key (workspace_id, id) serves both the order and the keyset seek, so a page costs the
 * same at any depth and never duplicates or skips a contact that existed for the whole walk
 * (contacts created meanwhile appear iff their id sorts after the cursor).
 */
export function encodeCursor(id: string): string {
  return Buffer.from(`c1:${id}`, 'utf8').toString('base64url')
}

export function decodeCursor(cursor: string): string {
  const m = /^c1:([0-9a-f-]{36})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'))
  if (!m || !UUID.test(m[1]!)) {
    throw badRequest('invalid_cursor', 'cursor is not a next_cursor this API returned', [{ pointer: '/querystring/cursor', message: 'invalid cursor' }])
  }
  return m[1]!
}

const likeEscape = (s: string) => s.replace(/[\\%_]/g, (ch) => `\\${ch}`)

/**
 * One page of live contacts, in ONE statement: the filters, the identities (aggregated per row),
 * the state in the named group, and whether that group exists in the workspace (404 otherwise).
 */
export async function listContacts(
  sql: Sql,
  workspaceId: string,
  f: ContactListFilter,
): Promise<{ contacts: ContactSummary[]; next_cursor: string | null }> {
  if (f.state !== undefined && f.subscriptionGroupId === undefined) {
    throw badRequest('state_requires_subscription_group', 'state filters by a group: give subscription_group_id too', [
      { pointer: '/querystring/subscription_group_id', message: 'required when state is given' },
    ])
  }
  const params: unknown[] = [workspaceId, f.subscriptionGroupId?.toLowerCase() ?? null, f.limit + 1]
  const p = (v: unknown) => {
    params.push(v)
    return `$${params.length}`
  }
  const where: string[] = []
  if (f.cursor !== undefined) where.push(`c.id > ${p(decodeCursor(f.cursor))}::uuid`)
  if (f.q !== undefined) {
    const patterns = new Set([`%${likeEscape(f.q.trim())}%`])
    // A phone typed with separators matches its E.164 form.
    if (/^[\d\s().+-]+$/.test(f.q) && /\d/.test(f.q)) patterns.add(`%${likeEscape(f.q.replace(/[\s().-]/g, ''))}%`)
    where.push(
      `EXISTS (SELECT 1 FROM identities i WHERE i.workspace_id = c.workspace_id AND i.contact_id = c.id AND i.value ILIKE ANY (${p([...patterns])}::text[]))`,
    )
  }
  if (f.tags !== undefined && f.tags.length > 0) where.push(`c.tags @> ${p(f.tags)}::text[]`)
  for (const [k, v] of f.attributes ?? []) where.push(`c.attributes ->> ${p(k)}::text = ${p(v)}::text`)
  if (f.state === 'unknown') where.push(`s.contact_id IS NULL`)
  else if (f.state !== undefined) where.push(`s.state = ${p(f.state)}`)

  const rows = await sql.query<{
    group_found: boolean
    id: string | null
    attributes: Record<string, unknown>
    tags: string[]
    created_at: Date
    updated_at: Date
    identities: IdentityDto[]
    state: 'subscribed' | 'unsubscribed' | null
    state_occurred_at: Date | null
    state_event_id: string | null
  }>(
    `SELECT g.ok AS group_found, p.*
       FROM (SELECT $2::uuid IS NULL
                    OR EXISTS (SELECT 1 FROM subscription_groups WHERE workspace_id = $1 AND id = $2::uuid) AS ok) g
       LEFT JOIN LATERAL (
         SELECT c.id, c.attributes, c.tags, c.created_at, c.updated_at, ${IDENTITIES_JSON} AS identities,
                s.state, s.occurred_at AS state_occurred_at, s.event_id AS state_event_id
           FROM contacts c
           LEFT JOIN consent_state s
                  ON s.workspace_id = c.workspace_id AND s.contact_id = c.id AND s.subscription_group_id = $2::uuid
          WHERE c.workspace_id = $1 AND c.merged_into IS NULL${where.map((w) => `\n            AND ${w}`).join('')}
          ORDER BY c.id
          LIMIT $3::int
       ) p ON g.ok
      ORDER BY p.id`,
    params,
  )
  if (rows.length > 0 && !rows[0]!.group_found) throw notFound('subscription group')
  const page = rows.filter((r) => r.id !== null)
  const more = page.length > f.limit
  if (more) page.length = f.limit
  return {
    contacts: page.map((r) => ({
      id: r.id!,
      identities: r.identities,
      attributes: r.attributes,
      tags: r.tags,
      created_at: iso(r.created_at),
      updated_at: iso(r.updated_at),
      ...(f.subscriptionGroupId !== undefined
        ? {
            consent: {
              subscription_group_id: f.subscriptionGroupId.toLowerCase(),
              state: r.state ?? 'unknown',
              occurred_at: r.state_occurred_at ? iso(r.state_occurred_at) : null,
              event_id: r.state_event_id,
            },
          }
        : {}),
    })),
    next_cursor: more ? encodeCursor(page[page.length - 1]!.id!) : null,
  }
}

// --- detail ---------------------------------------------------------------------------------

export interface ContactDetailDto {
  id: string
  identities: IdentityDto[]
  attributes: Record<string, unknown>
  tags: string[]
  created_at: string
  updated_at: string
  subscription_groups: {
    subscription_group_id: string
    name: string
    channel: string
    category: string
    phone_number_id: string | null
    state: GroupStateValue
    occurred_at: string | null
    event_id: string | null
    source: string | null
    platform_stopped: boolean
  }[]
  platform_stops: { phone_number_id: string; stopped: boolean; occurred_at: string }[]
}

/**
 * A contact with its identities, attributes, tags, its state in every non-archived group of the
 * workspace (`unknown` where nothing was recorded) and Meta's platform stops, in one statement.
 * `platform_stopped` follows the pre-send check: a WhatsApp marketing group is stopped when Meta
 * stopped the group's number (any number, for a group without one).
 */
export async function getContactDetail(sql: Sql, workspaceId: string, rawId: string): Promise<ContactDetailDto> {
  if (!UUID.test(rawId)) throw notFound('contact')
  const id = rawId.toLowerCase()
  const [row] = await sql.query<{
    id: string
    merged_into: string | null
    attributes: Record<string, unknown>
    tags: string[]
    created_at: Date
    updated_at: Date
    identities: IdentityDto[]
    groups: {
      id: string
      name: string
      channel: string
      category: string
      phone_number_id: string | null
      state: 'subscribed' | 'unsubscribed' | null
      occurred_at: string | null
      event_id: string | null
      source: string | null
    }[]
    stops: { phone_number_id: string; stopped: boolean; occurred_at: string }[]
  }>(
    `SELECT c.id, c.merged_into, c.attributes, c.tags, c.created_at, c.updated_at, ${IDENTITIES_JSON} AS identities,
            COALESCE((SELECT json_agg(json_build_object('id', g.id, 'name', g.name, 'channel', g.channel, 'category', g.category,
                                                        'phone_number_id', g.phone_number_id, 'state', s.state,
                                                        'occurred_at', s.occurred_at, 'event_id', s.event_id, 'source', s.source)
                                      ORDER BY g.created_at, g.id)
                        FROM subscription_groups g
                        LEFT JOIN consent_state s
                               ON s.workspace_id = g.workspace_id AND s.subscription_group_id = g.id AND s.contact_id = c.id
                       WHERE g.workspace_id = c.workspace_id AND g.archived_at IS NULL), '[]'::json) AS groups,
            COALESCE((SELECT json_agg(json_build_object('phone_number_id', p.phone_number_id, 'stopped', p.stopped,
                                                        'occurred_at', p.occurred_at) ORDER BY p.phone_number_id)
                        FROM platform_stops p WHERE p.workspace_id = c.workspace_id AND p.contact_id = c.id), '[]'::json) AS stops
       FROM contacts c
      WHERE c.workspace_id = $1 AND c.id = $2`,
    [workspaceId, id],
  )
  if (!row) throw notFound('contact')
  if (row.merged_into) throw await mergedError(sql, workspaceId, id)
  const stopped = row.stops.filter((s) => s.stopped).map((s) => s.phone_number_id)
  return {
    id: row.id,
    identities: row.identities,
    attributes: row.attributes,
    tags: row.tags,
    created_at: iso(row.created_at),
    updated_at: iso(row.updated_at),
    subscription_groups: row.groups.map((g) => ({
      subscription_group_id: g.id,
      name: g.name,
      channel: g.channel,
      category: g.category,
      phone_number_id: g.phone_number_id,
      state: g.state ?? 'unknown',
      occurred_at: g.occurred_at ? iso(g.occurred_at) : null,
      event_id: g.event_id,
      source: g.source,
      platform_stopped:
        g.channel === 'whatsapp' && g.category === 'marketing' && stopped.some((n) => g.phone_number_id === null || n === g.phone_number_id),
    })),
    platform_stops: row.stops.map((s) => ({ phone_number_id: s.phone_number_id, stopped: s.stopped, occurred_at: iso(s.occurred_at) })),
  }
}

// --- patch ----------------------------------------------------------------------------------

export interface ContactPatch {
  /** Keys to set; a null value removes the key. */
  attributes?: Record<string, unknown>
  tags?: { add?: string[]; remove?: string[] }
}

const ATTRIBUTES_MAX_BYTES = 64 * 1024

/**
 * PATCH semantics: attributes merge key by key (null removes), tags are added/removed (never
 * replaced wholesale, so two admins editing different tags do not undo each other). Run it inside
 * a transaction: the contact row is locked so a concurrent merge cannot slip between check and write.
 */
export async function patchContact(sql: Sql, workspaceId: string, rawId: string, patch: ContactPatch): Promise<ContactDetailDto> {
  const add = [...new Set(patch.tags?.add ?? [])]
  const remove = [...new Set(patch.tags?.remove ?? [])]
  const both = add.filter((t) => remove.includes(t))
  if (both.length > 0) {
    throw badRequest('conflicting_tags', `tags both added and removed: ${both.map((t) => JSON.stringify(t)).join(', ')}`, [
      { pointer: '/body/tags/remove', message: 'a tag cannot be both added and removed' },
    ])
  }
  const set: Record<string, unknown> = {}
  const unset: string[] = []
  for (const [k, v] of Object.entries(patch.attributes ?? {})) {
    if (v === null) unset.push(k)
    else set[k] = v
  }
  // jsonb refuses NUL and would store an unpaired surrogate as U+FFFD: answer 400, not a driver
  // error or a silent change (docs/input-rules.md).
  const bad = findUnstorable(patch.attributes ?? {}, '/body/attributes')
  if (bad.length > 0) throw badRequest('invalid_text', 'attributes hold text that cannot be stored', bad)
  const json = JSON.stringify(set)
  if (json.length > ATTRIBUTES_MAX_BYTES) {
    throw badRequest('invalid_attributes', `attributes must be at most ${ATTRIBUTES_MAX_BYTES} bytes of JSON`, [
      { pointer: '/body/attributes', message: 'too large' },
    ])
  }
  const id = await requireLiveContact(sql, workspaceId, rawId, { lock: true })
  await applyAttributePatches(sql, workspaceId, [{ contactId: id, set, remove: unset, addTags: add, removeTags: remove }])
  return getContactDetail(sql, workspaceId, id)
}
