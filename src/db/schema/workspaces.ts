/**
 * Tenants and what belongs to them directly: the workspace, its settings, API keys,
 * subscription groups, and Idempotency-Key records.
 */
import { sql } from 'drizzle-orm'
import { boolean, index, integer, jsonb, pgTable, primaryKey, text, uuid } from 'drizzle-orm/pg-core'
import { ts } from './columns.js'

/** A tenant. Its `id` is every other table's `workspace_id`. */
export const workspaces = pgTable('workspaces', {
  id: uuid('id').primaryKey().defaultRandom(),
  name: text('name').notNull(),
  createdAt: ts('created_at').notNull().defaultNow(),
})

/** Per-workspace settings: the consent rules, keyword rules and the workspace's own Meta app. */
export const workspaceSettings = pgTable('workspace_settings', {
  workspaceId: uuid('workspace_id')
    .primaryKey()
    .references(() => workspaces.id),
  /** Person-initiated opt-outs can be overridden only with evidence. */
  requireEvidenceToOverrideOptOut: boolean('require_evidence_to_override_opt_out').notNull().default(true),
  /** Keyword rules (docs/webhook.md); null means the defaults. */
  keywords: jsonb('keywords'),
  /** The workspace's own Meta app secrets (webhooks at /webhooks/whatsapp/{id}; docs/webhook.md). */
  whatsappAppSecrets: text('whatsapp_app_secrets').array().notNull().default(sql`'{}'::text[]`),
  whatsappVerifyToken: text('whatsapp_verify_token'),
  updatedAt: ts('updated_at').notNull().defaultNow(),
})

/** API keys: only a sha256 of the secret is stored; `prefix` is the non-secret lookup handle. */
export const apiKeys = pgTable(
  'api_keys',
  {
    workspaceId: uuid('workspace_id')
      .notNull()
      .references(() => workspaces.id),
    id: uuid('id').notNull().defaultRandom(),
    name: text('name').notNull(),
    /** Public part of the key (`cl_<prefix>_<secret>`), indexed for lookup. */
    prefix: text('prefix').notNull(),
    /** sha256 hex of the whole key. */
    keyHash: text('key_hash').notNull(),
    scopes: text('scopes').array().notNull(),
    /** The bootstrap key from CONSENT_ADMIN_KEY: may manage workspaces. */
    isRoot: boolean('is_root').notNull().default(false),
    /** Per-key override of RATE_LIMIT_MAX (requests per window); null = the default. */
    rateLimitMax: integer('rate_limit_max'),
    createdAt: ts('created_at').notNull().defaultNow(),
    revokedAt: ts('revoked_at'),
    lastUsedAt: ts('last_used_at'),
  },
  (t) => [primaryKey({ columns: [t.workspaceId, t.id] }), index('api_keys_prefix_idx').on(t.prefix)],
)

/** A consent purpose (Braze's subscription group). Archived, never deleted. */
export const subscriptionGroups = pgTable(
  'subscription_groups',
  {
    workspaceId: uuid('workspace_id')
      .notNull()
      .references(() => workspaces.id),
    id: uuid('id').notNull().defaultRandom(),
    name: text('name').notNull(),
    /** whatsapp | sms (immutable once events reference the group). */
    channel: text('channel').notNull(),
    /** marketing | utility | authentication (immutable once events reference the group). */
    category: text('category').notNull(),
    /** The WhatsApp business number this group sends from; null = every number of the workspace. */
    phoneNumberId: text('phone_number_id'),
    /** true: allowed only when subscribed; false: allowed unless unsubscribed. */
    requiresOptIn: boolean('requires_opt_in').notNull().default(true),
    createdAt: ts('created_at').notNull().defaultNow(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
    archivedAt: ts('archived_at'),
  },
  (t) => [primaryKey({ columns: [t.workspaceId, t.id] })],
)

/** Idempotency-Key records: the first answer, replayed for IDEMPOTENCY_TTL_HOURS. */
export const idempotencyKeys = pgTable(
  'idempotency_keys',
  {
    workspaceId: uuid('workspace_id').notNull(),
    key: text('key').notNull(),
    /** method + path + sha256 of the body: the same key with another request answers 422. */
    fingerprint: text('fingerprint').notNull(),
    statusCode: integer('status_code').notNull(),
    responseBody: text('response_body').notNull(),
    contentType: text('content_type').notNull(),
    createdAt: ts('created_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.workspaceId, t.key] })],
)
