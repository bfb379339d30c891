/**
 * The consent ledger's event: its recorded fields, declared once. The hash body (hash-chain.ts)
 * and the append's INSERT (append/statement.ts) are both derived from EVENT_FIELDS, so a field
 * cannot be stored without being hashed, or hashed without being stored.
 */
import type { EventType } from './types.js'

/** Every recorded field of an event except its ledger id and chain links (id, prev_hash, hash). */
export const EVENT_FIELDS = [
  'event_id',
  'workspace_id',
  'contact_id',
  'type',
  'subscription_group_id',
  'state',
  'occurred_at',
  'recorded_at',
  'source',
  'method',
  'evidence',
  'identity_type',
  'identity_value',
  'actor',
  'request_id',
  'idempotency_key',
  'platform_stop',
] as const

export type EventField = (typeof EVENT_FIELDS)[number]

/** An event's recorded fields: what is hashed. */
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

/** An event with its ledger id and its place in its contact's chain: a row of consent_events. */
export interface ChainedEvent extends HashableEvent {
  id: string
  prev_hash: string
  hash: string
}

/** Who asked for an event: recorded on it (and hashed). One per append unit (request). */
export interface Origin {
  actor: string
  request_id: string | null
  idempotency_key: string | null
}

/** What an event says, apart from who asked, where it sits and when it was recorded. */
export interface EventBody {
  type: EventType
  subscription_group_id: string | null
  state: string | null
  occurred_at: Date
  source: string
  method: string | null
  evidence: Record<string, unknown>
  identity_type: string | null
  identity_value: string | null
  platform_stop: string | null
}
