/**
 * Group commit: items that arrive while `concurrency` batches of their key are running wait, and
 * the next batch takes all of them (up to `maxSize`; with concurrency > 1, its share: see pump).
 * At low load an item starts at once, alone; under steady load an idle lane lingers up to
 * `lingerMs` (1 ms) for as many items as it saw pending lately (see pump). Why it exists: items
 * that go together share one round trip, one statement start-up and one COMMIT (one WAL flush),
 * the fixed costs of a transaction (docs/performance.md). Every item is answered only after the batch holding it has
 * finished (committed).
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
  /** How long an idle lane waits for the load it saw last (see pump); 0: never. Default 1 ms. */
  lingerMs?: number
  /**
   * Idle lanes kept at most: beyond, a lane that goes idle is dropped (its remembered load with it).
   * Keys that callers choose (a check's target) cannot grow the map without bound. Default 1,000.
   */
  maxIdleLanes?: number
  /** Runs a batch; one answer per item, in order. Must not reject (an error answers every item). */
  run: (batch: I[]) => Promise<Settled<O>[]>
}

interface Lane<I, O> {
  running: number
  waiting: Waiting<I, O>[]
  /** Items submitted and not answered yet (waiting or running). */
  pending: number
  /** Most items seen pending at once lately: how many callers to expect under steady load. */
  peak: number
  timer?: NodeJS.Timeout
}

interface Waiting<I, O> {
  item: I
  /** size(item), computed once at submit (a unit's lock keys are not free to count). */
  size: number
  resolve: (v: O) => void
  reject: (e: unknown) => void
}

/** Do the items waiting fill a batch (up to maxSize, or beyond what one batch takes)? */
function full<I, O>(lane: Lane<I, O>, maxSize: number): boolean {
  let total = 0
  for (const w of lane.waiting) {
    if (total + w.size > maxSize) return true
    total += w.size
  }
  return total >= maxSize
}

/** The next batch of a lane: its first waiting item, and those after it that fit maxSize. */
function takeBatch<I, O>(lane: Lane<I, O>, maxSize: number): Waiting<I, O>[] {
  const batch = [lane.waiting.shift()!]
  let total = batch[0]!.size
  while (lane.waiting.length > 0 && total + lane.waiting[0]!.size <= maxSize) {
    const w = lane.waiting.shift()!
    total += w.size
    batch.push(w)
  }
  return batch
}

/** `fn`, counting the lane's item as answered first. */
const settle =
  <I, O, A>(lane: Lane<I, O>, fn: (a: A) => void) =>
  (a: A) => {
    lane.pending--
    fn(a)
  }

export function createGroupCommit<I, O>(opts: GroupCommitOptions<I, O>) {
  const size = opts.size ?? (() => 1)
  const keyOf = opts.key ?? (() => '')
  const linger = opts.lingerMs ?? 1
  const maxLanes = opts.maxIdleLanes ?? 1000
  // Lanes are kept (one per key: per workspace, a few numbers each): their `peak` is what
  // remembers the load.
  const lanes = new Map<string, Lane<I, O>>()
  let batches = 0
  /** Items submitted and not answered yet, of every lane and those run alone (see idle). */
  let unanswered = 0
  let whenIdle: (() => void)[] = []
  const answered = () => {
    if (--unanswered > 0) return
    const waiters = whenIdle
    whenIdle = []
    for (const w of waiters) w()
  }

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
      answered()
    })
  }

  function pump(key: string, lingered = false): void {
    const lane = lanes.get(key)!
    while (lane.running < opts.concurrency && lane.waiting.length > 0) {
      // Linger: under steady load the callers answered by the last commit send their next
      // requests within about a millisecond, one after the other. An idle lane that starts with
      // the first of them runs it alone and makes the rest wait for it (batches of 1 and 9
      // alternating, with 10 clients), so it waits up to `lingerMs` for as many items as were
      // pending at once lately. At low load (one at a time) it starts at once; a wait that times
      // out lowers the expectation to what came.
      // Several batches at once (concurrency > 1) share that load: a batch waits for its share of
      // it, unless the items waiting already fill one (maxSize). Under steady load the batches then
      // alternate at equal sizes, one being written while the other commits, and node and
      // PostgreSQL work at once; a second batch started by the first item to arrive ran alone and
      // left a string of small batches, each paying a transaction's fixed cost (docs/performance.md).
      const wait = lane.waiting.length < Math.ceil(lane.peak / opts.concurrency) && !full(lane, opts.maxSize)
      if (lane.running > 0 && wait) return
      if (!lingered && lane.running === 0 && linger > 0 && wait) {
        // The timer only opens the way: requests already in the sockets are read in the poll
        // phase that follows the timers phase, so the lane starts after it (setImmediate).
        lane.timer ??= setTimeout(
          () =>
            setImmediate(() => {
              lane.timer = undefined
              if (lane.running === 0) lane.peak = lane.waiting.length
              pump(key, true)
            }),
          linger,
        )
        return
      }
      if (lane.timer) {
        clearTimeout(lane.timer)
        lane.timer = undefined
      }
      const batch = takeBatch(lane, opts.maxSize)
      lane.running++
      void start(batch).finally(() => {
        lane.running--
        pump(key)
        if (lane.running === 0 && lane.waiting.length === 0 && !lane.timer && lanes.size > maxLanes) lanes.delete(key)
      })
    }
  }

  /** Runs the item (with others when its key is busy); resolves with its answer after its batch finished. */
  function submit(item: I): Promise<O> {
    unanswered++
    return new Promise<O>((resolve, reject) => {
      const n = opts.concurrency === 0 ? 0 : size(item)
      if (opts.concurrency === 0 || n > opts.maxSize) {
        void start([{ item, size: n, resolve, reject }])
        return
      }
      const key = keyOf(item)
      const lane = lanes.get(key) ?? lanes.set(key, { running: 0, waiting: [], pending: 0, peak: 1 }).get(key)!
      lane.waiting.push({ item, size: n, resolve: settle(lane, resolve), reject: settle(lane, reject) })
      lane.peak = Math.max(lane.peak, ++lane.pending)
      pump(key)
    })
  }

  /**
   * Resolves once every item submitted so far has been answered (its batch finished): on shutdown,
   * before the database closes, so that what was queued is not failed by a closed pool. Items
   * submitted meanwhile are waited for too.
   */
  function idle(): Promise<void> {
    return unanswered === 0 ? Promise.resolve() : new Promise((resolve) => whenIdle.push(resolve))
  }

  return {
    submit,
    idle,
    /** Lanes held (tests). */
    get lanes() {
      return lanes.size
    },
    /** Batches run so far (tests, metrics). */
    get batches() {
      return batches
    },
  }
}

export type GroupCommit<I, O> = ReturnType<typeof createGroupCommit<I, O>>
