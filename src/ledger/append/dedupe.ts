/**
 * Step 3 of an append: exactly-once keys (ledger_dedupe). An item whose key the workspace has
 * already recorded, or that an earlier item of the same batch carries, is a duplicate: answered
 * with the event the key names, and not recorded again. The keys are read under the contact
 * locks; the write statement inserts the new ones (a concurrent writer of the same key on another
 * contact makes it fail with a unique violation, and the append retries).
 */
import type { ItemResult } from '../types.js'
import type { Candidate } from './validate.js'

export function dropDuplicates(
  live: Candidate[],
  seen: [string, string | null][] | null,
  contactOf: Map<Candidate, string>,
  results: (ItemResult | undefined)[],
): Candidate[] {
  if (!live.some((c) => c.dedupeKey !== undefined)) return live
  const recorded = new Map(seen ?? [])
  const inBatch = new Set<string>()
  return live.filter((c) => {
    if (c.dedupeKey === undefined) return true
    if (recorded.has(c.dedupeKey) || inBatch.has(c.dedupeKey)) {
      results[c.index] = { status: 'duplicate', event_id: recorded.get(c.dedupeKey) ?? undefined, contact_id: contactOf.get(c) }
      return false
    }
    inBatch.add(c.dedupeKey)
    return true
  })
}
