/**
 * Meta WhatsApp Cloud API webhook payload → consent signals (what each records: docs/webhook.md), pure: no database, no
 * workspace, no keyword rules. A payload is handled item by item: every entry, every change, every
 * message / status / preference becomes at most one signal, in payload order.
 *
 *   messages[]          type text, button (template quick reply), interactive (button_reply,
 *                       list_reply) → a `message` signal with its match candidates; other types
 *                       (image, reaction, ...) → nothing
 *   statuses[]          status `failed` with an error of code 131050 → `delivery_error`; 131049 and
 *                       every other status → nothing
 *   user_preferences[]  category `marketing_messages`, value stop|resume → `preference`
 *
 * Who: a phone (`wa_id`, `from`, `recipient_id`) and/or a BSUID (`user_id`, `from_user_id`,
 * `recipient_user_id`, Meta's business-scoped user id, form `US.13491208655302741918`), taken
 * from the item itself, else from the change's `contacts[]` entry that shares the other identity
 * (or the only contact). Both, when present, go into the ledger item together and are linked.
 *
 * When: `occurred_at` is the payload's own timestamp: seconds as a string in messages/statuses,
 * an integer in user_preferences. A missing or unreadable one leaves it to the receipt time.
 */
import type { MatchCandidate } from './keywords.js'

export interface Who {
  /** Phone as WhatsApp writes it (digits, no plus). */
  waId?: string
  bsuid?: string
}

interface SignalBase {
  /** Position in the payload, for logs and tests. */
  entry: number
  change: number
  item: number
  /** The business number (`value.metadata.phone_number_id`): routes the signal to a workspace. */
  phoneNumberId: string
  displayPhoneNumber?: string
  /** WhatsApp Business Account id (`entry[].id`). */
  wabaId?: string
  who: Who
  /** The payload's timestamp as given (part of the preference dedupe key). */
  rawTimestamp?: string | number
  occurredAt?: Date
}

export interface MessageSignal extends SignalBase {
  kind: 'message'
  messageId: string
  /** text | button | interactive.button_reply | interactive.list_reply */
  messageType: string
  /** `context.id`: the (template) message this one answers. */
  contextId?: string
  candidates: MatchCandidate[]
  /** What the person sent, for the evidence. */
  content: Record<string, string>
}

export interface DeliveryErrorSignal extends SignalBase {
  kind: 'delivery_error'
  statusId: string
  code: 131050
  title?: string
}

export interface PreferenceSignal extends SignalBase {
  kind: 'preference'
  value: 'stop' | 'resume'
  category: 'marketing_messages'
  detail?: string
}

export type Signal = MessageSignal | DeliveryErrorSignal | PreferenceSignal

type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : [])
const str = (v: unknown): string | undefined => (typeof v === 'string' && v.length > 0 ? v : typeof v === 'number' && Number.isFinite(v) ? String(v) : undefined)

/** Seconds since the epoch, as a string of digits or an integer. */
export function parseMetaTimestamp(v: unknown): Date | undefined {
  let secs: number | undefined
  if (typeof v === 'number' && Number.isInteger(v)) secs = v
  else if (typeof v === 'string' && /^\d{1,12}$/.test(v)) secs = Number(v)
  if (secs === undefined || secs <= 0) return undefined
  return new Date(secs * 1000)
}

/** Every `value.metadata.phone_number_id` the payload names, distinct, in order. */
export function phoneNumberIdsOf(payload: unknown): string[] {
  const out: string[] = []
  if (!isObj(payload)) return out
  for (const entry of arr(payload.entry)) {
    if (!isObj(entry)) continue
    for (const change of arr(entry.changes)) {
      const id = isObj(change) && isObj(change.value) && isObj(change.value.metadata) ? str(change.value.metadata.phone_number_id) : undefined
      if (id && !out.includes(id)) out.push(id)
    }
  }
  return out
}

/** Finds the person in `contacts[]`: the entry sharing an identity with the item, else the only one. */
function fromContacts(contacts: unknown[], who: Who): Who {
  const list = contacts.filter(isObj)
  const match =
    list.find((c) => (who.waId !== undefined && str(c.wa_id) === who.waId) || (who.bsuid !== undefined && str(c.user_id) === who.bsuid)) ??
    (list.length === 1 && who.waId === undefined && who.bsuid === undefined ? list[0] : undefined)
  if (!match) return who
  return { waId: who.waId ?? str(match.wa_id), bsuid: who.bsuid ?? str(match.user_id) }
}

function messageCandidates(m: Obj): { type: string; candidates: MatchCandidate[]; content: Record<string, string> } | null {
  const type = str(m.type)
  if (type === 'text' && isObj(m.text)) {
    const body = typeof m.text.body === 'string' ? m.text.body : ''
    return { type: 'text', candidates: [{ field: 'text.body', value: body, free: true }], content: { text: body } }
  }
  if (type === 'button' && isObj(m.button)) {
    const payload = str(m.button.payload)
    const text = str(m.button.text)
    const candidates: MatchCandidate[] = []
    if (payload !== undefined) candidates.push({ field: 'button.payload', value: payload, free: false })
    if (text !== undefined) candidates.push({ field: 'button.text', value: text, free: false })
    const content: Record<string, string> = {}
    if (payload !== undefined) content.button_payload = payload
    if (text !== undefined) content.button_text = text
    return { type: 'button', candidates, content }
  }
  if (type === 'interactive' && isObj(m.interactive)) {
    const kind = str(m.interactive.type)
    if (kind !== 'button_reply' && kind !== 'list_reply') return null
    const reply = m.interactive[kind]
    if (!isObj(reply)) return null
    const id = str(reply.id)
    const title = str(reply.title)
    const candidates: MatchCandidate[] = []
    if (id !== undefined) candidates.push({ field: `interactive.${kind}.id`, value: id, free: false })
    if (title !== undefined) candidates.push({ field: `interactive.${kind}.title`, value: title, free: false })
    const content: Record<string, string> = {}
    if (id !== undefined) content.reply_id = id
    if (title !== undefined) content.reply_title = title
    return { type: `interactive.${kind}`, candidates, content }
  }
  return null
}

/** The signals of a parsed payload, in payload order. Anything unrecognised is skipped. */
export function mapPayload(payload: unknown): Signal[] {
  const out: Signal[] = []
  if (!isObj(payload)) return out
  arr(payload.entry).forEach((entry, e) => {
    if (!isObj(entry)) return
    const wabaId = str(entry.id)
    arr(entry.changes).forEach((change, c) => {
      if (!isObj(change) || !isObj(change.value)) return
      const value = change.value
      const metadata = isObj(value.metadata) ? value.metadata : {}
      const phoneNumberId = str(metadata.phone_number_id)
      if (!phoneNumberId) return
      const base = { entry: e, change: c, phoneNumberId, displayPhoneNumber: str(metadata.display_phone_number), wabaId }
      const contacts = arr(value.contacts)

      arr(value.messages).forEach((m, i) => {
        if (!isObj(m)) return
        const messageId = str(m.id)
        const mapped = messageCandidates(m)
        if (!messageId || !mapped) return
        const who = fromContacts(contacts, { waId: str(m.from), bsuid: str(m.from_user_id) })
        out.push({
          ...base,
          item: i,
          kind: 'message',
          who,
          rawTimestamp: str(m.timestamp),
          occurredAt: parseMetaTimestamp(m.timestamp),
          messageId,
          messageType: mapped.type,
          contextId: isObj(m.context) ? str(m.context.id) : undefined,
          candidates: mapped.candidates,
          content: mapped.content,
        })
      })

      arr(value.statuses).forEach((s, i) => {
        if (!isObj(s) || str(s.status) !== 'failed') return
        const statusId = str(s.id)
        const error = arr(s.errors).find((x) => isObj(x) && String(x.code) === '131050') as Obj | undefined
        if (!statusId || !error) return
        out.push({
          ...base,
          item: i,
          kind: 'delivery_error',
          who: { waId: str(s.recipient_id), bsuid: str(s.recipient_user_id) },
          rawTimestamp: str(s.timestamp),
          occurredAt: parseMetaTimestamp(s.timestamp),
          statusId,
          code: 131050,
          title: str(error.title),
        })
      })

      arr(value.user_preferences).forEach((p, i) => {
        if (!isObj(p) || p.category !== 'marketing_messages') return
        const v = p.value
        if (v !== 'stop' && v !== 'resume') return
        const who = fromContacts(contacts, { waId: str(p.wa_id), bsuid: str(p.user_id) })
        out.push({
          ...base,
          item: i,
          kind: 'preference',
          who,
          rawTimestamp: typeof p.timestamp === 'number' || typeof p.timestamp === 'string' ? p.timestamp : undefined,
          occurredAt: parseMetaTimestamp(p.timestamp),
          value: v,
          category: 'marketing_messages',
          detail: str(p.detail),
        })
      })
    })
  })
  return out
}
