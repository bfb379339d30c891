/**
 * THE ONLY CODE THAT APPENDS TO THE LEDGER. Every entry point (API, Braze routes, webhook, import,
 * admin) calls `append`. For a batch of items, in one transaction and a constant number of
 * statements (set-based; merges and moves excepted), it runs these steps (each in src/ledger/append/):
 *   1. validate each item (validate.ts), before the transaction;
 *   2. read what the append needs and lock it (prepare.ts), resolve contacts: creating, merging,
 *      moving (resolve.ts, contact-resolver.ts);
 *   3. apply exactly-once keys (dedupe.ts);
 *   4. enforce "person-initiated opt-outs are sticky" (stickiness.ts), by the ordering rule
 *      (ordering.ts), while recording the events (record.ts);
 *   5. extend each contact's hash chain (chain.ts);
 *   6. write everything in one statement (statement.ts),
 *   7. the consent_state and platform_stops projections included (project.ts).
 * Items fail one by one (`rejected`, with a code); the valid items of the same batch still apply.
 */
import type { Sql } from '../db/sql.js'
import { flushPending } from './contact-resolver.js'
import { createChain } from './append/chain.js'
import { dropDuplicates } from './append/dedupe.js'
import { prepare, readAfterLocks } from './append/prepare.js'
import { currentWinners, recordConsents, recordIdentityEvents } from './append/record.js'
import { resolve } from './append/resolve.js'
import { writeStatement } from './append/statement.js'
import { validateUnits, type ValidatedAppend } from './append/validate.js'
import type { AppendContext, AppendItem, ItemResult } from './types.js'

export { SplitRequired } from './append/resolve.js'
export { tokenArray } from './token-array.js'
export type { AppendUnit, ValidatedAppend } from './append/validate.js'

export interface LedgerHooks {
  /** Called after the append's (outermost) transaction commits, with its events per source (metrics). */
  onAppended?: (counts: Map<string, number>) => void
}

/** What one attempt of an append produced: an answer per item, and events per source. */
interface Outcome {
  results: (ItemResult | undefined)[]
  counts: Map<string, number>
}

/** The steps of an append inside its transaction (the list in this file's header). */
async function appendInTransaction(tx: Sql, v: ValidatedAppend, out: Outcome): Promise<void> {
  const { workspaceId, candidates } = v
  const pre = await prepare(tx, workspaceId, candidates)
  const r = await resolve(tx, workspaceId, v.units.length, candidates, pre, out.results)
  const { resolution, contactOf, created } = r
  const idCount = r.live.length + resolution.events.length
  if (idCount === 0) return flushPending(tx, workspaceId, resolution.pending)
  const after = !r.reshaped
    ? pre
    : await readAfterLocks(
        tx,
        workspaceId,
        idCount,
        r.live.filter((c) => c.dedupeKey !== undefined).map((c) => c.dedupeKey!),
        r.live.filter((c) => !created.has(contactOf.get(c)!)).map((c) => ({ contactId: contactOf.get(c)!, groupId: c.groupId })),
      )
  const live = dropDuplicates(r.live, after.seen, contactOf, out.results)
  const recordedAt = new Date(after.now)
  const chain = createChain(workspaceId, recordedAt, after.ids.map(String), r.heads, out.counts)
  recordIdentityEvents(chain, resolution, v.origins[0]!, recordedAt)
  const requireEvidence = pre.require_evidence ?? true
  const recorded = recordConsents(live, contactOf, currentWinners(after.cur_states), requireEvidence, chain, out.results)
  // Nothing applied: no chain head and no attributes to write with the new contacts.
  if (chain.events.length === 0) return flushPending(tx, workspaceId, resolution.pending)
  const pending = { contacts: resolution.pending.contacts.splice(0), identities: resolution.pending.identities.splice(0) }
  const w = writeStatement({ ...recorded, workspaceId, recordedAt, events: chain.events, pending, heads: chain.heads, chainContacts: r.chainContacts, created })
  // Nothing reads its answer: held back to go out with what follows it in the transaction, the
  // COMMIT or the caller's next statement, in one round trip (see Sql.queryLast).
  await tx.queryLast(w.text, w.values, w.name)
}

/** The results per unit; an item nothing answered (not reached) reads as not processed. */
function perUnit(v: ValidatedAppend, flat: (ItemResult | undefined)[]): ItemResult[][] {
  return v.units.map((u, k) =>
    flat
      .slice(v.offsets[k]!, v.offsets[k]! + u.items.length)
      .map((r) => r ?? ({ status: 'rejected', code: 'invalid_state', message: 'not processed' } as ItemResult)),
  )
}

async function appendValidated(sql: Sql, hooks: LedgerHooks, v: ValidatedAppend): Promise<ItemResult[][]> {
  if (v.candidates.length === 0) return perUnit(v, v.validated)
  let out: Outcome
  // Standalone, a batch that lost a race (deadlock, a concurrent identical dedupe key) is retried
  // from scratch; inside a caller's transaction the caller decides.
  for (let attempt = 1; ; attempt++) {
    out = { results: [...v.validated], counts: new Map() }
    try {
      await sql.tx((tx) => appendInTransaction(tx, v, out))
      break
    } catch (err) {
      const code = (err as { code?: string }).code
      const retryable = code === '40P01' || code === '40001' || code === '23505'
      if (sql.inTransaction || !retryable || attempt >= 3) throw err
    }
  }
  // Counted once the events are durable: inside a caller's transaction (a shared group commit,
  // an Idempotency-Key request, an import batch) only if and when it commits.
  const appended = out.counts
  if (hooks.onAppended) sql.afterCommit(() => hooks.onAppended!(appended))
  return perUnit(v, out.results)
}

export function createLedger(hooks: LedgerHooks = {}) {
  return {
    append: async (sql: Sql, ctx: AppendContext, items: AppendItem[]): Promise<ItemResult[]> =>
      (await appendValidated(sql, hooks, validateUnits([{ ctx, items }])))[0]!,
    /**
     * The items of several requests of ONE workspace in one append (group commit): each item keeps
     * its request's actor, request id, idempotency key and receipt time; results come back per
     * unit. Throws SplitRequired if the batch merges or moves contacts and holds more than one unit.
     */
    appendUnits: (sql: Sql, units: Parameters<typeof validateUnits>[0]): Promise<ItemResult[][]> =>
      appendValidated(sql, hooks, validateUnits(units)),
    /**
     * The validation of an append, which reads nothing: an import validates its next batch with
     * this while the current batch's statements run, and hands it to appendValidated in the next
     * transaction.
     */
    validateUnits,
    appendValidated: (sql: Sql, v: ValidatedAppend): Promise<ItemResult[][]> => appendValidated(sql, hooks, v),
  }
}

export type Ledger = ReturnType<typeof createLedger>
