/**
 * THE ONLY CODE THAT APPENDS TO THE LEDGER. Every entry point (API, Braze routes, webhook, import,
 * admin) calls `append`. For a batch of items, in one transaction and a constant number of
 * statements (set-based; merges and moves excepted), it:
 *   1. validates each item (identities, group, state, times, method, evidence);
 *   2. resolves contacts (creating, merging, moving: see contact-resolver.ts) and locks them;
 *   3. applies exactly-once keys (ledger_dedupe);
 *   4. enforces "person-initiated opt-outs are sticky" (evidence_required);
 *   5. extends each contact's hash chain and inserts the events;
 *   6. updates the consent_state projection by the ordering rule, and the platform-stop state.
 * Items fail one by one (`rejected`, with a code); the valid items of the same batch still apply.
 */
import { uuidv7 } from './uuid7.js'
import type { Sql } from '../db/sql.js'
import { normalizeIdentity, type Identity } from '../contacts/identity.js'
import { flushPending, identityLockKeys, resolveContacts } from './contact-resolver.js'
import { chainHash, GENESIS, isoString, type HashableEvent } from './hash-chain.js'
import { PROJECTION_WRITE, recomputeProjection } from './projection.js'
import { beats, beatsSql, stateColumns } from './ordering.js'
import { parseDateTime } from '../input/date-time.js'
import { findUnstorable, MAX_DEPTH } from '../input/storable.js'
import {
  METHODS,
  OVERRIDE_EVIDENCE_FIELDS,
  PERSON_INITIATED,
  SOURCES,
  type AppendContext,
  type AppendItem,
  type EventType,
  type ItemResult,
  type RejectCode,
} from './types.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
/** DESIGN §1: occurred_at more than 5 minutes in the future is rejected. */
const MAX_FUTURE_MS = 5 * 60 * 1000
const EVIDENCE_MAX_BYTES = 16 * 1024

export interface LedgerHooks {
  /** Called after the append's (outermost) transaction commits, with its events per source (metrics). */
  onAppended?: (counts: Map<string, number>) => void
}

/** Who asked for an event: recorded on it (and hashed). One per append unit (request). */
interface Origin {
  actor: string
  request_id: string | null
  idempotency_key: string | null
}

interface Candidate {
  index: number
  origin: Origin
  identifyOnly: boolean
  identities: Identity[]
  contactId?: string
  groupId: string
  state: 'subscribed' | 'unsubscribed'
  occurredAt: Date
  source: string
  method: string | null
  evidence: Record<string, unknown>
  dedupeKey?: string
  platformStop?: { action: 'stop' | 'resume'; phoneNumberId: string }
  attributes?: Record<string, string>
}

interface PendingEvent extends HashableEvent {
  id: string
  prev_hash: string
  hash: string
}

/** The row of ledger_prepare (migration 0009). */
interface Prepared {
  live: string[]
  archived: string[]
  require_evidence: boolean | null
  /** [type, value, owner contact, the external_id that owner holds] per identity found. */
  owners: [string, string, string, string | null][] | null
  /** [contact, chain head, chain length, merged] of the owners and the direct contacts, locked. */
  heads: [string, string | null, number, boolean][] | null
  seen: [string, string | null][] | null
  cur_states: [string, string, string, string, string, string][] | null
  ids: string[]
  now: Date
}

interface CurrentState {
  state: string
  occurredAt: Date
  seq: bigint
  source: string
}

/** Elements a PostgreSQL array literal can hold unquoted: ids, hashes, enums, numbers, ISO times. */
const TOKEN = /^[\w.:+-]+$/

/**
 * The array as a PostgreSQL array literal, built directly when every element is such a token;
 * anything else is returned as is, for node-postgres to quote and escape element by element (its
 * escaping was ~9% of node's time on a 75-object /users/track).
 */
export function tokenArray(values: readonly unknown[]): string | readonly unknown[] {
  let out = '{'
  for (let i = 0; i < values.length; i++) {
    const v = values[i]
    if (i > 0) out += ','
    if (v === null || v === undefined) out += 'NULL'
    else {
      const t = String(v)
      // (unquoted NULL, in any case, would read as a null element)
      if (!TOKEN.test(t) || (t.length === 4 && t.toUpperCase() === 'NULL')) return values
      out += t
    }
  }
  return out + '}'
}

const reject = (code: RejectCode, message: string, pointer?: string): ItemResult => ({ status: 'rejected', code, message, pointer })

function hasOverrideEvidence(c: Candidate): boolean {
  if (!c.method) return false
  return OVERRIDE_EVIDENCE_FIELDS.some((f) => {
    const v = c.evidence[f]
    return typeof v === 'string' ? v.trim().length > 0 : v !== undefined && v !== null
  })
}

function toDate(v: Date | string | undefined, fallback: Date): Date | null {
  if (v === undefined) return fallback
  // Strings: strict RFC 3339 with calendar and range checks (2026-02-30 and year 0000 refused).
  const d = v instanceof Date ? v : parseDateTime(v)
  if (d === null || Number.isNaN(d.getTime())) return null
  // Stored and hashed with millisecond precision.
  return new Date(Math.floor(d.getTime()))
}

/** Pure validation of one item. */
function validate(item: AppendItem, index: number, receivedAt: Date, origin: Origin, memo: Map<string, string | null>): Candidate | ItemResult {
  if (!SOURCES.includes(item.source)) return reject('invalid_source', `unknown source ${JSON.stringify(item.source)}`)
  if (item.identifyOnly) {
    const ids = validateIdentities(item, memo)
    if (!Array.isArray(ids)) return ids
    return { index, origin, identifyOnly: true, identities: ids, groupId: '', state: 'subscribed', occurredAt: receivedAt, source: item.source, method: null, evidence: {} }
  }
  if (typeof item.subscriptionGroupId !== 'string' || !UUID.test(item.subscriptionGroupId)) {
    return reject('unknown_subscription_group', 'subscription_group_id is not a known subscription group', '/subscription_group_id')
  }
  if (item.state !== 'subscribed' && item.state !== 'unsubscribed') {
    return reject('invalid_state', 'state must be "subscribed" or "unsubscribed"', '/state')
  }
  const occurredAt = toDate(item.occurredAt, receivedAt)
  if (!occurredAt) return reject('invalid_occurred_at', 'occurred_at must be an RFC 3339 date-time', '/occurred_at')
  if (occurredAt.getTime() > Date.now() + MAX_FUTURE_MS) {
    return reject('occurred_at_in_future', 'occurred_at is more than 5 minutes in the future', '/occurred_at')
  }
  const method = item.method ?? null
  if (method !== null && !(METHODS as readonly string[]).includes(method)) {
    return reject('invalid_method', `method must be one of ${METHODS.join(', ')}`, '/method')
  }
  let evidence = item.evidence ?? {}
  if (typeof evidence !== 'object' || evidence === null || Array.isArray(evidence)) {
    return reject('invalid_evidence', 'evidence must be a JSON object', '/evidence')
  }
  // Before stringifying: a hostile depth must not reach recursive code. NUL and unpaired surrogates
  // are refused, not repaired, so the hash covers exactly what jsonb stores (docs/input-rules.md).
  const unstorable = findUnstorable(evidence, '/evidence', MAX_DEPTH, 1)[0]
  if (unstorable) return reject('invalid_evidence', `evidence ${unstorable.message}`, unstorable.pointer)
  // A platform stop's business number is part of the hashed event (evidence.phone_number_id): the
  // platform_stops projection is rebuilt from the ledger alone (projection.ts).
  if (item.platformStop) {
    const n = (evidence as Record<string, unknown>).phone_number_id
    if (n !== undefined && n !== item.platformStop.phoneNumberId) {
      return reject('invalid_evidence', 'evidence.phone_number_id must be the number of the platform stop', '/evidence/phone_number_id')
    }
    if (n === undefined) evidence = { ...evidence, phone_number_id: item.platformStop.phoneNumberId }
  }
  const evidenceJson = JSON.stringify(evidence)
  if (evidenceJson.length > EVIDENCE_MAX_BYTES) {
    return reject('invalid_evidence', `evidence must be at most ${EVIDENCE_MAX_BYTES} bytes of JSON`, '/evidence')
  }
  const identities = validateIdentities(item, memo)
  if (!Array.isArray(identities)) return identities
  return {
    index,
    origin,
    identifyOnly: false,
    identities,
    contactId: item.contactId,
    groupId: item.subscriptionGroupId.toLowerCase(),
    state: item.state as Candidate['state'],
    occurredAt,
    source: item.source,
    method,
    evidence: JSON.parse(evidenceJson) as Record<string, unknown>,
    dedupeKey: item.dedupeKey,
    platformStop: item.platformStop,
    attributes: item.attributes,
  }
}

/** `memo`: normalized values of the batch by type and raw value (phone parsing is the costly part,
 * and the items of one object or one signal repeat the same identities). */
function validateIdentities(item: AppendItem, memo: Map<string, string | null>): Identity[] | ItemResult {
  const identities: Identity[] = []
  if (item.contactId !== undefined) return UUID.test(item.contactId) ? identities : reject('unknown_contact', 'contact not found')
  const raw = item.identities ?? []
  if (raw.length === 0) return reject('missing_identity', 'one of external_id, phone or bsuid is required')
  for (const r of raw) {
    let value: string | null | undefined
    const unverified = r.unverified === true
    if (typeof r.value !== 'string') value = normalizeIdentity(r.type, r.value)
    else {
      const k = `${r.type}${unverified ? '?' : ''}\u0000${r.value}`
      value = memo.get(k)
      if (value === undefined) memo.set(k, (value = normalizeIdentity(r.type, r.value, unverified)))
    }
    if (value === null) {
      return r.type === 'phone'
        ? reject('invalid_phone', `phone ${JSON.stringify(r.value)} is not a valid phone number`, '/phone')
        : reject('invalid_identity', `${r.type} ${JSON.stringify(r.value)} is not valid`, `/${r.type}`)
    }
    if (!identities.some((i) => i.type === r.type && i.value === value)) identities.push({ type: r.type, value })
  }
  return identities
}

/** An append validated ahead of its transaction (validateUnits); opaque to callers. */
export interface ValidatedAppend {
  readonly workspaceId: string
  readonly units: AppendUnit[]
  readonly offsets: number[]
  readonly validated: (ItemResult | undefined)[]
  readonly candidates: Candidate[]
  readonly origins: Origin[]
}

/** The items of one request and who sent them. */
export interface AppendUnit {
  ctx: AppendContext
  items: AppendItem[]
}

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

export function createLedger(hooks: LedgerHooks = {}) {
  async function append(sql: Sql, ctx: AppendContext, items: AppendItem[]): Promise<ItemResult[]> {
    return (await appendUnits(sql, [{ ctx, items }]))[0]!
  }

  /**
   * The items of several requests of ONE workspace in one append (group commit): each item keeps
   * its request's actor, request id, idempotency key and receipt time; results come back per
   * unit. Throws SplitRequired if the batch merges or moves contacts and holds more than one unit.
   */
  async function appendUnits(sql: Sql, units: AppendUnit[]): Promise<ItemResult[][]> {
    return appendValidated(sql, validateUnits(units))
  }

  /**
   * The validation of an append (shapes, identities, phone numbers, times), which reads nothing:
   * an import validates its next batch with this while the current batch's statements run, and
   * hands it to appendValidated in the next transaction.
   */
  function validateUnits(units: AppendUnit[]): ValidatedAppend {
    const workspaceId = units[0]!.ctx.workspaceId
    if (units.some((u) => u.ctx.workspaceId !== workspaceId)) throw new Error('appendUnits: every unit must be of one workspace')
    const offsets: number[] = []
    const total = units.reduce((n, u) => (offsets.push(n), n + u.items.length), 0)
    const validated: (ItemResult | undefined)[] = new Array(total)
    const candidates: Candidate[] = []
    const memo = new Map<string, string | null>()
    const origins = units.map((u): Origin => ({ actor: u.ctx.actor, request_id: u.ctx.requestId ?? null, idempotency_key: u.ctx.idempotencyKey ?? null }))
    units.forEach((u, k) => {
      const receivedAt = new Date(Math.floor((u.ctx.receivedAt ?? new Date()).getTime()))
      u.items.forEach((item, i) => {
        const v = validate(item, offsets[k]! + i, receivedAt, origins[k]!, memo)
        if ('status' in v) validated[offsets[k]! + i] = v
        else candidates.push(v)
      })
    })
    return { workspaceId, units, offsets, validated, candidates, origins }
  }

  async function appendValidated(sql: Sql, v: ValidatedAppend): Promise<ItemResult[][]> {
    const { workspaceId, units, offsets, validated, candidates, origins } = v
    const split = (flat: (ItemResult | undefined)[]) =>
      units.map((u, k) =>
        flat
          .slice(offsets[k]!, offsets[k]! + u.items.length)
          .map((r) => r ?? ({ status: 'rejected', code: 'invalid_state', message: 'not processed' } as ItemResult)),
      )
    if (candidates.length === 0) return split(validated)

    let results = validated
    let counts = new Map<string, number>()
    const run = async (tx: Sql) => {
      // ONE statement reads everything the append needs before it writes (migration 0009,
      // ledger_prepare): the identities' advisory locks, the batch's groups and the workspace's
      // evidence setting, each identity's owner, the chain heads of those owners and of the
      // contacts named directly (locked FOR UPDATE, in id order), then, after those locks, the
      // exactly-once keys already seen, the current winners of (contact, group), ledger ids (one
      // per consent item before deduplication: a duplicate or a rejected item leaves a gap, as a
      // rollback does) and the recording time. Round trips, not rows, are the cost of a small
      // append: this was four statements. The same statement marks the transaction as the
      // ledger's write path: consent_state and platform_stops refuse every other writer
      // (migration 0019, docs/audit.md).
      const groupIds = [...new Set(candidates.filter((c) => !c.identifyOnly).map((c) => c.groupId))]
      const byIdentityAll = candidates.filter((c) => c.contactId === undefined)
      const allIdentities = byIdentityAll.flatMap((c) => c.identities)
      // Each identity once per group its items name (null when none): prepare reads the projection
      // rows of exactly the (owner, group) pairs the batch names, not every owner x every group.
      const probes = new Map<string, { type: string; value: string; groups: Set<string | null> }>()
      for (const c of byIdentityAll) {
        for (const i of c.identities) {
          const k = `${i.type}\u0000${i.value}`
          const p = probes.get(k) ?? probes.set(k, { type: i.type, value: i.value, groups: new Set() }).get(k)!
          p.groups.add(c.identifyOnly ? null : c.groupId)
        }
      }
      const probeRows = [...probes.values()].flatMap((p) =>
        [...p.groups].filter((g) => g !== null || p.groups.size === 1).map((g) => ({ type: p.type, value: p.value, group: g })),
      )
      const direct0 = candidates.filter((c) => c.contactId !== undefined)
      const [pre] = await tx.query<Prepared>(
        `SELECT p.* FROM ledger_prepare($1, $2::uuid[], $3::text[], $4::text[], $5::text[], $6::uuid[], $7::uuid[], $8::uuid[], $9::text[], $10::int) AS p
           CROSS JOIN set_config('${PROJECTION_WRITE}', 'on', true)`,
        [
          workspaceId,
          tokenArray(groupIds),
          tokenArray(identityLockKeys(workspaceId, allIdentities)),
          tokenArray(probeRows.map((r) => r.type)),
          tokenArray(probeRows.map((r) => r.value)),
          tokenArray(probeRows.map((r) => r.group)),
          tokenArray(direct0.map((c) => c.contactId!.toLowerCase())),
          tokenArray(direct0.map((c) => (c.identifyOnly ? null : c.groupId))),
          tokenArray([...new Set(candidates.filter((c) => c.dedupeKey !== undefined).map((c) => c.dedupeKey!))]),
          candidates.filter((c) => !c.identifyOnly).length,
        ],
        'ledger-prepare',
      )
      const groupById = new Map<string, { archived: boolean }>()
      for (const id of pre!.live) groupById.set(id, { archived: false })
      for (const id of pre!.archived) groupById.set(id, { archived: true })
      const requireEvidence = pre!.require_evidence ?? true

      let live = candidates.filter((c) => {
        if (c.identifyOnly) return true
        const g = groupById.get(c.groupId)
        if (!g) results[c.index] = reject('unknown_subscription_group', `subscription group ${c.groupId} does not exist`, '/subscription_group_id')
        else if (g.archived) results[c.index] = reject('archived_subscription_group', `subscription group ${c.groupId} is archived`, '/subscription_group_id')
        return !!g && !g.archived
      })

      // Contacts: given directly (admin) or resolved from identities (with the owners just read).
      const byIdentity = live.filter((c) => c.contactId === undefined)
      const resolution = await resolveContacts(
        tx,
        workspaceId,
        byIdentity.map((c) => c.identities),
        (pre!.owners ?? []).map(([type, value, contact_id, ext]) => ({ type, value, contact_id, ext })),
      )
      // A merge or a move (rare) changed which contacts the batch touches: read heads, keys and
      // projection again for the contacts that resulted. Otherwise prepare's reads stand.
      const reshaped = resolution.events.length > 0 || resolution.survivors.length > 0
      if (resolution.events.length > 0 && units.length > 1) throw new SplitRequired()
      const contactOf = new Map<Candidate, string>()
      byIdentity.forEach((c, i) => contactOf.set(c, resolution.contactIds[i]!))
      const direct = live.filter((c) => c.contactId !== undefined)
      if (direct.length > 0) {
        const ok = new Set<string>()
        if (reshaped) {
          const rows = await tx.query<{ id: string }>(
            `SELECT id FROM contacts WHERE workspace_id = $1 AND id = ANY($2::uuid[]) AND merged_into IS NULL`,
            [workspaceId, direct.map((c) => c.contactId!.toLowerCase())],
          )
          for (const r of rows) ok.add(r.id)
        } else {
          for (const [id, , , merged] of pre!.heads ?? []) if (!merged) ok.add(id)
        }
        for (const c of direct) {
          const id = c.contactId!.toLowerCase()
          if (ok.has(id)) contactOf.set(c, id)
          else results[c.index] = reject('unknown_contact', 'contact not found')
        }
        live = live.filter((c) => contactOf.has(c))
      }
      if (resolution.survivors.length > 0) await recomputeProjection(tx, workspaceId, resolution.survivors)
      live = live.filter((c) => {
        if (!c.identifyOnly) return true
        results[c.index] = { status: 'resolved', contact_id: contactOf.get(c)! }
        return false
      })

      // Every existing contact whose chain we extend is locked (by prepare, or here after a merge
      // or move, in id order: no deadlocks between batches). Contacts created by this batch are
      // not written yet (nobody else can see them). The merge path's statements (here and below)
      // are unnamed, so planned at each call with the tables' current sizes: merges are rare, and
      // a named statement kept the plan of its connection's first merge (on a young database, a
      // scan of every contact, state and key; test/ledger/plan-stability.test.ts).
      const created = new Set(resolution.pending.contacts)
      const chainContacts = [...new Set([...contactOf.values(), ...resolution.events.map((e) => e.contact_id)])]
        .filter((id) => !created.has(id))
        .sort()
      const heads = !reshaped
        ? (pre!.heads ?? []).map(([id, chain_head, chain_length]) => ({ id, chain_head, chain_length }))
        : chainContacts.length === 0
          ? []
          : await tx.query<{ id: string; chain_head: string | null; chain_length: number }>(
              `SELECT id, chain_head, chain_length FROM contacts WHERE workspace_id = $1 AND id = ANY($2::uuid[]) ORDER BY id FOR UPDATE`,
              [workspaceId, chainContacts],
            )
      const head = new Map(heads.map((h) => [h.id, { hash: h.chain_head ?? GENESIS, length: Number(h.chain_length) }]))

      const allocCount = live.length + resolution.events.length
      if (allocCount === 0) {
        await flushPending(tx, workspaceId, resolution.pending)
        return
      }
      const keyed = live.filter((c) => c.dedupeKey !== undefined)
      const existing = live.filter((c) => !created.has(contactOf.get(c)!))
      // After a merge or move only: the after-lock reads of prepare (step e) again, for the
      // contacts that resulted (per-key primary-key probes, see contact-resolver.ts).
      const after: Pick<Prepared, 'now' | 'ids' | 'seen' | 'cur_states'> = !reshaped
        ? pre!
        : (
            await tx.query<Pick<Prepared, 'now' | 'ids' | 'seen' | 'cur_states'>>(
              `SELECT date_trunc('milliseconds', clock_timestamp()) AS now,
                      ARRAY(SELECT nextval('consent_events_id_seq')::text FROM generate_series(1, $1::int)) AS ids,
                      (SELECT json_agg(json_build_array(q.key, d.event_id))
                         FROM unnest($3::text[]) AS q(key)
                        CROSS JOIN LATERAL (SELECT d.event_id FROM ledger_dedupe d WHERE d.workspace_id = $2 AND d.key = q.key LIMIT 1) d) AS seen,
                      (SELECT json_agg(json_build_array(q.c, q.g, s.state, s.occurred_at, s.event_seq::text, s.source))
                         FROM unnest($4::uuid[], $5::uuid[]) AS q(c, g)
                        CROSS JOIN LATERAL (SELECT s.state, s.occurred_at, s.event_seq, s.source FROM consent_state s
                                             WHERE s.workspace_id = $2 AND s.contact_id = q.c AND s.subscription_group_id = q.g LIMIT 1) s) AS cur_states`,
              [allocCount, workspaceId, keyed.map((c) => c.dedupeKey!), existing.map((c) => contactOf.get(c)!), existing.map((c) => c.groupId)],
            )
          )[0]!

      if (keyed.length > 0) {
        const seenMap = new Map(after.seen ?? [])
        const inBatch = new Set<string>()
        live = live.filter((c) => {
          if (c.dedupeKey === undefined) return true
          if (seenMap.has(c.dedupeKey) || inBatch.has(c.dedupeKey)) {
            results[c.index] = { status: 'duplicate', event_id: seenMap.get(c.dedupeKey) ?? undefined, contact_id: contactOf.get(c) }
            return false
          }
          inBatch.add(c.dedupeKey)
          return true
        })
      }
      const current = new Map<string, CurrentState>()
      for (const [contactId, groupId, state, occurredAt, seq, source] of after.cur_states ?? []) {
        current.set(`${contactId}/${groupId}`, { state, occurredAt: new Date(occurredAt), seq: BigInt(seq), source })
      }
      const recordedAt = new Date(after.now)
      const ids = after.ids.map(String)
      let next = 0
      const events: PendingEvent[] = []
      const base = { workspace_id: workspaceId, recorded_at: recordedAt }
      const push = (
        contactId: string,
        origin: Origin,
        e: Omit<HashableEvent, keyof typeof base | keyof Origin | 'contact_id' | 'event_id'>,
      ): PendingEvent => {
        const h = head.get(contactId) ?? { hash: GENESIS, length: 0 }
        // One object of one fixed shape (spreads of two 5- and 10-key objects, twice per event,
        // were the largest single JS cost of an import batch).
        const ev: PendingEvent = {
          id: ids[next++]!,
          event_id: uuidv7(),
          workspace_id: base.workspace_id,
          contact_id: contactId,
          type: e.type,
          subscription_group_id: e.subscription_group_id,
          state: e.state,
          occurred_at: e.occurred_at,
          recorded_at: base.recorded_at,
          source: e.source,
          method: e.method,
          evidence: e.evidence,
          identity_type: e.identity_type,
          identity_value: e.identity_value,
          actor: origin.actor,
          request_id: origin.request_id,
          idempotency_key: origin.idempotency_key,
          platform_stop: e.platform_stop,
          prev_hash: h.hash,
          hash: '',
        }
        const hash = chainHash(h.hash, ev)
        ev.hash = hash
        head.set(contactId, { hash, length: h.length + 1 })
        events.push(ev)
        counts.set(e.source, (counts.get(e.source) ?? 0) + 1)
        return ev
      }

      // Identity events first: the chain shows the merge before the consents that follow it.
      // (Only an append of one unit gets here with identity events: see SplitRequired.)
      for (const e of resolution.events) {
        push(e.contact_id, origins[0]!, {
          type: e.type as EventType,
          subscription_group_id: null,
          state: null,
          occurred_at: recordedAt,
          source: 'merge',
          method: null,
          evidence: e.evidence,
          identity_type: e.identity_type,
          identity_value: e.identity_value,
          platform_stop: null,
        })
      }

      // Consent events, in input order; the sticky rule sees earlier items of the same batch.
      const winners = new Map<string, { ev: PendingEvent; c: Candidate }>()
      const dedupeRows: { key: string; eventId: string }[] = []
      const stops: { contactId: string; phoneNumberId: string; stopped: boolean; occurredAt: Date; eventId: string }[] = []
      /** Attributes of applied items per contact, input order (later wins). */
      const attrs = new Map<string, Record<string, string>>()
      for (const c of live) {
        const contactId = contactOf.get(c)!
        const pair = `${contactId}/${c.groupId}`
        const cur = current.get(pair)
        const seq = BigInt(ids[next]!)
        const wouldWin = !cur || beats({ occurredAt: c.occurredAt, state: c.state, seq }, cur)
        if (
          requireEvidence &&
          wouldWin &&
          cur &&
          c.state === 'subscribed' &&
          cur.state === 'unsubscribed' &&
          PERSON_INITIATED.has(cur.source) &&
          !PERSON_INITIATED.has(c.source) &&
          !hasOverrideEvidence(c)
        ) {
          results[c.index] = reject(
            'evidence_required',
            'the person opted out themselves; an opt-in that overrides it needs `method` and one of evidence.consent_text, document_ref, page_url or ip',
          )
          continue
        }
        const ev = push(contactId, c.origin, {
          type: 'consent',
          subscription_group_id: c.groupId,
          state: c.state,
          occurred_at: c.occurredAt,
          source: c.source,
          method: c.method,
          evidence: c.evidence,
          identity_type: c.identities[0]?.type ?? null,
          identity_value: c.identities[0]?.value ?? null,
          platform_stop: c.platformStop?.action ?? null,
        })
        if (wouldWin) {
          current.set(pair, { state: c.state, occurredAt: c.occurredAt, seq, source: c.source })
          winners.set(pair, { ev, c })
        }
        if (c.dedupeKey !== undefined) dedupeRows.push({ key: c.dedupeKey, eventId: ev.event_id })
        if (c.attributes) {
          const a = attrs.get(contactId)
          if (a) Object.assign(a, c.attributes)
          else attrs.set(contactId, { ...c.attributes })
        }
        if (c.platformStop) {
          stops.push({
            contactId,
            phoneNumberId: c.platformStop.phoneNumberId,
            stopped: c.platformStop.action === 'stop',
            occurredAt: c.occurredAt,
            eventId: ev.event_id,
          })
        }
        results[c.index] = { status: 'applied', event_id: ev.event_id, contact_id: contactId, changed: wouldWin && cur?.state !== c.state }
      }
      if (events.length === 0) {
        // Nothing applied: no chain head and no attributes to write with the new contacts.
        await flushPending(tx, workspaceId, resolution.pending)
        return
      }

      // Every write of the append in ONE statement (data-modifying CTEs; the reference triggers of
      // migration 0008 run at its end and see all of it):
      // - new contacts with their final chain head and attributes, then their identities;
      // - exactly-once keys (checked above under the contact locks; a unique violation here means a
      //   concurrent writer with the same key on another contact won, and this batch retries);
      // - the events;
      // - chain heads (and attributes) of the existing contacts;
      // - the projection, by the ordering rule (the guard in WHERE keeps the rule even if the
      //   projection moved since we read it);
      // - platform stops: the latest Meta signal per (contact, number) wins; an equal-time stop
      //   beats a resume.
      const newContacts = resolution.pending.contacts.splice(0)
      const newIdentities = resolution.pending.identities.splice(0)
      const locked = new Set(chainContacts)
      const touched = [...head.entries()].filter(([id]) => locked.has(id))
      const w = [...winners.values()]
      const col = <K extends keyof PendingEvent>(k: K) => events.map((e) => e[k])
      // Only the parts this append has rows for: starting the executor on a plan costs more than
      // running it for one row (perf: ExecInitModifyTable and ExecInitFunctionScan were ~12% of
      // PostgreSQL's time on a one-object /users/track), and most appends have no exactly-once
      // keys, no platform stops, and either new or existing contacts. One prepared statement per
      // combination of its parts (c i d m h n p s: at most 2^8), named by it.
      const params: unknown[] = [workspaceId]
      const $ = (v: unknown) => (params.push(v), `$${params.length}`)
      /** An array of tokens (see tokenArray). */
      const $t = (v: readonly unknown[]) => $(tokenArray(v))
      const parts: string[] = []
      let shape = ''
      if (newContacts.length > 0) {
        shape += 'c'
        parts.push(`new_contacts AS (
           INSERT INTO contacts (workspace_id, id, chain_head, chain_length, attributes)
           SELECT $1, x.id, x.h, x.n, COALESCE(x.a::jsonb, '{}'::jsonb)
             FROM unnest(${$t(newContacts)}::uuid[], ${$t(newContacts.map((id) => (head.get(id)?.length ? head.get(id)!.hash : null)))}::text[],
                         ${$t(newContacts.map((id) => head.get(id)?.length ?? 0))}::int[],
                         ${$(
                           newContacts.map((id) => {
                             const a = attrs.get(id)
                             if (!a) return null
                             attrs.delete(id) // written here, not by the UPDATE of heads
                             return JSON.stringify(a)
                           }),
                         )}::text[]) AS x(id, h, n, a))`)
      }
      if (newIdentities.length > 0) {
        shape += 'i'
        parts.push(`new_identities AS (
           INSERT INTO identities (workspace_id, type, value, contact_id)
           SELECT $1, x.t, x.v, x.c
             FROM unnest(${$t(newIdentities.map((i) => i.type))}::text[], ${$(newIdentities.map((i) => i.value))}::text[],
                         ${$t(newIdentities.map((i) => i.contact))}::uuid[]) AS x(t, v, c))`)
      }
      if (dedupeRows.length > 0) {
        shape += 'd'
        parts.push(`dedupe AS (
           INSERT INTO ledger_dedupe (workspace_id, key, event_id)
           SELECT $1, x.k, x.e FROM unnest(${$(dedupeRows.map((d) => d.key))}::text[], ${$t(dedupeRows.map((d) => d.eventId))}::uuid[]) AS x(k, e))`)
      }
      // Who asked: constants when the append is one request's, per event when several share it.
      const oneOrigin = events.every((e) => e.actor === events[0]!.actor && e.request_id === events[0]!.request_id && e.idempotency_key === events[0]!.idempotency_key)
      const originCols = oneOrigin
        ? `${$(events[0]!.actor)}::text, ${$(events[0]!.request_id)}::text, ${$(events[0]!.idempotency_key)}::text`
        : 'x.actor, x.request_id, x.idempotency_key'
      const originArrays = oneOrigin ? '' : `, ${$(col('actor'))}::text[], ${$(col('request_id'))}::text[], ${$(col('idempotency_key'))}::text[]`
      if (!oneOrigin) shape += 'm'
      parts.push(`events AS (
           INSERT INTO consent_events (workspace_id, id, event_id, contact_id, type, subscription_group_id, state, occurred_at,
                                       recorded_at, source, method, evidence, identity_type, identity_value, actor, request_id,
                                       idempotency_key, platform_stop, prev_hash, hash)
           SELECT $1, x.id, x.event_id, x.contact_id, x.type, x.gid, x.state, x.occurred_at, ${$(isoString(recordedAt))}, x.source, x.method,
                  x.evidence::jsonb, x.itype, x.ivalue, ${originCols}, x.pstop,
                  x.prev_hash, x.hash
             FROM unnest(${$t(col('id'))}::bigint[], ${$t(col('event_id'))}::uuid[], ${$t(col('contact_id'))}::uuid[], ${$t(col('type'))}::text[],
                         ${$t(col('subscription_group_id'))}::uuid[], ${$t(col('state'))}::text[],
                         ${$t(events.map((e) => isoString(e.occurred_at)))}::timestamptz[], ${$t(col('source'))}::text[], ${$t(col('method'))}::text[],
                         ${$(events.map((e) => JSON.stringify(e.evidence)))}::text[], ${$t(col('identity_type'))}::text[],
                         ${$(col('identity_value'))}::text[], ${$t(col('platform_stop'))}::text[], ${$t(col('prev_hash'))}::text[], ${$t(col('hash'))}::text[]${originArrays})
               AS x(id, event_id, contact_id, type, gid, state, occurred_at, source, method, evidence, itype, ivalue, pstop, prev_hash, hash${oneOrigin ? '' : ', actor, request_id, idempotency_key'})${w.length > 0 ? '\n           RETURNING id, contact_id, subscription_group_id, state, occurred_at, event_id, source' : ''})`)
      if (touched.length > 0) {
        shape += 'h'
        parts.push(`heads AS (
           UPDATE contacts c SET chain_head = v.h, chain_length = v.n, updated_at = now(),
                  attributes = CASE WHEN v.a IS NULL THEN c.attributes ELSE c.attributes || v.a::jsonb END
             FROM unnest(${$t(touched.map(([id]) => id))}::uuid[], ${$t(touched.map(([, h]) => h.hash))}::text[], ${$t(touched.map(([, h]) => h.length))}::int[],
                         ${$(touched.map(([id]) => (attrs.has(id) ? JSON.stringify(attrs.get(id)) : null)))}::text[]) AS v(id, h, n, a)
            WHERE c.workspace_id = $1 AND c.id = v.id AND (c.chain_length IS DISTINCT FROM v.n OR v.a IS NOT NULL))`)
      }
      // The projection rows of contacts this append creates are plain INSERTs: nobody else can have
      // written a row for a contact that is not committed yet, and a (contact, group) pair is one
      // winner. ON CONFLICT's speculative insertion cost ~5 us more per row (75 rows: 1,133 vs 1,500
      // us of PostgreSQL CPU per transaction), and a 75-object /users/track is mostly new people.
      // A winner's row is its event's columns, read back from the events' RETURNING by ledger id:
      // sent as seven arrays they were a quarter of a 75-object statement's 53 KB, and PostgreSQL's
      // parsing of them cost ~300 us per 75 rows (measured: a prepared SELECT casting the same arrays).
      const projectionCols = (rows: { ev: PendingEvent }[]) =>
        `SELECT $1, e.contact_id, e.subscription_group_id, e.state, e.occurred_at, e.id, e.event_id, e.source, now()
             FROM events e WHERE e.id = ANY(${$t(rows.map((x) => x.ev.id))}::bigint[])`
      const wNew = w.filter((x) => created.has(x.ev.contact_id))
      const wOld = wNew.length === 0 ? w : w.filter((x) => !created.has(x.ev.contact_id))
      if (wNew.length > 0) {
        shape += 'n'
        parts.push(`projection_new AS (
           INSERT INTO consent_state (workspace_id, contact_id, subscription_group_id, state, occurred_at, event_seq, event_id, source, updated_at)
           ${projectionCols(wNew)})`)
      }
      if (wOld.length > 0) {
        shape += 'p'
        parts.push(`projection AS (
           INSERT INTO consent_state AS s (workspace_id, contact_id, subscription_group_id, state, occurred_at, event_seq, event_id, source, updated_at)
           ${projectionCols(wOld)}
           ON CONFLICT (workspace_id, contact_id, subscription_group_id) DO UPDATE
              SET state = excluded.state, occurred_at = excluded.occurred_at, event_seq = excluded.event_seq,
                  event_id = excluded.event_id, source = excluded.source, updated_at = now()
            WHERE ${beatsSql(stateColumns('excluded'), stateColumns('s'))})`)
      }
      if (stops.length > 0) {
        shape += 's'
        parts.push(`stops AS (
           INSERT INTO platform_stops AS p (workspace_id, contact_id, phone_number_id, stopped, occurred_at, event_id, updated_at)
           SELECT DISTINCT ON (c, n) $1, c, n, s, o, e, now()
             FROM unnest(${$t(stops.map((s) => s.contactId))}::uuid[], ${$t(stops.map((s) => s.phoneNumberId))}::text[], ${$t(stops.map((s) => s.stopped))}::bool[],
                         ${$t(stops.map((s) => isoString(s.occurredAt)))}::timestamptz[], ${$t(stops.map((s) => s.eventId))}::uuid[])
                  WITH ORDINALITY AS x(c, n, s, o, e, ord)
            ORDER BY c, n, o DESC, s DESC, ord DESC
           ON CONFLICT (workspace_id, contact_id, phone_number_id) DO UPDATE
              SET stopped = excluded.stopped, occurred_at = excluded.occurred_at, event_id = excluded.event_id, updated_at = now()
            WHERE (excluded.occurred_at, excluded.stopped) >= (p.occurred_at, p.stopped))`)
      }
      // Nothing reads its answer: held back to go out with what follows it in the transaction, the
      // COMMIT or the caller's next statement, in one round trip (see Sql.queryLast).
      await tx.queryLast(`WITH ${parts.join(',\n         ')}\n         SELECT 1`, params, `ledger-write-${shape}`)
    }

    // Standalone, a batch that lost a race (deadlock, a concurrent identical dedupe key) is retried
    // from scratch; inside a caller's transaction the caller decides.
    for (let attempt = 1; ; attempt++) {
      results = [...validated]
      counts = new Map()
      try {
        await sql.tx(run)
        break
      } catch (err) {
        const code = (err as { code?: string }).code
        const retryable = code === '40P01' || code === '40001' || code === '23505'
        if (sql.inTransaction || !retryable || attempt >= 3) throw err
      }
    }
    // Counted once the events are durable: inside a caller's transaction (a shared group commit,
    // an Idempotency-Key request, an import batch) only if and when it commits.
    const appended = counts
    if (hooks.onAppended) sql.afterCommit(() => hooks.onAppended!(appended))
    return split(results)
  }

  return { append, appendUnits, validateUnits, appendValidated }
}

export type Ledger = ReturnType<typeof createLedger>
