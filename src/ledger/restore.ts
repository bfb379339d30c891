/**
 * What a restore gives back (START/UNSTOP and the other opt-in keywords; Meta's `resume`), read
 * from the ledger. The rule and its reasons are in docs/webhook.md ("What a restore gives back").
 *
 * A restore at time T answers an ANCHOR: the person's latest opt-out of its kind at or before T
 * (a keyword opt-out for a keyword restore; the latest platform stop of that business number for a
 * `resume`). It gives back a group the anchor named only if
 *   (a) the anchor took the group away: walking back from the anchor's event over the group's
 *       earlier events, past the person's own opt-outs (one intent said twice, e.g. STOP then
 *       STOP, or a marketing stop followed by the 131050 of every blocked send), the first other
 *       event is `subscribed`. A group the person was never subscribed to is never given back;
 *   (b) nothing has given it back or changed it since: every event of the group after the anchor's,
 *       up to T, is still an opt-out (for a keyword restore: any of the person's own opt-outs; for
 *       a resume: Meta's platform signals only, so a resume does not undo a STOP the person typed
 *       after Meta's stop).
 * When the anchor took nothing away (a repeated opt-out), the walk moves on to the opt-out before
 * it, so "STOP, STOP, START" gives back what the first STOP removed.
 *
 * Events are compared by the ordering rule (occurred_at, then unsubscribed first, then ledger id),
 * so the answer depends on the ledger's content, not on the order in which events arrived.
 * Pure: the person's events are read by historyOf (history.ts).
 */
import { PERSON_INITIATED } from './types.js'

/** One consent event of the person, as a restore needs it. */
export interface HistoryEvent {
  id: bigint
  group: string
  state: 'subscribed' | 'unsubscribed'
  occurredAt: number
  source: string
  platformStop: string | null
  keywordAction: string | null
  signalKey: string | null
  phoneNumberId: string | null
  messageId: string | null
}

export type RestoreKind = { kind: 'keyword' } | { kind: 'platform'; phoneNumberId: string }

export type RestorePlan =
  /** No opt-out of this kind at or before T (yet): the caller defers. */
  | { found: false }
  /** The latest platform signal is already a resume: nothing to do. */
  | { found: true; resumed: true }
  | {
      found: true
      resumed: false
      /** The latest opt-out of the kind (what the restore answers). */
      anchor: { signalKey: string; messageId: string | null }
      /** The groups that latest opt-out named, in ledger order. */
      named: string[]
      /** The groups given back (see the header). */
      restore: Set<string>
      /** Each named group's state at T by the ordering rule. */
      stateAt: Map<string, 'subscribed' | 'unsubscribed'>
    }

/** Ordering rule: later occurred_at, then unsubscribed, then later ledger id is "after". */
function compare(a: HistoryEvent, b: HistoryEvent): number {
  if (a.occurredAt !== b.occurredAt) return a.occurredAt - b.occurredAt
  const ua = a.state === 'unsubscribed' ? 1 : 0
  const ub = b.state === 'unsubscribed' ? 1 : 0
  if (ua !== ub) return ua - ub
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0
}

const personOptOut = (e: HistoryEvent) => e.state === 'unsubscribed' && PERSON_INITIATED.has(e.source)
const keywordOptOut = (e: HistoryEvent) =>
  e.state === 'unsubscribed' && (e.source === 'inbound_keyword' || e.source === 'template_button') && e.keywordAction === 'opt_out' && e.signalKey !== null

/** What a restore of `kind` gives back, from the person's history up to its time (see the header). */
export function planRestore(history: HistoryEvent[], kind: RestoreKind): RestorePlan {
  const sorted = [...history].sort(compare)
  const byGroup = new Map<string, HistoryEvent[]>()
  for (const e of sorted) {
    const list = byGroup.get(e.group)
    if (list) list.push(e)
    else byGroup.set(e.group, [e])
  }

  // The opt-outs of the kind, latest first (signals: one event per group, one signal key).
  let signals: HistoryEvent[]
  let stillOptedOut: (e: HistoryEvent) => boolean
  if (kind.kind === 'keyword') {
    signals = sorted.filter(keywordOptOut)
    stillOptedOut = personOptOut
  } else {
    const platform = sorted.filter((e) => e.platformStop !== null && e.phoneNumberId === kind.phoneNumberId && e.signalKey !== null)
    // Latest first; on equal occurred_at a stop is later than a resume (a stop wins ties).
    platform.sort((a, b) => a.occurredAt - b.occurredAt || (a.platformStop === 'stop' ? 1 : 0) - (b.platformStop === 'stop' ? 1 : 0) || (a.id < b.id ? -1 : 1))
    const latest = platform.at(-1)
    if (!latest) return { found: false }
    if (latest.platformStop !== 'stop') return { found: true, resumed: true }
    // The stops since the last resume.
    let first = platform.length
    while (first > 0 && platform[first - 1]!.platformStop === 'stop') first--
    signals = platform.slice(first)
    stillOptedOut = (e) => e.state === 'unsubscribed' && e.platformStop !== null
  }
  const keys: string[] = []
  for (let i = signals.length - 1; i >= 0; i--) if (!keys.includes(signals[i]!.signalKey!)) keys.push(signals[i]!.signalKey!)
  if (keys.length === 0) return { found: false }

  const eventsOf = (key: string) => signals.filter((e) => e.signalKey === key)
  const latestEvents = eventsOf(keys[0]!)
  const stateAt = new Map<string, 'subscribed' | 'unsubscribed'>()
  for (const e of latestEvents) stateAt.set(e.group, byGroup.get(e.group)!.at(-1)!.state)

  let restore = new Set<string>()
  for (const key of keys) {
    let tookAway = false
    const given = new Set<string>()
    for (const a of eventsOf(key)) {
      const list = byGroup.get(a.group)!
      const at = list.indexOf(a)
      let before: HistoryEvent | undefined
      for (let j = at - 1; j >= 0; j--) {
        if (!personOptOut(list[j]!)) {
          before = list[j]
          break
        }
      }
      if (before?.state !== 'subscribed') continue
      tookAway = true
      if (list.slice(at + 1).every(stillOptedOut)) given.add(a.group)
    }
    if (tookAway) {
      restore = given
      break
    }
  }
  const anchor = latestEvents[0]!
  return {
    found: true,
    resumed: false,
    anchor: { signalKey: anchor.signalKey!, messageId: anchor.messageId },
    named: [...new Set(latestEvents.map((e) => e.group))],
    restore,
    stateAt,
  }
}
