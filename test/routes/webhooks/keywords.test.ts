/**
 * Keyword rules through the webhook (docs/webhook.md): START/UNSTOP restore what the contact's latest
 * keyword opt-out took away (and nothing else, see restore.test.ts); STOP PROMOTIONS is marketing only; group-list
 * scopes; the master toggle; lenient mode; a message matching nothing records nothing.
 */
import t from 'tap'
import { buildTestApp, newGroup, type TestApp } from '../../helpers/build-app.js'
import { WEBHOOK_ENV, deliver, mapNumber, textMessage, variant } from '../../webhook/helpers.js'

const T = 1750000000

async function setup(t: Parameters<typeof buildTestApp>[0]) {
  const ta = await buildTestApp(t, WEBHOOK_ENV)
  await mapNumber(ta.app, ta.root)
  const M = await newGroup(ta, ta.root, { name: 'promos' })
  const U = await newGroup(ta, ta.root, { name: 'orders', category: 'utility' })
  const A = await newGroup(ta, ta.root, { name: 'auth codes', category: 'authentication' })
  return { ta, M, U, A }
}

async function states(ta: TestApp, phone: string) {
  const rows = await ta.app.database.sql.query<{ name: string; state: string }>(
    `SELECT g.name, s.state FROM consent_state s JOIN subscription_groups g ON g.id = s.subscription_group_id
       JOIN identities i ON i.contact_id = s.contact_id AND i.type = 'phone' AND i.value = $1 ORDER BY g.name`,
    [phone],
  )
  return Object.fromEntries(rows.map((r) => [r.name, r.state]))
}

const put = (ta: TestApp, body: unknown) => ta.app.inject({ method: 'PUT', url: '/settings/keywords', headers: ta.root, payload: body as object })

t.test('START restores exactly the groups of the latest keyword opt-out', async (t) => {
  const { ta } = await setup(t)
  const phone = '+16505551234'
  // Subscribed to everything with evidence first.
  const groups = (await ta.app.inject({ method: 'GET', url: '/subscription-groups', headers: ta.root })).json().subscription_groups as { id: string }[]
  await ta.app.inject({
    method: 'POST',
    url: '/consent/events',
    headers: ta.root,
    payload: { events: groups.map((g) => ({ phone, subscription_group_id: g.id, state: 'subscribed', occurred_at: '2025-01-01T00:00:00Z', method: 'web_form', evidence: { consent_text: 'yes' } })) },
  })
  t.same(await states(ta, phone), { 'auth codes': 'subscribed', orders: 'subscribed', promos: 'subscribed' })

  // STOP (all), then STOP PROMOTIONS (marketing): the latest keyword opt-out is the marketing one.
  await deliver(ta.app, textMessage('stop.', { id: 's1', ts: T + 1 }))
  t.same(await states(ta, phone), { 'auth codes': 'unsubscribed', orders: 'unsubscribed', promos: 'unsubscribed' }, 'STOP: every WhatsApp group')
  await deliver(ta.app, variant('meta-button-stop-promotions.json', { id: 's2', ts: T + 2 }))
  await deliver(ta.app, textMessage(' Start ', { id: 's3', ts: T + 3 }))
  t.same(await states(ta, phone), { 'auth codes': 'unsubscribed', orders: 'unsubscribed', promos: 'subscribed' }, 'START restores only what STOP PROMOTIONS removed')
  const restore = await ta.app.database.sql.query<{ evidence: Record<string, unknown>; source: string }>(
    `SELECT evidence, source FROM consent_events WHERE state = 'subscribed' AND source <> 'api'`,
  )
  t.equal(restore.length, 1)
  t.match(restore[0], { source: 'inbound_keyword', evidence: { matched_keyword: 'START', keyword_action: 'opt_in', restores_message_id: 'wamid.BUTTON_TAP_ID.s2' } })

  // STOP again (all), then UNSTOP: all three back.
  await deliver(ta.app, textMessage('STOP', { id: 's4', ts: T + 4 }))
  await deliver(ta.app, textMessage('unstop', { id: 's5', ts: T + 5 }))
  t.same(await states(ta, phone), { 'auth codes': 'subscribed', orders: 'subscribed', promos: 'subscribed' })

  // A START with a timestamp before any keyword opt-out restores nothing (by occurred_at).
  const other = '+14155550911'
  await deliver(ta.app, textMessage('STOP', { id: 'o1', ts: T + 20, waId: '14155550911' }))
  const early = await deliver(ta.app, textMessage('START', { id: 'o2', ts: T + 10, waId: '14155550911' }))
  t.equal(early.status, 'deferred', 'nothing to restore at its time')
  t.same(await states(ta, other), { 'auth codes': 'unsubscribed', orders: 'unsubscribed', promos: 'unsubscribed' })
})

t.test('START never subscribes groups the person was not in; messages matching nothing record nothing', async (t) => {
  const { ta } = await setup(t)
  const phone = '+14155550912'
  await deliver(ta.app, variant('meta-button-stop-promotions.json', { id: 'n1', ts: T + 1, waId: '14155550912' }))
  await deliver(ta.app, textMessage('START', { id: 'n2', ts: T + 2, waId: '14155550912' }))
  t.same(await states(ta, phone), { promos: 'unsubscribed' }, 'never subscribed: START gives nothing back (only the opt-out is recorded)')
  const before = (await ta.app.database.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM consent_events`))[0]!.n
  for (const [i, text] of ["don't stop", 'please stop', 'Stop sending me this please', 'hi', 'START NOW', '🛑'].entries()) {
    await deliver(ta.app, textMessage(text, { id: `n3-${i}`, ts: T + 3 + i, waId: '14155550912' }))
  }
  await deliver(ta.app, variant('meta-interactive-list-reply.json', { id: 'n4', ts: T + 9, waId: '14155550912' }))
  t.equal((await ta.app.database.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM consent_events`))[0]!.n, before, 'writing to a business is not consent')
})

t.test('custom rules: group-list scopes, lenient mode, the master toggle', async (t) => {
  const { ta, M, U } = await setup(t)
  const w = '14155550913'
  const phone = `+${w}`
  // Subscribed to the marketing and utility groups first (a restore gives back only those).
  const sub = await ta.app.inject({
    method: 'POST',
    url: '/consent/events',
    headers: ta.root,
    payload: { events: [M, U].map((g) => ({ phone, subscription_group_id: g, state: 'subscribed', occurred_at: '2025-01-01T00:00:00Z', method: 'web_form', evidence: { consent_text: 'yes' } })) },
  })
  t.equal(sub.statusCode, 200, sub.body)
  t.equal(
    (
      await put(ta, {
        enabled: true,
        mode: 'lenient',
        rules: [
          { keyword: 'stop', action: 'opt_out', scope: 'all' },
          { keyword: 'no more orders', action: 'opt_out', scope: [U] },
          { keyword: 'basta', action: 'opt_out', scope: 'marketing' },
          { keyword: 'volver', action: 'opt_in', scope: [M] },
        ],
      })
    ).statusCode,
    200,
  )
  await deliver(ta.app, textMessage('No more orders!', { id: 'c1', ts: T + 1, waId: w }))
  t.same(await states(ta, phone), { orders: 'unsubscribed', promos: 'subscribed' }, 'a list scope')
  await deliver(ta.app, textMessage('please, stop it', { id: 'c2', ts: T + 2, waId: w }))
  t.same(await states(ta, phone), { 'auth codes': 'unsubscribed', orders: 'unsubscribed', promos: 'unsubscribed' }, 'lenient: a short message containing STOP')
  await deliver(ta.app, textMessage('VOLVER', { id: 'c3', ts: T + 3, waId: w }))
  t.same(await states(ta, phone), { 'auth codes': 'unsubscribed', orders: 'unsubscribed', promos: 'subscribed' }, "an opt-in's scope limits the restore")
  const lenient = await ta.app.database.sql.query<{ evidence: Record<string, unknown> }>(`SELECT evidence FROM consent_events WHERE evidence->>'message_id' LIKE '%.c2' LIMIT 1`)
  t.match(lenient[0]!.evidence, { text: 'please, stop it', matched_keyword: 'STOP', match: 'lenient' })
  await deliver(ta.app, textMessage('START', { id: 'c4', ts: T + 4, waId: w }))
  t.same((await states(ta, phone)).orders, 'unsubscribed', 'START is not a rule any more')

  // Master toggle off: keywords record nothing; Meta's own signals still do.
  t.equal((await put(ta, { enabled: false, mode: 'exact', rules: [{ keyword: 'STOP', action: 'opt_out', scope: 'all' }] })).statusCode, 200)
  const w2 = '14155550914'
  await deliver(ta.app, textMessage('STOP', { id: 'c5', ts: T + 5, waId: w2 }))
  t.same(await states(ta, `+${w2}`), {}, 'disabled: nothing')
  await deliver(ta.app, variant('meta-user-preferences-stop.json', { id: 'c6', ts: T + 6, waId: w2 }))
  t.same(await states(ta, `+${w2}`), { promos: 'unsubscribed' }, 'user_preferences still apply')
})

t.test("the shipped market words work through the webhook, and stay editable", async (t) => {
  const { ta } = await setup(t)
  const cases: [string, string, Record<string, string>][] = [
    ['14155550921', 'Parar', { 'auth codes': 'unsubscribed', orders: 'unsubscribed', promos: 'unsubscribed' }],
    ['14155550922', 'ARRÊT.', { 'auth codes': 'unsubscribed', orders: 'unsubscribed', promos: 'unsubscribed' }],
    ['14155550923', 'ＳＴＯＰＰ', { 'auth codes': 'unsubscribed', orders: 'unsubscribed', promos: 'unsubscribed' }],
    ['14155550924', 'ايقاف', { 'auth codes': 'unsubscribed', orders: 'unsubscribed', promos: 'unsubscribed' }],
    ['14155550925', 'Basta!', { promos: 'unsubscribed' }],
    ['14155550926', 'cancelar', {}],
  ]
  for (const [i, [w, text, expected]] of cases.entries()) {
    await deliver(ta.app, textMessage(text, { id: `m${i}`, ts: T + i, waId: w }))
    t.same(await states(ta, `+${w}`), expected, text)
  }
  const [ev] = await ta.app.database.sql.query<{ evidence: Record<string, unknown> }>(`SELECT evidence FROM consent_events WHERE evidence->>'message_id' LIKE '%.m1' LIMIT 1`)
  t.match(ev!.evidence, { text: 'ARRÊT.', matched_keyword: 'ARRÊT' })

  // A workspace that drops a word: it no longer opts anyone out.
  const current = (await ta.app.inject({ method: 'GET', url: '/settings/keywords', headers: ta.root })).json()
  const rules = current.rules.filter((r: { keyword: string }) => r.keyword !== 'PARAR')
  t.equal((await put(ta, { ...current, rules })).statusCode, 200)
  await deliver(ta.app, textMessage('parar', { id: 'm9', ts: T + 9, waId: '14155550927' }))
  t.same(await states(ta, '+14155550927'), {}, 'PARAR removed by the workspace')
})
