/**
 * Checkpoint signing (docs/audit.md). Pure: node:crypto and canonical JSON only, so
 * the offline verifier (verify-proof.ts) shares it.
 *
 * A checkpoint is {workspace_id, sequence, created_at, tree_size, root_hash}; the Ed25519 signature
 * covers its canonical JSON (keys sorted, no white space, UTF-8):
 *   {"created_at":"2026-11-22T02:20:04.000Z","root_hash":"<hex>","sequence":7,"tree_size":1234,"workspace_id":"<uuid>"}
 * and is stored and shown base64. The public key is shown as SPKI PEM, and identified by its
 * fingerprint: the SHA-256 (hex) of the SPKI DER.
 *
 * CHECKPOINT_SIGNING_KEY accepts an Ed25519 private key as:
 *   - PEM (`-----BEGIN PRIVATE KEY-----`, PKCS#8); a literal `\n` in an environment variable is read
 *     as a newline;
 *   - base64 (or base64url) of the PKCS#8 DER (48 bytes, what `openssl genpkey -algorithm ed25519
 *     -outform DER | base64` prints);
 *   - base64 (or base64url) of the raw 32-byte seed.
 * Anything else, or a key of another type, stops the start with a clear message (config/env.ts).
 */
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto'
import { canonicalJson } from '../ledger/canonical-json.js'

export interface CheckpointPayload {
  workspace_id: string
  sequence: number
  created_at: string
  tree_size: number
  root_hash: string
}

/** The exact bytes a checkpoint signature covers. */
export function checkpointMessage(c: CheckpointPayload): string {
  return canonicalJson({
    workspace_id: c.workspace_id,
    sequence: c.sequence,
    created_at: c.created_at,
    tree_size: c.tree_size,
    root_hash: c.root_hash,
  })
}

/** PKCS#8 DER prefix of an Ed25519 private key; the 32-byte seed follows. */
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')

export class SigningKeyError extends Error {}

export function parseSigningKey(text: string): KeyObject {
  const raw = text.trim()
  let key: KeyObject
  try {
    if (raw.includes('-----BEGIN')) {
      key = createPrivateKey(raw.replace(/\\n/g, '\n'))
    } else {
      if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(raw)) throw new SigningKeyError('is neither PEM nor base64')
      const der = Buffer.from(raw.replace(/-/g, '+').replace(/_/g, '/'), 'base64')
      const pkcs8 = der.length === 32 ? Buffer.concat([PKCS8_ED25519_PREFIX, der]) : der
      key = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' })
    }
  } catch (err) {
    if (err instanceof SigningKeyError) throw err
    throw new SigningKeyError('cannot be read as a private key')
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new SigningKeyError(`is a ${key.asymmetricKeyType ?? 'non-asymmetric'} key, not Ed25519`)
  return key
}

export function publicKeyPem(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key
  return pub.export({ type: 'spki', format: 'pem' }).toString()
}

/** SHA-256 (hex) of the SPKI DER of a public key given as PEM. */
export function keyFingerprint(publicPem: string): string {
  const der = createPublicKey(publicPem).export({ type: 'spki', format: 'der' })
  return createHash('sha256').update(der).digest('hex')
}

export interface Signer {
  publicKeyPem: string
  fingerprint: string
  sign(c: CheckpointPayload): string
}

export function createSigner(key: KeyObject): Signer {
  const pem = publicKeyPem(key)
  return {
    publicKeyPem: pem,
    fingerprint: keyFingerprint(pem),
    sign: (c) => sign(null, Buffer.from(checkpointMessage(c), 'utf8'), key).toString('base64'),
  }
}

/** Is `signatureB64` a valid Ed25519 signature of the checkpoint under `publicPem`? Never throws. */
export function verifyCheckpointSignature(c: CheckpointPayload, signatureB64: string, publicPem: string): boolean {
  try {
    const pub = createPublicKey(publicPem)
    if (pub.asymmetricKeyType !== 'ed25519') return false
    if (typeof signatureB64 !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(signatureB64)) return false
    const sig = Buffer.from(signatureB64, 'base64')
    if (sig.length !== 64 || sig.toString('base64') !== signatureB64) return false
    return verify(null, Buffer.from(checkpointMessage(c), 'utf8'), pub, sig)
  } catch {
    return false
  }
}
