/**
 * `POST /audit/verify`: whole-workspace verification, reported by contact.
 *
 * Chains (chains.ts): for every contact (merged-away ones included) the events are re-hashed from
 * GENESIS in ledger order and compared with the stored prev_hash/hash, with the contact row
 * (chain_head, chain_length) and with every checkpoint leaf ever signed for it. A contact that
 * has checkpoint leaves but no longer exists is reported too (`contact_missing`).
 *
 * Checkpoints: every checkpoint's Ed25519 signature (under the public key stored with it, which
 * must also be the configured key, else `signed_by_other_key`: after a key rotation, compare those
 * fingerprints with the ones you published), the sequence has no gaps, and its root and tree size
 * are recomputed from its stored leaves (`checkpoints=all`, the default; `checkpoints=latest`
 * recomputes only the latest root, for very large workspaces: each root costs one pass over the
 * workspace's contacts).
 *
 * Projection: consent_state and platform_stops, what the pre-send check reads, are compared with a
 * fold of the ledger by the ordering rule (src/ledger/projection.ts); each difference is reported
 * (`projection.differences`, at most MAX_BROKEN). POST /audit/projection/rebuild repairs them.
 *
 * Cost: one streaming pass over the workspace's events in (contact, id) order, batches of
 * CONTACT_BATCH contacts; memory holds one batch. The report lists at most MAX_BROKEN contacts
 * (`broken_truncated` says when there were more).
 */
import type { Sql } from '../db/sql.js'
import { checkChain, type ChainProblem } from './chains.js'
import { allCheckpoints, latestCheckpoint, rebuildTree } from './checkpoints.js'
import { EVENT_COLUMNS, type EventRow } from './event-row.js'
import { verifyCheckpointSignature, type Signer } from './signing.js'
import { projectionDifferences, type ProjectionDifference } from '../ledger/projection.js'

const CONTACT_BATCH = 500
const MAX_BROKEN = 10_000

export interface VerifyReport {
  ok: boolean
  workspace_id: string
  verified_at: string
  contacts_checked: number
  events_checked: number
  broken_count: number
  broken: { contact_id: string; problems: ChainProblem[] }[]
  broken_truncated: boolean
  checkpoints: {
    enabled: boolean
    key_fingerprint: string | null
    checked: number
    roots_checked: number
    latest_sequence: number | null
    invalid: { sequence: number; problems: string[] }[]
  }
  projection: { difference_count: number; differences: ProjectionDifference[]; differences_truncated: boolean }
}

export async function verifyWorkspace(
  sql: Sql,
  workspaceId: string,
  opts: { signer: Signer | null; checkpoints: 'all' | 'latest' },
): Promise<VerifyReport> {
  const report: VerifyReport = {
    ok: true,
    workspace_id: workspaceId,
    verified_at: new Date().toISOString(),
    contacts_checked: 0,
    events_checked: 0,
    broken_count: 0,
    broken: [],
    broken_truncated: false,
    checkpoints: { enabled: !!opts.signer, key_fingerprint: opts.signer?.fingerprint ?? null, checked: 0, roots_checked: 0, latest_sequence: null, invalid: [] },
    projection: { difference_count: 0, differences: [], differences_truncated: false },
  }
  const flag = (contact_id: string, problems: ChainProblem[]) => {
    report.broken_count++
    if (report.broken.length < MAX_BROKEN) report.broken.push({ contact_id, problems })
    else report.broken_truncated = true
  }

  let after: string | null = null
  for (;;) {
    const contacts: { id: string; chain_head: string | null; chain_length: number }[] = await sql.query(
      `SELECT id, chain_head, chain_length FROM contacts
        WHERE workspace_id = $1 AND ($2::uuid IS NULL OR id > $2::uuid) ORDER BY id LIMIT ${CONTACT_BATCH}`,
      [workspaceId, after],
    )
    if (contacts.length === 0) break
    const ids = contacts.map((c) => c.id)
    const events = await sql.query<EventRow>(
      `SELECT ${EVENT_COLUMNS} FROM consent_events e
        WHERE e.workspace_id = $1 AND e.contact_id = ANY($2::uuid[]) ORDER BY e.contact_id, e.id, e.recorded_at`,
      [workspaceId, ids],
    )
    const leaves = await sql.query<{ contact_id: string; sequence: string; chain_length: number; head: string }>(
      `SELECT contact_id, sequence::text AS sequence, chain_length, head FROM checkpoint_leaves
        WHERE workspace_id = $1 AND contact_id = ANY($2::uuid[]) ORDER BY contact_id, checkpoint_leaves.sequence`,
      [workspaceId, ids],
    )
    const eventsOf = new Map<string, EventRow[]>()
    for (const e of events) {
      let list = eventsOf.get(e.contact_id)
      if (!list) eventsOf.set(e.contact_id, (list = []))
      list.push(e)
    }
    const leavesOf = new Map<string, { sequence: number; chain_length: number; head: string }[]>()
    for (const l of leaves) {
      let list = leavesOf.get(l.contact_id)
      if (!list) leavesOf.set(l.contact_id, (list = []))
      list.push({ sequence: Number(l.sequence), chain_length: Number(l.chain_length), head: l.head })
    }
    for (const c of contacts) {
      const evs = eventsOf.get(c.id) ?? []
      report.contacts_checked++
      report.events_checked += evs.length
      const check = checkChain(evs, c, leavesOf.get(c.id) ?? [])
      if (!check.ok) flag(c.id, check.problems)
    }
    if (contacts.length < CONTACT_BATCH) break
    after = contacts[contacts.length - 1]!.id
  }

  // Leaves of contacts that no longer exist.
  const orphans = await sql.query<{ contact_id: string; sequence: string }>(
    `SELECT l.contact_id, max(l.sequence)::text AS sequence FROM checkpoint_leaves l
      WHERE l.workspace_id = $1
        AND NOT EXISTS (SELECT 1 FROM contacts c WHERE c.workspace_id = l.workspace_id AND c.id = l.contact_id)
      GROUP BY l.contact_id ORDER BY l.contact_id`,
    [workspaceId],
  )
  for (const o of orphans) {
    flag(o.contact_id, [{ code: 'contact_missing', checkpoint_sequence: Number(o.sequence), detail: `checkpoint ${o.sequence} signed a chain for this contact, which no longer exists` }])
  }

  // Checkpoints.
  const latest = await latestCheckpoint(sql, workspaceId)
  report.checkpoints.latest_sequence = latest?.sequence ?? null
  let expected = 1
  for await (const cp of allCheckpoints(sql, workspaceId)) {
    report.checkpoints.checked++
    const problems: string[] = []
    if (cp.sequence !== expected) problems.push(`sequence_gap: expected ${expected}, found ${cp.sequence}`)
    expected = cp.sequence + 1
    if (!verifyCheckpointSignature(cp, cp.signature, cp.public_key)) problems.push('signature_invalid')
    if (opts.signer && cp.key_fingerprint !== opts.signer.fingerprint) problems.push(`signed_by_other_key: ${cp.key_fingerprint}`)
    if (opts.checkpoints === 'all' || cp.sequence === latest?.sequence) {
      const tree = await rebuildTree(sql, workspaceId, cp.sequence)
      report.checkpoints.roots_checked++
      if (tree.size !== cp.tree_size) problems.push(`tree_size_mismatch: signed ${cp.tree_size}, leaves ${tree.size}`)
      if (tree.root !== cp.root_hash) problems.push('root_mismatch: the stored leaves do not hash to the signed root')
    }
    if (problems.length > 0) report.checkpoints.invalid.push({ sequence: cp.sequence, problems })
  }
  // The projection the check reads.
  const diff = await projectionDifferences(sql, workspaceId, MAX_BROKEN)
  report.projection = { difference_count: diff.count, differences: diff.differences, differences_truncated: diff.count > diff.differences.length }

  report.ok = report.broken_count === 0 && report.checkpoints.invalid.length === 0 && diff.count === 0
  return report
}
