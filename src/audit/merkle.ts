/**
 * The Merkle tree that checkpoints sign (docs/audit.md), RFC 6962 / RFC 9162 style.
 * Pure: depends on node:crypto and canonical JSON only, so the offline verifier can use it.
 *
 * Leaves: one per contact of the workspace that has a chain, sorted by contact_id (lower-case
 * uuid text, which is also PostgreSQL's uuid order). The leaf data is the canonical JSON of
 *   {"chain_length": <number of the contact's events covered>, "contact_id": "<uuid>", "head": "<hex hash of the last covered event>"}
 * (UTF-8), and hashing uses RFC 6962 domain separation:
 *   leaf_hash = SHA-256(0x00 || leaf_data)
 *   node_hash = SHA-256(0x01 || left || right)
 *   root of the empty tree = SHA-256("")
 * The tree shape is RFC 6962's MTH (split at the largest power of two below n); built level by
 * level, where an unpaired last node moves up unchanged, it is the same tree. Inclusion proofs are
 * RFC 6962 audit paths (leaf upward) and are checked with the RFC 9162 section 2.1.3.2 algorithm.
 */
import { createHash } from 'node:crypto'
import { canonicalJson } from '../ledger/canonical-json.js'

export interface Leaf {
  contact_id: string
  chain_length: number
  head: string
}

const sha256 = (...parts: (Buffer | Uint8Array | string)[]) => {
  const h = createHash('sha256')
  for (const p of parts) h.update(p)
  return h.digest()
}
const LEAF_PREFIX = Buffer.from([0x00])
const NODE_PREFIX = Buffer.from([0x01])

export function leafData(leaf: Leaf): string {
  return canonicalJson({ chain_length: leaf.chain_length, contact_id: leaf.contact_id, head: leaf.head })
}

export function leafHash(leaf: Leaf): Buffer {
  return sha256(LEAF_PREFIX, Buffer.from(leafData(leaf), 'utf8'))
}

export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  return sha256(NODE_PREFIX, left, right)
}

export const EMPTY_ROOT = createHash('sha256').digest('hex')

/**
 * Leaf hashes packed in one growing buffer (32 bytes each), so a tree over a million contacts
 * costs 32 MB, not a million objects.
 */
export class LeafHashes {
  private buf = Buffer.alloc(32 * 1024)
  length = 0

  push(hash: Uint8Array): void {
    if ((this.length + 1) * 32 > this.buf.length) {
      const bigger = Buffer.alloc(this.buf.length * 2)
      this.buf.copy(bigger, 0, 0, this.length * 32)
      this.buf = bigger
    }
    this.buf.set(hash, this.length * 32)
    this.length++
  }

  get(i: number): Buffer {
    return this.buf.subarray(i * 32, i * 32 + 32)
  }

  /** The packed hashes (a view, valid until the next push). */
  packed(): Buffer {
    return this.buf.subarray(0, this.length * 32)
  }
}

/** One level up: pairs hashed, an unpaired last node promoted unchanged. */
function parentLevel(level: Buffer, n: number): Buffer {
  const m = Math.ceil(n / 2)
  const out = Buffer.alloc(m * 32)
  for (let i = 0; i < m; i++) {
    if (2 * i + 1 < n) out.set(nodeHash(level.subarray(64 * i, 64 * i + 32), level.subarray(64 * i + 32, 64 * i + 64)), 32 * i)
    else level.copy(out, 32 * i, 64 * i, 64 * i + 32)
  }
  return out
}

/** Merkle root (hex) over packed leaf hashes. */
export function merkleRoot(leaves: LeafHashes | Buffer[]): string {
  const packed = Array.isArray(leaves) ? Buffer.concat(leaves) : leaves.packed()
  let n = packed.length / 32
  if (n === 0) return EMPTY_ROOT
  let level = packed
  while (n > 1) {
    level = parentLevel(level, n)
    n = Math.ceil(n / 2)
  }
  return level.subarray(0, 32).toString('hex')
}

/** RFC 6962 audit path (hex hashes, leaf upward) for the leaf at `index`, and the root. */
export function inclusionProof(leaves: LeafHashes | Buffer[], index: number): { path: string[]; root: string } {
  const packed = Array.isArray(leaves) ? Buffer.concat(leaves) : leaves.packed()
  let n = packed.length / 32
  if (index < 0 || index >= n) throw new RangeError(`leaf index ${index} outside a tree of ${n}`)
  const path: string[] = []
  let level = packed
  let i = index
  while (n > 1) {
    const sibling = i ^ 1
    if (sibling < n) path.push(level.subarray(32 * sibling, 32 * sibling + 32).toString('hex'))
    level = parentLevel(level, n)
    n = Math.ceil(n / 2)
    i = Math.floor(i / 2)
  }
  return { path, root: level.subarray(0, 32).toString('hex') }
}

/**
 * RFC 9162 section 2.1.3.2: does `path` prove that `leafHashHex` is leaf `index` of the tree of
 * `treeSize` leaves whose root is `rootHex`?
 */
export function verifyInclusion(leafHashHex: string, index: number, treeSize: number, path: string[], rootHex: string): boolean {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(treeSize) || index < 0 || index >= treeSize) return false
  const HEX = /^[0-9a-f]{64}$/
  if (!HEX.test(leafHashHex) || !HEX.test(rootHex) || !path.every((p) => typeof p === 'string' && HEX.test(p))) return false
  let fn = index
  let sn = treeSize - 1
  let r: Buffer = Buffer.from(leafHashHex, 'hex')
  for (const p of path) {
    if (sn === 0) return false
    const pb = Buffer.from(p, 'hex')
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(pb, r)
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2)
        sn = Math.floor(sn / 2)
      }
    } else {
      r = nodeHash(r, pb)
    }
    fn = Math.floor(fn / 2)
    sn = Math.floor(sn / 2)
  }
  return sn === 0 && r.toString('hex') === rootHex
}
