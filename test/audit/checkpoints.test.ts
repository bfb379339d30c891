/**
 * The checkpoint series of a workspace keeps growing past the tenth checkpoint (a sequence compared
 * as text stopped it at 9), and a conflict on the next sequence that no concurrent creator won is
 * an error, never a silent `created: false`.
 */
import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { buildTestApp, newGroup, newWorkspace } from '../helpers/build-app.js'
import { verifyProof } from '../../src/audit/verify-proof.js'
import { runVerifyProof } from '../../src/audit/verify-proof-cli.js'
import { append, keyWith, newSigningKeyPem, phoneItem } from './helpers.js'

const ROUNDS = 23
const job = { CHECKPOINT_INTERVAL_MS: '3600000', CHECKPOINT_EVERY_EVENTS: '1', CHECKPOINT_POLL_MS: '3600000' }

t.test(`the checkpoint job runs past 20 checkpoints and everything still verifies`, async (t) => {
  const ta = await buildTestApp(t, { CHECKPOINT_SIGNING_KEY: newSigningKeyPem(), ...job })
  const ws = await newWorkspace(ta)
  const g = await newGroup(ta, ws.auth)
  const auditor = await keyWith(ta, ws.auth, ['audit:read'])
  const watched = '+14155550900'

  for (let round = 1; round <= ROUNDS; round++) {
    // A write between checkpoints: the watched contact's chain grows, and one new contact appears.
    await append(ta, ws.id, [
      phoneItem(watched, g, round % 2 ? 'subscribed' : 'unsubscribed'),
      phoneItem(`+141555509${String(round).padStart(2, '0')}`, g, 'subscribed'),
    ])
    await ta.app.audit.runCheckpointJob()
  }

  const seqs = await ta.app.database.sql.query<{ s: string }>(`SELECT sequence::text AS s FROM checkpoints WHERE workspace_id = $1 ORDER BY 1::int`, [ws.id])
  t.same(
    seqs.map((r) => Number(r.s)),
    Array.from({ length: ROUNDS }, (_, i) => i + 1),
    `one checkpoint per round, sequences 1..${ROUNDS} without a gap`,
  )

  const all = (await ta.app.inject({ url: '/audit/checkpoints?limit=100', headers: auditor })).json()
  t.same(
    all.checkpoints.map((c: { sequence: number }) => c.sequence),
    Array.from({ length: ROUNDS }, (_, i) => ROUNDS - i),
    'GET /audit/checkpoints lists every checkpoint, #10 and later included, newest first',
  )
  t.equal(all.checkpoints[0].tree_size, ROUNDS + 1, 'the latest checkpoint covers every contact')
  const paged: number[] = []
  let cursor: string | null = null
  do {
    const page: { checkpoints: { sequence: number }[]; next_cursor: string | null } = (await ta.app.inject({ url: `/audit/checkpoints?limit=4${cursor ? `&cursor=${cursor}` : ''}`, headers: auditor })).json()
    paged.push(...page.checkpoints.map((c) => c.sequence))
    cursor = page.next_cursor
  } while (cursor)
  t.same(paged, all.checkpoints.map((c: { sequence: number }) => c.sequence), 'pages of 4 list the same checkpoints in the same order')

  const proofRes = await ta.app.inject({ url: `/audit/proof?phone=${encodeURIComponent(watched)}`, headers: auditor })
  t.equal(proofRes.statusCode, 200)
  const proof = proofRes.json()
  t.equal(proof.checkpoint.sequence, ROUNDS, 'the proof anchors to the latest checkpoint')
  t.equal(proof.checkpoint_status, 'included')
  t.equal(proof.chains[0].inclusion.leaf.chain_length, ROUNDS, 'with every event of the watched chain')
  const pinned = all.public_key as string
  const offline = verifyProof(proof, { publicKeyPem: pinned })
  t.same(offline.problems, [], 'the offline verifier finds no problem')
  t.equal(offline.ok, true)

  const dir = mkdtempSync(join(tmpdir(), 'cl-proof-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'proof.json'), proofRes.body)
  writeFileSync(join(dir, 'key.pem'), pinned)
  let out = ''
  const sink = new Writable({ write: (c, _e, cb) => ((out += String(c)), cb()) })
  const code = runVerifyProof([join(dir, 'proof.json'), '--public-key', join(dir, 'key.pem')], sink, sink)
  t.equal(code, 0, 'consent-ledger verify-proof accepts the saved proof with the pinned key')
  t.match(JSON.parse(out), { ok: true, checkpoint: { sequence: ROUNDS, signature_ok: true, key_pinned: true } })

  const verify = (await ta.app.inject({ method: 'POST', url: '/audit/verify', headers: auditor })).json()
  t.match(verify, { ok: true, broken_count: 0, checkpoints: { checked: ROUNDS, roots_checked: ROUNDS, latest_sequence: ROUNDS, invalid: [] } }, 'POST /audit/verify: ok')
})

t.test('a conflict on the next sequence that no concurrent creator won is an error, not `created: false`', async (t) => {
  const ta = await buildTestApp(t, { CHECKPOINT_SIGNING_KEY: newSigningKeyPem(), ...job })
  const ws = await newWorkspace(ta)
  const g = await newGroup(ta, ws.auth)
  await append(ta, ws.id, [phoneItem('+14155550950', g, 'subscribed')])
  t.match(await ta.app.audit.createCheckpoint(ws.id), { created: true, checkpoint: { sequence: 1 } })
  // A stray leaf row already holds sequence 2 (leaves are insert-only; no checkpoint 2 exists).
  const [c] = await ta.app.database.sql.query<{ id: string }>(`SELECT id FROM contacts WHERE workspace_id = $1`, [ws.id])
  await ta.app.database.sql.query(
    `INSERT INTO checkpoint_leaves (workspace_id, sequence, contact_id, chain_length, head) VALUES ($1, 2, $2, 1, repeat('a', 64))`,
    [ws.id, c!.id],
  )
  await append(ta, ws.id, [phoneItem('+14155550950', g, 'unsubscribed')])
  await t.rejects(ta.app.audit.createCheckpoint(ws.id), /checkpoint 2 .*conflict/i, 'the conflict is reported')
  await t.rejects(ta.app.audit.runCheckpointJob(), /checkpoint 2 .*conflict/i, 'the job sees it too (it logs it and retries at the next poll)')
  const post = await ta.app.inject({ method: 'POST', url: '/audit/checkpoints', headers: ws.auth })
  t.equal(post.statusCode, 500, 'POST /audit/checkpoints does not answer "nothing changed"')
  t.not(post.json().created, false)
})
