/**
 * The write statement of an append: only the parts it has rows for, each named by its tag in the
 * prepared statement's name, which must stay within the 63 bytes PostgreSQL keeps (longer names
 * would silently share one prepared statement). The events' INSERT writes every recorded field.
 */
import t from 'tap'
import { EVENT_FIELDS, type ChainedEvent } from '../../../src/ledger/event.js'
import { MAX_STATEMENT_NAME, writeStatement, type WritePlan } from '../../../src/ledger/append/statement.js'

const contact = '0190a000-0000-7000-8000-000000000001'
const fresh = '0190a000-0000-7000-8000-000000000002'
const event = (contactId: string, id: string, actor: string): ChainedEvent => ({
  id,
  event_id: `0190a000-0000-7000-8000-00000000010${id}`,
  workspace_id: '00000000-0000-4000-8000-000000000000',
  contact_id: contactId,
  type: 'consent',
  subscription_group_id: '0190a000-0000-7000-8000-000000000100',
  state: 'subscribed',
  occurred_at: new Date('2026-01-01T00:00:00Z'),
  recorded_at: new Date('2026-01-01T00:00:01Z'),
  source: 'api',
  method: null,
  evidence: { a: 1 },
  identity_type: 'external_id',
  identity_value: 'x',
  actor,
  request_id: null,
  idempotency_key: null,
  platform_stop: 'stop',
  prev_hash: '0'.repeat(64),
  hash: 'f'.repeat(64),
})

t.test('every part: the longest statement name fits PostgreSQL', async (t) => {
  const events = [event(contact, '1', 'a'), event(fresh, '2', 'b')]
  const plan: WritePlan = {
    workspaceId: '00000000-0000-4000-8000-000000000000',
    recordedAt: new Date('2026-01-01T00:00:01Z'),
    events,
    pending: { contacts: [fresh], identities: [{ type: 'external_id', value: 'x', contact: fresh }] },
    heads: new Map([
      [contact, { hash: 'f'.repeat(64), length: 3 }],
      [fresh, { hash: 'f'.repeat(64), length: 1 }],
    ]),
    chainContacts: [contact],
    created: new Set([fresh]),
    winners: events,
    dedupeRows: [{ key: 'k', eventId: events[0]!.event_id }],
    stops: [{ contactId: contact, phoneNumberId: '1', stopped: true, occurredAt: new Date(), eventId: events[0]!.event_id }],
    attributes: new Map([[contact, { a: 'b' }]]),
  }
  const w = writeStatement(plan)
  t.equal(w.name, 'ledger-write-new_ids_keys_origins_heads_fresh_state_stops')
  t.ok(Buffer.byteLength(w.name) <= MAX_STATEMENT_NAME, `${w.name.length} bytes`)
  for (const cte of ['new_contacts', 'new_identities', 'dedupe', 'events', 'heads', 'projection_new', 'projection', 'stops'])
    t.match(w.text, new RegExp(`\\b${cte} AS \\(`), cte)
  const columns = /INSERT INTO consent_events \(([^)]*)\)/.exec(w.text)![1]!.split(', ')
  t.same(columns.sort(), ['id', 'prev_hash', 'hash', ...EVENT_FIELDS].sort(), 'the INSERT writes every recorded field')
  const max = Math.max(...[...w.text.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])))
  t.equal(max, w.values.length, 'one value per placeholder')
})

t.test('one request, existing contacts only: no optional part', async (t) => {
  const events = [event(contact, '1', 'a')]
  const w = writeStatement({
    workspaceId: '00000000-0000-4000-8000-000000000000',
    recordedAt: new Date('2026-01-01T00:00:01Z'),
    events,
    pending: { contacts: [], identities: [] },
    heads: new Map([[contact, { hash: 'f'.repeat(64), length: 3 }]]),
    chainContacts: [contact],
    created: new Set(),
    winners: [],
    dedupeRows: [],
    stops: [],
    attributes: new Map(),
  })
  t.equal(w.name, 'ledger-write-heads')
  t.notMatch(w.text, /RETURNING/, 'nothing reads the events back')
})
