/**
 * historyOf / membersOf (src/ledger/history.ts): a person's consent events up to a time, read from
 * a real PostgreSQL ledger, across every contact merged into them, never another person's or
 * another workspace's, and only consent events (not identity or merge events).
 */
import t from 'tap'
import { buildTestApp, newGroup, newWorkspace } from '../helpers/build-app.js'
import { historyOf, membersOf } from '../../src/ledger/history.js'
import type { AppendItem } from '../../src/ledger/types.js'

t.test('historyOf reads what a restore needs, for one person, up to a time', async (t) => {
  const ta = await buildTestApp(t)
  const { sql } = ta.app.database
  const ws = await newWorkspace(ta, 'history')
  const other = await newWorkspace(ta, 'history-other')
  const g1 = await newGroup(ta, ws.auth)
  const g2 = await newGroup(ta, ws.auth, { name: 'Service', category: 'utility' })
  const otherGroup = await newGroup(ta, other.auth)

  const phone = '+14155550101'
  const item = (group: string, state: string, at: string, extra: Partial<AppendItem> = {}): AppendItem => ({
    identities: [{ type: 'phone', value: phone }],
    subscriptionGroupId: group,
    state,
    occurredAt: at,
    source: 'api',
    ...extra,
  })
  const append = async (workspaceId: string, items: AppendItem[]) => {
    const results = await ta.app.ledger.append(sql, { workspaceId, actor: 'test' }, items)
    for (const r of results) t.not(r.status, 'rejected', JSON.stringify(r))
  }

  await append(ws.id, [
    item(g1, 'subscribed', '2026-01-01T00:00:00Z'),
    item(g2, 'subscribed', '2026-01-01T00:00:00Z'),
    item(g1, 'unsubscribed', '2026-01-02T00:00:00Z', {
      source: 'inbound_keyword',
      method: 'whatsapp',
      evidence: { keyword_action: 'opt_out', signal_key: 'wa:msg:m1', phone_number_id: '106540352242922', message_id: 'm1' },
      platformStop: { action: 'stop', phoneNumberId: '106540352242922' },
    }),
    item(g2, 'unsubscribed', '2026-01-05T00:00:00Z'),
  ])
  // The same phone in another workspace, and another person in this one: neither is this history.
  await append(other.id, [item(otherGroup, 'subscribed', '2026-01-01T00:00:00Z')])
  await append(ws.id, [{ ...item(g1, 'subscribed', '2026-01-01T00:00:00Z'), identities: [{ type: 'phone', value: '+14155550199' }] }])

  const upTo = (at: string) => historyOf(sql, ws.id, [{ type: 'phone', value: phone }], new Date(at))

  const all = await upTo('2026-02-01T00:00:00Z')
  t.equal(all.length, 4, 'the four consent events of the person in the workspace')
  t.ok(
    all.every((e) => typeof e.id === 'bigint' && typeof e.occurredAt === 'number'),
    'ids are bigints, times are epoch milliseconds',
  )
  const stop = all.find((e) => e.state === 'unsubscribed' && e.group === g1)!
  t.match(stop, {
    group: g1,
    state: 'unsubscribed',
    occurredAt: Date.parse('2026-01-02T00:00:00Z'),
    source: 'inbound_keyword',
    platformStop: 'stop',
    keywordAction: 'opt_out',
    signalKey: 'wa:msg:m1',
    phoneNumberId: '106540352242922',
    messageId: 'm1',
  })
  const plain = all.find((e) => e.state === 'subscribed' && e.group === g2)!
  t.match(plain, { source: 'api', platformStop: null, keywordAction: null, signalKey: null, phoneNumberId: null, messageId: null })

  const early = await upTo('2026-01-02T00:00:00Z')
  t.equal(early.length, 3, 'events after the time are left out; one at the time is kept')
  t.notOk(early.some((e) => e.group === g2 && e.state === 'unsubscribed'))

  t.same(await historyOf(sql, ws.id, [{ type: 'phone', value: '+14155550142' }], new Date()), [], 'an unknown person has no history')
  t.same(await historyOf(sql, ws.id, [{ type: 'phone', value: 'not a phone' }], new Date()), [], 'an identity that does not normalise finds nothing')
})

t.test('membersOf and historyOf follow merged contacts', async (t) => {
  const ta = await buildTestApp(t)
  const { sql } = ta.app.database
  const ws = await newWorkspace(ta, 'merged')
  const group = await newGroup(ta, ws.auth)
  const append = (items: AppendItem[]) => ta.app.ledger.append(sql, { workspaceId: ws.id, actor: 'test' }, items)
  const at = '2026-01-01T00:00:00Z'

  await append([
    { identities: [{ type: 'phone', value: '+14155550301' }], subscriptionGroupId: group, state: 'subscribed', occurredAt: at, source: 'api' },
    { identities: [{ type: 'external_id', value: 'merge-me' }], subscriptionGroupId: group, state: 'unsubscribed', occurredAt: at, source: 'api' },
  ])
  const before = await membersOf(sql, ws.id, [{ type: 'phone', value: '+14155550301' }])
  t.equal(before.length, 1, 'one contact holds the phone')

  // One request showing both identities merges the two contacts.
  await append([
    {
      identities: [{ type: 'external_id', value: 'merge-me' }, { type: 'phone', value: '+14155550301' }],
      subscriptionGroupId: group,
      state: 'subscribed',
      occurredAt: '2026-01-02T00:00:00Z',
      source: 'api',
    },
  ])
  const after = await membersOf(sql, ws.id, [{ type: 'phone', value: '+14155550301' }])
  t.equal(after.length, 2, 'the live contact and the one merged into it')
  const history = await historyOf(sql, ws.id, [{ type: 'phone', value: '+14155550301' }], new Date('2026-02-01T00:00:00Z'))
  t.equal(history.filter((e) => e.group === group).length, 3, "both contacts' consent events, and the merging request's own")
  t.same(await membersOf(sql, ws.id, []), [], 'no identities, no members')
})
