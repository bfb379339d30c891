/**
 * Group commit for the small appends of request routes (POST /users/track), on
 * src/db/group-commit.ts: while a workspace has `concurrency` appends running, the requests that
 * arrive for it wait, and the next transaction takes all of them: ONE transaction, ONE ledger
 * append (one ledger_prepare, one write statement), ONE COMMIT for the lot. At low load a request
 * starts at once, alone. Under load the fixed cost of an append (round trips, starting statements,
 * the commit), which is most of the cost of a small request (docs/performance.md), is shared.
 *
 * A request is answered only after the transaction holding it committed: nothing acknowledged is
 * lost. Isolation: if a shared transaction fails for any reason (a request's own write, a deadlock,
 * a merge or move of contacts: SplitRequired), nothing of it committed, and each of its requests
 * runs again alone, exactly as it would have run without grouping; so one request's failure never
 * becomes another's. Hence a unit's `finish` may run twice: it must write only through `tx`. A
 * batch whose COMMIT itself failed is not run again (it may have committed): its requests fail.
 *
 * Order: units of a workspace are appended in arrival order within a transaction; two
 * transactions of a workspace may run at once, as two requests could.
 *
 * Larger units (more than maxItems items, a 75-object /users/track) have a queue of their own:
 * `largeConcurrency` transactions per workspace at once, and the units waiting go together as long
 * as their identities stay within the identity locks' per-key bound (two 75-object requests).
 */
import { rolledBack, type Sql } from '../db/sql.js'
import { createGroupCommit, type Settled } from '../db/group-commit.js'
import type { Ledger } from './ledger-service.js'
import { identityLockKeys, TWO_LEVEL_MAX_KEYS } from './contact-resolver.js'
import type { AppendContext, AppendItem, ItemResult } from './types.js'

export interface CommitUnit<T> {
  ctx: AppendContext
  items: AppendItem[]
  /** Runs in the append's transaction with this unit's results: the unit's other writes and its answer. */
  finish: (tx: Sql, results: ItemResult[]) => Promise<T>
}

export interface CoalescerOptions {
  /** Transactions per workspace at once; 0 turns grouping off (every request runs alone at once). */
  concurrency: number
  /**
   * Items per shared transaction at most. A larger unit goes to the larger units' queue
   * (largeConcurrency). Large requests grouped here would be slower than alone: their identities
   * together lock whole buckets (contact-resolver.ts), so grouped transactions exclude each other
   * (figures: docs/performance.md).
   */
  maxItems: number
  /**
   * Transactions per workspace at once for the larger units (more than maxItems items) whose
   * identities fit the identity locks' per-key bound (TWO_LEVEL_MAX_KEYS, 160): units waiting for
   * them go together as far as that bound allows (two 75-object /users/track requests). 0: such
   * units run alone at once, as larger ones always do.
   */
  largeConcurrency?: number
}

type Unit = CommitUnit<unknown>

/** The identity-lock keys a unit takes at most (its identities as given; normalizing can only merge them). */
const lockKeys = (u: Unit): number => identityLockKeys(u.ctx.workspaceId, u.items.flatMap((i) => i.identities ?? [])).length

export function createAppendCoalescer(sql: Sql, ledger: Ledger, opts: CoalescerOptions) {
  let grouped = 0

  /** The unit alone, inside the caller's transaction: its append, then its `finish`. */
  async function runIn<T>(tx: Sql, unit: CommitUnit<T>): Promise<T> {
    return unit.finish(tx, unit.items.length === 0 ? [] : await ledger.append(tx, unit.ctx, unit.items))
  }

  async function runAlone(unit: Unit): Promise<Settled<unknown>> {
    try {
      return { ok: true, value: await sql.tx((tx) => runIn(tx, unit)) }
    } catch (error) {
      return { ok: false, error }
    }
  }

  async function run(batch: Unit[]): Promise<Settled<unknown>[]> {
    if (batch.length === 1) return [await runAlone(batch[0]!)]
    let answers: unknown[]
    let committing = false
    try {
      answers = await sql.tx(async (tx) => {
        const results = await ledger.appendUnits(
          tx,
          batch.map((u) => ({ ctx: u.ctx, items: u.items })),
        )
        const out: unknown[] = []
        for (let i = 0; i < batch.length; i++) out.push(await batch[i]!.finish(tx, results[i]!))
        committing = true
        return out
      })
    } catch (error) {
      // A failed COMMIT (a lost connection, a deferred check) may or may not have committed:
      // never run such a batch again; its requests get the error, as a lone request would. The
      // ledger's write travels with the COMMIT (Sql.queryLast): if PostgreSQL refused the write,
      // the COMMIT rolled back, and the batch failed before committing.
      if (committing && !rolledBack(error)) return batch.map(() => ({ ok: false, error }))
      // Failed before COMMIT, so rolled back: each request again, on its own.
      const alone: Settled<unknown>[] = []
      for (const u of batch) alone.push(await runAlone(u))
      return alone
    }
    grouped += batch.length
    return answers.map((value) => ({ ok: true, value }))
  }

  const groups = createGroupCommit<Unit, unknown>({
    concurrency: opts.concurrency,
    maxSize: opts.maxItems,
    size: (u) => u.items.length,
    key: (u) => u.ctx.workspaceId,
    run,
  })

  // Larger units: grouped by their identity-lock keys, never beyond the bound where the locks
  // turn from one per key into whole buckets (which would make every concurrent append of the
  // workspace wait). Sharing one append and one COMMIT, and fewer transactions in flight (many at
  // once contend for the same index pages), cut PostgreSQL's CPU per request (docs/performance.md).
  const large = createGroupCommit<Unit, unknown>({
    concurrency: opts.largeConcurrency ?? 0,
    maxSize: TWO_LEVEL_MAX_KEYS,
    size: lockKeys,
    key: (u) => u.ctx.workspaceId,
    run,
  })

  return {
    /** Appends the unit (grouped with others when the workspace is busy) and returns its `finish`'s answer. */
    submit: <T>(unit: CommitUnit<T>): Promise<T> =>
      (unit.items.length > opts.maxItems && opts.concurrency > 0 ? large.submit(unit as Unit) : groups.submit(unit as Unit)) as Promise<T>,
    /** Resolves once every unit submitted so far is answered (shutdown: before the database closes). */
    idle: async (): Promise<void> => {
      await Promise.all([groups.idle(), large.idle()])
    },
    /** Transactions the larger units ran in so far (tests). */
    get largeBatches() {
      return large.batches
    },
    /** Never grouped: the unit in the caller's transaction (a request under an Idempotency-Key). */
    runIn,
    /** Requests answered from a shared transaction that committed (tests, metrics). */
    get grouped() {
      return grouped
    },
  }
}

export type AppendCoalescer = ReturnType<typeof createAppendCoalescer>
