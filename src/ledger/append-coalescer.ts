/**
 * Group commit for the small appends of request routes (POST /users/track): while a workspace has
 * `concurrency` appends running, the requests that arrive for it wait, and the next transaction
 * takes all of them: ONE transaction, ONE ledger append (one ledger_prepare, one write statement),
 * ONE COMMIT for the lot. At low load a request starts at once, alone: there is no timer and no
 * added wait; grouping only happens when requests would queue for the database anyway. Under load
 * the fixed cost of an append (round trips, starting statements, the commit) is shared, and that
 * fixed cost, not the rows, was most of a one-object /users/track (bench/, README).
 *
 * A request is answered only after the transaction holding it committed: nothing acknowledged is
 * lost. Isolation: if a shared transaction fails for any reason (a request's own write, a deadlock,
 * a merge or move of contacts: SplitRequired), nothing of it committed, and each of its requests
 * runs again alone, exactly as it would have run without grouping; so one request's failure never
 * becomes another's. Hence a unit's `finish` may run twice: it must write only through `tx`.
 *
 * Order: units of a workspace are appended in arrival order, within a transaction and across the
 * transactions of one workspace that do not overlap (two may run at once, as two requests could).
 */
import type { Sql } from '../db/sql.js'
import type { Ledger } from './ledger-service.js'
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
   * Items per shared transaction at most. A larger unit runs alone at once, outside the lanes: its
   * fixed cost is already small beside its rows, and grouping it would only take away parallelism
   * (bench: 75-object /users/track, 19.6k changes/s alone vs 16.0-16.9k grouped).
   */
  maxItems: number
}

interface Waiting {
  unit: CommitUnit<unknown>
  resolve: (v: unknown) => void
  reject: (e: unknown) => void
}

export function createAppendCoalescer(sql: Sql, ledger: Ledger, opts: CoalescerOptions) {
  const lanes = new Map<string, { running: number; waiting: Waiting[] }>()
  let grouped = 0

  async function runAlone(w: Waiting): Promise<void> {
    try {
      const { ctx, items, finish } = w.unit
      w.resolve(await sql.tx(async (tx) => finish(tx, items.length === 0 ? [] : await ledger.append(tx, ctx, items))))
    } catch (err) {
      w.reject(err)
    }
  }

  async function run(batch: Waiting[]): Promise<void> {
    if (batch.length === 1) return runAlone(batch[0]!)
    let answers: unknown[]
    try {
      answers = await sql.tx(async (tx) => {
        const results = await ledger.appendUnits(
          tx,
          batch.map((w) => ({ ctx: w.unit.ctx, items: w.unit.items })),
        )
        const out: unknown[] = []
        for (let i = 0; i < batch.length; i++) out.push(await batch[i]!.unit.finish(tx, results[i]!))
        return out
      })
    } catch {
      // Nothing committed: each request again, on its own.
      for (const w of batch) await runAlone(w)
      return
    }
    grouped += batch.length
    batch.forEach((w, i) => w.resolve(answers[i]))
  }

  function pump(workspaceId: string): void {
    const lane = lanes.get(workspaceId)!
    while (lane.running < opts.concurrency && lane.waiting.length > 0) {
      const batch = [lane.waiting.shift()!]
      let items = batch[0]!.unit.items.length
      while (lane.waiting.length > 0 && items + lane.waiting[0]!.unit.items.length <= opts.maxItems) {
        const w = lane.waiting.shift()!
        items += w.unit.items.length
        batch.push(w)
      }
      lane.running++
      void run(batch).finally(() => {
        lane.running--
        if (lane.running === 0 && lane.waiting.length === 0) lanes.delete(workspaceId)
        else pump(workspaceId)
      })
    }
  }

  /** Appends the unit (grouped with others when the workspace is busy) and returns its `finish`'s answer. */
  function submit<T>(unit: CommitUnit<T>): Promise<T> {
    if (opts.concurrency === 0 || unit.items.length > opts.maxItems) {
      return new Promise<T>((resolve, reject) => void runAlone({ unit, resolve, reject } as Waiting))
    }
    return new Promise<T>((resolve, reject) => {
      const id = unit.ctx.workspaceId
      const lane = lanes.get(id) ?? lanes.set(id, { running: 0, waiting: [] }).get(id)!
      lane.waiting.push({ unit, resolve, reject } as Waiting)
      pump(id)
    })
  }

  return {
    submit,
    /** Requests answered from a shared transaction so far (tests, metrics). */
    get grouped() {
      return grouped
    },
  }
}

export type AppendCoalescer = ReturnType<typeof createAppendCoalescer>
