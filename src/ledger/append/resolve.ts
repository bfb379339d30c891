/**
 * Step 2 of an append: which contact each item is for. Items naming an unknown or archived group
 * are answered here; contacts are given directly (admin) or resolved from identities (creating,
 * merging, moving: contact-resolver.ts, with the owners ledger_prepare read); every existing
 * contact whose chain the append extends ends up locked, with its chain head known.
 */
import type { Sql } from '../../db/sql.js'
import { resolveContacts, type Resolution } from '../contact-resolver.js'
import { GENESIS } from '../hash-chain.js'
import { recomputeProjection } from '../projection.js'
import type { ItemResult } from '../types.js'
import type { Prepared } from './prepare.js'
import { reject, type Candidate } from './validate.js'

/**
 * Thrown by an append of several units that turned out to merge or move contacts: the events of a
 * merge are attributed to one request, so such a batch is redone one unit at a time (see
 * append-coalescer.ts). Changes nothing (the transaction rolls back).
 */
export class SplitRequired extends Error {
  constructor() {
    super('an append of several requests merges or moves contacts: append them one by one')
  }
}

/** A contact's chain: the hash of its last event and its number of events. */
export type ChainHeads = Map<string, { hash: string; length: number }>

export interface Resolved {
  /** The consent items still to record (identify-only items are answered here). */
  live: Candidate[]
  contactOf: Map<Candidate, string>
  resolution: Resolution
  /** A merge or move changed which contacts the append touches: prepare's after-lock reads are stale. */
  reshaped: boolean
  /** Contacts this append creates (not written yet: nobody else can see them). */
  created: Set<string>
  /** The existing contacts whose chains the append extends, locked, in id order. */
  chainContacts: string[]
  heads: ChainHeads
}

/** The items whose group exists and is not archived; the others are answered. */
function knownGroups(candidates: Candidate[], pre: Prepared, results: (ItemResult | undefined)[]): Candidate[] {
  const archived = new Map<string, boolean>()
  for (const id of pre.live) archived.set(id, false)
  for (const id of pre.archived) archived.set(id, true)
  return candidates.filter((c) => {
    if (c.identifyOnly) return true
    const a = archived.get(c.groupId)
    if (a === undefined) results[c.index] = reject('unknown_subscription_group', `subscription group ${c.groupId} does not exist`, '/subscription_group_id')
    else if (a) results[c.index] = reject('archived_subscription_group', `subscription group ${c.groupId} is archived`, '/subscription_group_id')
    return a === false
  })
}

/** The contacts named directly that exist and are live, each set in contactOf; the others are answered. */
async function directContacts(
  tx: Sql,
  workspaceId: string,
  direct: Candidate[],
  pre: Prepared,
  reshaped: boolean,
  contactOf: Map<Candidate, string>,
  results: (ItemResult | undefined)[],
): Promise<void> {
  const ok = new Set<string>()
  if (reshaped) {
    const rows = await tx.query<{ id: string }>(
      `SELECT id FROM contacts WHERE workspace_id = $1 AND id = ANY($2::uuid[]) AND merged_into IS NULL`,
      [workspaceId, direct.map((c) => c.contactId!.toLowerCase())],
    )
    for (const r of rows) ok.add(r.id)
  } else {
    for (const [id, , , merged] of pre.heads ?? []) if (!merged) ok.add(id)
  }
  for (const c of direct) {
    const id = c.contactId!.toLowerCase()
    if (ok.has(id)) contactOf.set(c, id)
    else results[c.index] = reject('unknown_contact', 'contact not found')
  }
}

/**
 * The chain heads of the contacts whose chains the append extends: as prepare read and locked
 * them, or, after a merge or move, read and locked here in id order (no deadlocks between
 * batches). The merge path's statements are unnamed, so planned at each call with the tables'
 * current sizes: a named statement kept the plan of its connection's first merge (on a young
 * database, a scan of every contact; test/ledger/plan-stability.test.ts).
 */
async function chainHeads(tx: Sql, workspaceId: string, pre: Prepared, reshaped: boolean, chainContacts: string[]): Promise<ChainHeads> {
  const rows = !reshaped
    ? (pre.heads ?? []).map(([id, chain_head, chain_length]) => ({ id, chain_head, chain_length }))
    : chainContacts.length === 0
      ? []
      : await tx.query<{ id: string; chain_head: string | null; chain_length: number }>(
          `SELECT id, chain_head, chain_length FROM contacts WHERE workspace_id = $1 AND id = ANY($2::uuid[]) ORDER BY id FOR UPDATE`,
          [workspaceId, chainContacts],
        )
  return new Map(rows.map((h) => [h.id, { hash: h.chain_head ?? GENESIS, length: Number(h.chain_length) }]))
}

export async function resolve(
  tx: Sql,
  workspaceId: string,
  units: number,
  candidates: Candidate[],
  pre: Prepared,
  results: (ItemResult | undefined)[],
): Promise<Resolved> {
  let live = knownGroups(candidates, pre, results)
  const byIdentity = live.filter((c) => c.contactId === undefined)
  const owners = (pre.owners ?? []).map(([type, value, contact_id, ext]) => ({ type, value, contact_id, ext }))
  const resolution = await resolveContacts(tx, workspaceId, byIdentity.map((c) => c.identities), owners)
  const reshaped = resolution.events.length > 0 || resolution.survivors.length > 0
  if (resolution.events.length > 0 && units > 1) throw new SplitRequired()
  const contactOf = new Map<Candidate, string>()
  byIdentity.forEach((c, i) => contactOf.set(c, resolution.contactIds[i]!))
  const direct = live.filter((c) => c.contactId !== undefined)
  if (direct.length > 0) {
    await directContacts(tx, workspaceId, direct, pre, reshaped, contactOf, results)
    live = live.filter((c) => contactOf.has(c))
  }
  if (resolution.survivors.length > 0) await recomputeProjection(tx, workspaceId, resolution.survivors)
  live = live.filter((c) => {
    if (!c.identifyOnly) return true
    results[c.index] = { status: 'resolved', contact_id: contactOf.get(c)! }
    return false
  })
  const created = new Set(resolution.pending.contacts)
  const chainContacts = [...new Set([...contactOf.values(), ...resolution.events.map((e) => e.contact_id)])]
    .filter((id) => !created.has(id))
    .sort()
  const heads = await chainHeads(tx, workspaceId, pre, reshaped, chainContacts)
  return { live, contactOf, resolution, reshaped, created, chainContacts, heads }
}
