/**
 * The per-contact hash chain (docs/audit.md):
 *   hash = sha256_hex( prev_hash_hex || canonical_json(event_body) )
 * where prev_hash of a contact's first event is GENESIS (64 zeros), and `event_body` is the object
 * built by `hashBody` below: every recorded field of the event (event.ts, EVENT_FIELDS) and `v`.
 * Chains are per contact so writes for different contacts never wait on each other.
 */
import * as crypto from 'node:crypto'
import { canonicalJson } from './canonical-json.js'
import { EVENT_FIELDS, type HashableEvent } from './event.js'

export type { HashableEvent }

export const GENESIS = '0'.repeat(64)

/** The object whose canonical JSON is hashed (version 1 of the form): v and every recorded field, times as ISO strings. */
export function hashBody(e: HashableEvent): Record<string, unknown> {
  const body: Record<string, unknown> = { v: 1 }
  for (const f of EVENT_FIELDS) {
    const value = e[f]
    body[f] = value instanceof Date ? value.toISOString() : value
  }
  return body
}

/**
 * `Date.prototype.toISOString`, remembered for the last two instants: the events of an append share
 * their recorded_at and mostly one occurred_at, and the ledger writes each of them twice per event
 * (hash, statement), while toISOString is a large share of hashing an event.
 */
const isoMemo = { t0: NaN, s0: '', t1: NaN, s1: '', next: 0 }
export function isoString(d: Date): string {
  const t = d.getTime()
  if (t === isoMemo.t0) return isoMemo.s0
  if (t === isoMemo.t1) return isoMemo.s1
  const s = d.toISOString()
  if (isoMemo.next === 0) (isoMemo.t0 = t), (isoMemo.s0 = s), (isoMemo.next = 1)
  else (isoMemo.t1 = t), (isoMemo.s1 = s), (isoMemo.next = 0)
  return s
}

/** Strings JSON.stringify writes as they are, between quotes (ids, enums, ISO times, actors). */
const PLAIN = /^[\w.:+@-]*$/

/** A string or null as canonical JSON writes it; undefined: the property is omitted. */
const field = (key: string, v: string | null | undefined): string =>
  v === undefined ? '' : v === null ? `,"${key}":null` : PLAIN.test(v) ? `,"${key}":"${v}"` : `,"${key}":${JSON.stringify(v)}`

/**
 * canonicalJson(hashBody(e)), written directly: the keys of the version-1 body in their sorted
 * order, only `evidence` through the generic canonicalJson. Byte-identical to the generic form
 * (a property test compares both); written out because the ledger hashes every event it appends,
 * and the generic walk is several times slower (docs/performance.md).
 */
export function canonicalBody(e: HashableEvent): string {
  // Sorted keys: actor contact_id event_id evidence idempotency_key identity_type identity_value method
  // occurred_at platform_stop recorded_at request_id source state subscription_group_id type v workspace_id
  const s =
    field('actor', e.actor) +
    field('contact_id', e.contact_id) +
    field('event_id', e.event_id) +
    (e.evidence === undefined ? '' : `,"evidence":${canonicalJson(e.evidence)}`) +
    field('idempotency_key', e.idempotency_key) +
    field('identity_type', e.identity_type) +
    field('identity_value', e.identity_value) +
    field('method', e.method) +
    `,"occurred_at":"${isoString(e.occurred_at)}"` +
    field('platform_stop', e.platform_stop) +
    `,"recorded_at":"${isoString(e.recorded_at)}"` +
    field('request_id', e.request_id) +
    field('source', e.source) +
    field('state', e.state) +
    field('subscription_group_id', e.subscription_group_id) +
    field('type', e.type) +
    ',"v":1' +
    field('workspace_id', e.workspace_id)
  return `{${s.slice(1)}}`
}

const sha256hex: (s: string) => string =
  typeof (crypto as { hash?: unknown }).hash === 'function'
    ? (s) => crypto.hash('sha256', s) // one-shot (Node >= 20.12)
    : (s) => crypto.createHash('sha256').update(s).digest('hex')

export function chainHash(prevHash: string, e: HashableEvent): string {
  // prev_hash is 64 hex characters: prefixing it to the UTF-8 text is the same byte stream.
  return sha256hex(prevHash + canonicalBody(e))
}

export interface ChainVerification {
  ok: boolean
  length: number
  head: string
  /** Index of the first event whose prev_hash or hash does not match. */
  brokenAt?: number
  reason?: string
}

/** Verify a contact's chain given its events in ledger order. */
export function verifyChain(events: (HashableEvent & { prev_hash: string; hash: string })[]): ChainVerification {
  let prev = GENESIS
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!
    if (e.prev_hash !== prev) return { ok: false, length: events.length, head: prev, brokenAt: i, reason: 'prev_hash mismatch' }
    const h = chainHash(prev, e)
    if (h !== e.hash) return { ok: false, length: events.length, head: prev, brokenAt: i, reason: 'hash mismatch' }
    prev = h
  }
  return { ok: true, length: events.length, head: prev }
}
