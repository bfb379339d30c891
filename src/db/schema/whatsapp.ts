/**
 * WhatsApp: business numbers mapped to workspaces, and the webhook intake (docs/webhook.md).
 */
import { sql } from 'drizzle-orm'
import { bigint, check, index, integer, pgTable, primaryKey, text, uniqueIndex, uuid } from 'drizzle-orm/pg-core'
import { ts } from './columns.js'
import { workspaces } from './workspaces.js'

/**
 * Meta business numbers mapped to workspaces (`/whatsapp/numbers`, docs/webhook.md). A number belongs to
 * one workspace, so `phone_number_id` is unique on its own: the one key that does not start with
 * workspace_id, because a webhook must be routed to its workspace before it is known. Under Citus
 * this small table is a reference table (replicated to every node), not a distributed one.
 */
export const whatsappNumbers = pgTable(
  'whatsapp_numbers',
  {
    workspaceId: uuid('workspace_id')
      .notNull()
      .references(() => workspaces.id),
    phoneNumberId: text('phone_number_id').notNull(),
    displayPhoneNumber: text('display_phone_number'),
    createdAt: ts('created_at').notNull().defaultNow(),
    /** operator: receives the operator app's payloads; workspace: a claim, receives its own app's only. */
    mappedBy: text('mapped_by').notNull().default('operator'),
    /** When the mapping was proven: made by the operator, or named by the workspace's own signed payload. */
    verifiedAt: ts('verified_at'),
  },
  (t) => [
    primaryKey({ columns: [t.workspaceId, t.phoneNumberId] }),
    // One operator mapping per number; claims by workspaces are not exclusive (migration 0017).
    uniqueIndex('whatsapp_numbers_operator_key').on(t.phoneNumberId).where(sql`${t.mappedBy} = 'operator'`),
    check('whatsapp_numbers_mapped_by_check', sql`${t.mappedBy} in ('operator', 'workspace')`),
  ],
)

/**
 * Webhook intake: every authentic Meta payload, committed raw before the 200 (docs/webhook.md). It is
 * written before the payload is routed to a workspace, so it carries no workspace_id of its own;
 * `phone_number_ids` lists the numbers it names. Like the numbers table it is operational intake,
 * not tenant data: processed payloads become ledger events in their workspaces.
 */
export const webhookInbox = pgTable(
  'webhook_inbox',
  {
    id: bigint('id', { mode: 'bigint' }).primaryKey().generatedAlwaysAsIdentity(),
    receivedAt: ts('received_at').notNull().defaultNow(),
    /** The exact bytes Meta signed, as UTF-8 text. */
    rawBody: text('raw_body').notNull(),
    /** sha256 hex of the raw body (evidence reference). */
    bodySha256: text('body_sha256').notNull(),
    /** pending | processed | unmapped | failed */
    status: text('status').notNull().default('pending'),
    phoneNumberIds: text('phone_number_ids').array().notNull().default(sql`'{}'::text[]`),
    attempts: integer('attempts').notNull().default(0),
    lastError: text('last_error'),
    processedAt: ts('processed_at'),
    updatedAt: ts('updated_at').notNull().defaultNow(),
    /** The workspace whose own webhook URL received it (its own Meta app); null: the operator's URL. */
    workspaceId: uuid('workspace_id').references(() => workspaces.id),
    /** Set only by migration 0016 on copies stored before replays were deduplicated (a CHECK of migration 0018 pins it to those rows). */
    legacyDuplicateOf: bigint('legacy_duplicate_of', { mode: 'bigint' }),
  },
  (t) => [
    index('webhook_inbox_status_idx').on(t.status, t.id),
    // A replayed body is stored once per tenancy (NULLS NOT DISTINCT, migration 0016).
    uniqueIndex('webhook_inbox_body_key').on(t.bodySha256, t.workspaceId).where(sql`${t.legacyDuplicateOf} is null`),
    index('webhook_inbox_workspace_idx').on(t.workspaceId).where(sql`${t.workspaceId} is not null`),
  ],
)
