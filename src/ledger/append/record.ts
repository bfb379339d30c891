/**
 * Recording: the events of an append, in order. Identity events first (the chain shows a merge
 * before the consents that follow it), then each consent item in input order, through the sticky
 * rule and the ordering rule, which both see the earlier items of the same batch.
 */
import type { ChainedEvent, Origin } from '../event.js'
import type { Resolution } from '../contact-resolver.js'
import { beats } from '../ordering.js'
import type { EventType, ItemResult } from '../types.js'
import type { Chain } from './chain.js'
import { stickyRejection } from './stickiness.js'
import type { Candidate } from './validate.js'

/** The winner of a (contact, group) pair, as the ordering rule sees it. */
export interface CurrentState {
  state: string
  occurredAt: Date
  seq: bigint
  source: string
}

export interface PlatformStopRow {
  contactId: string
  phoneNumberId: string
  stopped: boolean
  occurredAt: Date
  eventId: string
}

/** What the append writes besides the events themselves. */
export interface Recorded {
  /** The events that are their (contact, group)'s new winner: the projection's rows. */
  winners: ChainedEvent[]
  dedupeRows: { key: string; eventId: string }[]
  stops: PlatformStopRow[]
  /** Attributes of applied items per contact, input order (later wins). */
  attributes: Map<string, Record<string, string>>
}

/** The current winners read under the locks, by `contact/group`. */
export function currentWinners(rows: [string, string, string, string, string, string][] | null): Map<string, CurrentState> {
  const current = new Map<string, CurrentState>()
  for (const [contactId, groupId, state, occurredAt, seq, source] of rows ?? []) {
    current.set(`${contactId}/${groupId}`, { state, occurredAt: new Date(occurredAt), seq: BigInt(seq), source })
  }
  return current
}

/** The merge and move events of the resolution. (Only an append of one unit has any: see SplitRequired.) */
export function recordIdentityEvents(chain: Chain, resolution: Resolution, origin: Origin, recordedAt: Date): void {
  for (const e of resolution.events) {
    chain.add(e.contact_id, origin, {
      type: e.type as EventType,
      subscription_group_id: null,
      state: null,
      occurred_at: recordedAt,
      source: 'merge',
      method: null,
      evidence: e.evidence,
      identity_type: e.identity_type,
      identity_value: e.identity_value,
      platform_stop: null,
    })
  }
}

export function recordConsents(
  live: Candidate[],
  contactOf: Map<Candidate, string>,
  current: Map<string, CurrentState>,
  requireEvidence: boolean,
  chain: Chain,
  results: (ItemResult | undefined)[],
): Recorded {
  const winners = new Map<string, ChainedEvent>()
  const out: Recorded = { winners: [], dedupeRows: [], stops: [], attributes: new Map() }
  for (const c of live) {
    const contactId = contactOf.get(c)!
    const pair = `${contactId}/${c.groupId}`
    const cur = current.get(pair)
    // The ledger id this event will get: the chain hands them out in order.
    const seq = BigInt(chain.nextId())
    const wouldWin = !cur || beats({ occurredAt: c.occurredAt, state: c.state, seq }, cur)
    const refused = stickyRejection(c, cur, wouldWin, requireEvidence)
    if (refused) {
      results[c.index] = refused
      continue
    }
    const ev = chain.add(contactId, c.origin, {
      type: 'consent',
      subscription_group_id: c.groupId,
      state: c.state,
      occurred_at: c.occurredAt,
      source: c.source,
      method: c.method,
      evidence: c.evidence,
      identity_type: c.identities[0]?.type ?? null,
      identity_value: c.identities[0]?.value ?? null,
      platform_stop: c.platformStop?.action ?? null,
    })
    if (wouldWin) {
      current.set(pair, { state: c.state, occurredAt: c.occurredAt, seq, source: c.source })
      winners.set(pair, ev)
    }
    if (c.dedupeKey !== undefined) out.dedupeRows.push({ key: c.dedupeKey, eventId: ev.event_id })
    if (c.attributes) {
      const a = out.attributes.get(contactId)
      if (a) Object.assign(a, c.attributes)
      else out.attributes.set(contactId, { ...c.attributes })
    }
    if (c.platformStop) {
      const stopped = c.platformStop.action === 'stop'
      out.stops.push({ contactId, phoneNumberId: c.platformStop.phoneNumberId, stopped, occurredAt: c.occurredAt, eventId: ev.event_id })
    }
    results[c.index] = { status: 'applied', event_id: ev.event_id, contact_id: contactId, changed: wouldWin && cur?.state !== c.state }
  }
  out.winners = [...winners.values()]
  return out
}
