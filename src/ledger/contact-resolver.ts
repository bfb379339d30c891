/**
 * Resolves identity sets to contacts inside the append transaction, applying the identity rules
 * (docs/architecture.md):
 * - an identity seen for the first time creates a contact;
 * - two identities shown together that sit on different contacts: a contact without an
 *   external_id is MERGED into the other; two different external_ids: the phone/bsuid MOVES to the
 *   contact named by the request (its external_id, else its first identity);
 * - merges and moves are returned as ledger events (source `merge`); nothing is rewritten.
 *
 * Concurrency: every identity value of the batch is locked (through one of 256 hashed
 * transaction-scoped advisory locks, taken sorted so two batches never deadlock) before it is
 * looked up, so two requests that see the same new phone create one contact. The common case (no conflicts) costs a constant number of
 * statements per batch; merges and moves are rare and take a few statements each.
 */
import { uuidv7 } from './uuid7.js'
import type { Sql } from '../db/sql.js'
import type { Identity } from '../contacts/identity.js'
import type { EventType } from './types.js'

export interface IdentityEvent {
  contact_id: string
  type: EventType
  evidence: Record<string, unknown>
  identity_type: string | null
  identity_value: string | null
}

/** Contacts and identities created by the resolution but not yet written (see flushPending). */
export interface Pending {
  contacts: string[]
  identities: { type: string; value: string; contact: string }[]
}

/** The contact that holds an identity, and the external_id that contact holds. */
export interface OwnerRow {
  type: string
  value: string
  contact_id: string
  ext: string | null
}

export interface Resolution {
  /** Contact id per identity set, in input order. */
  contactIds: string[]
  /** Merge/move events to append in the same transaction. */
  events: IdentityEvent[]
  /** Contacts that absorbed others: their projection must be recomputed from the union. */
  survivors: string[]
  /** Contacts merged away. */
  absorbed: string[]
  /**
   * New contacts and identities, written by the ledger's write statement once it knows each new
   * contact's chain head, so a new contact costs one INSERT and no UPDATE (`flushPending` when the
   * append writes no event; a merge or move writes them earlier, because it needs them in the
   * database).
   */
  pending: Pending
}

/**
 * Write pending contacts (empty chains, no attributes) and identities now: two statements. For a
 * merge or move, and for an append that writes no event.
 */
export async function flushPending(sql: Sql, workspaceId: string, pending: Pending): Promise<void> {
  if (pending.contacts.length > 0) {
    await sql.query(
      `INSERT INTO contacts (workspace_id, id, chain_head, chain_length, attributes) SELECT $1, id, NULL, 0, '{}'::jsonb FROM unnest($2::uuid[]) AS x(id)`,
      [workspaceId, pending.contacts.splice(0)],
    )
  }
  if (pending.identities.length > 0) {
    const batch = pending.identities.splice(0)
    await sql.query(
      `INSERT INTO identities (workspace_id, type, value, contact_id)
       SELECT $1, t, v, c FROM unnest($2::text[], $3::text[], $4::uuid[]) AS x(t, v, c)`,
      [workspaceId, batch.map((b) => b.type), batch.map((b) => b.value), batch.map((b) => b.contact)],
    )
  }
}

const key = (i: Identity) => `${i.type}\u0000${i.value}`

/** The advisory-lock keys of an identity set (see lockIdentities); sorted and locked by SQL. */
export function identityLockKeys(workspaceId: string, ids: Identity[]): string[] {
  return [...new Set(ids.map((i) => `${workspaceId}:${i.type}:${i.value}`))]
}

/**
 * Identity locks, two-level, so their number per transaction stays bounded (PostgreSQL's shared
 * lock table holds max_locks_per_transaction x max_connections, 6,400 by default; one lock per
 * identity let a few concurrent 10,000-item batches exhaust it: "out of shared memory", a 500,
 * reproduced with 6 concurrent 10,000-event POST /consent/events) without serializing requests that
 * merely share a bucket:
 * - a set of at most TWO_LEVEL_MAX_KEYS (160) keys takes each key's bucket SHARED (distinct
 *   buckets, in order), then each key's own lock EXCLUSIVE (in order): two such sets wait for each
 *   other only when they share an identity (a 75-object /users/track locked ~75 of 256 buckets
 *   exclusively, so concurrent ones queued behind each other);
 * - a larger set (imports, big batches) takes its buckets (256 in all) EXCLUSIVE, in order.
 * A big set excludes every small set sharing a bucket, and the reverse. Deadlock-free: every set
 * takes all its bucket locks before any key lock, each kind in one global order.
 * The SQL function ledger_lock_identities (migration 0009) holds the algorithm; the append takes
 * these locks inside ledger_prepare. A scalar expression of $n's keys (tests call it directly).
 */
export const lockIdentitiesSql = (param: string) => `ledger_lock_identities(${param}::text[])`

/**
 * The most keys a set locks one by one (above: its buckets, exclusive). Two 75-object /users/track
 * requests with one identity each (150 keys) fit, so the append coalescer can pair them. Must equal
 * the bound in ledger_lock_identities (migration 0013; test/ledger/identity-locks.test.ts).
 */
export const TWO_LEVEL_MAX_KEYS = 160

/**
 * `owners`: the owners of (at least) these identities, read by the caller after it took their
 * identity locks (ledger_prepare does both in one statement).
 */
export async function resolveContacts(sql: Sql, workspaceId: string, sets: Identity[][], owners: OwnerRow[]): Promise<Resolution> {
  // identity -> contact, as it stands now (kept current in memory as we create/merge/move), and
  // the external_id each found contact holds (for the merge-or-move decision).
  const owner = new Map<string, string>()
  const extOf = new Map<string, string>()
  for (const r of owners) {
    owner.set(`${r.type}\u0000${r.value}`, r.contact_id)
    if (r.ext !== null) extOf.set(r.contact_id, r.ext)
  }

  const pending: Pending = { contacts: [], identities: [] }
  const newContacts = pending.contacts
  const newIdentities = pending.identities
  const flush = () => flushPending(sql, workspaceId, pending)

  const result: Resolution = { contactIds: [], events: [], survivors: [], absorbed: [], pending }
  for (const set of sets) {
    const contactsHere = [...new Set(set.map((i) => owner.get(key(i))).filter((c): c is string => !!c))]
    if (contactsHere.length === 0) {
      const id = uuidv7()
      newContacts.push(id)
      for (const i of set) {
        newIdentities.push({ type: i.type, value: i.value, contact: id })
        owner.set(key(i), id)
        if (i.type === 'external_id') extOf.set(id, i.value)
      }
      result.contactIds.push(id)
      continue
    }

    // The contact named by the request: the one holding its external_id, else its first identity.
    const ext = set.find((i) => i.type === 'external_id')
    let target = (ext && owner.get(key(ext))) ?? owner.get(key(set[0]!)) ?? contactsHere[0]!
    if (ext && !owner.get(key(ext))) {
      // The request's external_id is new. If the contact found by phone/bsuid already has another
      // external_id, the phone/bsuid is being claimed by a different person: give it a new contact.
      const other = contactsHere[0]!
      if (extOf.has(other) && extOf.get(other) !== ext.value) {
        const id = uuidv7()
        newContacts.push(id)
        newIdentities.push({ type: ext.type, value: ext.value, contact: id })
        owner.set(key(ext), id)
        extOf.set(id, ext.value)
        target = id
      }
    }

    const others = contactsHere.filter((c) => c !== target)
    if (others.length > 0) await flush()
    for (const other of others) {
      const targetExt = extOf.get(target)
      const otherExt = extOf.get(other)
      if (!targetExt || !otherExt || targetExt === otherExt) {
        // Merge: the contact without an external_id goes into the one with it.
        const [survivor, gone] = !targetExt && otherExt ? [other, target] : [target, other]
        await mergeContacts(sql, workspaceId, survivor, gone)
        for (const [k, c] of owner) if (c === gone) owner.set(k, survivor)
        if (!extOf.has(survivor) && extOf.has(gone)) extOf.set(survivor, extOf.get(gone)!)
        result.events.push(
          { contact_id: survivor, type: 'contact_merged', evidence: { absorbed_contact_id: gone }, identity_type: null, identity_value: null },
          { contact_id: gone, type: 'contact_absorbed', evidence: { merged_into_contact_id: survivor }, identity_type: null, identity_value: null },
        )
        result.survivors.push(survivor)
        result.absorbed.push(gone)
        for (let j = 0; j < result.contactIds.length; j++) if (result.contactIds[j] === gone) result.contactIds[j] = survivor
        target = survivor
      } else {
        // Move: a recycled number (or bsuid) now belongs to the person named by the request.
        const moving = set.filter((i) => i.type !== 'external_id' && owner.get(key(i)) === other)
        for (const i of moving) {
          await sql.query(
            `UPDATE identities SET contact_id = $4, updated_at = now()
              WHERE workspace_id = $1 AND type = $2 AND value = $3`,
            [workspaceId, i.type, i.value, target],
          )
          owner.set(key(i), target)
          result.events.push(
            { contact_id: target, type: 'identity_moved_in', evidence: { from_contact_id: other }, identity_type: i.type, identity_value: i.value },
            { contact_id: other, type: 'identity_moved_out', evidence: { to_contact_id: target }, identity_type: i.type, identity_value: i.value },
          )
        }
      }
    }
    // Attach the request's identities that nobody holds yet.
    for (const i of set) {
      if (!owner.get(key(i))) {
        newIdentities.push({ type: i.type, value: i.value, contact: target })
        owner.set(key(i), target)
        if (i.type === 'external_id') extOf.set(target, i.value)
      }
    }
    result.contactIds.push(target)
  }
  // A contact resolved earlier in the batch may have been merged away later.
  const absorbedInto = new Map<string, string>()
  for (const e of result.events) if (e.type === 'contact_absorbed') absorbedInto.set(e.contact_id, e.evidence.merged_into_contact_id as string)
  result.contactIds = result.contactIds.map((c) => {
    let cur = c
    while (absorbedInto.has(cur)) cur = absorbedInto.get(cur)!
    return cur
  })
  return result
}

/**
 * Merge `gone` into `survivor`: identities move, attributes and tags combine (survivor wins on
 * conflicts), platform stops carry over, and `gone` (and anything merged into it) points at the
 * survivor. Past events stay where they are; the projection is recomputed from the union.
 */
async function mergeContacts(sql: Sql, workspaceId: string, survivor: string, gone: string): Promise<void> {
  await sql.query(
    `SELECT id FROM contacts WHERE workspace_id = $1 AND id = ANY($2::uuid[]) ORDER BY id FOR UPDATE`,
    [workspaceId, [survivor, gone]],
  )
  await sql.query(`UPDATE identities SET contact_id = $2, updated_at = now() WHERE workspace_id = $1 AND contact_id = $3`, [
    workspaceId,
    survivor,
    gone,
  ])
  await sql.query(
    `UPDATE contacts s
        SET attributes = g.attributes || s.attributes,
            tags = ARRAY(SELECT DISTINCT unnest(s.tags || g.tags) ORDER BY 1),
            updated_at = now()
       FROM contacts g
      WHERE s.workspace_id = $1 AND s.id = $2 AND g.workspace_id = $1 AND g.id = $3`,
    [workspaceId, survivor, gone],
  )
  await sql.query(
    `UPDATE contacts SET merged_into = $2, updated_at = now()
      WHERE workspace_id = $1 AND (id = $3 OR merged_into = $3)`,
    [workspaceId, survivor, gone],
  )
  // The projection rows (consent_state and platform_stops) of both are brought to the fold of
  // their union afterwards, by the append (recomputeProjection for the survivors).
}
