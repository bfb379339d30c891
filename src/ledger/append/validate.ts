/**
 * Step 1 of an append: validation of each item (identities, group id, state, times, method,
 * evidence), which reads nothing. Invalid items are answered here (`rejected`, with a code); the
 * valid ones go on as candidates. Rules: docs/input-rules.md.
 */
import { normalizeIdentity, type Identity } from '../../contacts/identity.js'
import { parseDateTime } from '../../input/date-time.js'
import { findUnstorable, MAX_DEPTH } from '../../input/storable.js'
import type { Origin } from '../event.js'
import { METHODS, SOURCES, type AppendContext, type AppendItem, type ItemResult, type RejectCode } from '../types.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
/** occurred_at more than 5 minutes in the future is rejected (a sender whose clock runs a little ahead is tolerated). */
const MAX_FUTURE_MS = 5 * 60 * 1000
const EVIDENCE_MAX_BYTES = 16 * 1024

/** A valid item on its way through the append. */
export interface Candidate {
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

export const reject = (code: RejectCode, message: string, pointer?: string): ItemResult => ({ status: 'rejected', code, message, pointer })

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
 * The validation of an append (shapes, identities, phone numbers, times), which reads nothing:
 * an import validates its next batch with this while the current batch's statements run, and
 * hands it to appendValidated in the next transaction.
 */
export function validateUnits(units: AppendUnit[]): ValidatedAppend {
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

