/** The CSV contract, without a database: header mapping and row → ledger item. */
import t from 'tap'
import { HeaderError, mapHeader, mapRow, columnOf, contentKeyOf } from '../../src/import/columns.js'

const G = '8b0a3c9e-1111-4c1a-9a8b-0123456789ab'
const ctx = { importId: 'imp-1', defaults: {} }

t.test('header names are case-insensitive; other columns become attributes', async (t) => {
  const map = mapHeader([' Phone ', 'SUBSCRIPTION_GROUP_ID', 'Subscription_State', 'First Name', 'consent_TEXT'], {})
  t.same(map.known, { phone: 0, subscription_group_id: 1, subscription_state: 2, consent_text: 4 })
  t.same(map.attributes, [[3, 'First Name']])
  t.equal(map.width, 5)
})

t.test('headers that make a file unimportable', async (t) => {
  const code = (h: string[], d = {}) => {
    try {
      mapHeader(h, d)
      return 'ok'
    } catch (err) {
      return err instanceof HeaderError ? err.message : String(err)
    }
  }
  t.match(code(['name', 'subscription_group_id', 'subscription_state']), /none of external_id, phone, bsuid/)
  t.match(code(['phone', 'PHONE', 'subscription_group_id', 'subscription_state']), /appears twice/)
  t.match(code(['phone', '', 'subscription_group_id', 'subscription_state']), /column 2 has no name/)
  t.match(code(['phone', 'subscription_state']), /no subscription_group_id column/)
  t.match(code(['phone', 'subscription_group_id']), /no subscription_state column/)
  t.equal(code(['phone'], { subscriptionGroupId: G, subscriptionState: 'subscribed' }), 'ok', 'query defaults stand in for columns')
})

t.test('a row becomes one ledger item with evidence, defaults, and an exactly-once key', async (t) => {
  const map = mapHeader(['external_id', 'phone', 'subscription_state', 'occurred_at', 'method', 'consent_text', 'ip', 'tier'], {
    subscriptionGroupId: G,
  })
  const m = mapRow(map, { importId: 'imp-1', defaults: { subscriptionGroupId: G, sourceLabel: 'pos-2025' } }, 7, [
    ' u-1 ',
    '+1 415 555 2671',
    'SUBSCRIBED',
    '2025-03-01 10:00:00Z',
    'Paper',
    'I agree',
    '',
    'gold',
  ])
  t.equal(m.kind, 'item')
  if (m.kind !== 'item') return
  t.same(m.item, {
    identities: [
      { type: 'external_id', value: 'u-1' },
      { type: 'phone', value: '+1 415 555 2671' },
    ],
    subscriptionGroupId: G,
    state: 'subscribed',
    occurredAt: '2025-03-01T10:00:00Z',
    source: 'csv_import',
    method: 'paper',
    evidence: { import_id: 'imp-1', row: 7, source_label: 'pos-2025', consent_text: 'I agree' },
    dedupeKey: 'import:imp-1:7',
  })
  t.same(m.attributes, { tier: 'gold' })
})

t.test('blank rows are skipped, over-long rows refused, short rows padded', async (t) => {
  const map = mapHeader(['phone', 'subscription_group_id', 'subscription_state'], {})
  t.same(mapRow(map, ctx, 2, ['', ' ', '']), { kind: 'skip' })
  t.same(mapRow(map, ctx, 3, ['+14155552671', G, 'subscribed', 'extra']), {
    kind: 'error',
    column: '',
    code: 'too_many_fields',
    message: 'row has 4 fields, the header has 3',
  })
  const short = mapRow(map, ctx, 4, ['+14155552671', G])
  t.equal(short.kind === 'item' && short.item.state, '', 'a missing state is left for the ledger to refuse')
})

t.test('content keys: the same consent written differently is the same key', async (t) => {
  const map = mapHeader(['phone', 'subscription_group_id', 'subscription_state', 'occurred_at', 'note'], {})
  const key = (f: string[]) => contentKeyOf(map, {}, f)
  const a = key(['+1 415-555-2671', G, 'subscribed', '2025-01-01T00:00:00Z', 'x'])
  t.match(a, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'an md5 written as a uuid')
  t.equal(key(['14155552671', G.toUpperCase(), 'Subscribed', '2025-01-01T00:00:00.000Z', 'y']), a, 'phone digits, group case, state case, time form, attributes ignored')
  t.not(key(['+14155552671', G, 'unsubscribed', '2025-01-01T00:00:00Z', 'x']), a, 'another state')
  t.not(key(['+14155552671', G, 'subscribed', '2025-01-01T00:00:01Z', 'x']), a, 'another time')
  t.equal(contentKeyOf(mapHeader(['phone', 'occurred_at'], { subscriptionGroupId: G, subscriptionState: 'subscribed' }), { subscriptionGroupId: G, subscriptionState: 'subscribed' }, ['+14155552671', '2025-01-01 00:00:00Z']), a, 'defaults and a space in the time')
})

t.test('ledger pointers map to CSV columns', async (t) => {
  t.equal(columnOf('/phone', 'invalid_phone'), 'phone')
  t.equal(columnOf('/state', 'invalid_state'), 'subscription_state')
  t.equal(columnOf('/subscription_group_id', 'unknown_subscription_group'), 'subscription_group_id')
  t.equal(columnOf(undefined, 'evidence_required'), '')
  t.equal(columnOf(undefined, 'missing_identity'), '')
})
