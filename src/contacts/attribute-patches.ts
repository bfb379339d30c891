/**
 * Contact attributes and tags (free-form, for filtering), written in bulk: one statement for the
 * patches of many contacts (Braze /users/track, CSV imports).
 */
import type { Sql } from '../db/sql.js'

export interface AttributePatch {
  contactId: string
  /** Keys to set (values any JSON). */
  set: Record<string, unknown>
  /** Keys to remove (Braze: a `null` value removes the attribute). */
  remove: string[]
  /** Tags to add / remove. */
  addTags?: string[]
  removeTags?: string[]
}

/**
 * Apply attribute/tag patches to many contacts in one statement. Several patches for the same
 * contact apply in order (later keys win).
 */
export async function applyAttributePatches(sql: Sql, workspaceId: string, patches: AttributePatch[]): Promise<void> {
  const merged = new Map<string, AttributePatch>()
  for (const p of patches) {
    const cur = merged.get(p.contactId)
    if (!cur) {
      merged.set(p.contactId, { contactId: p.contactId, set: { ...p.set }, remove: [...p.remove], addTags: [...(p.addTags ?? [])], removeTags: [...(p.removeTags ?? [])] })
      continue
    }
    for (const k of p.remove) {
      delete cur.set[k]
      if (!cur.remove.includes(k)) cur.remove.push(k)
    }
    for (const [k, v] of Object.entries(p.set)) {
      cur.set[k] = v
      cur.remove = cur.remove.filter((r) => r !== k)
    }
    cur.addTags!.push(...(p.addTags ?? []))
    cur.removeTags!.push(...(p.removeTags ?? []))
  }
  const list = [...merged.values()].filter(
    (p) => Object.keys(p.set).length + p.remove.length + (p.addTags?.length ?? 0) + (p.removeTags?.length ?? 0) > 0,
  )
  if (list.length === 0) return
  await sql.query(
    `UPDATE contacts c
        SET attributes = (c.attributes - x.rm::text[]) || x.st::jsonb,
            tags = ARRAY(SELECT DISTINCT t FROM unnest(c.tags || x.at::text[]) t WHERE t <> ALL (x.rt::text[]) ORDER BY t),
            updated_at = now()
       FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[]) AS x(id, st, rm, at, rt)
      WHERE c.workspace_id = $1 AND c.id = x.id`,
    [
      workspaceId,
      list.map((p) => p.contactId),
      list.map((p) => JSON.stringify(p.set)),
      list.map((p) => toPgArray(p.remove)),
      list.map((p) => toPgArray(p.addTags ?? [])),
      list.map((p) => toPgArray(p.removeTags ?? [])),
    ],
  )
}

/** A text[] literal, so arrays of arrays pass through one unnest (PostgreSQL has no ragged arrays). */
export function toPgArray(values: string[]): string {
  return `{${values.map((v) => `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`).join(',')}}`
}
