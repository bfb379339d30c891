/**
 * The intake queue (src/webhook/intake-queue.ts), with fake processing: rows are processed inside
 * their request up to inlineMax at once, then queued in arrival order and processed in batches; a
 * failed batch is redone row by row; admit never throws.
 */
import t from 'tap'
import { createIntakeQueue } from '../../src/webhook/intake-queue.js'
import type { ProcessContext } from '../../src/webhook/row-state.js'

const quiet = { warn() {}, error() {} } as unknown as ProcessContext['log']
const ctx: ProcessContext = { log: quiet }

function fake(opts: { inlineMax: number; batchSize?: number; failBatch?: boolean; failOne?: boolean }) {
  const calls: string[] = []
  let release: () => void = () => {}
  const gate = new Promise<void>((r) => (release = r))
  const queue = createIntakeQueue({
    inlineMax: opts.inlineMax,
    batchSize: opts.batchSize ?? 200,
    async processOne(id) {
      calls.push(`one:${id}`)
      await gate
      if (opts.failOne) throw new Error('boom')
      return 'processed'
    },
    async processBatch(ids) {
      calls.push(`batch:${ids.join(',')}`)
      if (opts.failBatch) throw new Error('batch failed')
    },
  })
  return { queue, calls, release }
}

t.test('inside the request up to inlineMax, then queued and processed in batches, in arrival order', async (t) => {
  const { queue, calls, release } = fake({ inlineMax: 1, batchSize: 2 })
  const first = queue.admit('1', ctx)
  t.equal(await queue.admit('2', ctx), 'pending', 'beyond inlineMax: acknowledged as pending')
  t.equal(await queue.admit('3', ctx), 'pending')
  t.equal(await queue.admit('4', ctx), 'pending')
  release()
  t.equal(await first, 'processed', 'processed inside its request')
  await queue.idle()
  t.same(calls, ['one:1', 'batch:2,3', 'batch:4'])
})

t.test('while rows wait, a new row joins them rather than overtake', async (t) => {
  const { queue, calls, release } = fake({ inlineMax: 0 })
  release()
  t.equal(await queue.admit('1', ctx), 'pending')
  t.equal(await queue.admit('2', ctx), 'pending')
  await queue.idle()
  t.same(calls, ['batch:1,2'])
})

t.test('a failed batch is processed row by row', async (t) => {
  const { queue, calls, release } = fake({ inlineMax: 0, failBatch: true })
  release()
  await queue.admit('1', ctx)
  await queue.admit('2', ctx)
  await queue.idle()
  t.same(calls, ['batch:1,2', 'one:1', 'one:2'])
})

t.test('admit never throws: a failure inside the request answers pending', async (t) => {
  const { queue, release } = fake({ inlineMax: 1, failOne: true })
  release()
  t.equal(await queue.admit('1', ctx), 'pending')
})
