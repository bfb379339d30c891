/**
 * Drizzle table definitions. drizzle-kit generates migrations/ from this file; the append-only
 * triggers live in a hand-written migration next to them.
 *
 * Every table carries `workspace_id` and every primary/unique key starts with it (DESIGN §8), so the
 * schema can be distributed by tenant (Citus) without changing queries. The ledger has no unique
 * key that lacks `recorded_at`, so it can be range-partitioned by month: dedupe keys live in
 * `ledger_dedupe` and idempotency keys in `idempotency_keys`.
 */
import { sql } from 'drizzle-orm'
import {
  bigint,
  boolean,
  check,
  index,
  integer,
  jsonb,
  pgSequence,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core'

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' })

/** A tenant. Its `id` is every other table's `workspace_id`. */
export const workspaces = pgTable('workspaces', {
  id: uuid('id').primaryKey().defaultRandom(),
  name: text('name').notNull(),
  createdAt: ts('created_at').notNull().defaultNow(),
})

/** Per-workspace settings (DESIGN §3.3). */
export const workspaceSettings = pgTable('workspace_settings', {
  workspaceId: uuid('workspace_id')
    .primaryKey()
    .references(() => workspaces.id),
  /** Person-initiated opt-outs can be overridden only with evidence (DESIGN §1). */
  requireEvidenceToOverrideOptOut: boolean('require_evidence_to_override_opt_out').notNull().default(true),
  /** Keyword rules (DESIGN §5); null means the defaults. */
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

/** Meta's own marketing stop per contact and business number (DESIGN §1 "Platform stop"). */
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

/**
 * Meta business numbers mapped to workspaces (DESIGN §3.3 `/whatsapp/numbers`). A number belongs to
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
 * Webhook intake: every authentic Meta payload, committed raw before the 200 (DESIGN §3.4). It is
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

/**
 * Signed checkpoints (DESIGN §1 "Tamper evidence"): one series per workspace, each an Ed25519
 * signature over the canonical JSON of {workspace_id, sequence, created_at, tree_size, root_hash},
 * the Merkle root over the workspace's contact chain heads. Append-only.
 */
export const checkpoints = pgTable(
  'checkpoints',
  {
    workspaceId: uuid('workspace_id')
      .notNull()
      .references(() => workspaces.id),
    sequence: bigint('sequence', { mode: 'bigint' }).notNull(),
    createdAt: ts('created_at').notNull(),
    treeSize: integer('tree_size').notNull(),
    rootHash: text('root_hash').notNull(),
    /** base64 Ed25519 signature of the canonical JSON above. */
    signature: text('signature').notNull(),
    /** SPKI PEM of the signing key's public half. */
    publicKey: text('public_key').notNull(),
    /** Highest ledger id covered (for "after N events" scheduling). */
    ledgerHighWater: bigint('ledger_high_water', { mode: 'bigint' }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.workspaceId, t.sequence] })],
)

/**
 * The Merkle leaves behind each checkpoint (src/audit/checkpoints.ts), stored as deltas: a row for
 * every contact whose chain (length, head) changed since the workspace's previous checkpoint, so
 * storage grows with the ledger, not with contacts × checkpoints. The leaf set of checkpoint S is,
 * per contact, its row with the greatest sequence <= S. Append-only: each row is a commitment to a
 * prefix of that contact's chain, which POST /audit/verify checks against the ledger. Written in
 * the same transaction as their checkpoint row (no foreign key: they are streamed in before the
 * root, hence the checkpoint row, is known).
 */
export const checkpointLeaves = pgTable(
  'checkpoint_leaves',
  {
    workspaceId: uuid('workspace_id').notNull(),
    sequence: bigint('sequence', { mode: 'bigint' }).notNull(),
    contactId: uuid('contact_id').notNull(),
    /** Number of the contact's events covered (its chain prefix). */
    chainLength: integer('chain_length').notNull(),
    /** Hash of the last covered event. */
    head: text('head').notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.workspaceId, t.sequence, t.contactId] }),
    // Newest leaf of a contact first: "the leaf of contact c at checkpoint S" is one index probe.
    index('checkpoint_leaves_contact_idx').on(t.workspaceId, t.contactId, t.sequence.desc()),
  ],
)

/**
 * Bulk CSV imports (DESIGN §3.5). One row per uploaded file; the worker (src/import/worker.ts)
 * commits its progress here in the same transaction as each batch of ledger events, so a crash
 * resumes after `last_seq`. Counters: rows_applied + rows_rejected + rows_duplicate = rows processed.
 */
export const imports = pgTable(
  'imports',
  {
    workspaceId: uuid('workspace_id')
      .notNull()
      .references(() => workspaces.id),
    id: uuid('id').notNull(),
    /** queued | running | completed | failed */
    status: text('status').notNull().default('queued'),
    /** Free text from `?source_label=`, copied into every event's evidence. */
    sourceLabel: text('source_label'),
    /** Default group for rows whose subscription_group_id cell is empty. */
    defaultSubscriptionGroupId: uuid('default_subscription_group_id'),
    /** Default state for rows whose subscription_state cell is empty. */
    defaultSubscriptionState: text('default_subscription_state'),
    /** The header row as written in the file. */
    columns: text('columns').array().notNull(),
    /** Size and sha256 hex of the uploaded bytes (an Idempotency-Key replay must send the same file). */
    fileBytes: bigint('file_bytes', { mode: 'number' }).notNull(),
    fileSha256: text('file_sha256').notNull(),
    /** Idempotency-Key of the upload; kept for the life of the import (a re-post never imports twice). */
    idempotencyKey: text('idempotency_key'),
    /** Who uploaded: `key:<api key id>`; and the upload's request id. */
    createdBy: text('created_by').notNull(),
    requestId: text('request_id'),
    /** Data rows in the file (the header and blank lines excluded). */
    rowsTotal: integer('rows_total').notNull(),
    /** Staged rows processed, in `import_rows.seq` order: the resume point after a crash. */
    lastSeq: integer('last_seq').notNull().default(0),
    rowsProcessed: integer('rows_processed').notNull().default(0),
    rowsApplied: integer('rows_applied').notNull().default(0),
    rowsRejected: integer('rows_rejected').notNull().default(0),
    rowsDuplicate: integer('rows_duplicate').notNull().default(0),
    /** Failed batch attempts since the last progress (the worker shrinks the batch on repeated failure). */
    attempts: integer('attempts').notNull().default(0),
    /** Why the import failed (status failed) or the last batch error. */
    lastError: text('last_error'),
    createdAt: ts('created_at').notNull().defaultNow(),
    startedAt: ts('started_at'),
    finishedAt: ts('finished_at'),
    updatedAt: ts('updated_at').notNull().defaultNow(),
    /** When the staging rows were deleted (after the import finished). */
    stagingPurgedAt: ts('staging_purged_at'),
  },
  (t) => [
    primaryKey({ columns: [t.workspaceId, t.id] }),
    uniqueIndex('imports_idempotency_key').on(t.workspaceId, t.idempotencyKey),
    index('imports_list_idx').on(t.workspaceId, t.createdAt, t.id),
    // The worker's queue: only unfinished imports are indexed.
    index('imports_pending_idx').on(t.createdAt).where(sql`status IN ('queued', 'running')`),
  ],
)

/**
 * Staging: the parsed rows of an uploaded file, written by COPY before the 202 and read by the
 * worker in row order. Deleted once the import has finished. No foreign key (COPY speed); rows
 * are only ever written in the same transaction as their `imports` row.
 */
export const importRows = pgTable(
  'import_rows',
  {
    workspaceId: uuid('workspace_id').notNull(),
    importId: uuid('import_id').notNull(),
    /**
     * 1, 2, 3... in file order, without gaps: batches are ranges of it (`seq BETWEEN a AND b`), a
     * plan that stays an index range scan whatever the planner knows of a freshly COPYed table.
     */
    seq: integer('seq').notNull(),
    /** Spreadsheet row number (the header is row 1; blank lines are not staged but counted). */
    rowNumber: integer('row_number').notNull(),
    /**
     * The record's fields in file order (matched to the header through `imports.columns`), as a
     * JSON array of strings: cheaper than text[] to write by COPY and to read back.
     */
    fields: text('fields').notNull(),
    /** md5 of the row's normalised content (identities, group, state, occurred_at), as a uuid. */
    key: uuid('key').notNull(),
    /** Set at upload when the same content appeared earlier in the file: that row's number. */
    dupOf: integer('dup_of'),
  },
  (t) => [primaryKey({ columns: [t.workspaceId, t.importId, t.seq] })],
)

/** Refused rows of an import: the `GET /imports/{id}/errors` report. */
export const importErrors = pgTable(
  'import_errors',
  {
    workspaceId: uuid('workspace_id').notNull(),
    importId: uuid('import_id').notNull(),
    rowNumber: integer('row_number').notNull(),
    /** The CSV column at fault (header name), or '' when the row as a whole is refused. */
    column: text('column').notNull(),
    code: text('code').notNull(),
    message: text('message').notNull(),
  },
  (t) => [primaryKey({ columns: [t.workspaceId, t.importId, t.rowNumber] })],
)
