/**
 * The per-contact hash chain (DESIGN §1 "Tamper evidence"):
 *   hash = sha256_hex( prev_hash_hex || canonical_json(event_body) )
 * where prev_hash of a contact's first event is GENESIS (64 zeros), and `event_body` is the object
 * built by `hashBody` below: every recorded field of the event except `id`, `prev_hash` and `hash`.
 * Chains are per contact so writes for different contacts never wait on each other.
 */
import { createHash } from 'node:crypto'
import { canonicalJson } from './canonical-json.js'

export const GENESIS = '0'.repeat(64)

export interface HashableEvent {
  event_id: string
  workspace_id: string
  contact_id: string
  type: string
  subscription_group_id: string | null
  state: string | null
  occurred_at: Date
  recorded_at: Date
  source: string
  method: string | null
  evidence: Record<string, unknown>
  identity_type: string | null
  identity_value: string | null
  actor: string
  request_id: string | null
  idempotency_key: string | null
  platform_stop: string | null
}

/** The object whose canonical JSON is hashed (version 1 of the form). */
export function hashBody(e: HashableEvent): Record<string, unknown> {
  return {
    v: 1,
    event_id: e.event_id,
    workspace_id: e.workspace_id,
    contact_id: e.contact_id,
    type: e.type,
    subscription_group_id: e.subscription_group_id,
    state: e.state,
    occurred_at: e.occurred_at.toISOString(),
    recorded_at: e.recorded_at.toISOString(),
    source: e.source,
    method: e.method,
    evidence: e.evidence,
    identity_type: e.identity_type,
    identity_value: e.identity_value,
    actor: e.actor,
    request_id: e.request_id,
    idempotency_key: e.idempotency_key,
    platform_stop: e.platform_stop,
  }
}

export function chainHash(prevHash: string, e: HashableEvent): string {
  return createHash('sha256').update(prevHash).update(canonicalJson(hashBody(e))).digest('hex')
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
