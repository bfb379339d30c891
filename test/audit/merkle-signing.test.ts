/**
 * The pure building blocks of checkpoints and proofs, without a database:
 * - the Merkle tree equals RFC 6962's recursive MTH and PATH definitions for every size and index,
 *   and RFC 9162 verification accepts exactly the right (leaf, index, size, path, root);
 * - CHECKPOINT_SIGNING_KEY is read as PEM, base64 PKCS#8 DER, base64(url) seed; other keys and
 *   junk stop the configuration with a message naming the variable (and not echoing it);
 * - signatures cover the canonical JSON of the five checkpoint fields.
 */
import t from 'tap'
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto'
import { EMPTY_ROOT, inclusionProof, LeafHashes, leafData, leafHash, merkleRoot, nodeHash, verifyInclusion } from '../../src/audit/merkle.js'
import { checkpointMessage, createSigner, keyFingerprint, parseSigningKey, verifyCheckpointSignature } from '../../src/audit/signing.js'
import { ConfigError, loadConfig } from '../../src/config/env.js'

// RFC 6962 section 2.1, written recursively as in the RFC.
const sha = (...b: Buffer[]) => createHash('sha256').update(Buffer.concat(b)).digest()
function mth(d: Buffer[]): Buffer {
  if (d.length === 0) return sha()
  if (d.length === 1) return d[0]!
  let k = 1
  while (k * 2 < d.length) k *= 2
  return sha(Buffer.from([1]), mth(d.slice(0, k)), mth(d.slice(k)))
}
function path(m: number, d: Buffer[]): Buffer[] {
  if (d.length <= 1) return []
  let k = 1
  while (k * 2 < d.length) k *= 2
  return m < k ? [...path(m, d.slice(0, k)), mth(d.slice(k))] : [...path(m - k, d.slice(k)), mth(d.slice(0, k))]
}

t.test('Merkle tree = RFC 6962 MTH and PATH, for every size up to 40 and every index', async (t) => {
  t.equal(merkleRoot([]), EMPTY_ROOT)
  t.equal(EMPTY_ROOT, createHash('sha256').digest('hex'))
  for (let n = 1; n <= 40; n++) {
    const leaves = Array.from({ length: n }, (_, i) =>
      leafHash({ contact_id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, chain_length: i + 1, head: randomBytes(32).toString('hex') }),
    )
    const packed = new LeafHashes()
    for (const l of leaves) packed.push(l)
    const root = merkleRoot(packed)
    if (root !== mth(leaves).toString('hex')) t.fail(`root differs at n=${n}`)
    for (let m = 0; m < n; m++) {
      const p = inclusionProof(packed, m)
      const expected = path(m, leaves).map((b) => b.toString('hex'))
      if (JSON.stringify(p.path) !== JSON.stringify(expected)) t.fail(`path differs at n=${n} m=${m}`)
      const lh = leaves[m]!.toString('hex')
      if (!verifyInclusion(lh, m, n, p.path, root)) t.fail(`valid proof refused at n=${n} m=${m}`)
      // Wrong index, altered path, truncated path, other leaf: all refused.
      if (n > 1 && verifyInclusion(lh, (m + 1) % n, n, p.path, root)) t.fail(`wrong index accepted n=${n} m=${m}`)
      // (The size itself is signed in the checkpoint; an index outside it is refused.)
      if (verifyInclusion(lh, m, m, p.path, root)) t.fail(`index outside the size accepted n=${n} m=${m}`)
      if (p.path.length > 0) {
        const bad = [...p.path]
        bad[0] = bad[0]!.replace(/^./, (c) => (c === '0' ? '1' : '0'))
        if (verifyInclusion(lh, m, n, bad, root)) t.fail(`altered path accepted n=${n} m=${m}`)
        if (verifyInclusion(lh, m, n, p.path.slice(1), root)) t.fail(`short path accepted n=${n} m=${m}`)
      }
      if (verifyInclusion(lh, m, n, [...p.path, EMPTY_ROOT], root)) t.fail(`long path accepted n=${n} m=${m}`)
      if (n > 1 && verifyInclusion(leaves[(m + 1) % n]!.toString('hex'), m, n, p.path, root)) t.fail(`other leaf accepted n=${n} m=${m}`)
    }
  }
  t.pass('all sizes and indices agree with the RFC')
})

t.test('leaf data and domain separation', async (t) => {
  const leaf = { contact_id: '00000000-0000-4000-8000-000000000001', chain_length: 3, head: 'ab'.repeat(32) }
  t.equal(leafData(leaf), `{"chain_length":3,"contact_id":"00000000-0000-4000-8000-000000000001","head":"${'ab'.repeat(32)}"}`)
  t.equal(leafHash(leaf).toString('hex'), createHash('sha256').update(Buffer.from([0])).update(leafData(leaf)).digest('hex'))
  const a = randomBytes(32)
  const b = randomBytes(32)
  t.equal(nodeHash(a, b).toString('hex'), sha(Buffer.from([1]), a, b).toString('hex'))
  t.equal(merkleRoot([a, b]), nodeHash(a, b).toString('hex'))
})

t.test('CHECKPOINT_SIGNING_KEY formats', async (t) => {
  const { privateKey } = generateKeyPairSync('ed25519')
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  const der = privateKey.export({ type: 'pkcs8', format: 'der' })
  const seed = der.subarray(der.length - 32)
  const expected = keyFingerprint(createSigner(privateKey).publicKeyPem)
  const forms: Record<string, string> = {
    pem,
    'pem with literal \\n': pem.trim().replace(/\n/g, '\\n'),
    'base64 PKCS#8 DER': der.toString('base64'),
    'base64 seed': seed.toString('base64'),
    'base64url seed': seed.toString('base64url'),
  }
  for (const [name, value] of Object.entries(forms)) {
    t.equal(createSigner(parseSigningKey(value)).fingerprint, expected, name)
    t.equal(loadConfig({ CHECKPOINT_SIGNING_KEY: value }).CHECKPOINT_SIGNING_KEY, value, `${name} passes the configuration`)
  }
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  for (const [name, value] of [
    ['rsa', rsa],
    ['junk', 'not a key at all!'],
    ['short base64', Buffer.from('tooshort').toString('base64')],
  ] as const) {
    t.throws(() => parseSigningKey(value), `${name} refused`)
    try {
      loadConfig({ CHECKPOINT_SIGNING_KEY: value })
      t.fail(`${name} accepted by loadConfig`)
    } catch (err) {
      t.ok(err instanceof ConfigError, `${name}: ConfigError`)
      t.match((err as Error).message, /CHECKPOINT_SIGNING_KEY: must be an Ed25519 private key/)
      t.notMatch((err as Error).message, value.slice(0, 20), 'the value is not echoed')
    }
  }
  // Bad key together with another bad variable: both reported.
  try {
    loadConfig({ CHECKPOINT_SIGNING_KEY: 'junk!', PORT: 'abc' })
    t.fail('accepted')
  } catch (err) {
    t.same((err as ConfigError).problems.map((p) => p.split(':')[0]), ['PORT', 'CHECKPOINT_SIGNING_KEY'])
  }
  const c = loadConfig({})
  t.equal(c.CHECKPOINT_INTERVAL_MS, 600_000)
  t.equal(c.CHECKPOINT_EVERY_EVENTS, 10_000)
  t.equal(c.CHECKPOINT_POLL_MS, 5_000)
})

t.test('checkpoint signatures cover the canonical JSON of the five fields', async (t) => {
  const signer = createSigner(parseSigningKey(generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()))
  const cp = { workspace_id: '00000000-0000-4000-8000-000000000001', sequence: 7, created_at: '2026-11-22T02:20:04.000Z', tree_size: 12, root_hash: 'cd'.repeat(32) }
  t.equal(
    checkpointMessage(cp),
    `{"created_at":"2026-11-22T02:20:04.000Z","root_hash":"${'cd'.repeat(32)}","sequence":7,"tree_size":12,"workspace_id":"00000000-0000-4000-8000-000000000001"}`,
  )
  const sig = signer.sign(cp)
  t.ok(verifyCheckpointSignature(cp, sig, signer.publicKeyPem))
  for (const k of Object.keys(cp) as (keyof typeof cp)[]) {
    const changed = { ...cp, [k]: typeof cp[k] === 'number' ? (cp[k] as number) + 1 : `${cp[k]}x` }
    t.notOk(verifyCheckpointSignature(changed, sig, signer.publicKeyPem), `changing ${k} breaks the signature`)
  }
  const other = createSigner(parseSigningKey(randomBytes(32).toString('base64')))
  t.notOk(verifyCheckpointSignature(cp, sig, other.publicKeyPem), 'another key does not verify it')
  t.notOk(verifyCheckpointSignature(cp, 'not base64 !', signer.publicKeyPem))
})
