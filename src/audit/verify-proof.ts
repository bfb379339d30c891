/**
 * The offline verifier of a saved proof (`consent-ledger verify-proof <file>`). It uses only Node's
 * crypto (through canonical-json.ts, merkle.ts, signing.ts and the field list of ledger/event.ts, which
 * load nothing else): no
 * database, no configuration, no network. It checks, from the file alone:
 *   1. every event of every chain: its hash recomputed from its fields
 *      (sha256(prev_hash || canonical_json({v: 1, ...the hashed fields}))), and its prev_hash
 *      equal to the previous event's recomputed hash (GENESIS = 64 zeros for the first);
 *      events must carry exactly the hashed fields plus prev_hash and hash, with timestamps in the
 *      exact form the ledger hashes (2026-11-22T02:20:04.000Z), so no byte of an event goes
 *      unchecked;
 *   2. every event belongs to its chain's contact and to the proof's workspace;
 *   3. the leaf {contact_id, chain_length, head} recomputed from the first chain_length events,
 *      and its RFC 6962 inclusion proof up to the checkpoint's root_hash;
 *   4. the checkpoint's Ed25519 signature over the canonical JSON of {workspace_id, sequence,
 *      created_at, tree_size, root_hash}, with the public key in the proof, or with a pinned key
 *      (`--public-key <file>`): an auditor should pin the key the operator published, since
 *      whoever forges a proof can also put their own key in it.
 * A proof is `ok` when all of this holds and every chain with events is anchored in the checkpoint.
 * Events appended after the checkpoint are verified as a chain and reported as not yet anchored.
 *
 * `compareWithCurrent(saved, current)` answers "does a proof saved earlier still match the
 * ledger?" given a fresh proof of the same contact, taken after a fresh checkpoint
 * (POST /audit/checkpoints, then GET /audit/proof). It matches when:
 *   - both proofs verify on their own;
 *   - each saved chain is a prefix of the current chain (same recomputed hashes);
 *   - the current checkpoint is not older than the saved one (same sequence: same root);
 *   - every event of the current chains is anchored in the current checkpoint: an event that is
 *     in the ledger but that a checkpoint taken after it does not cover was not appended by the
 *     service (the service moves the contact's chain head with every append).
 * So after any edit, deletion, insertion or reordering of a contact's events, the saved proof no
 * longer matches. (A superuser who appends a correctly chained event AND moves the contact's head
 * before the next checkpoint is indistinguishable from a legitimate append: checkpoints bound the
 * past, not the future.)
 */
import { createHash } from 'node:crypto'
import { canonicalJson } from '../ledger/canonical-json.js'
import { EVENT_FIELDS } from '../ledger/event.js'
import { leafHash, verifyInclusion } from './merkle.js'
import { keyFingerprint, verifyCheckpointSignature } from './signing.js'

const GENESIS = '0'.repeat(64)
const HEX64 = /^[0-9a-f]{64}$/
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

/** The hashed fields (docs/audit.md, "What is chained"): the event's recorded fields, declared once in the ledger. */
const HASHED_FIELDS = EVENT_FIELDS
const NULLABLE = new Set(['subscription_group_id', 'state', 'method', 'identity_type', 'identity_value', 'request_id', 'idempotency_key', 'platform_stop'])
const EVENT_KEYS = new Set<string>([...HASHED_FIELDS, 'prev_hash', 'hash'])

export interface ChainReport {
  contact_id: string
  events: number
  chain_ok: boolean
  /** Recomputed hash after each event. */
  hashes: string[]
  /** Events covered by the checkpoint's leaf (0: none). */
  anchored_events: number
  inclusion_ok: boolean | null
}

export interface ProofReport {
  ok: boolean
  problems: string[]
  notes: string[]
  workspace_id: string | null
  contact_id: string | null
  checkpoint: { sequence: number; created_at: string; root_hash: string; signature_ok: boolean; key_fingerprint: string | null; key_pinned: boolean } | null
  chains: ChainReport[]
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

function eventProblem(e: unknown, where: string): string | null {
  if (!isObject(e)) return `${where} is not an object`
  for (const k of Object.keys(e)) if (!EVENT_KEYS.has(k)) return `${where} has an unexpected field ${JSON.stringify(k)}`
  for (const k of EVENT_KEYS) {
    if (!(k in e)) return `${where} lacks the field ${k}`
    const v = e[k]
    if (k === 'evidence') {
      if (!isObject(v)) return `${where}.evidence is not an object`
    } else if (v === null) {
      if (!NULLABLE.has(k)) return `${where}.${k} is null`
    } else if (typeof v !== 'string') return `${where}.${k} is not a string`
  }
  if (!TIMESTAMP.test(e.occurred_at as string) || !TIMESTAMP.test(e.recorded_at as string)) {
    return `${where} has a timestamp not in the hashed form YYYY-MM-DDTHH:MM:SS.sssZ`
  }
  if (!HEX64.test(e.prev_hash as string) || !HEX64.test(e.hash as string)) return `${where} has a malformed prev_hash or hash`
  return null
}

export function eventHash(prev: string, e: Record<string, unknown>): string {
  const body: Record<string, unknown> = { v: 1 }
  for (const k of HASHED_FIELDS) body[k] = e[k]
  return createHash('sha256').update(prev).update(canonicalJson(body)).digest('hex')
}

/** Where a verification writes what it finds: problems make a proof fail, notes do not. */
interface Findings {
  problems: string[]
  notes: string[]
}

type CheckpointPayload = { workspace_id: string; sequence: number; created_at: string; tree_size: number; root_hash: string }

function checkpointShapeOk(payload: CheckpointPayload, signature: unknown): boolean {
  return (
    typeof payload.workspace_id === 'string' &&
    Number.isSafeInteger(payload.sequence) &&
    typeof payload.created_at === 'string' &&
    Number.isSafeInteger(payload.tree_size) &&
    typeof payload.root_hash === 'string' &&
    HEX64.test(payload.root_hash) &&
    typeof signature === 'string'
  )
}

function fingerprintOrNull(key: string): string | null {
  try {
    return keyFingerprint(key)
  } catch {
    return null
  }
}

/** 4. The checkpoint and its signature, with the pinned key when there is one. */
function verifyCheckpoint(
  cp: Record<string, unknown>,
  ws: string | null,
  opts: { publicKeyPem?: string },
  f: Findings,
): { checkpoint: NonNullable<ProofReport['checkpoint']>; ok: boolean } {
  const payload: CheckpointPayload = {
    workspace_id: cp.workspace_id as string,
    sequence: cp.sequence as number,
    created_at: cp.created_at as string,
    tree_size: cp.tree_size as number,
    root_hash: cp.root_hash as string,
  }
  const shapeOk = checkpointShapeOk(payload, cp.signature)
  if (!shapeOk) f.problems.push('checkpoint fields are malformed')
  if (payload.workspace_id !== ws) f.problems.push('the checkpoint belongs to another workspace')
  const key = opts.publicKeyPem ?? (typeof cp.public_key === 'string' ? cp.public_key : '')
  const fingerprint = fingerprintOrNull(key)
  if (fingerprint === null) f.problems.push('the public key cannot be read')
  if (opts.publicKeyPem && typeof cp.public_key === 'string') {
    if (fingerprintOrNull(cp.public_key) !== fingerprint) f.problems.push('the proof names another public key than the pinned one')
  }
  const signatureOk = shapeOk && fingerprint !== null && verifyCheckpointSignature(payload, cp.signature as string, key)
  if (!signatureOk) f.problems.push(`the checkpoint signature does not verify${opts.publicKeyPem ? ' with the pinned key' : ''}`)
  if (!opts.publicKeyPem) f.notes.push(`signature checked with the public key carried by the proof (fingerprint ${fingerprint}); pin the operator's published key with --public-key`)
  const checkpoint = {
    sequence: payload.sequence,
    created_at: payload.created_at,
    root_hash: payload.root_hash,
    signature_ok: signatureOk,
    key_fingerprint: fingerprint,
    key_pinned: !!opts.publicKeyPem,
  }
  return { checkpoint, ok: shapeOk && signatureOk }
}

/** 1-2. One chain's events: shape, contact, workspace, links and hashes; the recomputed hashes. */
function verifyEvents(events: unknown[], contact: string, ws: string | null, ci: number, f: Findings): { hashes: string[]; ok: boolean } {
  const hashes: string[] = []
  let ok = true
  let prev = GENESIS
  const fail = (problem: string) => {
    ok = false
    f.problems.push(problem)
  }
  events.forEach((e, i) => {
    const where = `chains[${ci}].events[${i}]`
    const shape = eventProblem(e, where)
    if (shape) {
      fail(shape)
      hashes.push('')
      return
    }
    const ev = e as Record<string, unknown>
    if (ev.contact_id !== contact) fail(`${where} belongs to contact ${String(ev.contact_id)}, not ${contact}`)
    if (ev.workspace_id !== ws) fail(`${where} belongs to another workspace`)
    if (ev.prev_hash !== prev) fail(`${where}: prev_hash does not link to the previous event`)
    const h = eventHash(prev, ev)
    if (h !== ev.hash) fail(`${where}: content does not match its hash`)
    hashes.push(h)
    prev = h
  })
  return { hashes, ok }
}

/** 3. The chain's leaf recomputed from its first chain_length events, and its inclusion proof. */
function verifyAnchor(chain: Record<string, unknown> & { events: unknown[] }, contact: string, r: ChainReport, cp: unknown, f: Findings): void {
  const inc = chain.inclusion
  if (inc === null || inc === undefined) {
    if (chain.events.length > 0) f.problems.push(`contact ${contact}: no inclusion proof, its chain is not anchored in the checkpoint`)
    return
  }
  if (!isObject(inc) || !isObject(inc.leaf) || !Array.isArray(inc.audit_path) || !Number.isSafeInteger(inc.leaf_index)) {
    f.problems.push(`contact ${contact}: malformed inclusion proof`)
    r.inclusion_ok = false
    return
  }
  const L = inc.leaf.chain_length
  if (!Number.isSafeInteger(L) || (L as number) < 1 || (L as number) > chain.events.length) {
    f.problems.push(`contact ${contact}: the leaf covers ${String(L)} events, the chain holds ${chain.events.length}`)
    r.inclusion_ok = false
    return
  }
  const n = L as number
  const leaf = { contact_id: contact, chain_length: n, head: r.hashes[n - 1]! }
  if (inc.leaf.contact_id !== contact || inc.leaf.head !== leaf.head) {
    f.problems.push(`contact ${contact}: the leaf in the proof does not match the recomputed chain`)
  }
  const ok =
    isObject(cp) &&
    verifyInclusion(leafHash(leaf).toString('hex'), inc.leaf_index as number, cp.tree_size as number, inc.audit_path as string[], cp.root_hash as string)
  r.inclusion_ok = ok
  if (!ok) f.problems.push(`contact ${contact}: the first ${n} events are not included in the checkpoint's Merkle root`)
  else r.anchored_events = n
  if (n < chain.events.length) f.notes.push(`contact ${contact}: the last ${chain.events.length - n} event(s) came after checkpoint ${String(isObject(cp) ? cp.sequence : '?')} and are not yet anchored`)
}

export function verifyProof(proof: unknown, opts: { publicKeyPem?: string } = {}): ProofReport {
  const f: Findings = { problems: [], notes: [] }
  const { problems } = f
  const report: ProofReport = { ok: false, problems, notes: f.notes, workspace_id: null, contact_id: null, checkpoint: null, chains: [] }
  if (!isObject(proof) || proof.format !== 'consent-ledger-proof' || proof.version !== 1) {
    problems.push('not a consent-ledger proof (format "consent-ledger-proof", version 1)')
    return report
  }
  const ws = typeof proof.workspace_id === 'string' ? proof.workspace_id : null
  report.workspace_id = ws
  report.contact_id = typeof proof.contact_id === 'string' ? proof.contact_id : null
  if (!ws) problems.push('workspace_id is missing')
  if (!Array.isArray(proof.chains) || proof.chains.length === 0) {
    problems.push('the proof holds no chain')
    return report
  }
  if (!proof.chains.some((c) => isObject(c) && c.contact_id === proof.contact_id)) problems.push('no chain for the proof\'s contact_id')

  const cp = proof.checkpoint
  let checkpointOk = false
  if (cp === null || cp === undefined) {
    problems.push('no checkpoint: the chains are only internally consistent, not anchored to a signed checkpoint')
  } else if (!isObject(cp)) {
    problems.push('checkpoint is not an object')
  } else {
    const verified = verifyCheckpoint(cp, ws, opts, f)
    report.checkpoint = verified.checkpoint
    checkpointOk = verified.ok
  }

  const seen = new Set<string>()
  proof.chains.forEach((chain, ci) => {
    if (!isObject(chain) || typeof chain.contact_id !== 'string' || !Array.isArray(chain.events)) {
      problems.push(`chains[${ci}] is malformed`)
      return
    }
    const contact = chain.contact_id
    if (seen.has(contact)) problems.push(`contact ${contact} appears twice`)
    seen.add(contact)
    const events = chain.events as unknown[]
    const { hashes, ok } = verifyEvents(events, contact, ws, ci, f)
    const r: ChainReport = { contact_id: contact, events: events.length, chain_ok: ok, hashes, anchored_events: 0, inclusion_ok: null }
    report.chains.push(r)
    verifyAnchor({ ...chain, events }, contact, r, cp, f)
  })

  report.ok = problems.length === 0 && checkpointOk
  return report
}

/**
 * Does a proof saved earlier still match the ledger, as shown by a fresh proof of the same contact?
 * Both must verify on their own; each saved chain must be a prefix of the current one.
 */
export function compareWithCurrent(saved: unknown, current: unknown, opts: { publicKeyPem?: string } = {}): { ok: boolean; problems: string[] } {
  const problems: string[] = []
  const a = verifyProof(saved, opts)
  const b = verifyProof(current, opts)
  if (!a.ok) problems.push(...a.problems.map((p) => `saved proof: ${p}`))
  if (!b.ok) problems.push(...b.problems.map((p) => `current proof: ${p}`))
  if (a.workspace_id !== b.workspace_id) problems.push('the proofs are of different workspaces')
  if (a.checkpoint && b.checkpoint) {
    if (b.checkpoint.sequence < a.checkpoint.sequence) problems.push('the current checkpoint is older than the saved one')
    if (b.checkpoint.sequence === a.checkpoint.sequence && b.checkpoint.root_hash !== a.checkpoint.root_hash) {
      problems.push(`checkpoint ${a.checkpoint.sequence} has a different root now`)
    }
  }
  for (const s of a.chains) {
    const c = b.chains.find((x) => x.contact_id === s.contact_id)
    if (!c) {
      problems.push(`contact ${s.contact_id}: missing from the current proof`)
      continue
    }
    if (c.events < s.events) {
      problems.push(`contact ${s.contact_id}: the chain had ${s.events} events, it now has ${c.events}`)
      continue
    }
    const i = s.hashes.findIndex((h, k) => h !== c.hashes[k])
    if (i >= 0) problems.push(`contact ${s.contact_id}: the chain differs from the saved one from event ${i} on`)
  }
  for (const c of b.chains) {
    if (c.anchored_events < c.events) {
      problems.push(
        `contact ${c.contact_id}: ${c.events - c.anchored_events} event(s) of the current chain are not covered by checkpoint ${b.checkpoint?.sequence ?? '?'} (take a new checkpoint, then a fresh proof)`,
      )
    }
  }
  return { ok: problems.length === 0, problems }
}
