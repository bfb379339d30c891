/**
 * Exactly-once and out-of-order (docs/webhook.md): a set of payloads (Meta's fixtures with their
 * own ids, times and people, BSUID-only ones included) delivered three times each in shuffled
 * order leaves the same ledger as one delivery in chronological order: the same consent events
 * (as a multiset: person, group, state, occurred_at, source, platform stop, signal), the same
 * states, the same platform stops and the same exactly-once keys. Several seeds; each run on its
 * own database. Includes the orders where START arrives before the STOP it restores, and Meta's
 * `resume` before the 131050 it clears (deferred restores).
 */
import t from 'tap'
import { buildTestApp, newGroup, type TestApp } from '../../helpers/build-app.js'
import { FIXTURE_PNID, WEBHOOK_ENV, deliver, mapNumber, shuffle, textMessage, variant } from '../../webhook/helpers.js'

const P = '16505551234'
const Q = '14155550300'
const R = 'US.60000000000000000006'
const T = 1750000000

/** [timestamp, payload] pairs; chronological order is the "in-order" delivery. */
function payloads(): [number, string][] {
  return [
    [T + 10, textMessage('STOP', { id: 'p-stop', ts: T + 10, waId: P })],
    [T + 20, textMessage('Start', { id: 'p-start', ts: T + 20, waId: P })],
    [T + 30, variant('meta-button-stop-promotions.json', { id: 'p-promo', ts: T + 30, waId: P })],
    [T + 40, variant('meta-interactive-list-reply.json', { id: 'p-list', ts: T + 40, waId: P })],
    [T + 41, variant('meta-status-failed-131049.json', { id: 'p-131049', ts: T + 41, waId: P })],
    [T + 42, variant('meta-status-sent.json', { id: 'p-sent', ts: T + 42, waId: P })],
    [T + 50, variant('meta-status-failed-131050.json', { id: 'p-131050', ts: T + 50, waId: P })],
    [T + 60, variant('meta-user-preferences-resume.json', { id: 'p-resume', ts: T + 60, waId: P })],
    [T + 70, variant('meta-button.json', { id: 'p-unsub', ts: T + 70, waId: P })],
    [T + 11, variant('meta-interactive-button-reply.json', { id: 'q-cancel', ts: T + 11, waId: Q })],
    [T + 31, textMessage('unstop', { id: 'q-unstop', ts: T + 31, waId: Q })],
    [T + 12, textMessage('stop', { id: 'r-stop', ts: T + 12, bsuidOnly: true, bsuid: R, waId: P })],
    [T + 22, variant('meta-user-preferences-stop.json', { id: 'r-pref', ts: T + 22, bsuidOnly: true, bsuid: R, waId: P })],
    [T + 32, variant('meta-text.json', { id: 'r-text', ts: T + 32, bsuidOnly: true, bsuid: R, waId: P })],
  ]
}

async function setup(t: Parameters<typeof buildTestApp>[0]) {
  const ta = await buildTestApp(t, WEBHOOK_ENV)
  await mapNumber(ta.app, ta.root)
  const groups = [
    await newGroup(ta, ta.root, { name: 'NM', phone_number_id: FIXTURE_PNID }),
    await newGroup(ta, ta.root, { name: 'M' }),
    await newGroup(ta, ta.root, { name: 'U', category: 'utility' }),
    await newGroup(ta, ta.root, { name: 'O', phone_number_id: '999' }),
  ]
  // Everyone subscribed (with evidence) before anything arrives.
  const r = await ta.app.inject({
    method: 'POST',
    url: '/consent/events',
    headers: ta.root,
    payload: {
      events: groups.flatMap((g) =>
        [{ phone: `+${P}` }, { phone: `+${Q}` }, { bsuid: R }].map((who) => ({
          ...who,
          subscription_group_id: g,
          state: 'subscribed',
          occurred_at: new Date((T - 1000) * 1000).toISOString(),
          method: 'web_form',
          evidence: { consent_text: 'Yes' },
        })),
      ),
    },
  })
  if (r.statusCode !== 200) throw new Error(r.body)
  return ta
}

/** The ledger and its projections, described without ids that differ between databases. */
async function snapshot(ta: TestApp) {
  const sql = ta.app.database.sql
  const person = `(SELECT string_agg(i.value, '+' ORDER BY i.value) FROM identities i JOIN contacts c2 ON c2.id = i.contact_id
                    WHERE i.contact_id = COALESCE(c.merged_into, c.id))`
  const events = await sql.query<{ line: string }>(
    `SELECT concat_ws(' ', ${person}, g.name, e.state, to_char(e.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS'), e.source,
                      coalesce(e.platform_stop, '-'), coalesce(e.evidence->>'signal_key', '-')) AS line
       FROM consent_events e JOIN contacts c ON c.id = e.contact_id LEFT JOIN subscription_groups g ON g.id = e.subscription_group_id
      WHERE e.type = 'consent' ORDER BY 1`,
  )
  const states = await sql.query<{ line: string }>(
    `SELECT concat_ws(' ', ${person}, g.name, s.state, s.source) AS line
       FROM consent_state s JOIN contacts c ON c.id = s.contact_id JOIN subscription_groups g ON g.id = s.subscription_group_id ORDER BY 1`,
  )
  const stops = await sql.query<{ line: string }>(
    `SELECT concat_ws(' ', ${person}, p.phone_number_id, p.stopped, to_char(p.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')) AS line
       FROM platform_stops p JOIN contacts c ON c.id = p.contact_id ORDER BY 1`,
  )
  const dedupe = await sql.query<{ line: string }>(
    `SELECT regexp_replace(d.key, '[0-9a-f-]{36}$', g.name) AS line
       FROM ledger_dedupe d JOIN subscription_groups g ON d.key LIKE '%' || g.id::text ORDER BY 1`,
  )
  const inbox = await sql.query<{ status: string; n: number }>(`SELECT status, count(*)::int AS n FROM webhook_inbox GROUP BY status ORDER BY status`)
  return {
    events: events.map((r) => r.line),
    states: states.map((r) => r.line),
    stops: stops.map((r) => r.line),
    dedupe: dedupe.map((r) => r.line),
    unfinished: inbox.filter((r) => r.status !== 'processed'),
  }
}

t.test('three shuffled deliveries of every payload = one delivery in order', async (t) => {
  const inOrder = await setup(t)
  for (const [, raw] of payloads().sort((a, b) => a[0] - b[0])) await deliver(inOrder.app, raw)
  const expected = await snapshot(inOrder)

  // Sanity of the reference run itself.
  t.same(expected.unfinished, [], 'in order: every payload processed')
  t.ok(expected.events.some((l) => l.includes('subscribed') && l.includes('wa:msg:wamid.') && l.includes('inbound_keyword')), 'START restored something')
  t.ok(expected.events.some((l) => / resume wa:pref:/.test(l)), 'resume restored something')
  t.ok(expected.stops.some((l) => l.includes(' t ')), 'a platform stop stands (R)')
  t.ok(expected.stops.some((l) => l.includes(' f ')), 'a platform stop was cleared (P)')
  t.equal(expected.events.filter((l) => l.includes('131049') || l.includes('p-sent') || l.includes('p-list') || l.includes('r-text')).length, 0, 'non-signals record nothing')

  for (const seed of [1, 7, 42]) {
    const ta = await setup(t)
    const deliveries = shuffle(payloads().flatMap(([ts, raw]) => [[ts, raw], [ts, raw], [ts, raw]] as [number, string][]), seed)
    for (const [, raw] of deliveries) await deliver(ta.app, raw)
    const got = await snapshot(ta)
    t.same(got.events, expected.events, `seed ${seed}: same consent events`)
    t.same(got.states, expected.states, `seed ${seed}: same states`)
    t.same(got.stops, expected.stops, `seed ${seed}: same platform stops`)
    t.same(got.dedupe, expected.dedupe, `seed ${seed}: same exactly-once keys`)
    t.same(got.unfinished, [], `seed ${seed}: nothing left deferred or failed`)
  }
})

t.test('the orders that need a deferred restore, explicitly', async (t) => {
  const ta = await setup(t)
  const check = async (phone: string, group: string) => {
    const groups = (await ta.app.inject({ method: 'GET', url: '/subscription-groups', headers: ta.root })).json().subscription_groups as { id: string; name: string }[]
    const id = groups.find((g) => g.name === group)!.id
    return (await ta.app.inject({ method: 'POST', url: '/consent/check', headers: ta.root, payload: { subscription_group_id: id, phones: [phone] } })).json().results[0]
  }
  // START arrives before the STOP it answers.
  const start = await deliver(ta.app, textMessage('START', { id: 'late-stop-start', ts: T + 20, waId: P }))
  t.equal(start.status, 'deferred', 'START with nothing to restore yet is deferred')
  await deliver(ta.app, textMessage('STOP', { id: 'late-stop', ts: T + 10, waId: P }))
  const [row] = await ta.app.database.sql.query<{ status: string }>(`SELECT status FROM webhook_inbox WHERE id = $1`, [start.inbox_id])
  t.equal(row!.status, 'processed', 'the STOP completed the deferred START')
  t.match(await check(`+${P}`, 'U'), { state: 'subscribed', reason: 'subscribed' }, 'the later START wins')

  // Meta's resume before the 131050 it clears.
  const resume = await deliver(ta.app, variant('meta-user-preferences-resume.json', { id: 'late-131050-resume', ts: T + 60, waId: Q }))
  t.equal(resume.status, 'deferred')
  await deliver(ta.app, variant('meta-status-failed-131050.json', { id: 'late-131050', ts: T + 50, waId: Q }))
  t.match(await check(`+${Q}`, 'NM'), { allowed: true, state: 'subscribed', reason: 'subscribed' }, 'not platform_stopped: the resume is later')
  const stops = await ta.app.database.sql.query<{ stopped: boolean }>(`SELECT stopped FROM platform_stops`)
  t.same(stops, [{ stopped: false }])
})
