/**
 * Signed checkpoints of the ledger and the leaves they sign (docs/audit.md).
 */
import { bigint, index, integer, pgTable, primaryKey, text, uuid } from 'drizzle-orm/pg-core'
import { ts } from './columns.js'
import { workspaces } from './workspaces.js'

/**
 * Signed checkpoints (docs/audit.md): one series per workspace, each an Ed25519
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
