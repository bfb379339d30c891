/**
 * The rule of a pre-send check (src/check/decide.ts) without a database: every matching group must
 * allow a send, the first refusing group is named, platform stops apply to WhatsApp marketing only.
 */
import t from 'tap'
import { decide, type GroupRow } from '../../src/check/decide.js'

const ident = { type: 'phone' as const, value: '+14155550001' }
const group = (id: string, over: Partial<GroupRow> = {}): GroupRow => ({
  id,
  channel: 'whatsapp',
  category: 'marketing',
  phone_number_id: null,
  requires_opt_in: true,
  ...over,
})
const sub = (g: string) => ({ g, state: 'subscribed', occurred_at: '2026-01-01T00:00:00.000Z', event_id: 'e1' })

t.test('reasons of one group', async (t) => {
  const g = group('a')
  t.match(decide(ident, true, [g], {}, undefined, undefined), { allowed: false, reason: 'not_opted_in', state: 'unknown', event_id: null })
  t.match(decide(ident, true, [group('a', { requires_opt_in: false })], {}, undefined, undefined), { allowed: true, reason: 'opt_in_not_required' })
  t.match(decide(ident, true, [g], {}, [sub('a')], undefined), { allowed: true, reason: 'subscribed', event_id: 'e1' })
  t.match(decide(ident, true, [g], {}, [{ ...sub('a'), state: 'unsubscribed' }], undefined), { allowed: false, reason: 'opted_out' })
  t.match(decide(ident, true, [g], {}, [sub('a')], ['PN1']), { allowed: false, reason: 'platform_stopped' })
})

t.test('platform stops: only WhatsApp marketing, only the requested number', async (t) => {
  t.match(decide(ident, true, [group('a', { category: 'utility' })], {}, [sub('a')], ['PN1']), { allowed: true })
  t.match(decide(ident, true, [group('a')], { phone_number_id: 'PN2' }, [sub('a')], ['PN1']), { allowed: true })
  t.match(decide(ident, true, [group('a')], { phone_number_id: 'PN1' }, [sub('a')], ['PN1']), { reason: 'platform_stopped' })
})

t.test('several groups: allowed only when all allow; the first refusing group is named', async (t) => {
  const groups = [group('own', { phone_number_id: 'PN1' }), group('wide')]
  t.match(decide(ident, true, groups, {}, [sub('own'), sub('wide')], undefined), { allowed: true, subscription_group_id: 'own' })
  t.match(decide(ident, true, groups, {}, [sub('own')], undefined), { allowed: false, subscription_group_id: 'wide', reason: 'not_opted_in' })
})

t.test('an invalid identifier is refused whatever its rows say', async (t) => {
  t.match(decide(ident, false, [group('a')], {}, [sub('a')], undefined), {
    allowed: false,
    state: 'unknown',
    reason: 'not_opted_in',
    occurred_at: null,
    event_id: null,
    error: 'invalid_identifier',
  })
})
