/**
 * The tamper drill against a running service on the suite's own cluster. An attacker with the
 * database superuser disables the append-only triggers and edits, deletes and reorders events (one
 * naively, one rewriting every later hash and the contact row so the chain is internally valid),
 * and edits the projection the pre-send check reads (consent_state: a state flipped, a row
 * deleted). Then:
 *   - `POST /audit/verify` reports exactly the tampered chains, and the projection rows that no
 *     longer equal a fold of the ledger;
 *   - the offline verifier (`consent-ledger verify-proof saved.json --current fresh.json`, a
 *     separate process with nothing but the two files) rejects every tampered contact's proof
 *     saved before against the one served now, and accepts an untouched contact's.
 * A proof carries chains, not the projection, so projection edits are the server-side verify's to
 * find (it compares the table with the fold).
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { generateKeyPairSync } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { chainHash, GENESIS } from '../../src/ledger/hash-chain.js'
import { EVENT_COLUMNS } from '../../src/audit/event-row.js'
import { TS_CHILD_ARGS } from '../helpers/child.js'
import { ROOT } from './processes.js'
import { api, DATABASE, figures, startStack } from './stack.js'

t.setTimeout(240_000)

interface Report {
  ok: boolean
  broken: { contact_id: string; problems: { code: string }[] }[]
  projection?: { difference_count: number; differences: { table: string; kind: string; contact_id: string }[] }
}

/** `verify-proof` as an auditor runs it: its own process, two files; resolves to its exit code. */
async function verifyOffline(saved: string, current: string): Promise<number> {
  const child = spawn(process.execPath, [...TS_CHILD_ARGS, 'src/cli.ts', 'verify-proof', saved, '--current', current], { cwd: ROOT, stdio: 'ignore' })
  const [code] = (await once(child, 'exit')) as [number | null]
  return code ?? -1
}

t.test('tamper drill: ledger and projection edits detected by /audit/verify and the offline verifier', async (t) => {
  const key = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  const { cluster, service, group, dir } = await startStack(t, 'tamper', { env: { CHECKPOINT_SIGNING_KEY: key, CHECKPOINT_INTERVAL_MS: '0' } })
  const base = service.base
  const q = <T>(sql: string, params: unknown[] = []) => cluster.query<T & Record<string, unknown>>(sql, params, DATABASE)

  // 8 people, 3 events each in time order; the last one an opt-out.
  const phones = Array.from({ length: 8 }, (_, i) => `+1415555${String(7100 + i)}`)
  const states = ['subscribed', 'subscribed', 'unsubscribed']
  for (let round = 0; round < states.length; round++) {
    await api(base, 'POST', '/consent/events', {
      events: phones.map((phone) => ({
        phone,
        subscription_group_id: group,
        state: states[round],
        occurred_at: `2026-01-0${round + 1}T00:00:00Z`,
        method: 'web_form',
        evidence: { consent_text: `round ${round}` },
      })),
    })
  }
  await api(base, 'POST', '/audit/checkpoints')
  const verify = async () => (await api(base, 'POST', '/audit/verify')) as Report
  const clean = await verify()
  t.equal(clean.ok, true, 'the untouched ledger verifies')

  const proofOf = async (phone: string) => (await api(base, 'GET', `/audit/proof?phone=${encodeURIComponent(phone)}`)) as { contact_id: string }
  const saved: string[] = []
  const ids: string[] = []
  for (const [i, phone] of phones.entries()) {
    const proof = await proofOf(phone)
    ids.push(proof.contact_id)
    saved.push(join(dir, `saved-${i}.json`))
    writeFileSync(saved[i]!, JSON.stringify(proof))
  }

  // ---- the attacker: superuser, triggers off ----
  await q('ALTER TABLE consent_events DISABLE TRIGGER USER')
  await q('ALTER TABLE consent_state DISABLE TRIGGER USER')
  const eventsOf = async (contactId: string) =>
    q<{ id: string; prev_hash: string; hash: string; state: string }>(`SELECT ${EVENT_COLUMNS} FROM consent_events e WHERE e.contact_id = $1 ORDER BY e.id`, [contactId])
  const tamperedChains = new Map<string, string>()
  {
    const [, e] = await eventsOf(ids[0]!)
    await q(`UPDATE consent_events SET evidence = '{"consent_text":"forged"}' WHERE id = $1`, [e!.id])
    tamperedChains.set(ids[0]!, 'event edited')
  }
  {
    const [, e] = await eventsOf(ids[1]!)
    await q(`DELETE FROM consent_events WHERE id = $1`, [e!.id])
    tamperedChains.set(ids[1]!, 'event deleted')
  }
  {
    const [a, b] = await eventsOf(ids[2]!)
    await q(`UPDATE consent_events SET id = -1 WHERE id = $1`, [a!.id])
    await q(`UPDATE consent_events SET id = $2 WHERE id = $1`, [b!.id, a!.id])
    await q(`UPDATE consent_events SET id = $1 WHERE id = -1`, [b!.id])
    tamperedChains.set(ids[2]!, 'events reordered')
  }
  {
    // The opt-out turned into an opt-in, every hash after it rewritten and the contact row fixed:
    // internally consistent, so only the signed checkpoint can tell.
    const evs = await eventsOf(ids[3]!)
    await q(`UPDATE consent_events SET state = 'subscribed' WHERE id = $1`, [evs[2]!.id])
    let prev = GENESIS
    for (const e of await eventsOf(ids[3]!)) {
      const h = chainHash(prev, e as unknown as Parameters<typeof chainHash>[1])
      await q(`UPDATE consent_events SET prev_hash = $2, hash = $3 WHERE id = $1`, [e.id, prev, h])
      prev = h
    }
    await q(`UPDATE contacts SET chain_head = $2 WHERE id = $1`, [ids[3], prev])
    tamperedChains.set(ids[3]!, 'event edited, chain rehashed')
  }
  const tamperedProjection = new Map<string, string>()
  await q(`UPDATE consent_state SET state = 'subscribed' WHERE contact_id = $1`, [ids[4]])
  tamperedProjection.set(ids[4]!, 'opt-out flipped to opt-in in consent_state')
  await q(`DELETE FROM consent_state WHERE contact_id = $1`, [ids[5]])
  tamperedProjection.set(ids[5]!, 'consent_state row deleted')
  await q('ALTER TABLE consent_events ENABLE TRIGGER USER')
  await q('ALTER TABLE consent_state ENABLE TRIGGER USER')

  // ---- /audit/verify ----
  const report = await verify()
  t.equal(report.ok, false, '/audit/verify reports the tampering')
  const flagged = report.broken.map((b) => b.contact_id).sort()
  t.same(flagged, [...tamperedChains.keys()].sort(), 'exactly the tampered chains are flagged')
  for (const b of report.broken) t.ok(b.problems.length > 0, `${tamperedChains.get(b.contact_id)}: ${b.problems.map((p) => p.code).join(', ')}`)
  const projectionFlagged = new Set((report.projection?.differences ?? []).map((d) => d.contact_id))
  for (const [c, what] of tamperedProjection) t.ok(projectionFlagged.has(c), `projection: ${what} is reported`)
  t.same(
    [...projectionFlagged].filter((c) => !tamperedProjection.has(c) && !tamperedChains.has(c)),
    [],
    'no untouched contact has a projection difference',
  )

  // ---- the offline verifier, against fresh proofs under a new checkpoint ----
  await api(base, 'POST', '/audit/checkpoints')
  const offline = [...tamperedChains.keys(), ids[6]!]
  const codes = await Promise.all(
    offline.map(async (c) => {
      const i = ids.indexOf(c)
      const fresh = join(dir, `fresh-${i}.json`)
      writeFileSync(fresh, JSON.stringify(await proofOf(phones[i]!)))
      return verifyOffline(saved[i]!, fresh)
    }),
  )
  offline.forEach((c, k) => {
    if (tamperedChains.has(c)) t.equal(codes[k], 1, `offline verifier: ${tamperedChains.get(c)} is rejected (exit 1)`)
    else t.equal(codes[k], 0, 'offline verifier: an untouched contact still matches (exit 0)')
  })

  const detectedOnline = flagged.filter((c) => tamperedChains.has(c)).length + [...tamperedProjection.keys()].filter((c) => projectionFlagged.has(c)).length
  figures(t, 'tamper', [
    ['tampered', tamperedChains.size + tamperedProjection.size],
    ['detected_by_verify', detectedOnline],
    ['chains_tampered', tamperedChains.size],
    ['chains_rejected_offline', offline.filter((c, k) => tamperedChains.has(c) && codes[k] === 1).length],
    ['projection_tampered', tamperedProjection.size],
    ['false_alarms', flagged.filter((c) => !tamperedChains.has(c)).length],
  ])
  await service.sigterm()
})
