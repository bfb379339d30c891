/** The single append path: validation, ordering rule, sticky opt-outs, dedupe, platform stop, chains. */
import t from 'tap'
import { buildTestApp, newGroup } from '../helpers/build-app.js'
import { DEFAULT_WORKSPACE_ID } from '../../src/auth/api-keys.js'
import { verifyChain } from '../../src/ledger/hash-chain.js'
import { diffProjection } from '../../src/ledger/projection.js'
import type { AppendItem } from '../../src/ledger/types.js'

const ctx = { workspaceId: DEFAULT_WORKSPACE_ID, actor: 'test' }

t.test('ledger.append', async (t) => {
  const ta = await buildTestApp(t)
  const { sql } = ta.app.database
  const ledger = ta.app.ledger
  const g = await newGroup(ta, ta.root)
  const archived = await newGroup(ta, ta.root, { name: 'old' })
  await ta.app.inject({ method: 'POST', url: `/subscription-groups/${archived}/archive`, headers: ta.root })
  const state = async (phone: string) => {
    const [r] = await sql.query<{ state: string; source: string }>(
      `SELECT s.state, s.source FROM consent_state s JOIN identities i ON i.contact_id = s.contact_id
        WHERE i.type = 'phone' AND i.value = $1 AND s.subscription_group_id = $2`,
      [phone, g],
    )
    return r?.state
  }
  const item = (over: Partial<AppendItem>): AppendItem => ({
    identities: [{ type: 'phone', value: '+14155552671' }],
    subscriptionGroupId: g,
    state: 'subscribed',
    source: 'api',
    ...over,
  })

  t.test('rejects bad items one by one and applies the rest', async (t) => {
    const res = await ledger.append(sql, ctx, [
      item({ identities: [{ type: 'phone', value: '+12223334444' }] }),
      item({ subscriptionGroupId: '00000000-0000-4000-8000-00000000abcd' }),
      item({ subscriptionGroupId: archived }),
      item({ state: 'maybe' }),
      item({ occurredAt: new Date(Date.now() + 10 * 60_000) }),
      item({ occurredAt: 'yesterday' }),
      item({ method: 'carrier_pigeon' }),
      item({ identities: [] }),
      item({ identities: [{ type: 'bsuid', value: 'not a bsuid' }] }),
      item({ identities: [{ type: 'phone', value: '14155552671' }], occurredAt: '2026-01-01T00:00:00Z' }),
    ])
    t.same(
      res.map((r) => (r.status === 'rejected' ? r.code : r.status)),
      [
        'invalid_phone',
        'unknown_subscription_group',
        'archived_subscription_group',
        'invalid_state',
        'occurred_at_in_future',
        'invalid_occurred_at',
        'invalid_method',
        'missing_identity',
        'invalid_identity',
        'applied',
      ],
    )
    t.equal(await state('+14155552671'), 'subscribed', 'wa_id digits resolve to the E.164 phone')
    const [n] = await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM consent_events`)
    t.equal(n!.n, 1, 'only the valid item was written')
  })

  t.test('ordering rule: latest occurred_at wins; equal time, unsubscribed wins', async (t) => {
    const phone = '+14155550101'
    const ids = [{ type: 'phone' as const, value: phone }]
    await ledger.append(sql, ctx, [item({ identities: ids, state: 'unsubscribed', occurredAt: '2026-03-01T00:00:00Z' })])
    await ledger.append(sql, ctx, [item({ identities: ids, state: 'subscribed', occurredAt: '2026-02-01T00:00:00Z' })])
    t.equal(await state(phone), 'unsubscribed', 'a late, older opt-in does not override a newer opt-out')
    await ledger.append(sql, ctx, [item({ identities: ids, state: 'subscribed', occurredAt: '2026-03-01T00:00:00Z' })])
    t.equal(await state(phone), 'unsubscribed', 'on equal occurred_at unsubscribed wins')
    await ledger.append(sql, ctx, [item({ identities: ids, state: 'subscribed', occurredAt: '2026-03-02T00:00:00Z' })])
    t.equal(await state(phone), 'subscribed')
  })

  t.test('person-initiated opt-outs are sticky', async (t) => {
    const ids = [{ type: 'phone' as const, value: '+14155550102' }]
    await ledger.append(sql, ctx, [item({ identities: ids, state: 'unsubscribed', source: 'inbound_keyword', occurredAt: '2026-05-01T00:00:00Z' })])
    const [noEvidence] = await ledger.append(sql, ctx, [item({ identities: ids, occurredAt: '2026-05-02T00:00:00Z' })])
    t.match(noEvidence, { status: 'rejected', code: 'evidence_required' })
    const [methodOnly] = await ledger.append(sql, ctx, [item({ identities: ids, method: 'web_form', occurredAt: '2026-05-02T00:00:00Z' })])
    t.match(methodOnly, { status: 'rejected', code: 'evidence_required' }, 'method alone is not evidence')
    t.equal(await state('+14155550102'), 'unsubscribed')
    const [older] = await ledger.append(sql, ctx, [item({ identities: ids, occurredAt: '2026-04-01T00:00:00Z' })])
    t.match(older, { status: 'applied' }, 'an older opt-in reverses nothing, so it is recorded')
    t.equal(await state('+14155550102'), 'unsubscribed')
    const [withEvidence] = await ledger.append(sql, ctx, [
      item({ identities: ids, method: 'web_form', evidence: { consent_text: 'Yes, send me offers' }, occurredAt: '2026-05-03T00:00:00Z' }),
    ])
    t.match(withEvidence, { status: 'applied' })
    t.equal(await state('+14155550102'), 'subscribed')
    // The person may opt back in themselves without evidence.
    await ledger.append(sql, ctx, [item({ identities: ids, state: 'unsubscribed', source: 'template_button', occurredAt: '2026-05-04T00:00:00Z' })])
    const [personOptIn] = await ledger.append(sql, ctx, [item({ identities: ids, source: 'inbound_keyword', occurredAt: '2026-05-05T00:00:00Z' })])
    t.match(personOptIn, { status: 'applied' })
    // The workspace setting relaxes the rule.
    await ledger.append(sql, ctx, [item({ identities: ids, state: 'unsubscribed', source: 'inbound_keyword', occurredAt: '2026-05-06T00:00:00Z' })])
    await sql.query(`UPDATE workspace_settings SET require_evidence_to_override_opt_out = false WHERE workspace_id = $1`, [DEFAULT_WORKSPACE_ID])
    const [relaxed] = await ledger.append(sql, ctx, [item({ identities: ids, occurredAt: '2026-05-07T00:00:00Z' })])
    t.match(relaxed, { status: 'applied' })
    await sql.query(`UPDATE workspace_settings SET require_evidence_to_override_opt_out = true WHERE workspace_id = $1`, [DEFAULT_WORKSPACE_ID])
  })

  t.test('dedupe keys give exactly-once effect, also inside one batch', async (t) => {
    const ids = [{ type: 'phone' as const, value: '+14155550103' }]
    const first = await ledger.append(sql, ctx, [item({ identities: ids, dedupeKey: 'wamid.1' }), item({ identities: ids, dedupeKey: 'wamid.1' })])
    t.match(first, [{ status: 'applied' }, { status: 'duplicate' }])
    const again = await ledger.append(sql, ctx, [item({ identities: ids, dedupeKey: 'wamid.1' })])
    t.match(again, [{ status: 'duplicate', event_id: first[0]!.status === 'applied' ? first[0]!.event_id : 'x' }])
    const [n] = await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM ledger_dedupe WHERE key = 'wamid.1'`)
    t.equal(n!.n, 1)
  })

  t.test('platform stop is kept per contact and business number', async (t) => {
    const ids = [{ type: 'phone' as const, value: '+14155550104' }]
    await ledger.append(sql, ctx, [
      item({ identities: ids, state: 'unsubscribed', source: 'meta_user_preferences', occurredAt: '2026-06-01T00:00:00Z', platformStop: { action: 'stop', phoneNumberId: 'PN1' } }),
    ])
    const stopped = async () =>
      (await sql.query<{ stopped: boolean }>(`SELECT p.stopped FROM platform_stops p JOIN identities i ON i.contact_id = p.contact_id WHERE i.value = $1 AND p.phone_number_id = 'PN1'`, [ids[0]!.value]))[0]?.stopped
    t.equal(await stopped(), true)
    // An older resume (late delivery) does not clear a newer stop.
    await ledger.append(sql, ctx, [
      item({ identities: ids, source: 'meta_user_preferences', occurredAt: '2026-05-01T00:00:00Z', platformStop: { action: 'resume', phoneNumberId: 'PN1' } }),
    ])
    t.equal(await stopped(), true)
    await ledger.append(sql, ctx, [
      item({ identities: ids, source: 'meta_user_preferences', occurredAt: '2026-06-02T00:00:00Z', platformStop: { action: 'resume', phoneNumberId: 'PN1' } }),
    ])
    t.equal(await stopped(), false)
  })

  t.test('values that are not plain tokens are stored exactly (array parameters built by hand only for tokens)', async (t) => {
    const odd = ['PN,"x" {y} \\z', 'NULL', 'null', 'pn two']
    const ids = [{ type: 'phone' as const, value: '+14155550105' }]
    // One append each: an array with one odd element is escaped whole, so each case alone.
    for (const [i, n] of odd.entries()) {
      const r = await ledger.append(sql, ctx, [
        item({ identities: ids, state: 'unsubscribed', source: 'meta_user_preferences', occurredAt: `2026-06-0${i + 1}T00:00:00Z`, platformStop: { action: 'stop', phoneNumberId: n } }),
      ])
      t.match(r, [{ status: 'applied' }], n)
    }
    const rows = await sql.query<{ phone_number_id: string }>(
      `SELECT p.phone_number_id FROM platform_stops p JOIN identities i ON i.contact_id = p.contact_id WHERE i.value = $1 ORDER BY p.occurred_at`,
      [ids[0]!.value],
    )
    t.same(rows.map((x) => x.phone_number_id), odd)
  })

  t.test('identities that are not plain tokens are found again by prepare', async (t) => {
    for (const v of ['NULL', 'null', 'a b', 'x"y{z}', 'back\\slash', 'plain-token.1']) {
      const id = [{ type: 'external_id' as const, value: v }]
      const [first] = await ledger.append(sql, ctx, [item({ identities: id, state: 'subscribed' })])
      const [second] = await ledger.append(sql, ctx, [item({ identities: id, state: 'unsubscribed' })])
      t.match(first, { status: 'applied' }, v)
      t.match(second, { status: 'applied', changed: true, contact_id: (first as { contact_id: string }).contact_id }, `${v}: same contact, current state read`)
    }
  })

  t.test('every chain verifies and the projection equals the fold', async (t) => {
    const contacts = await sql.query<{ id: string; chain_head: string; chain_length: number }>(`SELECT id, chain_head, chain_length FROM contacts`)
    t.ok(contacts.length >= 4)
    for (const c of contacts) {
      const events = await sql.query<never>(`SELECT * FROM consent_events WHERE contact_id = $1 ORDER BY id`, [c.id])
      const v = verifyChain(events)
      t.ok(v.ok, `chain of ${c.id} verifies`)
      t.equal(v.head, c.chain_head)
      t.equal(v.length, c.chain_length)
    }
    t.same(await diffProjection(sql, DEFAULT_WORKSPACE_ID), { missing: [], wrong: [], extra: [] })
    // A tampered copy does not verify.
    const c = contacts.find((x) => x.chain_length >= 2)!
    const events = await sql.query<{ state: string }>(`SELECT * FROM consent_events WHERE contact_id = $1 ORDER BY id`, [c.id])
    events[0]!.state = events[0]!.state === 'subscribed' ? 'unsubscribed' : 'subscribed'
    t.match(verifyChain(events as never), { ok: false, brokenAt: 0, reason: 'hash mismatch' })
  })
})
