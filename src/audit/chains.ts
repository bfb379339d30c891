/**
 * Chain verification against the ledger: recompute every hash of a contact's events (in ledger id
 * order, which is chain order: a contact's events get their ids under its row lock), and compare
 * with what is stored, with the contact row (chain_head / chain_length) and with every checkpoint
 * leaf ever signed for that contact (each is a commitment to a prefix of its chain).
 *
 * Recomputation starts from GENESIS and never trusts a stored hash: hash[i] =
 * sha256(hash[i-1] || canonical_json(body(event i))). So an edited, deleted, inserted or reordered
 * event is found even when whoever changed it also rewrote the stored hashes after it, as long as
 * a checkpoint leaf covers that position or the contact row was left alone.
 */
import { chainHash, GENESIS } from '../ledger/hash-chain.js'
import { normalizeRow, type EventRow } from './event-row.js'

export type ChainProblemCode =
  | 'prev_hash_mismatch'
  | 'hash_mismatch'
  | 'head_mismatch'
  | 'length_mismatch'
  | 'checkpoint_leaf_mismatch'
  | 'chain_shorter_than_checkpoint'
  | 'contact_missing'

export interface ChainProblem {
  code: ChainProblemCode
  detail: string
  /** 0-based position in the chain. */
  position?: number
  event_id?: string
  checkpoint_sequence?: number
}

export interface ChainCheck {
  ok: boolean
  length: number
  /** Recomputed head (GENESIS for an empty chain). */
  head: string
  /** Recomputed hash after each event. */
  hashes: string[]
  /** Position of the first event whose stored prev_hash or hash is wrong. */
  broken_at: number | null
  problems: ChainProblem[]
}

export function checkChain(
  events: EventRow[],
  contactRow: { chain_head: string | null; chain_length: number } | null,
  leaves: { sequence: number; chain_length: number; head: string }[] = [],
): ChainCheck {
  const problems: ChainProblem[] = []
  const hashes: string[] = []
  let prev = GENESIS
  let brokenAt: number | null = null
  for (let i = 0; i < events.length; i++) {
    const e = normalizeRow(events[i]!)
    if (brokenAt === null && e.prev_hash !== prev) {
      brokenAt = i
      problems.push({ code: 'prev_hash_mismatch', position: i, event_id: e.event_id, detail: `event ${i} does not link to the event before it` })
    }
    const h = chainHash(prev, e)
    if (brokenAt === null && h !== e.hash) {
      brokenAt = i
      problems.push({ code: 'hash_mismatch', position: i, event_id: e.event_id, detail: `event ${i}'s content does not match its hash` })
    }
    hashes.push(h)
    prev = h
  }
  if (contactRow) {
    if (Number(contactRow.chain_length) !== events.length) {
      problems.push({ code: 'length_mismatch', detail: `the contact row counts ${contactRow.chain_length} events, the ledger holds ${events.length}` })
    }
    const expected = events.length === 0 ? null : prev
    if ((contactRow.chain_head ?? null) !== expected) {
      problems.push({ code: 'head_mismatch', detail: 'the contact row\'s chain head is not the recomputed head of its events' })
    }
  }
  for (const l of leaves) {
    if (l.chain_length > events.length) {
      problems.push({
        code: 'chain_shorter_than_checkpoint',
        checkpoint_sequence: l.sequence,
        detail: `checkpoint ${l.sequence} signed ${l.chain_length} events for this contact; the ledger holds ${events.length}`,
      })
    } else if (l.chain_length === 0 ? l.head !== GENESIS : hashes[l.chain_length - 1] !== l.head) {
      problems.push({
        code: 'checkpoint_leaf_mismatch',
        checkpoint_sequence: l.sequence,
        position: l.chain_length - 1,
        detail: `the first ${l.chain_length} events no longer hash to the head signed in checkpoint ${l.sequence}`,
      })
    }
  }
  return { ok: problems.length === 0, length: events.length, head: prev, hashes, broken_at: brokenAt, problems }
}
