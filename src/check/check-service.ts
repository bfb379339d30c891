/**
 * The pre-send check (docs/architecture.md), the hot path: up to 10,000 identifiers answered with
 * ONE set-based query over the projection, never the ledger and never a query per identifier.
 * Unknown identifiers create nothing. The rule itself is in decide.ts, the statements in
 * statements.ts, the group lookup in groups.ts.
 */
import type { Sql } from '../db/sql.js'
import { createGroupCommit, type Settled } from '../db/group-commit.js'
import type { CheckResult, CheckTarget, Identifier } from './decide.js'
import { createGroupLookup } from './groups.js'
import { checkMany, checkOne } from './statements.js'

export type { Reason, CheckResult, CheckTarget } from './decide.js'

export interface CheckServiceOptions {
  /**
   * Single checks of one workspace and target that arrive while `concurrency` statements of theirs
   * run go together in the next statement (0: every check on its own). Default 2.
   */
  concurrency?: number
  /** Single checks per shared statement at most. Default 100. */
  maxItems?: number
}

interface SingleCheck {
  key: string
  workspaceId: string
  target: CheckTarget
  ident: Identifier
}

const keyOf = (workspaceId: string, t: CheckTarget) =>
  `${workspaceId}\u0000${t.subscription_group_id ?? ''}\u0000${t.channel ?? ''}\u0000${t.category ?? ''}\u0000${t.phone_number_id ?? ''}`

export function createCheckService(sql: Sql, opts: CheckServiceOptions = {}) {
  const groups = createGroupLookup(sql)

  async function checkBatch(workspaceId: string, target: CheckTarget, identifiers: Identifier[]): Promise<CheckResult[]> {
    return checkMany(sql, workspaceId, await groups.groupsFor(workspaceId, target), target, identifiers)
  }

  // Single checks (the pre-send hot path) share statements under load: while a statement of the
  // same workspace and target runs, the checks that arrive wait and the next statement answers all
  // of them (the batch form), each from that statement's snapshot, taken after it arrived: a check
  // still sees every write acknowledged before it was sent. At low load a check runs at once, alone.
  const singles = createGroupCommit<SingleCheck, CheckResult>({
    concurrency: opts.concurrency ?? 2,
    maxSize: opts.maxItems ?? 100,
    key: (c) => c.key,
    run: async (batch): Promise<Settled<CheckResult>[]> => {
      const { workspaceId, target } = batch[0]!
      const results =
        batch.length === 1
          ? [await checkOne(sql, workspaceId, await groups.groupsFor(workspaceId, target), target, batch[0]!.ident)]
          : await checkBatch(workspaceId, target, batch.map((c) => c.ident))
      return results.map((value) => ({ ok: true, value }))
    },
  })

  async function check(workspaceId: string, target: CheckTarget, identifiers: Identifier[]): Promise<CheckResult[]> {
    if (identifiers.length === 1) return [await singles.submit({ key: keyOf(workspaceId, target), workspaceId, target, ident: identifiers[0]! })]
    return checkBatch(workspaceId, target, identifiers)
  }

  return {
    check,
    forget: groups.forget,
    /** Resolves once every single check submitted so far is answered (shutdown). */
    idle: () => singles.idle(),
    /** Statements that answered single checks so far (tests). */
    get singleStatements() {
      return singles.batches
    },
  }
}

export type CheckService = ReturnType<typeof createCheckService>
