/**
 * `GET /audit/proof`: a self-contained JSON document that `consent-ledger verify-proof <file>`
 * checks offline (verify-proof.ts), with nothing but Node's crypto.
 *
 * Format (version 1):
 * {
 *   "format": "consent-ledger-proof", "version": 1, "generated_at": "...",
 *   "workspace_id": "...", "contact_id": "<the contact asked about>",
 *   "chains": [{                                   // the contact, then every contact merged into it
 *     "contact_id": "...", "merged_into": null | "<survivor>",
 *     "events": [ {event_id, workspace_id, contact_id, type, subscription_group_id, state,
 *                  occurred_at, recorded_at, source, method, evidence, identity_type,
 *                  identity_value, actor, request_id, idempotency_key, platform_stop,
 *                  prev_hash, hash}, ... ],    // chain order; exactly the hashed fields + links
 *     "verification": {ok, length, head, broken_at, matches_contact_row, problems},  // the server's check
 *     "inclusion": null | {"leaf_index": i, "leaf": {contact_id, chain_length, head}, "audit_path": [hex, ...]}
 *   }],
 *   "checkpoint": null | {workspace_id, sequence, created_at, tree_size, root_hash, signature,
 *                         public_key, key_fingerprint},
 *   "checkpoint_status": "included" | "partly_included" | "not_yet_checkpointed" | "no_checkpoint"
 *                        | "checkpoints_disabled" | "root_mismatch"
 * }
 * Events carry no ledger `id` (storage position, not covered by the hash): every byte of every
 * event in a proof is covered, so changing any of them makes verification fail. The inclusion
 * proof is against the latest checkpoint; it covers the first `leaf.chain_length` events of the
 * chain (events appended after that checkpoint verify as a chain but are not yet anchored).
 *
 * The contact: `contact_id=` names it directly (a merged-away contact proves its own chain);
 * `phone=` / `external_id=` / `bsuid=` name the contact that holds the identifier now.
 */
import type { Sql } from '../db/sql.js'
import { notFound } from '../errors/domain-error.js'
import type { IdentityType } from '../contacts/identity.js'
import { checkChain, type ChainProblem } from './chains.js'
import { latestCheckpoint, rebuildTree } from './checkpoints.js'
import { EVENT_COLUMNS, toAuditEvent, type EventRow } from './event-row.js'
import { contactOfIdentity, familyOf } from './events.js'
import type { Leaf } from './merkle.js'
import type { Signer } from './signing.js'

export type ProofEvent = Omit<ReturnType<typeof toAuditEvent>, 'id'>

export interface ProofChain {
  contact_id: string
  merged_into: string | null
  events: ProofEvent[]
  verification: {
    ok: boolean
    length: number
    head: string
    broken_at: number | null
    matches_contact_row: boolean
    problems: ChainProblem[]
  }
  inclusion: { leaf_index: number; leaf: Leaf; audit_path: string[] } | null
}

export interface Proof {
  format: 'consent-ledger-proof'
  version: 1
  generated_at: string
  workspace_id: string
  contact_id: string
  chains: ProofChain[]
  checkpoint: {
    workspace_id: string
    sequence: number
    created_at: string
    tree_size: number
    root_hash: string
    signature: string
    public_key: string
    key_fingerprint: string
  } | null
  checkpoint_status: 'included' | 'partly_included' | 'not_yet_checkpointed' | 'no_checkpoint' | 'checkpoints_disabled' | 'root_mismatch'
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export async function buildProof(
  sql: Sql,
  workspaceId: string,
  selector: { contactId?: string; identifier?: { type: IdentityType; value: string } },
  signer: Signer | null,
): Promise<Proof> {
  let contactId: string | null = null
  if (selector.identifier) contactId = await contactOfIdentity(sql, workspaceId, selector.identifier.type, selector.identifier.value)
  else if (selector.contactId && UUID.test(selector.contactId)) contactId = selector.contactId.toLowerCase()
  if (!contactId) throw notFound('contact')
  const members = await familyOf(sql, workspaceId, contactId)
  if (members.length === 0) throw notFound('contact')
  // The contact asked about first, then the ones merged into it.
  const ordered = [contactId, ...members.filter((m) => m !== contactId)]

  const contactRows = await sql.query<{ id: string; merged_into: string | null; chain_head: string | null; chain_length: number }>(
    `SELECT id, merged_into, chain_head, chain_length FROM contacts WHERE workspace_id = $1 AND id = ANY($2::uuid[])`,
    [workspaceId, ordered],
  )
  const rowOf = new Map(contactRows.map((r) => [r.id, r]))
  const events = await sql.query<EventRow>(
    `SELECT ${EVENT_COLUMNS} FROM consent_events e WHERE e.workspace_id = $1 AND e.contact_id = ANY($2::uuid[]) ORDER BY e.contact_id, e.id`,
    [workspaceId, ordered],
  )
  const byContact = new Map<string, EventRow[]>()
  for (const e of events) byContact.set(e.contact_id, [...(byContact.get(e.contact_id) ?? []), e])

  const checkpoint = await latestCheckpoint(sql, workspaceId)
  let proofs = new Map<string, { leaf: Leaf; leaf_index: number; audit_path: string[] }>()
  let rootOk = true
  if (checkpoint) {
    const tree = await rebuildTree(sql, workspaceId, checkpoint.sequence, ordered)
    rootOk = tree.root === checkpoint.root_hash && tree.size === checkpoint.tree_size
    proofs = tree.proofs
  }

  const chains: ProofChain[] = ordered.map((id) => {
    const evs = byContact.get(id) ?? []
    const row = rowOf.get(id) ?? null
    const check = checkChain(evs, row)
    return {
      contact_id: id,
      merged_into: row?.merged_into ?? null,
      events: evs.map((e) => {
        const { id: _ledgerId, ...rest } = toAuditEvent(e)
        return rest
      }),
      verification: {
        ok: check.ok,
        length: check.length,
        head: check.head,
        broken_at: check.broken_at,
        matches_contact_row: !check.problems.some((p) => p.code === 'head_mismatch' || p.code === 'length_mismatch'),
        problems: check.problems,
      },
      inclusion: proofs.get(id) ?? null,
    }
  })

  let status: Proof['checkpoint_status']
  const withEvents = chains.filter((c) => c.events.length > 0)
  if (!checkpoint) status = signer ? 'no_checkpoint' : 'checkpoints_disabled'
  else if (!rootOk) status = 'root_mismatch'
  else if (withEvents.every((c) => c.inclusion && c.inclusion.leaf.chain_length === c.events.length)) status = 'included'
  else if (withEvents.some((c) => c.inclusion)) status = 'partly_included'
  else status = 'not_yet_checkpointed'

  return {
    format: 'consent-ledger-proof',
    version: 1,
    generated_at: new Date().toISOString(),
    workspace_id: workspaceId,
    contact_id: contactId,
    chains,
    checkpoint: checkpoint
      ? {
          workspace_id: checkpoint.workspace_id,
          sequence: checkpoint.sequence,
          created_at: checkpoint.created_at,
          tree_size: checkpoint.tree_size,
          root_hash: checkpoint.root_hash,
          signature: checkpoint.signature,
          public_key: checkpoint.public_key,
          key_fingerprint: checkpoint.key_fingerprint,
        }
      : null,
    checkpoint_status: status,
  }
}
