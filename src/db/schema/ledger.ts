/**
 * The ledger (append-only consent events and its dedupe keys) and its projection (consent_state,
 * platform_stops), which is rebuildable from the ledger (docs/audit.md).
 */
import { sql } from 'drizzle-orm'
import { bigint, boolean, index, jsonb, pgSequence, pgTable, primaryKey, text, uuid } from 'drizzle-orm/pg-core'
import { ts } from './columns.js'

/** Ledger ids; the append preallocates a batch of them so it can hash before inserting. */
export const consentEventsIdSeq = pgSequence('consent_events_id_seq', { cache: 1 })

/**
 * THE LEDGER. Append-only (a trigger refuses UPDATE, DELETE and TRUNCATE). One row per change
 * request for one contact and one group, or one identity event (merge / move) for one contact.
 */
export const consentEvents = pgTable(
  'consent_events',
  {
    workspaceId: uuid('workspace_id').notNull(),
    /** Monotonic ledger id (tie-breaker of the ordering rule). */
    id: bigint('id', { mode: 'bigint' })
      .notNull()
      .default(sql`nextval('consent_events_id_seq')`),
    /** Public id. */
    eventId: uuid('event_id').notNull(),
    contactId: uuid('contact_id').notNull(),
    /** consent | contact_merged | contact_absorbed | identity_moved_in | identity_moved_out */
    type: text('type').notNull().default('consent'),
    subscriptionGroupId: uuid('subscription_group_id'),
    /** subscribed | unsubscribed (null for identity events). */
    state: text('state'),
    /** When the person acted, as reported (ms precision). */
    occurredAt: ts('occurred_at').notNull(),
    /** Database time of the append (ms precision, so the hash input round-trips). */
    recordedAt: ts('recorded_at').notNull(),
    source: text('source').notNull(),
    method: text('method'),
    evidence: jsonb('evidence').notNull().default(sql`'{}'::jsonb`),
    identityType: text('identity_type'),
    identityValue: text('identity_value'),
    /** Who wrote it: `key:<api key id>`, `meta-webhook`, `import:<id>`, `system`. */
    actor: text('actor').notNull(),
    requestId: text('request_id'),
    idempotencyKey: text('idempotency_key'),
    /** Platform-stop transition carried by this event: stop | resume | null. */
    platformStop: text('platform_stop'),
    prevHash: text('prev_hash').notNull(),
    hash: text('hash').notNull(),
  },
  (t) => [
    // recorded_at is part of the key so the table can be range-partitioned by month on it.
    primaryKey({ columns: [t.workspaceId, t.id, t.recordedAt] }),
    index('consent_events_contact_idx').on(t.workspaceId, t.contactId, t.id),
    index('consent_events_event_id_idx').on(t.workspaceId, t.eventId),
    index('consent_events_group_idx').on(t.workspaceId, t.subscriptionGroupId, t.id),
    // (workspace_id, contact_id) must name a contact and (workspace_id, subscription_group_id) a
    // group: enforced by statement-level triggers (migration 0008, set-based), not per-row FKs.
  ],
)

/** Exactly-once keys of the ledger (WhatsApp message ids, import rows). Append-only too. */
export const ledgerDedupe = pgTable(
  'ledger_dedupe',
  {
    workspaceId: uuid('workspace_id').notNull(),
    key: text('key').notNull(),
    eventId: uuid('event_id'),
    createdAt: ts('created_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.workspaceId, t.key] })],
)

/** Projection: per (contact, group) the winning event by the ordering rule. Rebuildable from the ledger. */
export const consentState = pgTable(
  'consent_state',
  {
    workspaceId: uuid('workspace_id').notNull(),
    contactId: uuid('contact_id').notNull(),
    subscriptionGroupId: uuid('subscription_group_id').notNull(),
    state: text('state').notNull(),
    occurredAt: ts('occurred_at').notNull(),
    /** Ledger id of the winning event. */
    eventSeq: bigint('event_seq', { mode: 'bigint' }).notNull(),
    eventId: uuid('event_id').notNull(),
    source: text('source').notNull(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.workspaceId, t.contactId, t.subscriptionGroupId] }),
    index('consent_state_group_idx').on(t.workspaceId, t.subscriptionGroupId, t.state),
    // (workspace_id, contact_id) must name a contact: enforced by statement-level triggers
    // (migration 0008, set-based, one check per statement instead of one per row), not a per-row FK.
  ],
)

/** Meta's own marketing stop per contact and business number (docs/webhook.md). */
export const platformStops = pgTable(
  'platform_stops',
  {
    workspaceId: uuid('workspace_id').notNull(),
    contactId: uuid('contact_id').notNull(),
    phoneNumberId: text('phone_number_id').notNull(),
    stopped: boolean('stopped').notNull(),
    occurredAt: ts('occurred_at').notNull(),
    eventId: uuid('event_id').notNull(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.workspaceId, t.contactId, t.phoneNumberId] })],
)
