/**
 * One ledger event as the Auditor API shows it: every recorded column, timestamps as RFC 3339 UTC
 * with milliseconds (exactly the strings the hash covers), `id` (the ledger id) as a decimal string.
 * The hash covers every field except `id`, `prev_hash` and `hash` (docs/audit.md, "What is chained").
 */
import type { HashableEvent } from '../ledger/hash-chain.js'

/** Columns selected for an event, from `consent_events e`. */
export const EVENT_COLUMNS = `e.id::text AS id, e.event_id, e.workspace_id, e.contact_id, e.type, e.subscription_group_id, e.state,
  e.occurred_at, e.recorded_at, e.source, e.method, e.evidence, e.identity_type, e.identity_value, e.actor,
  e.request_id, e.idempotency_key, e.platform_stop, e.prev_hash, e.hash`

export interface EventRow extends HashableEvent {
  id: string
  prev_hash: string
  hash: string
}

export interface AuditEvent {
  id: string
  event_id: string
  workspace_id: string
  contact_id: string
  type: string
  subscription_group_id: string | null
  state: string | null
  occurred_at: string
  recorded_at: string
  source: string
  method: string | null
  evidence: Record<string, unknown>
  identity_type: string | null
  identity_value: string | null
  actor: string
  request_id: string | null
  idempotency_key: string | null
  platform_stop: string | null
  prev_hash: string
  hash: string
}

/** Drivers hand back Date for timestamptz and an object for jsonb; normalise defensively. */
export function normalizeRow(r: EventRow): EventRow {
  if (!(r.occurred_at instanceof Date)) r.occurred_at = new Date(r.occurred_at as unknown as string)
  if (!(r.recorded_at instanceof Date)) r.recorded_at = new Date(r.recorded_at as unknown as string)
  if (typeof r.evidence === 'string') r.evidence = JSON.parse(r.evidence) as Record<string, unknown>
  return r
}

export function toAuditEvent(raw: EventRow): AuditEvent {
  const r = normalizeRow(raw)
  return {
    id: String(r.id),
    event_id: r.event_id,
    workspace_id: r.workspace_id,
    contact_id: r.contact_id,
    type: r.type,
    subscription_group_id: r.subscription_group_id,
    state: r.state,
    occurred_at: r.occurred_at.toISOString(),
    recorded_at: r.recorded_at.toISOString(),
    source: r.source,
    method: r.method,
    evidence: r.evidence,
    identity_type: r.identity_type,
    identity_value: r.identity_value,
    actor: r.actor,
    request_id: r.request_id,
    idempotency_key: r.idempotency_key,
    platform_stop: r.platform_stop,
    prev_hash: r.prev_hash,
    hash: r.hash,
  }
}
