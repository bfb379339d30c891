/**
 * Group commit: items that arrive while `concurrency` batches of their key are running wait, and
 * the next batch takes all of them (up to `maxSize`). At low load an item starts at once, alone:
 * there is no timer and no added wait; items only go together when they would queue for the
 * database anyway, and then share one round trip, one statement start-up and one COMMIT (one WAL
 * flush). Every item is answered only after the batch holding it has finished (committed).
 *
 * `run` answers each item of a batch on its own (value or error), so a batch can isolate a bad
 * item (see append-coalescer.ts: a failed shared transaction reruns each item alone).
 */
export type Settled<O> = { ok: true; value: O } | { ok: false; error: unknown }

export interface GroupCommitOptions<I, O> {
  /** Batches per key at once; 0 turns grouping off (every item runs alone, at once). */
  concurrency: number
  /** Size of a batch at most (by `size`); a larger item runs alone at once, outside the queue. */
  maxSize: number
  size?: (item: I) => number
  /** Items of different keys never share a batch (a workspace, a table). */
  key?: (item: I) => string
  /** Runs a batch; one answer per item, in order. Must not reject (an error answers every item). */
  run: (batch: I[]) => Promise<Settled<O>[]>
}

interface Waiting<I, O> {
  item: I
  resolve: (v: O) => void
  reject: (e: unknown) => void
}

export function createGroupCommit<I, O>(opts: GroupCommitOptions<I, O>) {
  const size = opts.size ?? (() => 1)
  const keyOf = opts.key ?? (() => '')
  const lanes = new Map<string, { running: number; waiting: Waiting<I, O>[] }>()
  let batches = 0

  async function start(batch: Waiting<I, O>[]): Promise<void> {
    let answers: Settled<O>[]
    try {
      answers = await opts.run(batch.map((w) => w.item))
    } catch (error) {
      answers = batch.map(() => ({ ok: false, error }))
    }
    batches++
    batch.forEach((w, i) => {
      const a = answers[i] ?? { ok: false, error: new Error('group commit: no answer for this item') }
      if (a.ok) w.resolve(a.value)
      else w.reject(a.error)
    })
  }

  function pump(key: string): void {
    const lane = lanes.get(key)!
    while (lane.running < opts.concurrency && lane.waiting.length > 0) {
      const batch = [lane.waiting.shift()!]
      let total = size(batch[0]!.item)
      while (lane.waiting.length > 0 && total + size(lane.waiting[0]!.item) <= opts.maxSize) {
        const w = lane.waiting.shift()!
        total += size(w.item)
        batch.push(w)
      }
      lane.running++
      void start(batch).finally(() => {
        lane.running--
        if (lane.running === 0 && lane.waiting.length === 0) lanes.delete(key)
        else pump(key)
      })
    }
  }

  /** Runs the item (with others when its key is busy); resolves with its answer after its batch finished. */
  function submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      if (opts.concurrency === 0 || size(item) > opts.maxSize) {
        void start([{ item, resolve, reject }])
        return
      }
      const key = keyOf(item)
      const lane = lanes.get(key) ?? lanes.set(key, { running: 0, waiting: [] }).get(key)!
      lane.waiting.push({ item, resolve, reject })
      pump(key)
    })
  }

  return {
    submit,
    /** Batches run so far (tests, metrics). */
    get batches() {
      return batches
    },
  }
}

export type GroupCommit<I, O> = ReturnType<typeof createGroupCommit<I, O>>
