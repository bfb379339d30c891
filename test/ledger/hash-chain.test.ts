/**
 * The ledger hashes events through `canonicalBody`, a direct writer of the version-1 body; it must
 * produce exactly the bytes of the generic definition, canonicalJson(hashBody(e)), for any event
 * (the auditors' offline verifier uses the generic form).
 */
import t from 'tap'
import fc from 'fast-check'
import { createHash } from 'node:crypto'
import { canonicalJson } from '../../src/ledger/canonical-json.js'
import { canonicalBody, chainHash, GENESIS, hashBody, type HashableEvent } from '../../src/ledger/hash-chain.js'

// Any text, and text canonicalBody writes without JSON.stringify (word characters and .:+@-), with
// characters just outside that set mixed in.
const str = fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), fc.stringMatching(/^[\w.:+@\-"\\/ ]{0,24}$/))
const optStr = fc.option(str, { nil: null })
// A few instants again and again (canonicalBody remembers the last two ISO strings), and any other.
const date = fc.oneof(
  fc.constantFrom(new Date('2026-01-01T00:00:00.000Z'), new Date('2026-01-01T00:00:00.001Z'), new Date('1999-12-31T23:59:59.999Z')),
  fc.date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('2100-01-01T00:00:00Z'), noInvalidDate: true }),
)
const json = fc.jsonValue({ maxDepth: 3 })

const eventArb: fc.Arbitrary<HashableEvent> = fc.record({
  event_id: fc.uuid(),
  workspace_id: fc.uuid(),
  contact_id: fc.uuid(),
  type: fc.constantFrom('consent', 'contact_merged', 'identity_moved_in', 'we"ird\\type'),
  subscription_group_id: fc.option(fc.uuid(), { nil: null }),
  state: fc.option(fc.constantFrom('subscribed', 'unsubscribed'), { nil: null }),
  occurred_at: date,
  recorded_at: date,
  source: str,
  method: optStr,
  evidence: fc.dictionary(str, json, { maxKeys: 6 }),
  identity_type: optStr,
  identity_value: optStr,
  actor: str,
  request_id: optStr,
  idempotency_key: optStr,
  platform_stop: optStr,
})

t.test('canonicalBody equals canonicalJson(hashBody(e)) for any event', async (t) => {
  fc.assert(
    fc.property(eventArb, (e) => canonicalBody(e) === canonicalJson(hashBody(e))),
    { numRuns: 2000 },
  )
  t.pass('2,000 random events')
})

t.test('optional fields left undefined are omitted, as canonicalJson omits them', async (t) => {
  const e = fc.sample(eventArb, 1)[0]!
  const loose = { ...e, request_id: undefined, idempotency_key: undefined } as unknown as HashableEvent
  t.equal(canonicalBody(loose), canonicalJson(hashBody(loose)))
})

t.test('chainHash is sha256(prev_hash || canonical JSON)', async (t) => {
  for (const e of fc.sample(eventArb, 50)) {
    const expected = createHash('sha256').update(GENESIS).update(canonicalJson(hashBody(e))).digest('hex')
    t.equal(chainHash(GENESIS, e), expected)
  }
})
