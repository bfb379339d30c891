/**
 * GET /audit/proof and the offline verifier (`consent-ledger verify-proof`):
 * - a saved proof verifies with nothing but the file (the CLI runs with no database and no
 *   configuration), including the chains of merged contacts;
 * - changing any field of any event (each in turn), and changing any single byte of the events'
 *   JSON, makes verification fail; so do changes to the checkpoint, signature, leaf and path;
 * - a pinned public key other than the signer's fails; events after the checkpoint are reported
 *   as not yet anchored;
 * - the verifier's module graph is Node's crypto and pure modules only.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createPrivateKey, createPublicKey, randomUUID } from 'node:crypto'
import { buildTestApp, newGroup, newWorkspace } from '../../helpers/build-app.js'
import { EnvSchema } from '../../../src/config/env.js'
import { compareWithCurrent, verifyProof } from '../../../src/audit/verify-proof.js'
import { append, keyWith, newSigningKeyPem, phoneItem } from '../../audit/helpers.js'
import { TS_CHILD_ARGS } from '../../helpers/child.js'

const root = fileURLToPath(new URL('../../..', import.meta.url))
const cliPath = join(root, 'src/cli.ts')

/** Run the CLI with none of the service's configuration in its environment. */
function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env: Record<string, string> = {}
  const configVars = new Set(Object.keys(EnvSchema.properties))
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !configVars.has(k)) env[k] = v
  env.DATABASE_URL = 'postgres://nobody:wrong@127.0.0.1:1/none' // would fail loudly if anything touched a database
  env.PORT = 'not-a-port' // and loadConfig would refuse this: verify-proof must not read the configuration
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [...TS_CHILD_ARGS, cliPath, ...args], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code) => resolvePromise({ code, stdout, stderr }))
  })
}

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T

/** A different value of the same JSON type. */
function mutate(v: unknown): unknown {
  if (v === null) return 'x'
  if (typeof v === 'string') return v.length === 0 ? 'x' : v.slice(0, -1) + (v.endsWith('0') ? '1' : '0')
  if (typeof v === 'number') return v + 1
  if (typeof v === 'boolean') return !v
  if (Array.isArray(v)) return [...v, 'x']
  return { ...(v as object), extra: 1 }
}

t.test('proofs', async (t) => {
  const pem = newSigningKeyPem()
  const ta = await buildTestApp(t, { CHECKPOINT_SIGNING_KEY: pem, CHECKPOINT_INTERVAL_MS: '0' })
  const ws = await newWorkspace(ta)
  const g = await newGroup(ta, ws.auth)
  const auditor = await keyWith(ta, ws.auth, ['audit:read'])
  const P = '+14155550501'
  // A phone-only history, then the phone joins external_id "alice" (merge), plus other people.
  await append(ta, ws.id, [phoneItem(P, g, 'subscribed', { method: 'web_form', evidence: { consent_text: 'Yes, send me offers', ip: '198.51.100.7', tags: ['a', 'b'], n: 3.5 } })])
  await append(ta, ws.id, [phoneItem(P, g, 'unsubscribed', { source: 'inbound_keyword', evidence: { keyword: 'STOP', wa_message_id: 'wamid.1' } })])
  await append(ta, ws.id, [{ identities: [{ type: 'external_id', value: 'alice' }], subscriptionGroupId: g, state: 'subscribed', source: 'api', method: 'checkout', evidence: { document_ref: 'order-1' } }])
  await append(ta, ws.id, [{ identities: [{ type: 'external_id', value: 'alice' }, { type: 'phone', value: P }], identifyOnly: true, source: 'users_track' }])
  for (let i = 0; i < 6; i++) await append(ta, ws.id, [phoneItem(`+1415555051${i}`, g, 'subscribed')])
  await ta.app.audit.createCheckpoint(ws.id)

  const get = async (query: string) => {
    const r = await ta.app.inject({ url: `/audit/proof?${query}`, headers: auditor })
    if (r.statusCode !== 200) throw new Error(`${query}: ${r.statusCode} ${r.body}`)
    return r.json()
  }
  const proof = await get(`phone=${encodeURIComponent(P)}`)

  t.test('shape and offline verification', async (t) => {
    t.equal(proof.checkpoint_status, 'included')
    t.equal(proof.chains.length, 2, 'the contact and the contact merged into it')
    t.equal(proof.chains[1].merged_into, proof.contact_id)
    t.ok(proof.chains.every((c: { verification: { ok: boolean } }) => c.verification.ok))
    t.notOk('id' in proof.chains[0].events[0], 'events carry only covered fields')
    const report = verifyProof(proof)
    t.same(report.problems, [])
    t.equal(report.ok, true)
    t.same(report.chains.map((c) => c.anchored_events), proof.chains.map((c: { events: unknown[] }) => c.events.length))
    const pinned = verifyProof(proof, { publicKeyPem: createPublicKey(createPrivateKey(pem)).export({ type: 'spki', format: 'pem' }).toString() })
    t.equal(pinned.ok, true, 'verifies with the operator\'s pinned key')
    t.equal(verifyProof(proof, { publicKeyPem: createPublicKey(createPrivateKey(newSigningKeyPem())).export({ type: 'spki', format: 'pem' }).toString() }).ok, false, 'another pinned key: refused')
    const byExt = await get('external_id=alice')
    t.equal(verifyProof(byExt).ok, true)
    const byAbsorbed = await get(`contact_id=${proof.chains[1].contact_id}`)
    t.equal(byAbsorbed.chains.length, 1, "a merged-away contact's id proves its own chain")
    t.equal(verifyProof(byAbsorbed).ok, true)
  })

  t.test('changing any field of any event fails verification', async (t) => {
    let cases = 0
    proof.chains.forEach((chain: { events: Record<string, unknown>[] }, ci: number) => {
      chain.events.forEach((event, ei) => {
        const paths: string[][] = Object.keys(event).map((k) => [k])
        for (const k of Object.keys(event.evidence as object)) paths.push(['evidence', k])
        for (const p of paths) {
          const bad = clone(proof)
          const target = bad.chains[ci].events[ei]
          if (p.length === 1) target[p[0]!] = mutate(target[p[0]!])
          else target[p[0]!][p[1]!] = mutate(target[p[0]!][p[1]!])
          cases++
          if (verifyProof(bad).ok) t.fail(`changing chains[${ci}].events[${ei}].${p.join('.')} went unnoticed`)
        }
        // Removing a field, adding one.
        for (const k of Object.keys(event)) {
          const bad = clone(proof)
          delete bad.chains[ci].events[ei][k]
          cases++
          if (verifyProof(bad).ok) t.fail(`removing ${k} went unnoticed`)
        }
        const extra = clone(proof)
        extra.chains[ci].events[ei].id = '1'
        cases++
        if (verifyProof(extra).ok) t.fail('an extra field went unnoticed')
      })
    })
    t.ok(cases > 50, `${cases} changes, all detected`)
  })

  t.test('changing any byte of the event data fails verification', async (t) => {
    const text = JSON.stringify(proof)
    const start = text.indexOf('"events":[') + '"events":['.length
    let end = text.indexOf('],"verification"', start)
    let cases = 0
    const ranges: [number, number][] = []
    let from = start
    while (from > 0 && end > 0) {
      ranges.push([from, end])
      from = text.indexOf('"events":[', end)
      if (from < 0) break
      from += '"events":['.length
      end = text.indexOf('],"verification"', from)
    }
    t.equal(ranges.length, 2)
    for (const [a, b] of ranges) {
      for (let i = a; i < b; i++) {
        const c = text.charCodeAt(i)
        const flipped = text.slice(0, i) + String.fromCharCode(c ^ 1) + text.slice(i + 1)
        let parsed: unknown
        try {
          parsed = JSON.parse(flipped)
        } catch {
          cases++
          continue // not even JSON: the CLI refuses it (exit 66)
        }
        cases++
        if (verifyProof(parsed).ok) t.fail(`flipping byte ${i - a} (${JSON.stringify(text[i])}) went unnoticed: ${JSON.stringify(text.slice(i - 20, i + 20))}`)
      }
    }
    t.ok(cases > 1000, `${cases} single-byte changes, all detected`)
  })

  t.test('changing the checkpoint, signature, leaf or path fails verification', async (t) => {
    const edits: [string, (p: typeof proof) => void][] = [
      ['checkpoint.sequence', (p) => (p.checkpoint.sequence += 1)],
      ['checkpoint.created_at', (p) => (p.checkpoint.created_at = '2020-01-01T00:00:00.000Z')],
      ['checkpoint.tree_size', (p) => (p.checkpoint.tree_size += 1)],
      ['checkpoint.root_hash', (p) => (p.checkpoint.root_hash = mutate(p.checkpoint.root_hash))],
      ['checkpoint.workspace_id', (p) => (p.checkpoint.workspace_id = randomUUID())],
      ['checkpoint.signature', (p) => (p.checkpoint.signature = Buffer.alloc(64, 1).toString('base64'))],
      ['checkpoint.public_key', (p) => (p.checkpoint.public_key = createPublicKey(createPrivateKey(newSigningKeyPem())).export({ type: 'spki', format: 'pem' }).toString())],
      ['checkpoint removed', (p) => (p.checkpoint = null)],
      ['inclusion.leaf_index', (p) => (p.chains[0].inclusion.leaf_index = (p.chains[0].inclusion.leaf_index + 1) % p.checkpoint.tree_size)],
      ['inclusion.leaf.chain_length', (p) => (p.chains[0].inclusion.leaf.chain_length -= 1)],
      ['inclusion.audit_path[0]', (p) => (p.chains[0].inclusion.audit_path[0] = mutate(p.chains[0].inclusion.audit_path[0]))],
      ['inclusion.audit_path dropped', (p) => p.chains[0].inclusion.audit_path.pop()],
      ['inclusion removed', (p) => (p.chains[0].inclusion = null)],
      ['an event dropped', (p) => p.chains[0].events.splice(1, 1)],
      ['two events swapped', (p) => p.chains[0].events.reverse()],
      ['workspace_id', (p) => (p.workspace_id = randomUUID())],
      ['a chain moved to another contact', (p) => (p.chains[1].contact_id = p.chains[0].contact_id)],
    ]
    for (const [name, edit] of edits) {
      const bad = clone(proof)
      edit(bad)
      t.equal(verifyProof(bad).ok, false, name)
    }
  })

  t.test('the CLI: offline, exit codes, --public-key, --current', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'proof-'))
    const file = join(dir, 'proof.json')
    writeFileSync(file, JSON.stringify(proof, null, 2))
    const ok = await runCli(['verify-proof', file])
    t.equal(ok.code, 0, `exit 0 (stderr: ${ok.stderr})`)
    t.match(JSON.parse(ok.stdout), { ok: true, problems: [], checkpoint: { signature_ok: true, key_pinned: false } })

    const bad = clone(proof)
    bad.chains[0].events[0].state = bad.chains[0].events[0].state === 'subscribed' ? 'unsubscribed' : 'subscribed'
    const badFile = join(dir, 'bad.json')
    writeFileSync(badFile, JSON.stringify(bad))
    const r = await runCli(['verify-proof', badFile])
    t.equal(r.code, 1)
    t.match(JSON.parse(r.stdout).problems.join('\n'), /content does not match its hash/)

    const keyFile = join(dir, 'key.pem')
    writeFileSync(keyFile, createPublicKey(createPrivateKey(pem)).export({ type: 'spki', format: 'pem' }).toString())
    t.equal((await runCli(['verify-proof', file, '--public-key', keyFile])).code, 0, 'pinned key')
    writeFileSync(keyFile, createPublicKey(createPrivateKey(newSigningKeyPem())).export({ type: 'spki', format: 'pem' }).toString())
    t.equal((await runCli(['verify-proof', file, '--public-key', keyFile])).code, 1, 'another pinned key')

    // Later: more events and a new checkpoint; the saved proof still matches the ledger.
    await append(ta, ws.id, [phoneItem(P, g, 'subscribed', { method: 'web_form', evidence: { consent_text: 'again' } })])
    const later = await get(`phone=${encodeURIComponent(P)}`)
    t.equal(later.checkpoint_status, 'partly_included', 'the new event is not anchored yet')
    const laterReport = verifyProof(later)
    t.equal(laterReport.ok, true)
    t.match(laterReport.notes.join('\n'), /not yet anchored/)
    await ta.app.audit.createCheckpoint(ws.id)
    const current = await get(`phone=${encodeURIComponent(P)}`)
    t.equal(current.checkpoint.sequence, 2)
    const currentFile = join(dir, 'current.json')
    writeFileSync(currentFile, JSON.stringify(current))
    const cmp = await runCli(['verify-proof', file, '--current', currentFile])
    t.equal(cmp.code, 0, `the saved proof is a prefix of the current one (${cmp.stdout})`)
    t.same(compareWithCurrent(proof, current), { ok: true, problems: [] })

    t.equal((await runCli(['verify-proof'])).code, 64, 'usage')
    t.equal((await runCli(['verify-proof', join(dir, 'missing.json')])).code, 66, 'unreadable file')
    writeFileSync(join(dir, 'garbage.json'), '{not json')
    t.equal((await runCli(['verify-proof', join(dir, 'garbage.json')])).code, 66, 'not JSON')
    t.equal((await runCli(['verify-proof', currentFile, '--bogus'])).code, 64)
  })

  t.test('errors and isolation', async (t) => {
    const code = async (query: string, auth = auditor) => {
      const r = await ta.app.inject({ url: `/audit/proof?${query}`, headers: auth })
      return `${r.statusCode} ${r.json().code}`
    }
    t.equal(await code(''), '400 one_selector_required')
    t.equal(await code(`phone=${encodeURIComponent(P)}&external_id=alice`), '400 one_selector_required')
    t.equal(await code('external_id=nobody'), '404 not_found')
    t.equal(await code(`contact_id=${randomUUID()}`), '404 not_found')
    const other = await newWorkspace(ta, 'other')
    t.equal(await code(`contact_id=${proof.contact_id}`, other.auth), '404 not_found')
    t.equal(await code('external_id=alice', other.auth), '404 not_found')
  })
})

t.test('the offline verifier imports nothing but node: modules and pure modules', async (t) => {
  const allowed = new Set(['src/audit/verify-proof-cli.ts', 'src/audit/verify-proof.ts', 'src/audit/merkle.ts', 'src/audit/signing.ts', 'src/ledger/canonical-json.ts', 'src/ledger/event.ts'])
  const seen = new Set<string>()
  const visit = (rel: string) => {
    if (seen.has(rel)) return
    seen.add(rel)
    const text = readFileSync(join(root, rel), 'utf8')
    // `import type` is erased from the JavaScript the verifier runs as, so it loads nothing.
    for (const m of text.matchAll(/^import(?! type )[^'"]*['"]([^'"]+)['"]/gm)) {
      const spec = m[1]!
      if (spec.startsWith('node:')) continue
      if (!spec.startsWith('.')) {
        t.fail(`${rel} imports the package ${spec}`)
        continue
      }
      const next = resolve(dirname(join(root, rel)), spec).slice(root.length).replace(/^\//, '').replace(/\.js$/, '.ts')
      if (!allowed.has(next)) t.fail(`${rel} imports ${next}`)
      visit(next)
    }
  }
  visit('src/audit/verify-proof-cli.ts')
  t.same([...seen].sort(), [...allowed].sort())
})
