/**
 * Contacts and their identities. Consent is held per contact and group (ledger.ts).
 */
import { sql } from 'drizzle-orm'
import { index, integer, jsonb, pgTable, primaryKey, text, uuid } from 'drizzle-orm/pg-core'
import { ts } from './columns.js'

/** The person. Identities point at it; consent is held per contact and group. */
export const contacts = pgTable(
  'contacts',
  {
    // References workspaces(id), enforced by a statement-level trigger (migration 0012), not a
    // per-row foreign key: an append creating 75 contacts ran 75 RI checks on one workspace row.
    workspaceId: uuid('workspace_id').notNull(),
    id: uuid('id').notNull().defaultRandom(),
    attributes: jsonb('attributes').notNull().default(sql`'{}'::jsonb`),
    tags: text('tags').array().notNull().default(sql`'{}'::text[]`),
    /** Set when this contact was merged into another; its events then count for the survivor. */
    mergedInto: uuid('merged_into'),
    /** Hash of the newest event in this contact's chain; null before the first event. */
    chainHead: text('chain_head'),
    chainLength: integer('chain_length').notNull().default(0),
    createdAt: ts('created_at').notNull().defaultNow(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.workspaceId, t.id] })],
)

/** external_id | phone (E.164) | bsuid. Each value belongs to at most one live contact. */
export const identities = pgTable(
  'identities',
  {
    workspaceId: uuid('workspace_id').notNull(),
    type: text('type').notNull(),
    value: text('value').notNull(),
    contactId: uuid('contact_id').notNull(),
    createdAt: ts('created_at').notNull().defaultNow(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.workspaceId, t.type, t.value] }),
    index('identities_contact_idx').on(t.workspaceId, t.contactId),
    // (workspace_id, contact_id) must name a contact: enforced by statement-level triggers
    // (migration 0008, set-based, one check per statement instead of one per row), not a per-row FK.
  ],
)
