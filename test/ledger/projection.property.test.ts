/**
 * Property (the ordering rule, docs/architecture.md): random opt-in/opt-out sequences with random occurred_at
 * (few distinct instants, so ties happen), delivered in random order and concurrently over several
 * connections, sometimes naming an external_id and a phone together (merges and moves). Afterwards:
 * - the projection equals a fold of the ledger by the ordering rule, computed here in JS from the
 *   raw ledger rows (independently of the SQL in src/ledger/projection.ts), and equals that SQL too;
 * - every contact's hash chain verifies, and its head matches the contact row.
 */
import t from 'tap'
import fc from 'fast-check'
import { randomUUID } from 'node:crypto'
import { buildTestApp } from '../helpers/build-app.js'
import { verifyChain } from '../../src/ledger/hash-chain.js'
import { diffProjection } from '../../src/ledger/projection.js'
import type { AppendItem, RawIdentity } from '../../src/ledger/types.js'

const PHONES = ['+14155550001', '+14155550002', '+14155550003', '+14155550004']
const INSTANTS = ['2026-01-01T00:00:00.000Z', '2026-01-01T00:00:01.000Z', '2026-01-02T00:00:00.000Z', '2026-01-03T12:00:00.000Z']
const SOURCES = ['api', 'api', 'csv_import', 'inbound_keyword', 'template_button'] as const

const eventArb = fc.record({
  phone: fc.integer({ min: 0, max: PHONES.length - 1 }),
  ext: fc.option(fc.integer({ min: 0, max: 2 }), { freq: 3 }),
  group: fc.integer({ min: 0, max: 1 }),
  state: fc.constantFrom('subscribed', 'unsubscribed'),
  at: fc.integer({ min: 0, max: INSTANTS.length - 1 }),
  source: fc.constantFrom(...SOURCES),
  evidence: fc.boolean(),
  order: fc.double({ min: 0, max: 1, noNaN: true }),
  chunk: fc.integer({ min: 0, max: 5 }),
})

interface Row {
  id: string
  contact_id: string
  type: string
  subscription_group_id: string | null
  state: string | null
  occurred_at: Date
  prev_hash: string
  hash: string
}

t.test('projection equals the fold of the ledger, and chains verify, under concurrent random delivery', async (t) => {
  const ta = await buildTestApp(t, { DATABASE_POOL_MAX: '8' })
  const { sql } = ta.app.database
  let runs = 0
  let mergesSeen = 0

  await fc.assert(
    fc.asyncProperty(fc.array(eventArb, { minLength: 1, maxLength: 24 }), async (events) => {
      runs++
      const ws = randomUUID()
      await sql.query(`INSERT INTO workspaces (id, name) VALUES ($1, 'prop')`, [ws])
      await sql.query(`INSERT INTO workspace_settings (workspace_id) VALUES ($1)`, [ws])
      const groups = [randomUUID(), randomUUID()]
      for (const g of groups) {
        await sql.query(`INSERT INTO subscription_groups (workspace_id, id, name, channel, category) VALUES ($1, $2, 'g', 'whatsapp', 'marketing')`, [ws, g])
      }
      const items = events.map((e) => {
        const identities: RawIdentity[] = [{ type: 'phone', value: PHONES[e.phone]! }]
        if (e.ext !== null) identities.unshift({ type: 'external_id', value: `user-${e.ext}` })
        const item: AppendItem = {
          identities,
          subscriptionGroupId: groups[e.group]!,
          state: e.state,
          occurredAt: INSTANTS[e.at],
          source: e.source,
          ...(e.evidence ? { method: 'web_form', evidence: { consent_text: 'yes' } } : {}),
        }
        return { item, order: e.order, chunk: e.chunk }
      })
      // Random order, random batches, all batches at once over the pool.
      items.sort((a, b) => a.order - b.order)
      const batches = new Map<number, AppendItem[]>()
      for (const x of items) batches.set(x.chunk, [...(batches.get(x.chunk) ?? []), x.item])
      const results = await Promise.all([...batches.values()].map((b) => ta.app.ledger.append(sql, { workspaceId: ws, actor: 'property' }, b)))
      const applied = results.flat().filter((r) => r.status === 'applied').length

      const rows = await sql.query<Row>(
        `SELECT id::text AS id, contact_id, type, subscription_group_id, state, occurred_at, prev_hash, hash, event_id, workspace_id,
                recorded_at, source, method, evidence, identity_type, identity_value, actor, request_id, idempotency_key, platform_stop
           FROM consent_events e WHERE workspace_id = $1 ORDER BY e.id`,
        [ws],
      )
      if (rows.filter((r) => r.type === 'consent').length !== applied) throw new Error('ledger rows != applied results')
      if (rows.some((r) => r.type === 'contact_merged')) mergesSeen++

      // Independent fold in JS: root contact of every event, winner by the ordering rule.
      const contacts = await sql.query<{ id: string; merged_into: string | null; chain_head: string | null; chain_length: number }>(
        `SELECT id, merged_into, chain_head, chain_length FROM contacts WHERE workspace_id = $1`,
        [ws],
      )
      const rootOf = new Map(contacts.map((c) => [c.id, c.merged_into ?? c.id]))
      const fold = new Map<string, Row>()
      for (const r of rows) {
        if (r.type !== 'consent') continue
        const key = `${rootOf.get(r.contact_id)}/${r.subscription_group_id}`
        const cur = fold.get(key)
        const better =
          !cur ||
          r.occurred_at.getTime() > cur.occurred_at.getTime() ||
          (r.occurred_at.getTime() === cur.occurred_at.getTime() &&
            (r.state === 'unsubscribed') !== (cur.state === 'unsubscribed') &&
            r.state === 'unsubscribed') ||
          (r.occurred_at.getTime() === cur.occurred_at.getTime() && r.state === cur.state && BigInt(r.id) > BigInt(cur.id))
        if (better) fold.set(key, r)
      }
      const projection = await sql.query<{ contact_id: string; subscription_group_id: string; event_seq: string; state: string }>(
        `SELECT contact_id, subscription_group_id, event_seq::text AS event_seq, state FROM consent_state WHERE workspace_id = $1`,
        [ws],
      )
      if (projection.length !== fold.size) throw new Error(`projection has ${projection.length} rows, fold ${fold.size}`)
      for (const p of projection) {
        const f = fold.get(`${p.contact_id}/${p.subscription_group_id}`)
        if (!f || f.id !== p.event_seq || f.state !== p.state) throw new Error(`projection ${JSON.stringify(p)} != fold ${JSON.stringify(f)}`)
      }
      const d = await diffProjection(sql, ws)
      if (d.missing.length + d.wrong.length + d.extra.length > 0) throw new Error(`SQL fold differs: ${JSON.stringify(d)}`)

      // Every contact's chain verifies and ends at its recorded head.
      for (const c of contacts) {
        const chain = rows.filter((r) => r.contact_id === c.id)
        const v = verifyChain(chain as never)
        if (!v.ok || v.length !== c.chain_length) throw new Error(`chain of ${c.id}: ${JSON.stringify(v)} recorded length ${c.chain_length}`)
        if (chain.length > 0 && v.head !== c.chain_head) throw new Error(`chain head of ${c.id} differs`)
      }
      return true
    }),
    { numRuns: 200 },
  )
  t.equal(runs, 200, 'ran 200 random cases')
  t.ok(mergesSeen > 0, `merges happened in ${mergesSeen} runs`)
})
