/**
 * Signed checkpoints (docs/audit.md): one series per workspace, sequence 1, 2, ...
 *
 * A checkpoint signs (signing.ts) the Merkle root (merkle.ts) over the workspace's chain heads: one
 * leaf per contact that has a chain (merged-away contacts included: their chains are part of the
 * ledger), {contact_id, chain_length, head} as read from `contacts.chain_length/chain_head`, sorted
 * by contact_id. `ledger_high_water` is the highest ledger id visible when it was taken (it drives
 * the "after N events" schedule; the leaves, not the high water, define what is covered).
 *
 * The leaves are stored as deltas in `checkpoint_leaves` (only contacts whose chain changed since
 * the previous checkpoint), so proofs can be built for the latest checkpoint at any time and
 * POST /audit/verify can check every leaf ever signed against the ledger, and each checkpoint's
 * root against its leaves.
 *
 * Creation runs in one REPEATABLE READ transaction (one consistent snapshot of every contact), under
 * a per-workspace advisory lock taken with try-lock: when another instance is already creating one,
 * this one skips. It streams contacts in keyset batches and keeps only 32 bytes per leaf in memory.
 * A checkpoint is created only when some chain changed since the previous one (or `force`). Its
 * tree is built from the stored leaves after the new deltas are written, in the same transaction,
 * so it is by construction what anyone rebuilds later (rebuildTree). A contact stays in the tree
 * once it has had a leaf; a chain that legitimately never shrinks but is found shorter or rewritten
 * is still signed as it stands now (and reported in `rewritten`): the earlier leaves remain as
 * evidence, and POST /audit/verify flags that contact.
 */
import type { Sql } from '../db/sql.js'
import { conflict } from '../errors/domain-error.js'
import { GENESIS } from '../ledger/hash-chain.js'
import { inclusionProof, LeafHashes, leafHash, merkleRoot, type Leaf } from './merkle.js'
import { keyFingerprint, type CheckpointPayload, type Signer } from './signing.js'

export interface Checkpoint extends CheckpointPayload {
  signature: string
  public_key: string
  key_fingerprint: string
  ledger_high_water: string
}

interface CheckpointRow {
  workspace_id: string
  sequence: string
  created_at: Date
  tree_size: number
  root_hash: string
  signature: string
  public_key: string
  ledger_high_water: string
}

const BATCH = 10_000

const fingerprints = new Map<string, string>()
function fingerprintOf(pem: string): string {
  let f = fingerprints.get(pem)
  if (f === undefined) {
    try {
      f = keyFingerprint(pem)
    } catch {
      f = 'invalid-key'
    }
    if (fingerprints.size > 100) fingerprints.clear()
    fingerprints.set(pem, f)
  }
  return f
}

export function toCheckpoint(r: CheckpointRow): Checkpoint {
  return {
    workspace_id: r.workspace_id,
    sequence: Number(r.sequence),
    created_at: new Date(r.created_at).toISOString(),
    tree_size: Number(r.tree_size),
    root_hash: r.root_hash,
    signature: r.signature,
    public_key: r.public_key,
    key_fingerprint: fingerprintOf(r.public_key),
    ledger_high_water: String(r.ledger_high_water),
  }
}

/**
 * The sequence is read as text (int8 stays exact); so a bare `ORDER BY sequence` in a query that
 * selects these columns would sort that text (9 after 10) and find checkpoint 9 the latest forever.
 * Such queries order by the table's column, `checkpoints.sequence`.
 */
const CHECKPOINT_COLUMNS = `workspace_id, sequence::text AS sequence, created_at, tree_size, root_hash, signature, public_key, ledger_high_water::text AS ledger_high_water`

export const disabledError = () =>
  conflict(
    'checkpoints_disabled',
    'Checkpoints are disabled: CHECKPOINT_SIGNING_KEY is not configured (an Ed25519 private key, PEM or base64). Chains can still be verified.',
  )

export async function latestCheckpoint(sql: Sql, workspaceId: string): Promise<Checkpoint | null> {
  const [row] = await sql.query<CheckpointRow>(
    `SELECT ${CHECKPOINT_COLUMNS} FROM checkpoints WHERE workspace_id = $1 ORDER BY checkpoints.sequence DESC LIMIT 1`,
    [workspaceId],
  )
  return row ? toCheckpoint(row) : null
}

/** Newest first, keyset on sequence. */
export async function listCheckpoints(
  sql: Sql,
  workspaceId: string,
  opts: { before?: number; limit: number },
): Promise<{ checkpoints: Checkpoint[]; next_cursor: string | null }> {
  const rows = await sql.query<CheckpointRow>(
    `SELECT ${CHECKPOINT_COLUMNS} FROM checkpoints
      WHERE workspace_id = $1 AND ($2::bigint IS NULL OR sequence < $2::bigint)
      ORDER BY checkpoints.sequence DESC LIMIT $3`,
    [workspaceId, opts.before ?? null, opts.limit + 1],
  )
  const more = rows.length > opts.limit
  const checkpoints = rows.slice(0, opts.limit).map(toCheckpoint)
  return { checkpoints, next_cursor: more ? String(checkpoints[checkpoints.length - 1]!.sequence) : null }
}

/** Every checkpoint of the workspace, oldest first (for verification). */
export async function* allCheckpoints(sql: Sql, workspaceId: string): AsyncGenerator<Checkpoint> {
  let after = 0
  for (;;) {
    const rows = await sql.query<CheckpointRow>(
      `SELECT ${CHECKPOINT_COLUMNS} FROM checkpoints WHERE workspace_id = $1 AND sequence > $2 ORDER BY checkpoints.sequence LIMIT 1000`,
      [workspaceId, after],
    )
    for (const r of rows) yield toCheckpoint(r)
    if (rows.length < 1000) return
    after = Number(rows[rows.length - 1]!.sequence)
  }
}

/**
 * The leaves of checkpoint `sequence` (per contact, its newest leaf row at or before it), in
 * contact_id order, in batches.
 */
export async function* leavesAt(sql: Sql, workspaceId: string, sequence: number): AsyncGenerator<Leaf[]> {
  let after: string | null = null
  for (;;) {
    const rows: { contact_id: string; chain_length: number; head: string }[] = await sql.query(
      `SELECT DISTINCT ON (contact_id) contact_id, chain_length, head
         FROM checkpoint_leaves
        WHERE workspace_id = $1 AND sequence <= $2 AND ($3::uuid IS NULL OR contact_id > $3::uuid)
        ORDER BY contact_id, sequence DESC
        LIMIT ${BATCH}`,
      [workspaceId, sequence, after],
    )
    if (rows.length > 0) yield rows.map((r) => ({ contact_id: r.contact_id, chain_length: Number(r.chain_length), head: r.head }))
    if (rows.length < BATCH) return
    after = rows[rows.length - 1]!.contact_id
  }
}

/** Recompute a checkpoint's tree from its stored leaves; optionally the audit paths of some contacts. */
export async function rebuildTree(
  sql: Sql,
  workspaceId: string,
  sequence: number,
  wanted: string[] = [],
): Promise<{ size: number; root: string; proofs: Map<string, { leaf: Leaf; leaf_index: number; audit_path: string[] }> }> {
  const hashes = new LeafHashes()
  const want = new Set(wanted)
  const found = new Map<string, { leaf: Leaf; index: number }>()
  for await (const batch of leavesAt(sql, workspaceId, sequence)) {
    for (const leaf of batch) {
      if (want.has(leaf.contact_id)) found.set(leaf.contact_id, { leaf, index: hashes.length })
      hashes.push(leafHash(leaf))
    }
  }
  const proofs = new Map<string, { leaf: Leaf; leaf_index: number; audit_path: string[] }>()
  for (const [c, { leaf, index }] of found) proofs.set(c, { leaf, leaf_index: index, audit_path: inclusionProof(hashes, index).path })
  return { size: hashes.length, root: merkleRoot(hashes), proofs }
}

export interface CreateResult {
  created: boolean
  /** The new checkpoint, or the latest one when nothing changed. */
  checkpoint: Checkpoint | null
  /** Another instance held the workspace's checkpoint lock. */
  busy?: boolean
  /** Chains whose head changed without growing since their last leaf (possible tampering). */
  rewritten?: string[]
}

export async function createCheckpoint(
  sql: Sql,
  signer: Signer | null,
  workspaceId: string,
  opts: { force?: boolean } = {},
): Promise<CreateResult> {
  if (!signer) throw disabledError()
  let attempted = 0
  try {
    return await sql.tx(async (tx) => {
      await tx.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ')
      const [lock] = await tx.query<{ ok: boolean; now: Date }>(
        `SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0)) AS ok, date_trunc('milliseconds', clock_timestamp()) AS now`,
        [`consent-ledger:checkpoint:${workspaceId}`],
      )
      const last = await latestCheckpoint(tx, workspaceId)
      if (!lock?.ok) return { created: false, checkpoint: last, busy: true }
      const [hw] = await tx.query<{ max: string | null }>(`SELECT COALESCE(max(id), 0)::text AS max FROM consent_events WHERE workspace_id = $1`, [workspaceId])
      const sequence = (last?.sequence ?? 0) + 1
      attempted = sequence

      // Pass 1: write the leaves that changed (delta rows). A contact is in the tree when it has a
      // chain or ever had a leaf (a chain that vanished is signed as {0, GENESIS}: never silently
      // dropped; its earlier leaves still convict it in POST /audit/verify).
      const rewritten: string[] = []
      let changed = 0
      let after: string | null = null
      for (;;) {
        const rows: { id: string; chain_length: number; chain_head: string | null; prev_length: number | null; prev_head: string | null }[] = await tx.query(
          `SELECT c.id, c.chain_length, c.chain_head, l.chain_length AS prev_length, l.head AS prev_head
             FROM contacts c
             LEFT JOIN LATERAL (SELECT cl.chain_length, cl.head FROM checkpoint_leaves cl
                                 WHERE cl.workspace_id = c.workspace_id AND cl.contact_id = c.id
                                 ORDER BY cl.sequence DESC LIMIT 1) l ON true
            WHERE c.workspace_id = $1 AND ($2::uuid IS NULL OR c.id > $2::uuid) AND (c.chain_length > 0 OR l.chain_length IS NOT NULL)
            ORDER BY c.id
            LIMIT ${BATCH}`,
          [workspaceId, after],
        )
        const delta: Leaf[] = []
        for (const r of rows) {
          const length = Number(r.chain_length)
          const leaf: Leaf = { contact_id: r.id, chain_length: length, head: length > 0 && r.chain_head ? r.chain_head : GENESIS }
          if (r.prev_length === null || Number(r.prev_length) !== leaf.chain_length || r.prev_head !== leaf.head) {
            delta.push(leaf)
            if (r.prev_length !== null && Number(r.prev_length) >= leaf.chain_length) rewritten.push(r.id)
          }
        }
        if (delta.length > 0) {
          changed += delta.length
          await tx.query(
            `INSERT INTO checkpoint_leaves (workspace_id, sequence, contact_id, chain_length, head)
             SELECT $1, $2, x.c, x.n, x.h FROM unnest($3::uuid[], $4::int[], $5::text[]) AS x(c, n, h)`,
            [workspaceId, sequence, delta.map((l) => l.contact_id), delta.map((l) => l.chain_length), delta.map((l) => l.head)],
          )
        }
        if (rows.length < BATCH) break
        after = rows[rows.length - 1]!.id
      }
      if (changed === 0 && !opts.force) return { created: false, checkpoint: last }
      // Pass 2: the tree is, by construction, what anyone rebuilds later from the stored leaves.
      const tree = await rebuildTree(tx, workspaceId, sequence)
      const payload: CheckpointPayload = {
        workspace_id: workspaceId,
        sequence,
        created_at: new Date(lock.now).toISOString(),
        tree_size: tree.size,
        root_hash: tree.root,
      }
      const signature = signer.sign(payload)
      await tx.query(
        `INSERT INTO checkpoints (workspace_id, sequence, created_at, tree_size, root_hash, signature, public_key, ledger_high_water)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        [workspaceId, sequence, payload.created_at, payload.tree_size, payload.root_hash, signature, signer.publicKeyPem, hw!.max],
      )
      return {
        created: true,
        checkpoint: { ...payload, signature, public_key: signer.publicKeyPem, key_fingerprint: signer.fingerprint, ledger_high_water: hw!.max ?? '0' },
        ...(rewritten.length > 0 ? { rewritten } : {}),
      }
    })
  } catch (err) {
    if ((err as { code?: string }).code !== '23505' || attempted === 0) throw err
    // The one benign conflict: another instance took the lock after our snapshot was taken (the
    // try-lock is the snapshot's first statement) and committed this very sequence first. Then the
    // latest checkpoint now has it, and ours is not needed.
    const latest = await latestCheckpoint(sql, workspaceId)
    if (latest && latest.sequence >= attempted) return { created: false, checkpoint: latest, busy: true }
    // Anything else is a stored row that should not be there (a leaf or checkpoint at a sequence
    // not yet signed): nothing is signed until someone looks, so say so loudly.
    throw new Error(
      `checkpoint ${attempted} of workspace ${workspaceId} was not written: a conflict with a stored row ` +
        `(${(err as { constraint?: string }).constraint ?? 'unique key'}) while the latest checkpoint is ${latest?.sequence ?? 'none'}; ` +
        'run POST /audit/verify',
      { cause: err },
    )
  }
}

/**
 * Workspaces due for a checkpoint: new events since the last one, and either at least
 * `everyEvents` of them (0: never by count) or the last checkpoint older than `intervalMs`.
 */
export async function dueWorkspaces(sql: Sql, opts: { intervalMs: number; everyEvents: number }): Promise<string[]> {
  const cap = Math.max(1, opts.everyEvents)
  const rows = await sql.query<{ id: string; new_events: number; age_ms: number | null }>(
    `SELECT w.id,
            (SELECT count(*)::int FROM (SELECT 1 FROM consent_events e
                                         WHERE e.workspace_id = w.id AND e.id > COALESCE(cp.ledger_high_water, 0)
                                         LIMIT $1) x) AS new_events,
            (extract(epoch FROM clock_timestamp() - cp.created_at) * 1000)::float8 AS age_ms
       FROM workspaces w
       LEFT JOIN LATERAL (SELECT ledger_high_water, created_at FROM checkpoints c
                           WHERE c.workspace_id = w.id ORDER BY sequence DESC LIMIT 1) cp ON true`,
    [cap],
  )
  return rows
    .filter((r) => r.new_events > 0 && ((opts.everyEvents > 0 && r.new_events >= opts.everyEvents) || r.age_ms === null || r.age_ms >= opts.intervalMs))
    .map((r) => r.id)
}
