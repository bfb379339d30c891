/**
 * Checkpoints: disabled without CHECKPOINT_SIGNING_KEY (and said so); created on demand (admin) and
 * by the background job at its interval and after N events; listed with signatures and the public
 * key; leaves stored as deltas; safe when two instances race; append-only.
 */
import t from 'tap'
import { createPrivateKey, generateKeyPairSync } from 'node:crypto'
import { buildTestApp, newGroup, newWorkspace, type TestApp } from '../../helpers/build-app.js'
import { checkpointMessage, createSigner, verifyCheckpointSignature } from '../../../src/audit/signing.js'
import { rebuildTree } from '../../../src/audit/checkpoints.js'
import { append, keyWith, newSigningKeyPem, phoneItem, sleep } from '../../audit/helpers.js'

const seedOf = (pem: string) => {
  const der = createPrivateKey(pem).export({ type: 'pkcs8', format: 'der' })
  return der.subarray(der.length - 32).toString('base64')
}

async function waitFor<T>(what: string, fn: () => Promise<T | null | undefined | false>, ms = 5000): Promise<T> {
  const until = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await sleep(25)
  }
}

const count = async (ta: TestApp, ws: string) =>
  (await ta.app.database.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM checkpoints WHERE workspace_id = $1`, [ws]))[0]!.n

t.test('without CHECKPOINT_SIGNING_KEY checkpoints are disabled, and every route says so', async (t) => {
  const ta = await buildTestApp(t)
  const ws = await newWorkspace(ta)
  const g = await newGroup(ta, ws.auth)
  await append(ta, ws.id, [phoneItem('+14155550401', g, 'subscribed')])
  const list = await ta.app.inject({ url: '/audit/checkpoints', headers: ws.auth })
  t.same(list.json(), { enabled: false, public_key: null, key_fingerprint: null, checkpoints: [], next_cursor: null })
  const post = await ta.app.inject({ method: 'POST', url: '/audit/checkpoints', headers: ws.auth })
  t.equal(post.statusCode, 409)
  t.equal(post.json().code, 'checkpoints_disabled')
  t.match(post.json().detail, /CHECKPOINT_SIGNING_KEY/)
  const proof = await ta.app.inject({ url: '/audit/proof?phone=%2B14155550401', headers: ws.auth })
  t.equal(proof.json().checkpoint_status, 'checkpoints_disabled')
  t.equal(proof.json().checkpoint, null)
  t.equal(proof.json().chains[0].verification.ok, true, 'chains still verify')
  const verify = await ta.app.inject({ method: 'POST', url: '/audit/verify', headers: ws.auth })
  t.match(verify.json(), { ok: true, checkpoints: { enabled: false, checked: 0 } })
  await t.rejects(ta.app.audit.createCheckpoint(ws.id), { code: 'checkpoints_disabled' })
})

t.test('on demand: POST /audit/checkpoints (admin), listing, deltas', async (t) => {
  const pem = newSigningKeyPem()
  // The key given as a base64 seed: the same key as the PEM.
  const ta = await buildTestApp(t, { CHECKPOINT_SIGNING_KEY: seedOf(pem), CHECKPOINT_INTERVAL_MS: '0' })
  const signer = createSigner(createPrivateKey(pem))
  const ws = await newWorkspace(ta)
  const g = await newGroup(ta, ws.auth)
  const auditor = await keyWith(ta, ws.auth, ['audit:read'])

  const empty = await ta.app.inject({ method: 'POST', url: '/audit/checkpoints', headers: ws.auth })
  t.same([empty.statusCode, empty.json()], [200, { created: false, checkpoint: null }], 'an empty workspace has nothing to sign')

  for (let i = 0; i < 5; i++) await append(ta, ws.id, [phoneItem(`+1415555041${i}`, g, 'subscribed')])
  const first = await ta.app.inject({ method: 'POST', url: '/audit/checkpoints', headers: ws.auth })
  t.equal(first.statusCode, 201)
  const c1 = first.json().checkpoint
  t.match(c1, { workspace_id: ws.id, sequence: 1, tree_size: 5, root_hash: /^[0-9a-f]{64}$/, key_fingerprint: signer.fingerprint })
  t.equal(c1.public_key, signer.publicKeyPem)
  t.equal(c1.signed_message, checkpointMessage(c1))
  t.ok(verifyCheckpointSignature(c1, c1.signature, signer.publicKeyPem), 'the signature verifies with the public key')

  const again = await ta.app.inject({ method: 'POST', url: '/audit/checkpoints', headers: ws.auth })
  t.same([again.statusCode, again.json().created, again.json().checkpoint.sequence], [200, false, 1], 'nothing changed: the latest is returned')

  await append(ta, ws.id, [phoneItem('+14155550410', g, 'unsubscribed'), phoneItem('+14155550419', g, 'subscribed')])
  const second = (await ta.app.inject({ method: 'POST', url: '/audit/checkpoints', headers: ws.auth })).json().checkpoint
  t.match(second, { sequence: 2, tree_size: 6 })
  const leaves = await ta.app.database.sql.query<{ sequence: string; n: number }>(
    `SELECT sequence::text, count(*)::int AS n FROM checkpoint_leaves WHERE workspace_id = $1 GROUP BY sequence ORDER BY sequence`,
    [ws.id],
  )
  t.same(leaves, [{ sequence: '1', n: 5 }, { sequence: '2', n: 2 }], 'checkpoint 2 stores only the two chains that changed')
  const rebuilt = await rebuildTree(ta.app.database.sql, ws.id, 2)
  t.same([rebuilt.size, rebuilt.root], [6, second.root_hash], 'its full tree is rebuilt from the deltas')

  const list = (await ta.app.inject({ url: '/audit/checkpoints', headers: auditor })).json()
  t.match(list, { enabled: true, public_key: signer.publicKeyPem, key_fingerprint: signer.fingerprint, next_cursor: null })
  t.same(list.checkpoints.map((c: { sequence: number }) => c.sequence), [2, 1], 'newest first')
  for (const c of list.checkpoints) t.ok(verifyCheckpointSignature(c, c.signature, list.public_key))
  const page1 = (await ta.app.inject({ url: '/audit/checkpoints?limit=1', headers: auditor })).json()
  const page2 = (await ta.app.inject({ url: `/audit/checkpoints?limit=1&cursor=${page1.next_cursor}`, headers: auditor })).json()
  t.same([page1.checkpoints[0].sequence, page2.checkpoints[0].sequence, page2.next_cursor], [2, 1, null])

  t.equal((await ta.app.inject({ method: 'POST', url: '/audit/checkpoints', headers: auditor })).statusCode, 403, 'an auditor cannot sign')
  const other = await newWorkspace(ta, 'other')
  t.same((await ta.app.inject({ url: '/audit/checkpoints', headers: other.auth })).json().checkpoints, [], "another workspace's checkpoints are not listed")

  // Append-only, like the ledger.
  await t.rejects(ta.app.database.sql.query(`UPDATE checkpoints SET root_hash = 'x' WHERE workspace_id = $1`, [ws.id]), /append-only/)
  await t.rejects(ta.app.database.sql.query(`DELETE FROM checkpoint_leaves WHERE workspace_id = $1`, [ws.id]), /append-only/)
  await t.rejects(ta.app.database.sql.query(`TRUNCATE checkpoint_leaves`), /append-only/)
})

t.test('two instances racing sign each state once', async (t) => {
  const ta = await buildTestApp(t, { CHECKPOINT_SIGNING_KEY: newSigningKeyPem(), CHECKPOINT_INTERVAL_MS: '0' })
  const ws = await newWorkspace(ta)
  const g = await newGroup(ta, ws.auth)
  for (let round = 0; round < 5; round++) {
    await append(ta, ws.id, [phoneItem(`+1415555042${round}`, g, 'subscribed')])
    const results = await Promise.all(Array.from({ length: 6 }, () => ta.app.audit.createCheckpoint(ws.id)))
    t.equal(results.filter((r) => r.created).length, 1, `round ${round}: exactly one signs`)
  }
  const seqs = await ta.app.database.sql.query<{ s: string }>(`SELECT sequence::text AS s FROM checkpoints WHERE workspace_id = $1 ORDER BY sequence`, [ws.id])
  t.same(seqs.map((r) => r.s), ['1', '2', '3', '4', '5'])
})

t.test('the background job: at its interval, and after N events', async (t) => {
  t.test('interval', async (t) => {
    const ta = await buildTestApp(t, { CHECKPOINT_SIGNING_KEY: newSigningKeyPem(), CHECKPOINT_INTERVAL_MS: '400', CHECKPOINT_EVERY_EVENTS: '0', CHECKPOINT_POLL_MS: '20' })
    const ws = await newWorkspace(ta)
    const g = await newGroup(ta, ws.auth)
    await sleep(200)
    t.equal(await count(ta, ws.id), 0, 'no events, no checkpoint')
    await append(ta, ws.id, [phoneItem('+14155550430', g, 'subscribed')])
    await waitFor('the first checkpoint', async () => (await count(ta, ws.id)) === 1)
    const t1 = Date.now()
    await append(ta, ws.id, [phoneItem('+14155550431', g, 'subscribed')])
    await waitFor('the second checkpoint', async () => (await count(ta, ws.id)) === 2)
    t.ok(Date.now() - t1 >= 300, `the next one waited for the interval (${Date.now() - t1} ms)`)
    await sleep(600)
    t.equal(await count(ta, ws.id), 2, 'no new events, no new checkpoint')
  })

  t.test('after N events', async (t) => {
    const ta = await buildTestApp(t, { CHECKPOINT_SIGNING_KEY: newSigningKeyPem(), CHECKPOINT_INTERVAL_MS: '3600000', CHECKPOINT_EVERY_EVENTS: '5', CHECKPOINT_POLL_MS: '20' })
    const ws = await newWorkspace(ta)
    const g = await newGroup(ta, ws.auth)
    await append(ta, ws.id, [phoneItem('+14155550440', g, 'subscribed')])
    await waitFor('the first checkpoint of the workspace', async () => (await count(ta, ws.id)) === 1)
    await append(ta, ws.id, [1, 2, 3, 4].map((i) => phoneItem(`+1415555044${i}`, g, 'subscribed')))
    await sleep(300)
    t.equal(await count(ta, ws.id), 1, '4 new events: not yet')
    await append(ta, ws.id, [phoneItem('+14155550445', g, 'subscribed')])
    await waitFor('a checkpoint after the 5th event', async () => (await count(ta, ws.id)) === 2)
    const [cp] = await ta.app.database.sql.query<{ tree_size: number }>(`SELECT tree_size FROM checkpoints WHERE workspace_id = $1 AND sequence = 2`, [ws.id])
    t.equal(cp!.tree_size, 6)
  })

  t.test('stops on close; runs on demand', async (t) => {
    const ta = await buildTestApp(t, { CHECKPOINT_SIGNING_KEY: newSigningKeyPem(), CHECKPOINT_INTERVAL_MS: '3600000', CHECKPOINT_POLL_MS: '3600000' })
    const ws = await newWorkspace(ta)
    const g = await newGroup(ta, ws.auth)
    await append(ta, ws.id, [phoneItem('+14155550450', g, 'subscribed')])
    t.equal(await count(ta, ws.id), 0, 'the job has not polled yet')
    await ta.app.audit.runCheckpointJob()
    t.equal(await count(ta, ws.id), 1, 'one tick of the job, synchronously')
    await ta.app.close()
    t.pass('closed with the job stopped (the process would otherwise not exit)')
  })
})

t.test('an RSA key in CHECKPOINT_SIGNING_KEY stops the start', async (t) => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  await t.rejects(buildTestApp(t, { CHECKPOINT_SIGNING_KEY: rsa }), /CHECKPOINT_SIGNING_KEY: must be an Ed25519 private key/)
})
