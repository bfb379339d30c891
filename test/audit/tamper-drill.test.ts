/**
 * The tamper drill (issue 6 acceptance; issue 22 added the projection), run as the database superuser on the test database: the
 * append-only triggers are disabled, then events of some contacts are edited, deleted, inserted
 * and reordered, some naively and some by an attacker who also rewrites the stored hashes and the
 * contact rows. POST /audit/verify must flag exactly the tampered contacts, and every proof saved
 * before the tampering must no longer match the ledger.
 *
 * "No longer match" is defined as `compareWithCurrent(saved, fresh)` (the CLI's
 * `verify-proof saved.json --current fresh.json`): the fresh proof of the same contact must verify
 * on its own and each saved chain must be a prefix of the current chain. The saved proof itself
 * keeps verifying offline: it is the evidence of what the ledger held.
 */
import t from 'tap'
import pg from 'pg'
import { randomUUID } from 'node:crypto'
import { buildTestApp, newGroup, newWorkspace } from '../helpers/build-app.js'
import { chainHash, GENESIS } from '../../src/ledger/hash-chain.js'
import { compareWithCurrent, verifyProof } from '../../src/audit/verify-proof.js'
import { createSigner, parseSigningKey } from '../../src/audit/signing.js'
import { EVENT_COLUMNS } from '../../src/audit/event-row.js'
import { append, keyWith, newSigningKeyPem, phoneItem, sleep } from './helpers.js'

interface EvRow {
  id: string
  event_id: string
  workspace_id: string
  contact_id: string
  type: string
  subscription_group_id: string | null
  state: string | null
  occurred_at: Date
  recorded_at: Date
  source: string
  method: string | null
  evidence: Record<string, unknown>
  identity_type: string | null
  identity_value: string | null
  actor: string
  request_id: string | null
  idempotency_key: string | null
  platform_stop: string | null
  prev_hash: string
  hash: string
}

t.test('tamper drill', async (t) => {
  const ta = await buildTestApp(t, { CHECKPOINT_SIGNING_KEY: newSigningKeyPem(), CHECKPOINT_INTERVAL_MS: '0' })
  const ws = await newWorkspace(ta)
  const g = await newGroup(ta, ws.auth)
  const g2 = await newGroup(ta, ws.auth, { name: 'alerts', category: 'utility' })
  const auditor = await keyWith(ta, ws.auth, ['audit:read'])

  // 16 people with 4 events each, one merged pair, and a bystander workspace.
  const phones = Array.from({ length: 16 }, (_, i) => `+141555506${String(i).padStart(2, '0')}`)
  for (let round = 0; round < 4; round++) {
    await append(
      ta,
      ws.id,
      phones.map((p, i) =>
        phoneItem(p, round % 2 ? g2 : g, (round + i) % 3 ? 'subscribed' : 'unsubscribed', { method: 'web_form', evidence: { consent_text: `round ${round}`, ip: '192.0.2.1' } }),
      ),
    )
    await sleep(2)
  }
  await append(ta, ws.id, [{ identities: [{ type: 'external_id', value: 'merged-survivor' }], subscriptionGroupId: g, state: 'subscribed', source: 'api' }])
  await append(ta, ws.id, [{ identities: [{ type: 'external_id', value: 'merged-survivor' }, { type: 'phone', value: phones[15]! }], identifyOnly: true, source: 'users_track' }])
  const other = await newWorkspace(ta, 'bystander')
  const og = await newGroup(ta, other.auth)
  await append(ta, other.id, [phoneItem(phones[0]!, og, 'subscribed')])

  const verify = async () => {
    const r = await ta.app.inject({ method: 'POST', url: '/audit/verify', headers: auditor })
    t.equal(r.statusCode, 200)
    return r.json() as { ok: boolean; broken: { contact_id: string; problems: { code: string }[] }[]; broken_count: number; contacts_checked: number; events_checked: number; checkpoints: { invalid: { sequence: number; problems: string[] }[] } }
  }
  const contactOf = async (phone: string) =>
    (await ta.app.database.sql.query<{ contact_id: string }>(`SELECT contact_id FROM identities WHERE workspace_id = $1 AND type = 'phone' AND value = $2`, [ws.id, phone]))[0]!.contact_id
  const proofOf = async (contactId: string) => {
    const r = await ta.app.inject({ url: `/audit/proof?contact_id=${contactId}`, headers: auditor })
    t.equal(r.statusCode, 200)
    return r.json()
  }

  await ta.app.audit.createCheckpoint(ws.id)
  const clean = await verify()
  t.equal(clean.ok, true, 'the untouched ledger verifies')
  t.equal(clean.contacts_checked, 17, 'every contact, the merged-away one too')

  const ids = await Promise.all(phones.map(contactOf))
  const saved = new Map<string, unknown>()
  for (const c of ids) {
    const p = await proofOf(c)
    t.equal(verifyProof(p).ok, true)
    saved.set(c, p)
  }

  // ---- Tampering, as the superuser, on the same database. ----
  const db = new pg.Client({ connectionString: ta.url })
  await db.connect()
  t.teardown(() => db.end())
  const [{ rolsuper }] = (await db.query(`SELECT rolsuper FROM pg_roles WHERE rolname = current_user`)).rows
  t.equal(rolsuper, true, 'tampering as the database superuser')
  await t.rejects(db.query(`UPDATE consent_events SET state = 'subscribed' WHERE workspace_id = $1`, [ws.id]), /append-only/, 'the trigger refuses even the superuser')
  await db.query('ALTER TABLE consent_events DISABLE TRIGGER USER')

  const eventsOf = async (contactId: string) =>
    (await db.query<EvRow>(`SELECT ${EVENT_COLUMNS} FROM consent_events e WHERE e.workspace_id = $1 AND e.contact_id = $2 ORDER BY e.id`, [ws.id, contactId])).rows
  /** Rewrite the stored links from position `from` on so the chain is internally valid again. */
  const rehash = async (contactId: string, fixContactRow: boolean) => {
    const evs = await eventsOf(contactId)
    let prev = GENESIS
    for (const e of evs) {
      const h = chainHash(prev, e)
      if (e.prev_hash !== prev || e.hash !== h) await db.query(`UPDATE consent_events SET prev_hash = $3, hash = $4 WHERE workspace_id = $1 AND id = $2`, [ws.id, e.id, prev, h])
      prev = h
    }
    if (fixContactRow) await db.query(`UPDATE contacts SET chain_head = $3, chain_length = $4 WHERE workspace_id = $1 AND id = $2`, [ws.id, contactId, prev, evs.length])
  }
  const insert = async (e: EvRow) =>
    db.query(
      `INSERT INTO consent_events (workspace_id, id, event_id, contact_id, type, subscription_group_id, state, occurred_at, recorded_at, source, method,
                                   evidence, identity_type, identity_value, actor, request_id, idempotency_key, platform_stop, prev_hash, hash)
       VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20)`,
      [e.workspace_id, e.id, e.event_id, e.contact_id, e.type, e.subscription_group_id, e.state, e.occurred_at, e.recorded_at, e.source, e.method,
        JSON.stringify(e.evidence), e.identity_type, e.identity_value, e.actor, e.request_id, e.idempotency_key, e.platform_stop, e.prev_hash, e.hash],
    )

  const tampered = new Map<string, string>()
  // 0: edit the evidence of an event (stored hash left as is).
  {
    const c = ids[0]!
    const [, e] = await eventsOf(c)
    await db.query(`UPDATE consent_events SET evidence = '{"consent_text":"forged"}' WHERE workspace_id = $1 AND id = $2`, [ws.id, e!.id])
    tampered.set(c, 'edit evidence')
  }
  // 1: flip an opt-out into an opt-in, then rewrite every later hash and the contact row.
  {
    const c = ids[1]!
    const evs = await eventsOf(c)
    const e = evs.find((x) => x.state === 'unsubscribed')!
    await db.query(`UPDATE consent_events SET state = 'subscribed' WHERE workspace_id = $1 AND id = $2`, [ws.id, e.id])
    await rehash(c, true)
    tampered.set(c, 'edit state + rehash + contact row')
  }
  // 2: delete an event in the middle.
  {
    const c = ids[2]!
    const [, e] = await eventsOf(c)
    await db.query(`DELETE FROM consent_events WHERE workspace_id = $1 AND id = $2`, [ws.id, e!.id])
    tampered.set(c, 'delete middle')
  }
  // 3: delete the last event and fix the contact row to the shorter chain.
  {
    const c = ids[3]!
    const evs = await eventsOf(c)
    await db.query(`DELETE FROM consent_events WHERE workspace_id = $1 AND id = $2`, [ws.id, evs[evs.length - 1]!.id])
    await db.query(`UPDATE contacts SET chain_head = $3, chain_length = $4 WHERE workspace_id = $1 AND id = $2`, [ws.id, c, evs[evs.length - 2]!.hash, evs.length - 1])
    tampered.set(c, 'delete tail + contact row')
  }
  // 4: insert a forged, correctly hashed opt-in before the first event.
  {
    const c = ids[4]!
    const [first] = await eventsOf(c)
    const forged: EvRow = { ...first!, id: '0', event_id: randomUUID(), state: 'subscribed', prev_hash: GENESIS, evidence: { consent_text: 'forged' } }
    forged.hash = chainHash(GENESIS, forged)
    await insert(forged)
    tampered.set(c, 'insert first')
  }
  // 5: append a correctly chained event at the tail without touching the contact row.
  {
    const c = ids[5]!
    const evs = await eventsOf(c)
    const last = evs[evs.length - 1]!
    const forged: EvRow = { ...last, id: String(BigInt(last.id) + 1_000_000n), event_id: randomUUID(), state: 'subscribed', prev_hash: last.hash }
    forged.hash = chainHash(last.hash, forged)
    await insert(forged)
    tampered.set(c, 'insert tail')
  }
  // 6: reorder two events (swap their ledger ids).
  {
    const c = ids[6]!
    const [a, b] = await eventsOf(c)
    await db.query(`UPDATE consent_events SET id = -1 WHERE workspace_id = $1 AND id = $2`, [ws.id, a!.id])
    await db.query(`UPDATE consent_events SET id = $3 WHERE workspace_id = $1 AND id = $2`, [ws.id, b!.id, a!.id])
    await db.query(`UPDATE consent_events SET id = $2 WHERE workspace_id = $1 AND id = -1`, [ws.id, b!.id])
    tampered.set(c, 'reorder')
  }
  // 7: move an event's occurred_at back a day, rewrite the hashes (contact row left alone).
  {
    const c = ids[7]!
    const [, , e] = await eventsOf(c)
    await db.query(`UPDATE consent_events SET occurred_at = occurred_at - interval '1 day' WHERE workspace_id = $1 AND id = $2`, [ws.id, e!.id])
    await rehash(c, false)
    tampered.set(c, 'edit occurred_at + rehash')
  }
  // 8: a full rewrite of the chain after the checkpoint (every hash and the contact row).
  {
    const c = ids[8]!
    const [e] = await eventsOf(c)
    await db.query(`UPDATE consent_events SET recorded_at = recorded_at + interval '1 second' WHERE workspace_id = $1 AND id = $2`, [ws.id, e!.id])
    await rehash(c, true)
    tampered.set(c, 'edit recorded_at + full rewrite')
  }
  // 9: delete every event of a contact and its contact row's chain.
  {
    const c = ids[9]!
    await db.query(`DELETE FROM consent_events WHERE workspace_id = $1 AND contact_id = $2`, [ws.id, c])
    await db.query(`UPDATE contacts SET chain_head = NULL, chain_length = 0 WHERE workspace_id = $1 AND id = $2`, [ws.id, c])
    tampered.set(c, 'delete all')
  }
  // 10: move an event to another contact (change its contact_id).
  {
    const c = ids[10]!
    const [, e] = await eventsOf(c)
    await db.query(`UPDATE consent_events SET contact_id = $3 WHERE workspace_id = $1 AND id = $2`, [ws.id, e!.id, ids[11]])
    tampered.set(c, 'event moved away')
    tampered.set(ids[11]!, 'event moved in')
  }
  await db.query('ALTER TABLE consent_events ENABLE TRIGGER USER')

  // ---- Verification flags exactly the tampered contacts. ----
  const report = await verify()
  t.equal(report.ok, false)
  const flagged = report.broken.map((b) => b.contact_id).sort()
  t.same(flagged, [...tampered.keys()].sort(), `exactly the ${tampered.size} tampered contacts, and no others`)
  for (const b of report.broken) t.ok(b.problems.length > 0, `${tampered.get(b.contact_id)}: ${b.problems.map((p) => p.code).join(', ')}`)
  const codes = (c: string) => report.broken.find((b) => b.contact_id === c)!.problems.map((p) => p.code)
  t.ok(codes(ids[1]!).includes('checkpoint_leaf_mismatch'), 'a rewrite with valid hashes is caught by the signed leaf')
  t.ok(codes(ids[3]!).includes('chain_shorter_than_checkpoint'), 'a truncated chain is caught by the signed leaf')
  t.equal(report.checkpoints.invalid.length, 0, 'the checkpoints themselves were not touched')

  // ---- Proofs saved before: against fresh proofs taken after a fresh checkpoint, each tampered
  // contact's no longer matches; the others still do. ----
  const next = await ta.app.audit.createCheckpoint(ws.id)
  t.equal(next.created, true, 'a new checkpoint signs the ledger as it stands now')
  t.ok(next.rewritten && next.rewritten.includes(ids[1]!) && next.rewritten.includes(ids[9]!), 'the job notices chains that changed without growing')
  const after = await verify()
  t.same(after.broken.map((b) => b.contact_id).sort(), [...tampered.keys()].sort(), 'verification after it: still exactly the tampered contacts')
  t.equal(after.checkpoints.invalid.length, 0, 'both checkpoints verify (signature, root from their leaves)')
  for (const c of ids) {
    const fresh = await proofOf(c)
    const cmp = compareWithCurrent(saved.get(c), fresh)
    if (tampered.has(c)) t.equal(cmp.ok, false, `${tampered.get(c)}: the saved proof no longer matches (${cmp.problems[0]})`)
    else t.same(cmp, { ok: true, problems: [] }, `untouched contact ${c} still matches`)
    t.equal(verifyProof(saved.get(c)).ok, true, 'the saved proof itself still verifies offline: it is the evidence of the original')
  }
  const freshB = await proofOf(ids[1]!)
  t.same(verifyProof(freshB).problems, [], 'a chain rewritten with valid hashes verifies on its own against the new checkpoint...')
  t.equal(compareWithCurrent(saved.get(ids[1]!), freshB).ok, false, '...but not against the proof saved before')

  t.test('tampered checkpoints are caught too', async (t) => {
    await db.query('ALTER TABLE checkpoints DISABLE TRIGGER USER')
    await db.query('ALTER TABLE checkpoint_leaves DISABLE TRIGGER USER')
    t.teardown(async () => {
      await db.query('ALTER TABLE checkpoints ENABLE TRIGGER USER')
      await db.query('ALTER TABLE checkpoint_leaves ENABLE TRIGGER USER')
    })
    // Root changed: the signature no longer verifies.
    await db.query(`UPDATE checkpoints SET root_hash = repeat('0', 64) WHERE workspace_id = $1 AND sequence = 1`, [ws.id])
    // Re-signed with an attacker's own key (valid signature, wrong key).
    const attacker = createSigner(parseSigningKey(newSigningKeyPem()))
    const [cp2] = (await db.query(`SELECT created_at, tree_size, root_hash FROM checkpoints WHERE workspace_id = $1 AND sequence = 2`, [ws.id])).rows
    const payload = { workspace_id: ws.id, sequence: 2, created_at: new Date(cp2.created_at).toISOString(), tree_size: cp2.tree_size, root_hash: cp2.root_hash }
    await db.query(`UPDATE checkpoints SET signature = $2, public_key = $3 WHERE workspace_id = $1 AND sequence = 2`, [ws.id, attacker.sign(payload), attacker.publicKeyPem])
    // A leaf of an untouched contact edited: its chain no longer matches the leaf.
    await db.query(`UPDATE checkpoint_leaves SET head = repeat('1', 64) WHERE workspace_id = $1 AND sequence = 1 AND contact_id = $2`, [ws.id, ids[12]])
    const r = await verify()
    const bySeq = new Map(r.checkpoints.invalid.map((i) => [i.sequence, i.problems.join('; ')]))
    t.match(bySeq.get(1), /signature_invalid/)
    t.match(bySeq.get(1), /root_mismatch/, 'and its stored leaves no longer hash to the (altered) root')
    t.match(bySeq.get(2), /signed_by_other_key/)
    t.ok(r.broken.some((b) => b.contact_id === ids[12]), 'the altered leaf shows on its contact')
  })
})

/**
 * The projection the pre-send check reads (consent_state, platform_stops), tampered as the
 * superuser with the guard disabled: edits, deletions, insertions, a row given to another contact
 * (a reordering of the projection), rows of a merged-away contact. The ledger is untouched, so the
 * chains, the checkpoints and every saved proof still verify; POST /audit/verify reports exactly the
 * tampered rows, and the rebuild brings back what the ledger says.
 */
t.test('tamper drill: the projection and the platform stops', async (t) => {
  const ta = await buildTestApp(t, { CHECKPOINT_SIGNING_KEY: newSigningKeyPem(), CHECKPOINT_INTERVAL_MS: '0' })
  const ws = await newWorkspace(ta)
  const g = await newGroup(ta, ws.auth)
  const g2 = await newGroup(ta, ws.auth, { name: 'alerts', category: 'utility' })
  const auditor = await keyWith(ta, ws.auth, ['audit:read'])
  const reader = await keyWith(ta, ws.auth, ['consent:read'])
  const phones = Array.from({ length: 8 }, (_, i) => `+141555508${String(i).padStart(2, '0')}`)
  const stop = (phone: string, n: string, at: string, action: 'stop' | 'resume' = 'stop') =>
    phoneItem(phone, g, action === 'stop' ? 'unsubscribed' : 'subscribed', {
      source: 'meta_user_preferences',
      method: 'whatsapp',
      occurredAt: at,
      evidence: { phone_number_id: n, signal_key: `wa:pref:${phone}:${n}:${action}:${at}` },
      platformStop: { action, phoneNumberId: n },
    })
  await append(ta, ws.id, phones.map((p, i) => phoneItem(p, g, i % 2 ? 'unsubscribed' : 'subscribed', { occurredAt: '2026-02-01T00:00:00Z' })))
  await append(ta, ws.id, phones.map((p, i) => phoneItem(p, g, i % 2 ? 'subscribed' : 'unsubscribed', { occurredAt: '2026-02-02T00:00:00Z' })))
  await append(ta, ws.id, phones.slice(0, 4).map((p) => phoneItem(p, g2, 'subscribed')))
  await append(ta, ws.id, [stop(phones[4]!, 'PN-A', '2026-02-03T00:00:00Z'), stop(phones[5]!, 'PN-A', '2026-02-03T00:00:00Z'), stop(phones[6]!, 'PN-A', '2026-02-03T00:00:00Z')])
  await append(ta, ws.id, [stop(phones[6]!, 'PN-B', '2026-02-04T00:00:00Z'), stop(phones[6]!, 'PN-B', '2026-02-05T00:00:00Z', 'resume')])
  // A merge: the phone-only contact of phones[7] goes into the contact of an external_id.
  await append(ta, ws.id, [{ identities: [{ type: 'external_id', value: 'drill-survivor' }], subscriptionGroupId: g2, state: 'subscribed', source: 'api' }])
  await append(ta, ws.id, [{ identities: [{ type: 'external_id', value: 'drill-survivor' }, { type: 'phone', value: phones[7]! }], identifyOnly: true, source: 'users_track' }])
  await ta.app.audit.createCheckpoint(ws.id)

  const { sql } = ta.app.database
  const contactOf = async (type: string, value: string) =>
    (await sql.query<{ contact_id: string }>(`SELECT contact_id FROM identities WHERE workspace_id = $1 AND type = $2 AND value = $3`, [ws.id, type, value]))[0]!.contact_id
  const ids = await Promise.all(phones.slice(0, 7).map((p) => contactOf('phone', p)))
  const survivor = await contactOf('external_id', 'drill-survivor')
  const [absorbed] = await sql.query<{ id: string }>(`SELECT id FROM contacts WHERE workspace_id = $1 AND merged_into = $2`, [ws.id, survivor])
  const verify = async () => (await ta.app.inject({ method: 'POST', url: '/audit/verify', headers: auditor })).json()
  const checks = async () =>
    (await ta.app.inject({ method: 'POST', url: '/consent/check', headers: reader, payload: { subscription_group_id: g, phones } })).json().results.map(
      (r: { allowed: boolean; reason: string }) => `${r.allowed} ${r.reason}`,
    )
  const truth = await checks()
  t.match(await verify(), { ok: true, projection: { difference_count: 0 } })
  const saved = new Map<string, unknown>()
  for (const c of [...ids, survivor]) saved.set(c, (await ta.app.inject({ url: `/audit/proof?contact_id=${c}`, headers: auditor })).json())

  const db = new pg.Client({ connectionString: ta.url })
  await db.connect()
  t.teardown(() => db.end())
  await t.rejects(db.query(`DELETE FROM platform_stops WHERE workspace_id = $1`, [ws.id]), /projection of the ledger/, 'the guard refuses the superuser')
  await db.query('ALTER TABLE consent_state DISABLE TRIGGER USER')
  await db.query('ALTER TABLE platform_stops DISABLE TRIGGER USER')
  const row = `workspace_id = $1 AND contact_id = $2 AND subscription_group_id = $3`
  const expected: string[] = []
  // 0: an opt-out edited into an opt-in.
  await db.query(`UPDATE consent_state SET state = 'subscribed' WHERE ${row}`, [ws.id, ids[0], g])
  expected.push(`consent_state wrong_state ${ids[0]} ${g}`)
  // 1: a row deleted.
  await db.query(`DELETE FROM consent_state WHERE ${row}`, [ws.id, ids[0], g2])
  expected.push(`consent_state missing ${ids[0]} ${g2}`)
  // 2: a row inserted for a group the person never answered.
  await db.query(
    `INSERT INTO consent_state (workspace_id, contact_id, subscription_group_id, state, occurred_at, event_seq, event_id, source)
     VALUES ($1, $2, $3, 'subscribed', now(), 1, gen_random_uuid(), 'api')`,
    [ws.id, ids[5], g2],
  )
  expected.push(`consent_state extra ${ids[5]} ${g2}`)
  // 3: the winner moved back to the older event.
  const [older] = await sql.query<{ id: string; event_id: string; occurred_at: Date; state: string }>(
    `SELECT id::text AS id, event_id, occurred_at, state FROM consent_events WHERE workspace_id = $1 AND contact_id = $2 AND subscription_group_id = $3 ORDER BY consent_events.id LIMIT 1`,
    [ws.id, ids[2], g],
  )
  await db.query(`UPDATE consent_state SET event_seq = $4, event_id = $5, occurred_at = $6, state = $7 WHERE ${row}`, [ws.id, ids[2], g, older!.id, older!.event_id, older!.occurred_at, older!.state])
  expected.push(`consent_state wrong_winner ${ids[2]} ${g}`)
  // 4: two people's rows swapped (a reordering of the projection).
  await db.query(`UPDATE consent_state SET contact_id = '00000000-0000-4000-8000-000000000000' WHERE ${row}`, [ws.id, ids[3], g])
  await db.query(`UPDATE consent_state SET contact_id = $4 WHERE ${row}`, [ws.id, ids[4], g, ids[3]])
  await db.query(`UPDATE consent_state SET contact_id = $4 WHERE workspace_id = $1 AND contact_id = $2 AND subscription_group_id = $3`, [
    ws.id,
    '00000000-0000-4000-8000-000000000000',
    g,
    ids[4],
  ])
  expected.push(`consent_state wrong_winner ${ids[3]} ${g}`, `consent_state wrong_winner ${ids[4]} ${g}`)
  // 5: a row for the merged-away contact (the check never reads it, but no event accounts for it).
  await db.query(
    `INSERT INTO consent_state (workspace_id, contact_id, subscription_group_id, state, occurred_at, event_seq, event_id, source)
     VALUES ($1, $2, $3, 'subscribed', now(), 1, gen_random_uuid(), 'api')`,
    [ws.id, absorbed!.id, g],
  )
  expected.push(`consent_state extra ${absorbed!.id} ${g}`)
  // 6: platform stops: one flipped, one deleted, one invented, one resume turned back into its stop.
  await db.query(`UPDATE platform_stops SET stopped = false WHERE workspace_id = $1 AND contact_id = $2 AND phone_number_id = 'PN-A'`, [ws.id, ids[4]])
  expected.push(`platform_stops wrong_state ${ids[4]} PN-A`)
  await db.query(`DELETE FROM platform_stops WHERE workspace_id = $1 AND contact_id = $2 AND phone_number_id = 'PN-A'`, [ws.id, ids[5]])
  expected.push(`platform_stops missing ${ids[5]} PN-A`)
  await db.query(`INSERT INTO platform_stops (workspace_id, contact_id, phone_number_id, stopped, occurred_at, event_id) VALUES ($1, $2, 'PN-A', true, now(), gen_random_uuid())`, [ws.id, ids[0]])
  expected.push(`platform_stops extra ${ids[0]} PN-A`)
  const [stopB] = await sql.query<{ event_id: string; occurred_at: Date }>(
    `SELECT event_id, occurred_at FROM consent_events WHERE workspace_id = $1 AND contact_id = $2 AND platform_stop = 'stop' AND evidence->>'phone_number_id' = 'PN-B'`,
    [ws.id, ids[6]],
  )
  await db.query(`UPDATE platform_stops SET stopped = true, event_id = $3, occurred_at = $4 WHERE workspace_id = $1 AND contact_id = $2 AND phone_number_id = 'PN-B'`, [
    ws.id,
    ids[6],
    stopB!.event_id,
    stopB!.occurred_at,
  ])
  expected.push(`platform_stops wrong_winner ${ids[6]} PN-B`)
  await db.query('ALTER TABLE consent_state ENABLE TRIGGER USER')
  await db.query('ALTER TABLE platform_stops ENABLE TRIGGER USER')
  t.not((await checks()).join(), truth.join(), 'the tampering changed what the check answers')

  const report = await verify()
  t.equal(report.ok, false, 'verify: not ok')
  t.equal(report.broken_count, 0, 'no chain is broken: the ledger was not touched')
  t.same(report.checkpoints.invalid, [])
  const key = (d: { table: string; kind: string; contact_id: string; subscription_group_id: string | null; phone_number_id: string | null }) =>
    `${d.table} ${d.kind} ${d.contact_id} ${d.subscription_group_id ?? d.phone_number_id}`
  t.same(report.projection.differences.map(key).sort(), expected.sort(), `exactly the ${expected.length} tampered rows`)
  for (const [c, p] of saved) t.equal(verifyProof(p).ok, true, `the offline verifier still accepts ${c}'s saved proof: its events are intact`)

  const repaired = (await ta.app.inject({ method: 'POST', url: '/audit/projection/rebuild', headers: ws.auth })).json()
  t.same(repaired.differences.map(key).sort(), expected.sort(), 'the rebuild repaired exactly those')
  t.match(await verify(), { ok: true, broken_count: 0, projection: { difference_count: 0 } }, 'verify: ok after the rebuild')
  t.same(await checks(), truth, 'the check answers what the ledger says again')
})
