/**
 * GET /audit/state: point-in-time state per group.
 * - Out-of-order histories where basis=recorded and basis=occurred give different answers.
 * - Recycled numbers (moves) answer for the holder at that time; merges count from their moment.
 * - Property (fast-check): random histories (ties, late reports, merges and moves) appended one by
 *   one; (a) by contact_id with basis=recorded, the answer at every moment W equals the projection
 *   (what the pre-send check read) captured at W; (b) for every identifier, both bases, at many
 *   moments, the answer equals a reference fold over the raw ledger computed here in JS.
 */
import t from 'tap'
import fc from 'fast-check'
import { randomUUID } from 'node:crypto'
import { buildTestApp, newGroup, newWorkspace } from '../../helpers/build-app.js'
import { stateAt, type StateAt } from '../../../src/audit/state.js'
import type { AppendItem, RawIdentity } from '../../../src/ledger/types.js'
import { append, keyWith, phoneItem, sleep } from '../../audit/helpers.js'

const DAY = '2026-03-01'

t.test('GET /audit/state', async (t) => {
  const ta = await buildTestApp(t)
  const ws = await newWorkspace(ta)
  const g = await newGroup(ta, ws.auth, { name: 'promos' })
  const g2 = await newGroup(ta, ws.auth, { name: 'alerts', category: 'utility' })
  const auditor = await keyWith(ta, ws.auth, ['audit:read'])
  const state = async (query: string) => {
    const r = await ta.app.inject({ url: `/audit/state?${query}`, headers: auditor })
    if (r.statusCode !== 200) throw new Error(`${query}: ${r.statusCode} ${r.body}`)
    return r.json() as StateAt
  }
  const groupState = (s: StateAt, group = g) => s.groups.find((x) => x.subscription_group_id === group)?.state ?? 'unknown'
  const q = (v: string) => encodeURIComponent(v)

  t.test('out of order: recorded and occurred differ', async (t) => {
    const P = '+14155550201'
    const before = new Date()
    await sleep(5)
    // 10:00 opt-in arrives first; the 11:00 opt-out arrives later (a late webhook); a 09:00 opt-in last (an old import).
    await append(ta, ws.id, [phoneItem(P, g, 'subscribed', { occurredAt: `${DAY}T10:00:00Z`, method: 'web_form', evidence: { consent_text: 'yes' } })])
    const [r1] = await ta.app.database.sql.query<{ recorded_at: Date }>(`SELECT max(recorded_at) AS recorded_at FROM consent_events`)
    await sleep(20)
    const mid = new Date(r1!.recorded_at.getTime() + 10)
    await sleep(5)
    await append(ta, ws.id, [phoneItem(P, g, 'unsubscribed', { occurredAt: `${DAY}T11:00:00Z`, source: 'inbound_keyword' })])
    await sleep(5)
    await append(ta, ws.id, [phoneItem(P, g, 'subscribed', { occurredAt: `${DAY}T09:00:00Z`, source: 'csv_import', method: 'paper', evidence: { document_ref: 'box 7' } })])

    // Between the two recordings the check said "subscribed"; as known now, the person had opted out by then.
    t.equal(groupState(await state(`phone=${q(P)}&at=${q(mid.toISOString())}`)), 'subscribed', 'recorded: what the check said at that moment')
    t.equal(groupState(await state(`phone=${q(P)}&at=${q(mid.toISOString())}&basis=occurred`)), 'unsubscribed', 'occurred: what the person had done, as known now')
    // At 09:30 on the day: nothing was recorded yet, but the person had opted in at 09:00.
    const s930 = await state(`phone=${q(P)}&at=${q(`${DAY}T09:30:00Z`)}`)
    t.equal(s930.identity_known_at_time, false, 'the number was not known to the ledger yet')
    t.same(s930.groups, [])
    const o930 = await state(`phone=${q(P)}&at=${q(`${DAY}T09:30:00Z`)}&basis=occurred`)
    t.equal(groupState(o930), 'subscribed')
    t.equal(o930.identity_known_at_time, null)
    t.equal(groupState(await state(`phone=${q(P)}&at=${q(`${DAY}T10:30:00Z`)}&basis=occurred`)), 'subscribed')
    t.equal(groupState(await state(`phone=${q(P)}&at=${q(`${DAY}T11:00:00Z`)}&basis=occurred`)), 'unsubscribed', 'inclusive of `at`')
    t.equal(groupState(await state(`phone=${q(P)}&at=${q(before.toISOString())}`)), 'unknown')
    const now = await state(`phone=${q(P)}`)
    t.equal(now.basis, 'recorded', 'recorded is the default basis')
    t.equal(groupState(now), 'unsubscribed', 'now: the opt-out wins by the ordering rule')
    t.match(now.groups[0], { name: 'promos', channel: 'whatsapp', category: 'marketing', source: 'inbound_keyword', occurred_at: `${DAY}T11:00:00.000Z` })
  })

  t.test('a recycled number answers for whoever held it then', async (t) => {
    const P = '+14155550202'
    await append(ta, ws.id, [{ identities: [{ type: 'external_id', value: 'old-owner' }, { type: 'phone', value: P }], subscriptionGroupId: g, state: 'subscribed', source: 'api' }])
    await sleep(5)
    const beforeMove = new Date()
    await sleep(5)
    // Another person (another external_id) now has the number: it moves to them.
    await append(ta, ws.id, [{ identities: [{ type: 'external_id', value: 'new-owner' }, { type: 'phone', value: P }], subscriptionGroupId: g, state: 'unsubscribed', source: 'api' }])
    const old = await state('external_id=old-owner')
    const fresh = await state('external_id=new-owner')
    t.not(old.contact_id, fresh.contact_id)
    const then = await state(`phone=${q(P)}&at=${q(beforeMove.toISOString())}`)
    t.equal(then.contact_id, old.contact_id, 'before the move the number was the old owner\'s')
    t.equal(groupState(then), 'subscribed')
    const thenOccurred = await state(`phone=${q(P)}&at=${q(beforeMove.toISOString())}&basis=occurred`)
    t.equal(thenOccurred.contact_id, old.contact_id)
    const nowP = await state(`phone=${q(P)}`)
    t.equal(nowP.contact_id, fresh.contact_id)
    t.equal(groupState(nowP), 'unsubscribed')
  })

  t.test('merges count from the moment they were recorded (basis recorded), always as known now (occurred)', async (t) => {
    const P = '+14155550203'
    await append(ta, ws.id, [phoneItem(P, g, 'subscribed')])
    await append(ta, ws.id, [{ identities: [{ type: 'external_id', value: 'merger' }], subscriptionGroupId: g2, state: 'unsubscribed', source: 'api' }])
    await sleep(5)
    const beforeMerge = new Date()
    await sleep(5)
    await append(ta, ws.id, [{ identities: [{ type: 'external_id', value: 'merger' }, { type: 'phone', value: P }], identifyOnly: true, source: 'users_track' }])
    const y = (await state('external_id=merger')).contact_id
    const [{ id: x }] = await ta.app.database.sql.query<{ id: string }>(`SELECT id FROM contacts WHERE workspace_id = $1 AND merged_into = $2`, [ws.id, y])

    const yBefore = await state(`contact_id=${y}&at=${q(beforeMerge.toISOString())}`)
    t.same(yBefore.members, [y], 'before the merge the survivor stood alone')
    t.same(yBefore.groups.map((s) => s.subscription_group_id), [g2].sort())
    const xBefore = await state(`contact_id=${x}&at=${q(beforeMerge.toISOString())}`)
    t.equal(xBefore.contact_id, x, 'and the absorbed contact answered for itself')
    t.equal(groupState(xBefore), 'subscribed')
    const xAfter = await state(`contact_id=${x}`)
    t.equal(xAfter.contact_id, y, 'after the merge it counts for the survivor')
    t.same(xAfter.members, [x, y].sort())
    t.same(xAfter.groups.map((s) => [s.subscription_group_id, s.state]).sort(), [[g, 'subscribed'], [g2, 'unsubscribed']].sort())
    const occurred = await state(`contact_id=${y}&at=${q(beforeMerge.toISOString())}&basis=occurred`)
    t.same(occurred.members, [x, y].sort(), 'occurred: the person as known now')
    t.equal(occurred.current_contact_id, y)
  })

  t.test('errors and isolation', async (t) => {
    const code = async (query: string, auth = auditor) => {
      const r = await ta.app.inject({ url: `/audit/state?${query}`, headers: auth })
      return `${r.statusCode} ${r.json().code}`
    }
    t.equal(await code(''), '400 one_selector_required')
    t.equal(await code('phone=%2B14155550201&external_id=x'), '400 one_selector_required')
    t.equal(await code('phone=%2B14155550201&at=tuesday'), '400 validation_failed')
    t.equal(await code('phone=%2B14155550201&basis=vibes'), '400 validation_failed')
    t.equal(await code('phone=123'), '400 invalid_phone')
    t.equal(await code('phone=%2B14155559999'), '404 not_found')
    t.equal(await code(`contact_id=${randomUUID()}`), '404 not_found')
    const other = await newWorkspace(ta, 'other')
    t.equal(await code('phone=%2B14155550201', other.auth), '404 not_found', "another workspace's number is unknown here")
    const c = (await state('phone=%2B14155550201')).contact_id
    t.equal(await code(`contact_id=${c}`, other.auth), '404 not_found')
  })
})

// ---------------------------------------------------------------------------------------------
// Property

const PHONES = ['+14155550301', '+14155550302', '+14155550303']
const INSTANTS = ['2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.001Z', '2026-01-02T00:00:00.000Z', '2026-01-03T00:00:00.000Z', '2026-01-04T00:00:00.000Z']

interface Row {
  id: string
  contact_id: string
  type: string
  subscription_group_id: string | null
  state: string | null
  occurred_at: Date
  recorded_at: Date
  evidence: Record<string, string>
  identity_type: string | null
  identity_value: string | null
}

interface Snapshot {
  w: Date
  state: { contact_id: string; subscription_group_id: string; state: string; event_id: string }[]
  contacts: { id: string; merged_into: string | null }[]
}

const eventArb = fc.record({
  phone: fc.integer({ min: 0, max: PHONES.length - 1 }),
  ext: fc.option(fc.integer({ min: 0, max: 1 }), { freq: 2 }),
  group: fc.integer({ min: 0, max: 1 }),
  state: fc.constantFrom('subscribed', 'unsubscribed'),
  at: fc.integer({ min: 0, max: INSTANTS.length - 1 }),
  source: fc.constantFrom('api', 'csv_import', 'inbound_keyword'),
})

/** The reference: the documented semantics, written independently over raw rows. */
function reference(
  rows: Row[],
  contacts: { id: string; merged_into: string | null }[],
  identities: { type: string; value: string; contact_id: string; created_ms: number }[],
  sel: { type: string; value: string },
  at: number,
  basis: 'recorded' | 'occurred',
) {
  const ident = identities.find((i) => i.type === sel.type && i.value === sel.value)!
  const moves = rows
    .filter((r) => r.type === 'identity_moved_in' && r.identity_type === sel.type && r.identity_value === sel.value && r.recorded_at.getTime() > at)
    .sort((a, b) => a.recorded_at.getTime() - b.recorded_at.getTime() || Number(BigInt(a.id) - BigInt(b.id)))
  const holder = moves.length > 0 ? moves[0]!.evidence.from_contact_id! : ident.contact_id
  const rootNow = new Map(contacts.map((c) => [c.id, c.merged_into ?? c.id]))
  const candidates = contacts.filter((c) => rootNow.get(c.id) === rootNow.get(holder)).map((c) => c.id)
  let subject: string
  let members: string[]
  if (basis === 'occurred') {
    subject = rootNow.get(holder)!
    members = candidates
  } else {
    const into = new Map<string, string>()
    for (const r of rows) if (r.type === 'contact_absorbed' && r.recorded_at.getTime() <= at) into.set(r.contact_id, r.evidence.merged_into_contact_id!)
    const rootAt = (c: string) => {
      while (into.has(c)) c = into.get(c)!
      return c
    }
    subject = rootAt(holder)
    members = candidates.filter((c) => rootAt(c) === subject)
  }
  const known = basis === 'recorded' ? ident.created_ms <= at : null
  const win = new Map<string, Row>()
  if (known !== false) {
    for (const r of rows) {
      if (r.type !== 'consent' || !members.includes(r.contact_id)) continue
      if ((basis === 'recorded' ? r.recorded_at : r.occurred_at).getTime() > at) continue
      const cur = win.get(r.subscription_group_id!)
      const better =
        !cur ||
        r.occurred_at.getTime() > cur.occurred_at.getTime() ||
        (r.occurred_at.getTime() === cur.occurred_at.getTime() &&
          (r.state === 'unsubscribed' ? 1 : 0) - (cur.state === 'unsubscribed' ? 1 : 0) > 0) ||
        (r.occurred_at.getTime() === cur.occurred_at.getTime() && r.state === cur.state && BigInt(r.id) > BigInt(cur.id))
      if (better) win.set(r.subscription_group_id!, r)
    }
  }
  return {
    contact_id: subject,
    members: [...members].sort(),
    known,
    groups: [...win.entries()].map(([grp, r]) => `${grp}:${r.state}:${r.id}`).sort(),
  }
}

t.test('property: point-in-time answers = the projection captured then, and = a reference fold of the ledger', async (t) => {
  const ta = await buildTestApp(t)
  const { sql } = ta.app.database
  let runs = 0
  let comparisons = 0
  let merges = 0
  let moves = 0
  await fc.assert(
    fc.asyncProperty(fc.array(eventArb, { minLength: 1, maxLength: 12 }), async (events) => {
      runs++
      const ws = randomUUID()
      await sql.query(`INSERT INTO workspaces (id, name) VALUES ($1, 'prop')`, [ws])
      await sql.query(`INSERT INTO workspace_settings (workspace_id) VALUES ($1)`, [ws])
      const groups = [randomUUID(), randomUUID()]
      for (const grp of groups) {
        await sql.query(`INSERT INTO subscription_groups (workspace_id, id, name, channel, category) VALUES ($1, $2, 'g', 'whatsapp', 'marketing')`, [ws, grp])
      }
      const snapshots: Snapshot[] = []
      for (const e of events) {
        const identities: RawIdentity[] = [{ type: 'phone', value: PHONES[e.phone]! }]
        if (e.ext !== null) identities.unshift({ type: 'external_id', value: `user-${e.ext}` })
        const item: AppendItem = {
          identities,
          subscriptionGroupId: groups[e.group]!,
          state: e.state,
          occurredAt: INSTANTS[e.at],
          source: e.source,
          method: 'web_form',
          evidence: { consent_text: 'yes' },
        }
        await ta.app.ledger.append(sql, { workspaceId: ws, actor: 'property' }, [item])
        // What the check would read right now, and the time, in one statement (one snapshot).
        const [snap] = await sql.query<Snapshot>(
          `SELECT clock_timestamp() AS w,
                  COALESCE((SELECT json_agg(json_build_object('contact_id', contact_id, 'subscription_group_id', subscription_group_id,
                                                             'state', state, 'event_id', event_id))
                              FROM consent_state WHERE workspace_id = $1), '[]') AS state,
                  COALESCE((SELECT json_agg(json_build_object('id', id, 'merged_into', merged_into)) FROM contacts WHERE workspace_id = $1), '[]') AS contacts`,
          [ws],
        )
        snapshots.push(snap!)
        await sleep(2)
      }

      // (a) by contact, basis recorded, at every captured moment: the projection of that moment.
      for (const s of snapshots) {
        const rootAtW = new Map(s.contacts.map((c) => [c.id, c.merged_into ?? c.id]))
        for (const c of s.contacts) {
          const got = await stateAt(sql, ws, { contactId: c.id, at: new Date(s.w), basis: 'recorded' })
          comparisons++
          const root = rootAtW.get(c.id)!
          if (got.contact_id !== root) throw new Error(`contact ${c.id} at ${s.w}: answered for ${got.contact_id}, it counted for ${root}`)
          const expected = s.state.filter((x) => x.contact_id === root).map((x) => `${x.subscription_group_id}:${x.state}:${x.event_id}`).sort()
          const actual = got.groups.map((x) => `${x.subscription_group_id}:${x.state}:${x.event_id}`).sort()
          if (JSON.stringify(expected) !== JSON.stringify(actual)) {
            throw new Error(`contact ${c.id} at ${new Date(s.w).toISOString()}: check said ${JSON.stringify(expected)}, /audit/state says ${JSON.stringify(actual)}`)
          }
        }
      }

      // (b) by identifier, both bases, many moments: the reference fold.
      const rows = await sql.query<Row>(
        `SELECT id::text AS id, contact_id, type, subscription_group_id, state, occurred_at, recorded_at, evidence, identity_type, identity_value
           FROM consent_events WHERE workspace_id = $1 ORDER BY id`,
        [ws],
      )
      if (rows.some((r) => r.type === 'contact_merged')) merges++
      if (rows.some((r) => r.type === 'identity_moved_in')) moves++
      const contacts = await sql.query<{ id: string; merged_into: string | null }>(`SELECT id, merged_into FROM contacts WHERE workspace_id = $1`, [ws])
      const identities = await sql.query<{ type: string; value: string; contact_id: string; created_ms: number }>(
        `SELECT type, value, contact_id, (extract(epoch FROM date_trunc('milliseconds', created_at)) * 1000)::float8 AS created_ms FROM identities WHERE workspace_id = $1`,
        [ws],
      )
      const idOf = new Map(
        (await sql.query<{ event_id: string; id: string }>(`SELECT event_id, id::text AS id FROM consent_events WHERE workspace_id = $1`, [ws])).map((e) => [e.event_id, e.id]),
      )
      const moments = new Set<number>([0, Date.now() + 60_000])
      for (const r of rows) for (const d of [-1, 0]) moments.add(r.recorded_at.getTime() + d)
      for (const i of INSTANTS) for (const d of [-1, 0, 1]) moments.add(new Date(i).getTime() + d)
      for (const sel of identities) {
        for (const at of moments) {
          for (const basis of ['recorded', 'occurred'] as const) {
            const got = await stateAt(sql, ws, { identifier: { type: sel.type as 'phone', value: sel.value }, at: new Date(at), basis })
            const exp = reference(rows, contacts, identities, sel, at, basis)
            comparisons++
            const actual = {
              contact_id: got.contact_id,
              members: got.members,
              known: got.identity_known_at_time,
              groups: got.groups.map((x) => `${x.subscription_group_id}:${x.state}:${idOf.get(x.event_id)}`).sort(),
            }
            if (JSON.stringify(actual) !== JSON.stringify(exp)) {
              throw new Error(`${sel.type} ${sel.value} at ${new Date(at).toISOString()} (${basis}): got ${JSON.stringify(actual)}, reference ${JSON.stringify(exp)}`)
            }
          }
        }
      }
    }),
    { numRuns: 25 },
  )

  t.equal(runs, 25)
  t.ok(merges > 0, `histories with merges: ${merges}`)
  t.ok(moves > 0, `histories with moves of a number: ${moves}`)
  t.ok(comparisons > 1000, `${comparisons} point-in-time answers compared`)
})
