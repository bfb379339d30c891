/**
 * What one Meta signal records, as ledger items (docs/webhook.md "What each Meta signal records").
 * Pure: no database. Given the signal, its workspace's keyword rules and groups, and the inbox row
 * it came in, planSignal answers the items; a restore (an opt-in keyword such as START/UNSTOP, or
 * Meta's `resume`) first needs the person's history, so it answers the read it needs instead, and
 * its plan is finished from what the ledger holds (planRestore, src/ledger/restore.ts).
 *
 * Exactly once. Every item carries a ledger dedupe key (kept forever in ledger_dedupe), per group:
 *   messages          `wa:msg:<message id>:<group id>`
 *   error 131050      `wa:status:<status id>:131050:<group id>`
 *   user_preferences  `wa:pref:<bsuid, else wa_id>:<value>:<timestamp>:<group id>`
 * so any redelivery, however late, appends nothing. The part before `:<group id>` is written to
 * the evidence as `signal_key`: it groups the events of one signal.
 *
 * Evidence on every event: channel, message/status id, what the person sent (text, button
 * payload/text, reply id/title), `context.id`, matched keyword, `phone_number_id`, display number,
 * WABA id (`entry.id`), wa_id / bsuid, the inbox row id and the sha256 of the raw body.
 */
import type { AppendItem, RawIdentity } from '../ledger/types.js'
import type { RestoreKind, RestorePlan } from '../ledger/restore.js'
import { normalizePhone, possiblePhone } from '../contacts/identity.js'
import { matchKeyword, type KeywordScope, type KeywordSettings } from './keywords.js'
import type { Signal } from './map-payload.js'
import type { InboxRow } from './inbox-repository.js'
import { storableEvidence, storableText } from './storable.js'

export interface GroupInfo {
  id: string
  category: string
  phone_number_id: string | null
}

export interface WorkspaceContext {
  id: string
  settings: KeywordSettings
  /** Active WhatsApp groups, oldest first. */
  groups: GroupInfo[]
}

/** What of the inbox row the plan needs. */
export type RowFacts = Pick<InboxRow, 'id' | 'body_sha256' | 'received_at'>

export interface Plan {
  items: AppendItem[]
  /** A restore found nothing to restore yet. */
  deferred?: boolean
  /** The items are an opt-out or a platform stop (may complete a deferred restore). */
  optOut?: boolean
}

/** The ledger read a restore needs: the person's history up to the restore's own time. */
export interface RestoreQuery {
  kind: RestoreKind
  identities: RawIdentity[]
  at: Date
}

/** A signal's plan, or the read its plan needs first and how to finish it from the answer. */
export type SignalStep = { plan: Plan } | { needs: RestoreQuery; finish: (found: RestorePlan) => Plan }

/** The groups a keyword rule's scope names, among the workspace's active WhatsApp groups. */
export function scopeGroups(w: WorkspaceContext, scope: KeywordScope): string[] {
  if (scope === 'all') return w.groups.map((g) => g.id)
  if (scope === 'marketing') return w.groups.filter((g) => g.category === 'marketing').map((g) => g.id)
  const wanted = new Set(scope)
  return w.groups.filter((g) => wanted.has(g.id)).map((g) => g.id)
}

/** Marketing groups of a business number: its own and the workspace-wide ones. */
export function platformGroups(w: WorkspaceContext, phoneNumberId: string): string[] {
  return w.groups.filter((g) => g.category === 'marketing' && (g.phone_number_id === null || g.phone_number_id === phoneNumberId)).map((g) => g.id)
}

/**
 * The ledger identities of a signal: the phone (wa_id) and/or the BSUID, linked when both are
 * present. Meta vouches for a wa_id: one that libphonenumber does not accept as valid is still the
 * phone `+<wa_id>` when it is a possible number (`unverified`, flagged `phone_unverified` in the
 * evidence), so an opt-out is never lost for a formatting reason. One that is not even possible is
 * left out when a BSUID identifies the person; alone it is kept, so the ledger rejects the item
 * (invalid_phone) and the row is kept as failed (listed, replayable).
 */
export function identitiesOf(s: Signal): { identities: RawIdentity[]; phoneUnverified: boolean } {
  const out: RawIdentity[] = []
  let phoneUnverified = false
  if (s.who.waId !== undefined) {
    if (normalizePhone(s.who.waId) !== null) out.push({ type: 'phone', value: s.who.waId })
    else if (possiblePhone(s.who.waId) !== null) {
      out.push({ type: 'phone', value: s.who.waId, unverified: true })
      phoneUnverified = true
    } else if (s.who.bsuid === undefined) out.push({ type: 'phone', value: s.who.waId })
  }
  if (s.who.bsuid !== undefined) out.push({ type: 'bsuid', value: s.who.bsuid })
  return { identities: out, phoneUnverified }
}

type ItemsOf = (
  groups: string[],
  state: 'subscribed' | 'unsubscribed',
  source: AppendItem['source'],
  rawKey: string,
  rawEvidence: Record<string, unknown>,
  platformStop?: AppendItem['platformStop'],
) => AppendItem[]

/** Builds the items of one signal: one per group, sharing the signal's identities, time and evidence. */
function itemsBuilder(s: Signal, row: RowFacts, identities: RawIdentity[], phoneUnverified: boolean): ItemsOf {
  const occurredAt = s.occurredAt ?? new Date(row.received_at)
  const base: Record<string, unknown> = {
    ...(phoneUnverified ? { phone_unverified: true } : {}),
    channel: 'whatsapp',
    phone_number_id: s.phoneNumberId,
    display_phone_number: s.displayPhoneNumber,
    waba_id: s.wabaId,
    wa_id: s.who.waId,
    bsuid: s.who.bsuid,
    webhook_timestamp: s.rawTimestamp,
    inbox_id: row.id,
    body_sha256: row.body_sha256,
  }
  return (groups, state, source, rawKey, rawEvidence, platformStop) => {
    // What the person sent may hold text PostgreSQL cannot store ("STOP\u0000"): the opt-out is
    // kept, with the evidence made storable and flagged.
    const signalKey = storableText(rawKey)
    const { evidence, changed } = storableEvidence({ ...base, ...rawEvidence, signal_key: signalKey })
    if (changed) evidence.evidence_sanitized = true
    return groups.map((g) => ({
      identities,
      subscriptionGroupId: g,
      state,
      occurredAt,
      source,
      method: 'whatsapp',
      evidence,
      dedupeKey: `${signalKey}:${g}`,
      platformStop,
    }))
  }
}

/** What a signal records (see the header), or the history read its restore needs first. */
export function planSignal(w: WorkspaceContext, s: Signal, row: RowFacts): SignalStep {
  const { identities, phoneUnverified } = identitiesOf(s)
  const items = itemsBuilder(s, row, identities, phoneUnverified)
  const restoreQuery = (kind: RestoreKind): RestoreQuery => ({ kind, identities, at: s.occurredAt ?? new Date(row.received_at) })

  if (s.kind === 'message') {
    const match = matchKeyword(w.settings, s.candidates)
    if (!match) return { plan: { items: [] } }
    const source = s.messageType === 'text' ? 'inbound_keyword' : 'template_button'
    const signalKey = `wa:msg:${s.messageId}`
    const evidence = {
      message_id: s.messageId,
      message_type: s.messageType,
      ...s.content,
      context_message_id: s.contextId,
      matched_keyword: match.rule.keyword,
      matched_field: match.field,
      match: match.how,
      keyword_action: match.rule.action,
      keyword_scope: match.rule.scope,
    }
    if (match.rule.action === 'opt_out') {
      return { plan: { items: items(scopeGroups(w, match.rule.scope), 'unsubscribed', source, signalKey, evidence), optOut: true } }
    }
    return {
      needs: restoreQuery({ kind: 'keyword' }),
      finish: (found) => {
        if (!found.found) return { items: [], deferred: true }
        if (found.resumed) return { items: [] }
        const allowed = new Set(scopeGroups(w, match.rule.scope))
        const groups = [...found.restore].filter((g) => allowed.has(g))
        const restores = { restores_message_id: found.anchor.messageId, restores_signal_key: found.anchor.signalKey }
        return { items: items(groups, 'subscribed', source, signalKey, { ...evidence, ...restores }) }
      },
    }
  }

  if (s.kind === 'delivery_error') {
    const signalKey = `wa:status:${s.statusId}:131050`
    const evidence = { status_id: s.statusId, error_code: s.code, error_title: s.title }
    const stop = { action: 'stop' as const, phoneNumberId: s.phoneNumberId }
    return { plan: { items: items(platformGroups(w, s.phoneNumberId), 'unsubscribed', 'meta_delivery_error', signalKey, evidence, stop), optOut: true } }
  }

  // user_preferences
  const signalKey = `wa:pref:${s.who.bsuid ?? s.who.waId ?? 'unknown'}:${s.value}:${s.rawTimestamp ?? 'none'}`
  const evidence = { user_preference: s.value, category: s.category, detail: s.detail }
  if (s.value === 'stop') {
    const stop = { action: 'stop' as const, phoneNumberId: s.phoneNumberId }
    return { plan: { items: items(platformGroups(w, s.phoneNumberId), 'unsubscribed', 'meta_user_preferences', signalKey, evidence, stop), optOut: true } }
  }
  return {
    needs: restoreQuery({ kind: 'platform', phoneNumberId: s.phoneNumberId }),
    finish: (found) => planResume(w, s.phoneNumberId, found, items, signalKey, evidence),
  }
}

/**
 * A `resume`: one event per group the latest stop named, each carrying the resume (it clears the
 * platform stop): `subscribed` where the stops took a subscription away, else the group's state as
 * it stands at the resume's time (consent unchanged), so a resume never grants consent.
 */
function planResume(w: WorkspaceContext, phoneNumberId: string, found: RestorePlan, items: ItemsOf, signalKey: string, evidence: Record<string, unknown>): Plan {
  if (!found.found) return { items: [], deferred: true }
  if (found.resumed) return { items: [] } // already resumed
  const active = new Set(w.groups.map((g) => g.id))
  const resume = { action: 'resume' as const, phoneNumberId }
  const ev = { ...evidence, resumes_signal_key: found.anchor.signalKey }
  const out: AppendItem[] = []
  for (const g of new Set([...found.named, ...found.restore])) {
    if (!active.has(g)) continue
    const restored = found.restore.has(g)
    out.push(...items([g], restored ? 'subscribed' : (found.stateAt.get(g) ?? 'unsubscribed'), 'meta_user_preferences', signalKey, { ...ev, restored }, resume))
  }
  return { items: out }
}
