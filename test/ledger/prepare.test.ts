/**
 * ledger_prepare (migration 0009) reads everything a small append needs in one statement: a
 * one-object append costs two statements inside its transaction (prepare, write) whether the person
 * is new or known, and still serializes concurrent writers of one person (identity locks, then the
 * contact row FOR UPDATE). A merge or a move reads again for the contacts that result.
 */
import t from 'tap'
import { buildTestApp, newGroup } from '../helpers/build-app.js'
import { DEFAULT_WORKSPACE_ID } from '../../src/auth/api-keys.js'
import { verifyChain } from '../../src/ledger/hash-chain.js'
import { diffProjection } from '../../src/ledger/projection.js'
import type { Sql } from '../../src/db/sql.js'
import type { AppendItem } from '../../src/ledger/types.js'

const ctx = { workspaceId: DEFAULT_WORKSPACE_ID, actor: 'test' }

/** An Sql that records the name (or the start) of every statement it runs, inside transactions too. */
function counting(sql: Sql, log: string[]): Sql {
  return {
    get inTransaction() {
      return sql.inTransaction
    },
    query: (text, params, name) => {
      log.push(name ?? text.trim().slice(0, 30))
      return sql.query(text, params, name)
    },
    queryLast: (text, params, name) => {
      log.push(name ?? text.trim().slice(0, 30))
      return sql.queryLast(text, params, name)
    },
    tx: (fn) => sql.tx((inner) => fn(counting(inner, log))),
    afterCommit: (fn) => sql.afterCommit(fn),
  }
}

t.test('ledger_prepare', async (t) => {
  const ta = await buildTestApp(t)
  const { sql } = ta.app.database
  // Results read as applied ones (t.match checks the status first).
  type Applied = { status: string; event_id: string; contact_id: string; changed?: boolean }
  const ledger = { append: async (...a: Parameters<typeof ta.app.ledger.append>) => (await ta.app.ledger.append(...a)) as Applied[] }
  const g = await newGroup(ta, ta.root)
  const item = (over: Partial<AppendItem>): AppendItem => ({
    identities: [{ type: 'phone', value: '+14155552671' }],
    subscriptionGroupId: g,
    state: 'subscribed',
    source: 'api',
    ...over,
  })

  t.test("new people's projection rows are plain INSERTs, known people's the upsert by the ordering rule", async (t) => {
    const log: string[] = []
    const known = await ledger.append(sql, ctx, [item({ identities: [{ type: 'external_id', value: 'proj-known' }] })])
    const mixed = await ledger.append(counting(sql, log), ctx, [
      item({ identities: [{ type: 'external_id', value: 'proj-known' }], state: 'unsubscribed' }),
      item({ identities: [{ type: 'external_id', value: 'proj-new' }] }),
      // An older event of the known person loses to the opt-out of the same batch.
      item({ identities: [{ type: 'external_id', value: 'proj-known' }], occurredAt: '2020-01-01T00:00:00Z' }),
    ])
    t.match(mixed, [{ status: 'applied', changed: true }, { status: 'applied', changed: true }, { status: 'applied', changed: false }])
    const write = log.find((n) => n.startsWith('ledger-write-'))!
    t.match(write, /^ledger-write-(\w+_)?fresh(_\w+)?$/, 'the new person: projection_new')
    t.match(write, /^ledger-write-(\w+_)?state(_\w+)?$/, 'the known person: the upsert')
    log.length = 0
    await ledger.append(counting(sql, log), ctx, [item({ identities: [{ type: 'external_id', value: 'proj-new-2' }] })])
    t.notMatch(log.find((n) => n.startsWith('ledger-write-'))!, /[-_]state(_|$)/, 'only new people: no upsert at all')
    const rows = await sql.query<{ contact_id: string; state: string; event_id: string }>(
      `SELECT contact_id, state, event_id FROM consent_state WHERE contact_id = ANY($1::uuid[]) AND subscription_group_id = $2 ORDER BY state`,
      [[known[0]!.contact_id, mixed[1]!.contact_id], g],
    )
    t.same(rows, [
      { contact_id: mixed[1]!.contact_id, state: 'subscribed', event_id: mixed[1]!.event_id },
      { contact_id: known[0]!.contact_id, state: 'unsubscribed', event_id: mixed[0]!.event_id },
    ])
    t.same(await diffProjection(sql, DEFAULT_WORKSPACE_ID), { missing: [], wrong: [], extra: [] }, 'the projection equals a replay of the ledger')
  })

  t.test('a one-object append is two statements, for a new and for a known person', async (t) => {
    const log: string[] = []
    const first = await ledger.append(counting(sql, log), ctx, [item({})])
    t.match(first, [{ status: 'applied', changed: true }])
    t.match(log.join(' '), /^ledger-prepare ledger-write-\w+$/, 'new person')
    log.length = 0
    const second = await ledger.append(counting(sql, log), ctx, [item({ state: 'unsubscribed' })])
    t.match(second, [{ status: 'applied', changed: true, contact_id: first[0]!.contact_id }])
    t.match(log.join(' '), /^ledger-prepare ledger-write-\w+$/, 'known person: the current state came from prepare')
    // prepare's current state took part in the ordering rule: an older opt-in does not win.
    log.length = 0
    const older = await ledger.append(counting(sql, log), ctx, [item({ occurredAt: '2020-01-01T00:00:00Z' })])
    t.match(older, [{ status: 'applied', changed: false }])
    const [s] = await sql.query<{ state: string }>(`SELECT state FROM consent_state WHERE contact_id = $1 AND subscription_group_id = $2`, [
      first[0]!.contact_id,
      g,
    ])
    t.equal(s!.state, 'unsubscribed')
  })

  t.test('the current state of each (contact, group) the batch names, and only those', async (t) => {
    const g2 = await newGroup(ta, ta.root, { name: 'second' })
    const who = [{ type: 'external_id' as const, value: 'two-groups' }]
    const seed = await ledger.append(sql, ctx, [
      item({ identities: who, state: 'unsubscribed', occurredAt: '2024-01-01T00:00:00Z' }),
      item({ identities: who, subscriptionGroupId: g2, state: 'subscribed', occurredAt: '2024-01-01T00:00:00Z' }),
    ])
    t.match(seed, [{ status: 'applied' }, { status: 'applied' }])
    // One batch: group 1 through the identity, group 2 through the contact's id; both older than
    // what stands, so neither changes anything (a pair prepare failed to read would look new).
    const log: string[] = []
    const res = await ledger.append(counting(sql, log), ctx, [
      item({ identities: who, state: 'subscribed', occurredAt: '2023-01-01T00:00:00Z' }),
      { contactId: seed[0]!.contact_id, subscriptionGroupId: g2, state: 'unsubscribed', occurredAt: '2023-06-01T00:00:00Z', source: 'admin' },
    ])
    t.match(res, [
      { status: 'applied', changed: false },
      { status: 'applied', changed: false },
    ])
    t.match(log.join(' '), /^ledger-prepare ledger-write-\w+$/)
    // A newer one wins.
    const newer = await ledger.append(sql, ctx, [item({ identities: who, subscriptionGroupId: g2, state: 'unsubscribed', occurredAt: '2025-01-01T00:00:00Z' })])
    t.match(newer, [{ status: 'applied', changed: true }])
    const rows = await sql.query<{ g: string; state: string }>(`SELECT subscription_group_id AS g, state FROM consent_state WHERE contact_id = $1`, [
      seed[0]!.contact_id,
    ])
    t.same(rows.map((r) => [r.g, r.state]).sort(), [
      [g, 'unsubscribed'],
      [g2, 'unsubscribed'],
    ].sort())
  })

  t.test('prepare sees exactly-once keys and contacts named directly', async (t) => {
    const log: string[] = []
    const a = await ledger.append(counting(sql, log), ctx, [item({ identities: [{ type: 'phone', value: '+14155550001' }], dedupeKey: 'k-1' })])
    t.match(a, [{ status: 'applied' }])
    const again = await ledger.append(sql, ctx, [item({ identities: [{ type: 'phone', value: '+14155550001' }], dedupeKey: 'k-1' })])
    t.match(again, [{ status: 'duplicate', event_id: a[0]!.event_id }])
    log.length = 0
    const direct = await ledger.append(counting(sql, log), ctx, [
      { contactId: a[0]!.contact_id!.toUpperCase(), subscriptionGroupId: g, state: 'unsubscribed', source: 'admin' },
      { contactId: '00000000-0000-4000-8000-000000000001', subscriptionGroupId: g, state: 'unsubscribed', source: 'admin' },
    ])
    t.match(direct, [
      { status: 'applied', contact_id: a[0]!.contact_id, changed: true },
      { status: 'rejected', code: 'unknown_contact' },
    ])
    t.match(log.join(' '), /^ledger-prepare ledger-write-\w+$/)
  })

  t.test('a merge reads again for the surviving contact', async (t) => {
    const phone = await ledger.append(sql, ctx, [item({ identities: [{ type: 'phone', value: '+14155550002' }] })])
    const ext = await ledger.append(sql, ctx, [item({ identities: [{ type: 'external_id', value: 'merge-me' }], state: 'unsubscribed', occurredAt: '2021-01-01T00:00:00Z' })])
    const log: string[] = []
    const both = await ledger.append(counting(sql, log), ctx, [
      item({ identities: [{ type: 'external_id', value: 'merge-me' }, { type: 'phone', value: '+14155550002' }], state: 'subscribed', occurredAt: '2022-01-01T00:00:00Z' }),
    ])
    t.match(both, [{ status: 'applied', contact_id: ext[0]!.contact_id }])
    t.ok(log.includes('SELECT id, chain_head, chain_l') && log.includes("SELECT date_trunc('millisecond"), `merge path re-reads: ${log.join(', ')}`)
    const [gone] = await sql.query<{ merged_into: string }>(`SELECT merged_into FROM contacts WHERE id = $1`, [phone[0]!.contact_id])
    t.equal(gone!.merged_into, ext[0]!.contact_id)
  })

  t.test('concurrent writers of one person: one contact, one unbroken chain, the projection equals the fold', async (t) => {
    const n = 24
    const at = (i: number) => new Date(Date.UTC(2025, 0, 1, 0, 0, i))
    // A new person, written by n transactions at once (the identity lock makes one contact).
    const res = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        ledger.append(sql, ctx, [item({ identities: [{ type: 'external_id', value: 'conc' }, { type: 'phone', value: '+14155550003' }], occurredAt: at(i) })]),
      ),
    )
    const contactId = res[0]![0]!.contact_id!
    t.ok(res.every((r) => r[0]!.status === 'applied' && r[0]!.contact_id === contactId), 'one contact')
    // The known person, reached three ways at once (phone, external_id, its id): different identity
    // locks, so only the contact row lock taken by prepare keeps the chain in one line.
    const ways: Partial<AppendItem>[] = [
      { identities: [{ type: 'phone', value: '+14155550003' }] },
      { identities: [{ type: 'external_id', value: 'conc' }] },
      { identities: undefined, contactId, source: 'admin' },
    ]
    const res2 = await Promise.all(
      Array.from({ length: 3 * n }, (_, i) =>
        ledger.append(sql, ctx, [item({ ...ways[i % 3], state: i % 2 ? 'subscribed' : 'unsubscribed', occurredAt: at(n + i) })]),
      ),
    )
    t.ok(res2.every((r) => r[0]!.status === 'applied' && r[0]!.contact_id === contactId), 'all applied to the one contact')
    const [c] = await sql.query<{ chain_head: string; chain_length: number }>(`SELECT chain_head, chain_length FROM contacts WHERE id = $1`, [contactId])
    const events = await sql.query<never>(`SELECT * FROM consent_events WHERE contact_id = $1 ORDER BY id`, [contactId])
    t.equal(events.length, 4 * n)
    const v = verifyChain(events)
    t.ok(v.ok, 'the chain verifies')
    t.equal(v.head, c!.chain_head)
    t.equal(v.length, c!.chain_length)
    t.same(await diffProjection(sql, DEFAULT_WORKSPACE_ID), { missing: [], wrong: [], extra: [] })
  })
})
