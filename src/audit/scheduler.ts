/**
 * The checkpoint job. Every CHECKPOINT_POLL_MS (timer unref'd, one tick at a time) it asks which
 * workspaces are due (checkpoints.ts `dueWorkspaces`): new events since their last checkpoint, and
 * either CHECKPOINT_EVERY_EVENTS of them or a last checkpoint older than CHECKPOINT_INTERVAL_MS
 * (a workspace's first checkpoint is taken at the first poll after its first event). Each due
 * workspace gets `createCheckpoint`, whose advisory try-lock makes several instances safe: one
 * signs, the others skip. Errors are logged and retried at the next poll. `stop()` clears the
 * timer and waits for a tick in progress. "New events" are counted by ledger id above the last
 * checkpoint's high water; an append whose transaction committed just after a checkpoint with a
 * lower id is not lost, it is signed with the next checkpoint (leaves come from the chain heads).
 */
import type { FastifyBaseLogger } from 'fastify'
import type { Sql } from '../db/sql.js'
import { createCheckpoint, dueWorkspaces } from './checkpoints.js'
import type { Signer } from './signing.js'

export interface SchedulerOptions {
  sql: Sql
  signer: Signer
  log: FastifyBaseLogger
  intervalMs: number
  everyEvents: number
  pollMs: number
}

export function createScheduler(o: SchedulerOptions) {
  let timer: NodeJS.Timeout | null = null
  let running: Promise<void> | null = null
  let stopped = false
  let ticks = 0

  async function tick(): Promise<void> {
    ticks++
    const due = await dueWorkspaces(o.sql, { intervalMs: o.intervalMs, everyEvents: o.everyEvents })
    for (const ws of due) {
      if (stopped) return
      const r = await createCheckpoint(o.sql, o.signer, ws)
      if (r.created && r.checkpoint) {
        o.log.info({ workspace_id: ws, sequence: r.checkpoint.sequence, tree_size: r.checkpoint.tree_size }, 'checkpoint signed')
      }
      if (r.rewritten?.length) {
        o.log.error({ workspace_id: ws, contacts: r.rewritten.slice(0, 20), count: r.rewritten.length }, 'chain heads changed without growing since the last checkpoint: possible tampering; run POST /audit/verify')
      }
    }
  }

  function schedule() {
    if (stopped) return
    timer = setTimeout(() => {
      running = tick()
        .catch((err) => o.log.error({ err }, 'checkpoint job failed; retrying at the next poll'))
        .finally(() => {
          running = null
          schedule()
        })
    }, o.pollMs)
    timer.unref()
  }

  return {
    start() {
      stopped = false
      if (!timer) schedule()
    },
    async stop() {
      stopped = true
      if (timer) clearTimeout(timer)
      timer = null
      if (running) await running
    },
    /** One tick now (tests, and operators through app.audit.runCheckpointJob). */
    runOnce: tick,
    get ticks() {
      return ticks
    },
  }
}
