/**
 * Group commit (src/db/group-commit.ts) without a database: batching by key and size, answers per
 * item, and the linger that keeps callers in step together (10 clients that each send their next
 * item as soon as the last is answered must form batches of 10, not 1 + 9).
 */
import t from 'tap'
import { createGroupCommit, type Settled } from '../../src/db/group-commit.js'

/** A group commit whose batches take one macrotask, recording each batch. */
function recorder(opts: { concurrency?: number; maxSize?: number; lingerMs?: number } = {}) {
  const batches: number[][] = []
  const gc = createGroupCommit<number, number>({
    concurrency: opts.concurrency ?? 1,
    maxSize: opts.maxSize ?? 100,
    lingerMs: opts.lingerMs,
    key: (n) => (n < 0 ? 'negative' : 'positive'),
    size: (n) => (Math.abs(n) >= 1000 ? 5 : 1),
    run: async (items) => {
      batches.push(items)
      await new Promise((r) => setImmediate(r))
      return items.map((n): Settled<number> => (n === 13 ? { ok: false, error: new Error('unlucky') } : { ok: true, value: n * 2 }))
    },
  })
  return { gc, batches }
}

/** Each client sends its next item a macrotask after its answer, as a client across a socket would. */
async function inStep(gc: { submit(n: number): Promise<unknown> }, clients: number, rounds: number) {
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      for (let r = 0; r < rounds; r++) {
        await gc.submit(c)
        await new Promise((res) => setImmediate(res))
      }
    }),
  )
}

t.test('answers each item, batches by key and size', async (t) => {
  const { gc, batches } = recorder({ maxSize: 3 })
  const all = await Promise.allSettled([1, 2, -1, 3, 13, 4, -2, 1000, 5].map((n) => gc.submit(n)))
  t.same(
    all.map((s) => (s.status === 'fulfilled' ? s.value : 'error')),
    [2, 4, -2, 6, 'error', 8, -4, 2000, 10],
  )
  // 1 and -1 start at once (two keys); 1000 (size 5 > 3) alone at once; then 2,3,13 and 4,5 by three; -2.
  t.same(batches, [[1], [-1], [1000], [2, 3, 13], [-2], [4, 5]])
})

t.test('concurrency 0: every item alone, at once', async (t) => {
  const { gc, batches } = recorder({ concurrency: 0 })
  await Promise.all([1, 2, 3].map((n) => gc.submit(n)))
  t.same(batches, [[1], [2], [3]])
})

t.test('callers in step form one batch per round (linger), a lone caller starts at once', async (t) => {
  const { gc, batches } = recorder()
  const clients = 10
  const rounds = 20
  await inStep(gc, clients, rounds)
  const sizes = batches.map((b) => b.length)
  t.equal(sizes.reduce((a, b) => a + b, 0), clients * rounds)
  // The first item starts alone (nothing seen yet) and the other nine wait for it; from then on all
  // ten go together, but for the last round of the nine.
  t.equal(sizes[0], 1)
  t.same(sizes.slice(1, -1), new Array(sizes.length - 2).fill(clients), `batch sizes ${sizes.join(',')}`)
  t.equal(sizes.at(-1), clients - 1)

  // One caller alone: the first waits for the load it remembers (at most lingerMs), then none do.
  for (let i = 0; i < 2; i++) await gc.submit(7)
  await new Promise((res) => setImmediate(res))
  const before = batches.length
  const p = gc.submit(7)
  t.equal(batches.length, before + 1, 'started synchronously, without waiting')
  await p
})

t.test('idle lanes beyond maxIdleLanes are dropped (keys chosen by callers cannot grow the map)', async (t) => {
  const gc = createGroupCommit<string, string>({
    concurrency: 1,
    maxSize: 10,
    maxIdleLanes: 3,
    key: (k) => k,
    run: async (items) => items.map((value): Settled<string> => ({ ok: true, value })),
  })
  for (let i = 0; i < 50; i++) t.equal(await gc.submit(`k${i}`), `k${i}`)
  t.ok(gc.lanes <= 4, `lanes held: ${gc.lanes}`)
  // Busy lanes are never dropped: 20 keys at once, every answer arrives.
  const all = await Promise.all(Array.from({ length: 20 }, (_, i) => gc.submit(`b${i}`)))
  t.same(all, Array.from({ length: 20 }, (_, i) => `b${i}`))
  t.ok(gc.lanes <= 4, `lanes held after the burst: ${gc.lanes}`)
})

t.test('idle(): resolves once every item submitted so far is answered, waiting ones and alone ones included', async (t) => {
  let open!: () => void
  const gate = new Promise<void>((r) => (open = r))
  const ran: number[][] = []
  const gc = createGroupCommit<number, number>({
    concurrency: 1,
    maxSize: 2,
    size: (n) => (n >= 100 ? 3 : 1),
    run: async (items) => {
      ran.push(items)
      await gate
      if (items.includes(100)) throw new Error('a batch that throws') // every item of it gets the error
      return items.map((n): Settled<number> => (n === 13 ? { ok: false, error: new Error('unlucky') } : { ok: true, value: n }))
    },
  })
  await gc.idle() // nothing submitted: at once
  let settled = 0
  const note = (v: string) => (settled++, v)
  const answers = [1, 2, 3, 13, 100].map((n) => gc.submit(n).then((v) => note(`ok ${v}`), () => note(`error ${n}`)))
  let settledAtIdle = -1
  const idled = gc.idle().then(() => (settledAtIdle = settled))
  // 1 and 100 (too large: alone) run, 2 and 3 wait for the lane, then 13.
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r))
  t.same(ran, [[1], [100]])
  t.equal(settledAtIdle, -1, 'not idle while batches run or items wait')
  open()
  // An item submitted while idle() waits is waited for too (alone: too large for the lane).
  const late = gc.submit(200).then((v) => note(`ok ${v}`))
  await idled
  t.equal(settledAtIdle, 6, 'every item was answered when idle() resolved')
  t.same(await Promise.all(answers), ['ok 1', 'ok 2', 'ok 3', 'error 13', 'error 100'])
  t.equal(await late, 'ok 200')
  t.same(ran.flat().sort((a, b) => a - b), [1, 2, 3, 13, 100, 200])
  await gc.idle()
})

t.test('size() is asked once per item, however long the item waits', async (t) => {
  const asked = new Map<number, number>()
  const gc = createGroupCommit<number, number>({
    concurrency: 1,
    maxSize: 3,
    size: (n) => (asked.set(n, (asked.get(n) ?? 0) + 1), n >= 100 ? 2 : 1),
    run: async (items) => {
      await new Promise((r) => setImmediate(r))
      return items.map((n): Settled<number> => ({ ok: true, value: n }))
    },
  })
  const items = [1, 100, 101, 2, 102, 3, 4, 1000]
  t.same(await Promise.all(items.map((n) => gc.submit(n))), items)
  t.same([...asked.values()], items.map(() => 1))
})

t.test('concurrency 2: callers in step share the load in batches of equal size, two at once', async (t) => {
  const batches: number[] = []
  let running = 0
  let overlapped = 0
  const gc = createGroupCommit<number, number>({
    concurrency: 2,
    maxSize: 100,
    run: async (items) => {
      batches.push(items.length)
      if (++running > 1) overlapped++
      // A batch takes a few macrotasks, as a transaction's round trips do.
      for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r))
      running--
      return items.map((n): Settled<number> => ({ ok: true, value: n }))
    },
  })
  const clients = 10
  const rounds = 20
  await inStep(gc, clients, rounds)
  t.equal(batches.reduce((a, b) => a + b, 0), clients * rounds)
  // After the first rounds (the first item alone, nothing seen yet), no batch is started by a lone
  // early arrival: each waits for its share of the ten (5), and two run at once.
  const steady = batches.slice(3, -2)
  t.ok(steady.length > 20, `batches ${batches.join(',')}`)
  t.ok(steady.every((n) => n === clients / 2), `batch sizes ${batches.join(',')}`)
  t.ok(overlapped >= steady.length / 2, `batches overlapped: ${overlapped} of ${batches.length}`)
})

t.test('concurrency 2: items that fill a batch start without waiting for their share', async (t) => {
  const started: number[][] = []
  const release: (() => void)[] = []
  const gc = createGroupCommit<number, number>({
    concurrency: 2,
    maxSize: 3,
    lingerMs: 0,
    run: async (items) => {
      started.push(items)
      await new Promise<void>((r) => release.push(r))
      return items.map((n): Settled<number> => ({ ok: true, value: n }))
    },
  })
  // Eight pending at once (the first two start at once, as the load grows): each batch's share is
  // now 4, more than a batch holds (3).
  const first = [1, 2, 3, 4, 5, 6, 7, 8].map((n) => gc.submit(n))
  t.same(started, [[1], [2]])
  release.shift()!()
  await first[0]
  await new Promise((r) => setImmediate(r)) // the batch's end pumps the lane
  t.same(started.at(-1), [3, 4, 5], 'a full batch when a slot frees')
  release.shift()!()
  await first[1]
  await new Promise((r) => setImmediate(r)) // the batch's end pumps the lane
  t.same(started.at(-1), [6, 7, 8], 'three left: below their share, but a full batch: it starts')
  const more = [9, 10].map((n) => gc.submit(n))
  release.shift()!()
  await first[4]
  await new Promise((r) => setImmediate(r)) // the batch's end pumps the lane
  t.equal(started.length, 4, 'two waiting beside a running batch, below their share: they wait')
  release.shift()!()
  await first[7]
  await new Promise((r) => setImmediate(r)) // the batch's end pumps the lane
  t.same(started.at(-1), [9, 10], 'they start once nothing runs (no linger here)')
  release.shift()!()
  t.same(await Promise.all([...first, ...more]), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
})
