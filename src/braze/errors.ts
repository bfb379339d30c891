/**
 * Translation between the ledger's vocabulary and Braze's: reject codes → Braze error `type`s
 * (UPPER_SNAKE, Braze's own where Braze has one), and states → Braze's capitalised statuses.
 */
import type { ItemResult, RejectCode } from '../ledger/types.js'

export type Rejected = Extract<ItemResult, { status: 'rejected' }>

const TYPES: Record<RejectCode, string> = {
  unknown_subscription_group: 'BAD_SUBSCRIPTION_GROUP_ID',
  invalid_state: 'BAD_SUBSCRIPTION_GROUP_STATE',
  archived_subscription_group: 'ARCHIVED_SUBSCRIPTION_GROUP',
  invalid_phone: 'INVALID_PHONE',
  evidence_required: 'EVIDENCE_REQUIRED',
  invalid_occurred_at: 'INVALID_OCCURRED_AT',
  occurred_at_in_future: 'OCCURRED_AT_IN_FUTURE',
  invalid_method: 'INVALID_METHOD',
  invalid_evidence: 'INVALID_EVIDENCE',
  missing_identity: 'MISSING_IDENTIFIER',
  invalid_identity: 'INVALID_IDENTIFIER',
  unknown_contact: 'UNKNOWN_CONTACT',
  invalid_source: 'INVALID_SOURCE',
}

/** Braze error type of a rejected ledger item. */
export function brazeType(r: Rejected): string {
  if (r.code === 'invalid_identity') {
    // The ledger names the identity in its pointer (/external_id, /bsuid).
    if (r.pointer === '/external_id') return 'INVALID_EXTERNAL_ID'
    if (r.pointer === '/bsuid') return 'INVALID_BSUID'
  }
  return TYPES[r.code] ?? r.code.toUpperCase()
}

/**
 * Codes about the subscription-group part of a change (group, state, time, method, evidence), as
 * opposed to the person (identity, sticky opt-out): they are the same for every identifier sent
 * with that group, so the status routes report them once per group rather than once per identifier.
 */
export const GROUP_LEVEL_CODES: ReadonlySet<RejectCode> = new Set<RejectCode>([
  'unknown_subscription_group',
  'archived_subscription_group',
  'invalid_state',
  'invalid_occurred_at',
  'occurred_at_in_future',
  'invalid_method',
  'invalid_evidence',
])

export function toBrazeStatus(state: string | null | undefined): 'Subscribed' | 'Unsubscribed' | 'Unknown' {
  return state === 'subscribed' ? 'Subscribed' : state === 'unsubscribed' ? 'Unsubscribed' : 'Unknown'
}
