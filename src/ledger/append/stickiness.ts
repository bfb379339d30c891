/**
 * Step 4 of an append: person-initiated opt-outs are sticky (docs/architecture.md). When the
 * workspace requires evidence, an opt-in that would win over an opt-out the person made themselves
 * (a keyword, a button, Meta's preferences) is refused unless it comes from the person too, or
 * carries a method and evidence strong enough to override it.
 */
import { OVERRIDE_EVIDENCE_FIELDS, PERSON_INITIATED, type ItemResult } from '../types.js'
import { reject, type Candidate } from './validate.js'

function hasOverrideEvidence(c: Candidate): boolean {
  if (!c.method) return false
  return OVERRIDE_EVIDENCE_FIELDS.some((f) => {
    const v = c.evidence[f]
    return typeof v === 'string' ? v.trim().length > 0 : v !== undefined && v !== null
  })
}

/** The rejection of an item that would override a sticky opt-out, or null if it may be recorded. */
export function stickyRejection(
  c: Candidate,
  current: { state: string; source: string } | undefined,
  wouldWin: boolean,
  requireEvidence: boolean,
): ItemResult | null {
  const overridesPersonsOptOut =
    requireEvidence &&
    wouldWin &&
    current !== undefined &&
    c.state === 'subscribed' &&
    current.state === 'unsubscribed' &&
    PERSON_INITIATED.has(current.source) &&
    !PERSON_INITIATED.has(c.source)
  if (!overridesPersonsOptOut || hasOverrideEvidence(c)) return null
  return reject(
    'evidence_required',
    'the person opted out themselves; an opt-in that overrides it needs `method` and one of evidence.consent_text, document_ref, page_url or ip',
  )
}
