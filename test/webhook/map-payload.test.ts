/** Payload → signals (docs/webhook.md), pure: every Meta fixture, BSUID-only variants, batches. */
import t from 'tap'
import { mapPayload, parseMetaTimestamp, phoneNumberIdsOf } from '../../src/webhook/map-payload.js'
import { BSUID, FIXTURE_PNID, FIXTURE_WA_ID, bsuidOnly, fixture, withBsuid } from './helpers.js'

const parse = (name: string) => JSON.parse(fixture(name)) as unknown
const common = { phoneNumberId: FIXTURE_PNID, displayPhoneNumber: '15550783881', wabaId: '102290129340398', entry: 0, change: 0, item: 0 }

t.test('every Meta fixture maps to its signal (or to nothing)', async (t) => {
  t.match(mapPayload(parse('meta-text.json')), [
    {
      ...common,
      kind: 'message',
      messageType: 'text',
      messageId: 'wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=',
      who: { waId: FIXTURE_WA_ID },
      rawTimestamp: '1749416383',
      occurredAt: new Date(1749416383 * 1000),
      candidates: [{ field: 'text.body', value: 'Does it come in another color?', free: true }],
      content: { text: 'Does it come in another color?' },
    },
  ])
  t.match(mapPayload(parse('meta-button.json')), [
    {
      kind: 'message',
      messageType: 'button',
      contextId: 'wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA=',
      candidates: [
        { field: 'button.payload', value: 'Unsubscribe' },
        { field: 'button.text', value: 'Unsubscribe' },
      ],
      content: { button_payload: 'Unsubscribe', button_text: 'Unsubscribe' },
    },
  ])
  t.match(mapPayload(parse('meta-button-stop-promotions.json')), [{ kind: 'message', messageId: 'wamid.BUTTON_TAP_ID', contextId: 'wamid.TEMPLATE_MSG_ID', candidates: [{ value: 'Stop promotions' }, { value: 'Stop promotions' }] }])
  t.match(mapPayload(parse('meta-interactive-button-reply.json')), [
    { messageType: 'interactive.button_reply', candidates: [{ field: 'interactive.button_reply.id', value: 'cancel-button' }, { field: 'interactive.button_reply.title', value: 'Cancel' }] },
  ])
  t.match(mapPayload(parse('meta-interactive-list-reply.json')), [
    { messageType: 'interactive.list_reply', candidates: [{ value: 'priority_express' }, { value: 'Priority Mail Express' }], content: { reply_id: 'priority_express', reply_title: 'Priority Mail Express' } },
  ])
  t.same(mapPayload(parse('meta-status-sent.json')), [], 'a sent status is nothing')
  t.same(mapPayload(parse('meta-status-failed-131049.json')), [], '131049 is nothing')
  t.match(mapPayload(parse('meta-status-failed-131050.json')), [
    { ...common, kind: 'delivery_error', statusId: 'wamid.MARKETING_TEMPLATE_ID', code: 131050, who: { waId: FIXTURE_WA_ID }, occurredAt: new Date(1751142888 * 1000) },
  ])
  t.match(mapPayload(parse('meta-user-preferences-stop.json')), [
    { ...common, kind: 'preference', value: 'stop', category: 'marketing_messages', who: { waId: FIXTURE_WA_ID }, rawTimestamp: 1731705721, occurredAt: new Date(1731705721 * 1000) },
  ])
  t.match(mapPayload(parse('meta-user-preferences-resume.json')), [{ kind: 'preference', value: 'resume' }])
  for (const f of ['meta-text.json', 'meta-status-sent.json', 'meta-user-preferences-stop.json']) t.same(phoneNumberIdsOf(parse(f)), [FIXTURE_PNID])
})

t.test('BSUID-only payloads and payloads with both identities', async (t) => {
  for (const f of ['meta-text.json', 'meta-button.json', 'meta-interactive-button-reply.json', 'meta-status-failed-131050.json', 'meta-user-preferences-stop.json']) {
    const only = mapPayload(JSON.parse(bsuidOnly(fixture(f))))
    t.equal(only.length, 1, f)
    t.same(only[0]!.who, { waId: undefined, bsuid: BSUID }, `${f}: bsuid only`)
    const both = mapPayload(JSON.parse(withBsuid(fixture(f))))
    t.same(both[0]!.who, { waId: FIXTURE_WA_ID, bsuid: BSUID }, `${f}: both`)
  }
})

t.test('batched payloads are handled item by item, in order', async (t) => {
  const msg = (id: string, from: string, body: string) => ({ from, id, timestamp: '1750000000', type: 'text', text: { body } })
  const change = (pnid: string, messages: unknown[]) => ({ field: 'messages', value: { messaging_product: 'whatsapp', metadata: { phone_number_id: pnid }, messages } })
  const payload = {
    object: 'whatsapp_business_account',
    entry: [
      { id: 'W1', changes: [change('P1', [msg('m1', '14155550001', 'STOP'), msg('m2', '14155550002', 'hello')]), change('P2', [msg('m3', '14155550003', 'x')])] },
      { id: 'W2', changes: [{ field: 'messages', value: { metadata: { phone_number_id: 'P1' }, statuses: [{ id: 's1', status: 'failed', timestamp: '1', recipient_id: '1', errors: [{ code: 131050 }] }] } }] },
    ],
  }
  const signals = mapPayload(payload)
  t.same(
    signals.map((s) => [s.wabaId, s.entry, s.change, s.item, s.phoneNumberId, s.kind]),
    [
      ['W1', 0, 0, 0, 'P1', 'message'],
      ['W1', 0, 0, 1, 'P1', 'message'],
      ['W1', 0, 1, 0, 'P2', 'message'],
      ['W2', 1, 0, 0, 'P1', 'delivery_error'],
    ],
  )
  t.same(phoneNumberIdsOf(payload), ['P1', 'P2'])
})

t.test('anything unrecognised is skipped, never thrown', async (t) => {
  for (const p of [null, 1, 'x', [], {}, { entry: 'x' }, { entry: [null, { changes: [null, { value: null }, { value: { metadata: {} } }] }] }]) {
    t.same(mapPayload(p), [], JSON.stringify(p))
  }
  const odd = { entry: [{ changes: [{ value: { metadata: { phone_number_id: 'P' }, messages: [{ id: 'i', type: 'image', image: {} }, { type: 'text', text: { body: 'STOP' } }], user_preferences: [{ category: 'other', value: 'stop' }, { category: 'marketing_messages', value: 'pause' }] } }] }] }
  t.same(mapPayload(odd), [], 'images, messages without id, other categories and values')
  t.equal(parseMetaTimestamp('1750091045')?.toISOString(), '2025-06-16T16:24:05.000Z')
  t.equal(parseMetaTimestamp(1731705721)?.toISOString(), '2024-11-15T21:22:01.000Z')
  t.equal(parseMetaTimestamp('soon'), undefined)
  t.equal(parseMetaTimestamp(1.5), undefined)
})
