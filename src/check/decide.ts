/**
 * The rule of a pre-send check, without any I/O: several groups can match a {channel, category,
 * phone_number_id} request (a number's own group and a workspace-wide one); a send is allowed only
 * when every matching group allows it, and the answer names the first group that refuses (or the
 * most specific one when all allow).
 */
import type { IdentityType } from '../contacts/identity.js'

export type Reason = 'subscribed' | 'not_opted_in' | 'opted_out' | 'platform_stopped' | 'opt_in_not_required'

export interface CheckResult {
  identifier: string
  identifier_type: IdentityType
  allowed: boolean
  state: 'subscribed' | 'unsubscribed' | 'unknown'
  reason: Reason
  subscription_group_id: string
  occurred_at: string | null
  event_id: string | null
  error?: 'invalid_identifier'
}

export interface CheckTarget {
  subscription_group_id?: string
  channel?: 'whatsapp' | 'sms'
  category?: 'marketing' | 'utility' | 'authentication'
  phone_number_id?: string
}

export interface GroupRow {
  id: string
  channel: string
  category: string
  phone_number_id: string | null
  requires_opt_in: boolean
}

export interface Identifier {
  type: IdentityType
  value: string
}

/** One state row of a checked group for one identifier, as the check statements return it. */
export interface StateRow {
  g: string | null
  state: string | null
  occurred_at: string | null
  event_id: string | null
}

/** Platform stops only matter for WhatsApp marketing groups; otherwise the queries skip them. */
export const isStoppable = (g: GroupRow) => g.channel === 'whatsapp' && g.category === 'marketing'
export const needsStops = (groups: GroupRow[]) => groups.some(isStoppable)

/** Whether one group allows a send, and why, given the identifier's state in it. */
function verdict(g: GroupRow, state: CheckResult['state'], platformStopped: boolean): { allowed: boolean; reason: Reason } {
  if (platformStopped) return { allowed: false, reason: 'platform_stopped' }
  if (state === 'subscribed') return { allowed: true, reason: 'subscribed' }
  if (state === 'unsubscribed') return { allowed: false, reason: 'opted_out' }
  if (g.requires_opt_in) return { allowed: false, reason: 'not_opted_in' }
  return { allowed: true, reason: 'opt_in_not_required' }
}

function stateIn(groupId: string, states: StateRow[] | undefined): StateRow | undefined {
  if (states) for (const s of states) if (s.g === groupId) return s
  return undefined
}

/**
 * The answer for one identifier from its state rows and stopped numbers: allowed only when every
 * matching group allows it; names the first group that refuses (else the most specific one).
 */
export function decide(
  ident: Identifier,
  valid: boolean,
  groups: GroupRow[],
  target: CheckTarget,
  states: StateRow[] | undefined,
  stopped: string[] | undefined,
): CheckResult {
  let answer: CheckResult | undefined
  for (const g of groups) {
    const st = stateIn(g.id, states)
    const state = (st?.state ?? 'unknown') as CheckResult['state']
    const number = target.phone_number_id ?? g.phone_number_id
    const platformStopped = stopped !== undefined && isStoppable(g) && stopped.some((n) => number === null || n === number)
    const { allowed, reason } = verdict(g, state, platformStopped)
    const r: CheckResult = {
      identifier: ident.value,
      identifier_type: ident.type,
      allowed,
      state,
      reason,
      subscription_group_id: g.id,
      occurred_at: st ? st.occurred_at : null,
      event_id: st ? st.event_id : null,
    }
    if (!answer) answer = r
    if (!allowed) {
      answer = r
      break
    }
  }
  if (!valid) {
    return { ...answer!, allowed: false, state: 'unknown', reason: 'not_opted_in', occurred_at: null, event_id: null, error: 'invalid_identifier' }
  }
  return answer!
}
