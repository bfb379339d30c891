/**
 * What a signal records (src/webhook/signal-plan.ts), pure: no database. Opt-outs and stops are
 * planned at once; a restore asks for the person's history and is finished from a RestorePlan.
 * The end-to-end behaviour (real ledger, real payloads) is in test/routes/webhooks.
 */
import t from 'tap'
import { DEFAULT_KEYWORD_SETTINGS } from '../../src/webhook/keywords.js'
import type { DeliveryErrorSignal, MessageSignal, PreferenceSignal } from '../../src/webhook/map-payload.js'
import { identitiesOf, planSignal, platformGroups, scopeGroups, type Plan, type SignalStep, type WorkspaceContext } from '../../src/webhook/signal-plan.js'
import type { RestorePlan } from '../../src/ledger/restore.js'

const PNID = '106540352242922'
const w: WorkspaceContext = {
  id: 'ws-1',
  settings: DEFAULT_KEYWORD_SETTINGS,
  groups: [
    { id: 'g-marketing', category: 'marketing', phone_number_id: null },
    { id: 'g-number', category: 'marketing', phone_number_id: PNID },
    { id: 'g-other-number', category: 'marketing', phone_number_id: '999' },
    { id: 'g-utility', category: 'utility', phone_number_id: null },
  ],
}
const row = { id: '42', body_sha256: 'ab'.repeat(32), received_at: new Date('2026-03-01T10:00:00Z') }
const base = { entry: 0, change: 0, item: 0, phoneNumberId: PNID, who: { waId: '16505551234' }, rawTimestamp: '1767261600', occurredAt: new Date('2026-01-01T10:00:00Z') }
const text = (body: string, id = 'wamid.1'): MessageSignal => ({
  ...base,
  kind: 'message',
  messageId: id,
  messageType: 'text',
  candidates: [{ field: 'text.body', value: body, free: true }],
  content: { text: body },
})

const planned = (step: SignalStep): Plan => {
  if (!('plan' in step)) throw new Error('expected a plan, got a history read')
  return step.plan
}

t.test('scope and platform groups', async (t) => {
  t.same(scopeGroups(w, 'all'), ['g-marketing', 'g-number', 'g-other-number', 'g-utility'])
  t.same(scopeGroups(w, 'marketing'), ['g-marketing', 'g-number', 'g-other-number'])
  t.same(scopeGroups(w, ['g-utility', 'unknown']), ['g-utility'], 'listed groups, active ones only')
  t.same(platformGroups(w, PNID), ['g-marketing', 'g-number'], "the number's own marketing groups and the number-less ones")
})

t.test('identities: a wa_id that is not even a possible phone is left out when a BSUID names the person', async (t) => {
  t.same(identitiesOf({ ...text('x'), who: { waId: '16505551234', bsuid: 'US.1' } }).identities, [
    { type: 'phone', value: '16505551234' },
    { type: 'bsuid', value: 'US.1' },
  ])
  t.same(identitiesOf({ ...text('x'), who: { waId: '1', bsuid: 'US.1' } }).identities, [{ type: 'bsuid', value: 'US.1' }])
  t.same(identitiesOf({ ...text('x'), who: { waId: '1' } }).identities, [{ type: 'phone', value: '1' }], 'alone it is kept (the ledger rejects it)')
})

t.test('an opt-out keyword is planned at once, one item per group, keyed by message and group', async (t) => {
  const plan = planned(planSignal(w, text('STOP'), row))
  t.equal(plan.optOut, true)
  t.ok(plan.items.length > 0)
  for (const item of plan.items) {
    t.match(item, { state: 'unsubscribed', source: 'inbound_keyword', method: 'whatsapp', occurredAt: base.occurredAt })
    t.equal(item.dedupeKey, `wa:msg:wamid.1:${item.subscriptionGroupId}`)
    t.match(item.evidence, { channel: 'whatsapp', signal_key: 'wa:msg:wamid.1', inbox_id: '42', body_sha256: row.body_sha256, keyword_action: 'opt_out' })
  }
})

t.test('a message matching no rule records nothing', async (t) => {
  t.same(planned(planSignal(w, text('hello there'), row)), { items: [] })
})

t.test('unstorable text is made storable and flagged', async (t) => {
  const plan = planned(planSignal(w, text('STOP', 'wamid.\u0000x'), row))
  t.equal(plan.items[0]!.dedupeKey!.includes('\u0000'), false)
  t.equal(plan.items[0]!.evidence!.evidence_sanitized, true)
})

t.test('a delivery error 131050 stops the marketing groups of its number', async (t) => {
  const s: DeliveryErrorSignal = { ...base, kind: 'delivery_error', statusId: 'st-1', code: 131050, title: 'User stopped marketing' }
  const plan = planned(planSignal(w, s, row))
  t.equal(plan.optOut, true)
  t.same(
    plan.items.map((i) => [i.subscriptionGroupId, i.state, i.source, i.dedupeKey]),
    [
      ['g-marketing', 'unsubscribed', 'meta_delivery_error', 'wa:status:st-1:131050:g-marketing'],
      ['g-number', 'unsubscribed', 'meta_delivery_error', 'wa:status:st-1:131050:g-number'],
    ],
  )
  t.same(plan.items[0]!.platformStop, { action: 'stop', phoneNumberId: PNID })
})

t.test('a restore asks for the history up to its own time, and is finished from the restore plan', async (t) => {
  const step = planSignal(w, text('START', 'wamid.2'), row)
  if ('plan' in step) return t.fail('a restore needs the history')
  t.same(step.needs, { kind: { kind: 'keyword' }, identities: [{ type: 'phone', value: '16505551234' }], at: base.occurredAt })
  t.same(step.finish({ found: false }), { items: [], deferred: true }, 'nothing to restore yet: deferred')
  t.same(step.finish({ found: true, resumed: true }), { items: [] })
  const found: RestorePlan = {
    found: true,
    resumed: false,
    anchor: { signalKey: 'wa:msg:wamid.1', messageId: 'wamid.1' },
    named: ['g-marketing', 'g-utility'],
    restore: new Set(['g-marketing', 'g-gone']),
    stateAt: new Map(),
  }
  const plan = step.finish(found)
  t.same(
    plan.items.map((i) => [i.subscriptionGroupId, i.state]),
    [['g-marketing', 'subscribed']],
    'only what the opt-out took away, within the rule scope',
  )
  t.match(plan.items[0]!.evidence, { restores_message_id: 'wamid.1', restores_signal_key: 'wa:msg:wamid.1' })
})

t.test('a resume clears the platform stop of every group the latest stop named, granting nothing', async (t) => {
  const s: PreferenceSignal = { ...base, kind: 'preference', value: 'resume', category: 'marketing_messages' }
  const step = planSignal(w, s, row)
  if ('plan' in step) return t.fail('a resume needs the history')
  t.same(step.needs.kind, { kind: 'platform', phoneNumberId: PNID })
  const plan = step.finish({
    found: true,
    resumed: false,
    anchor: { signalKey: 'wa:pref:16505551234:stop:1', messageId: null },
    named: ['g-marketing', 'g-number'],
    restore: new Set(['g-number']),
    stateAt: new Map([['g-marketing', 'unsubscribed']]),
  })
  t.same(
    plan.items.map((i) => [i.subscriptionGroupId, i.state, i.evidence!.restored]),
    [
      ['g-marketing', 'unsubscribed', false],
      ['g-number', 'subscribed', true],
    ],
  )
  t.ok(plan.items.every((i) => i.platformStop?.action === 'resume'))
  const stop = planned(planSignal(w, { ...s, value: 'stop' }, row))
  t.equal(stop.optOut, true)
  t.equal(stop.items[0]!.dedupeKey, 'wa:pref:16505551234:stop:1767261600:g-marketing')
})
