/** Identity rules: merge (one side has no external_id) and move (two external_ids). */
import t from 'tap'
import { DEFAULT_WORKSPACE_ID } from '../../src/auth/api-keys.js'
import { buildTestApp, newGroup, type TestApp } from '../helpers/build-app.js'

async function post(ta: TestApp, events: object[]) {
  const r = await ta.app.inject({ method: 'POST', url: '/consent/events', headers: ta.root, payload: { events } })
  if (r.statusCode !== 200) throw new Error(r.body)
  return r.json().results as { status: string; contact_id: string; code?: string }[]
}

async function ownerOf(ta: TestApp, type: string, value: string) {
  const [r] = await ta.app.database.sql.query<{ contact_id: string }>(`SELECT contact_id FROM identities WHERE type = $1 AND value = $2`, [type, value])
  return r?.contact_id
}

async function statesOf(ta: TestApp, contactId: string) {
  const rows = await ta.app.database.sql.query<{ subscription_group_id: string; state: string }>(
    `SELECT subscription_group_id, state FROM consent_state WHERE contact_id = $1`,
    [contactId],
  )
  return Object.fromEntries(rows.map((r) => [r.subscription_group_id, r.state]))
}

async function identityEvents(ta: TestApp, contactId: string) {
  return ta.app.database.sql.query<{ type: string; source: string; evidence: Record<string, string>; identity_value: string | null }>(
    `SELECT type, source, evidence, identity_value FROM consent_events WHERE contact_id = $1 AND type <> 'consent' ORDER BY id`,
    [contactId],
  )
}

t.test('merge: a phone-only contact is merged into the external_id contact it turns out to be', async (t) => {
  const ta = await buildTestApp(t)
  const g1 = await newGroup(ta, ta.root, { name: 'offers' })
  const g2 = await newGroup(ta, ta.root, { name: 'news' })
  const phone = '+14155550301'
  // A STOP keyword from an unknown number creates a phone-only contact.
  const [a] = (await ta.app.ledger.append(ta.app.database.sql, { workspaceId: DEFAULT_WORKSPACE_ID, actor: 'meta-webhook' }, [
    { identities: [{ type: 'phone', value: phone }], subscriptionGroupId: g1, state: 'unsubscribed', occurredAt: '2026-02-01T00:00:00Z', source: 'inbound_keyword' },
  ])) as { status: string; contact_id: string }[]
  // The same person, known by external_id, opted in to g1 earlier and to g2.
  const [b] = await post(ta, [
    { external_id: 'cust-1', subscription_group_id: g1, state: 'subscribed', occurred_at: '2026-01-01T00:00:00Z' },
    { external_id: 'cust-1', subscription_group_id: g2, state: 'subscribed', occurred_at: '2026-01-01T00:00:00Z' },
  ])
  t.not(a!.contact_id, b!.contact_id)
  // A request shows both identities together: the phone-only contact is merged into cust-1's.
  const [m] = await post(ta, [{ external_id: 'cust-1', phone, subscription_group_id: g2, state: 'subscribed', occurred_at: '2026-01-15T00:00:00Z' }])
  t.equal(m!.status, 'applied')
  t.equal(m!.contact_id, b!.contact_id, 'the external_id contact survives')
  t.equal(await ownerOf(ta, 'phone', phone), b!.contact_id, 'the phone now belongs to the survivor')

  // State is the fold of the union of both histories: the newer STOP wins over the older opt-in.
  t.same(await statesOf(ta, b!.contact_id), { [g1]: 'unsubscribed', [g2]: 'subscribed' })
  t.same(await statesOf(ta, a!.contact_id), {}, 'the absorbed contact answers nothing any more')

  // Both sides record the merge as ledger events (source merge); nothing was rewritten.
  t.match(await identityEvents(ta, b!.contact_id), [{ type: 'contact_merged', source: 'merge', evidence: { absorbed_contact_id: a!.contact_id } }])
  t.match(await identityEvents(ta, a!.contact_id), [{ type: 'contact_absorbed', source: 'merge', evidence: { merged_into_contact_id: b!.contact_id } }])
  const [old] = await ta.app.database.sql.query<{ contact_id: string }>(`SELECT contact_id FROM consent_events WHERE type = 'consent' ORDER BY id LIMIT 1`)
  t.equal(old!.contact_id, a!.contact_id, "the STOP stays on its original contact's chain")
  const [merged] = await ta.app.database.sql.query<{ merged_into: string }>(`SELECT merged_into FROM contacts WHERE id = $1`, [a!.contact_id])
  t.equal(merged!.merged_into, b!.contact_id)

  // A later sticky check sees the person's STOP through the merge.
  const [override] = await post(ta, [{ external_id: 'cust-1', subscription_group_id: g1, state: 'subscribed' }])
  t.match(override, { status: 'rejected', code: 'evidence_required' })
})

t.test('move: a recycled number moves to the person named by the request; the old contact keeps its history', async (t) => {
  const ta = await buildTestApp(t)
  const g = await newGroup(ta, ta.root)
  const phone = '+14155550302'
  const [old] = await post(ta, [{ external_id: 'alice', phone, subscription_group_id: g, state: 'subscribed', occurred_at: '2026-01-01T00:00:00Z' }])
  const [bob] = await post(ta, [{ external_id: 'bob', subscription_group_id: g, state: 'unsubscribed', occurred_at: '2026-01-02T00:00:00Z' }])
  // Bob now has Alice's old number.
  const [moved] = await post(ta, [{ external_id: 'bob', phone, subscription_group_id: g, state: 'unsubscribed', occurred_at: '2026-03-01T00:00:00Z' }])
  t.equal(moved!.contact_id, bob!.contact_id)
  t.equal(await ownerOf(ta, 'phone', phone), bob!.contact_id, 'the phone moved to bob')
  t.equal(await ownerOf(ta, 'external_id', 'alice'), old!.contact_id, 'alice keeps her contact')
  t.same(await statesOf(ta, old!.contact_id), { [g]: 'subscribed' }, "alice's history and state are untouched")
  t.same(await statesOf(ta, bob!.contact_id), { [g]: 'unsubscribed' }, "bob's state is his own")
  t.match(await identityEvents(ta, bob!.contact_id), [{ type: 'identity_moved_in', source: 'merge', identity_value: phone, evidence: { from_contact_id: old!.contact_id } }])
  t.match(await identityEvents(ta, old!.contact_id), [{ type: 'identity_moved_out', source: 'merge', identity_value: phone, evidence: { to_contact_id: bob!.contact_id } }])

  // A brand-new external_id arriving with a number that belongs to someone else claims the number.
  const [carol] = await post(ta, [{ external_id: 'carol', phone, subscription_group_id: g, state: 'subscribed', method: 'web_form', evidence: { ip: '192.0.2.1' } }])
  t.not(carol!.contact_id, bob!.contact_id)
  t.equal(await ownerOf(ta, 'phone', phone), carol!.contact_id)
  t.equal(await ownerOf(ta, 'external_id', 'bob'), bob!.contact_id)
})
