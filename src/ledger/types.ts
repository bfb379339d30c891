/** Vocabulary of the ledger (docs/architecture.md). */
import type { IdentityType } from '../contacts/identity.js'

export const STATES = ['subscribed', 'unsubscribed'] as const
export type ConsentStateValue = (typeof STATES)[number]

export const SOURCES = [
  'api',
  'users_track',
  'inbound_keyword',
  'template_button',
  'meta_user_preferences',
  'meta_delivery_error',
  'csv_import',
  'admin',
  'merge',
] as const
export type Source = (typeof SOURCES)[number]

export const METHODS = [
  'web_form',
  'checkout',
  'sms',
  'whatsapp',
  'ivr',
  'paper',
  'pos',
  'qr_code',
  'email',
  'other',
] as const
export type Method = (typeof METHODS)[number]

/** Sources where the person acted themselves: their opt-outs are sticky (append/stickiness.ts). */
export const PERSON_INITIATED: ReadonlySet<string> = new Set([
  'inbound_keyword',
  'template_button',
  'meta_user_preferences',
  'meta_delivery_error',
])

/** Evidence fields that make an API/import opt-in strong enough to override a person's opt-out. */
export const OVERRIDE_EVIDENCE_FIELDS = ['consent_text', 'document_ref', 'page_url', 'ip'] as const

export type EventType = 'consent' | 'contact_merged' | 'contact_absorbed' | 'identity_moved_in' | 'identity_moved_out'

export interface RawIdentity {
  type: IdentityType
  value: string
  /**
   * A phone Meta vouches for (a WhatsApp wa_id): accepted as `+<digits>` when libphonenumber finds
   * it possible but not valid, so an opt-out is never dropped for a formatting reason.
   */
  unverified?: boolean
}

/** One change request for one person and one group: the input of `append`. */
export interface AppendItem {
  /** Identities shown together; the first is "the identity used" and names the contact on a move. */
  identities?: RawIdentity[]
  /** Direct contact reference (admin toggle); used instead of identities. */
  contactId?: string
  /** Resolve (create, merge, move) the contact only: no consent event (Braze attribute-only objects). */
  identifyOnly?: boolean
  subscriptionGroupId?: string
  state?: string
  occurredAt?: Date | string
  source: Source
  method?: string | null
  evidence?: Record<string, unknown>
  /** Exactly-once key within the workspace (WhatsApp message id, import row...). */
  dedupeKey?: string
  /** Meta's platform marketing stop for a business number (docs/webhook.md). */
  platformStop?: { action: 'stop' | 'resume'; phoneNumberId: string }
  /**
   * Contact attributes to set when the item is APPLIED (not when duplicate or rejected), written by
   * the same statement that writes the contact row anyway (its INSERT when the append creates it,
   * its chain-head UPDATE otherwise): `attributes || these`, later items of the batch winning.
   */
  attributes?: Record<string, string>
}

export interface AppendContext {
  workspaceId: string
  /** `key:<api key id>`, `meta-webhook`, `import:<id>`, `system`. */
  actor: string
  requestId?: string
  idempotencyKey?: string
  /** Receipt time: the default `occurred_at`. */
  receivedAt?: Date
}

export type ItemResult =
  | { status: 'applied'; event_id: string; contact_id: string; changed: boolean }
  | { status: 'duplicate'; event_id?: string; contact_id?: string }
  | { status: 'resolved'; contact_id: string }
  | { status: 'rejected'; code: RejectCode; message: string; pointer?: string }

export type RejectCode =
  | 'invalid_identity'
  | 'invalid_phone'
  | 'missing_identity'
  | 'unknown_subscription_group'
  | 'archived_subscription_group'
  | 'invalid_state'
  | 'invalid_occurred_at'
  | 'occurred_at_in_future'
  | 'invalid_method'
  | 'invalid_evidence'
  | 'evidence_required'
  | 'unknown_contact'
  | 'invalid_source'
