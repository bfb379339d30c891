/**
 * The reads of an append. ONE statement (ledger_prepare, migrations 0009 and later) reads
 * everything the append needs before it writes: the identities' advisory locks, the batch's groups
 * and the workspace's evidence setting, each identity's owner, the chain heads of those owners and
 * of the contacts named directly (locked FOR UPDATE, in id order), then, after those locks, the
 * exactly-once keys already seen, the current winners of (contact, group), ledger ids (one per
 * consent item before deduplication: a duplicate or a rejected item leaves a gap, as a rollback
 * does) and the recording time. Why one statement: round trips, not rows, are the cost of a small
 * append (docs/performance.md). The same statement marks the transaction as the ledger's write
 * path: consent_state and platform_stops refuse every other writer (migration 0019, docs/audit.md).
 */
import type { Sql } from '../../db/sql.js'
import { identityLockKeys } from '../contact-resolver.js'
import { PROJECTION_WRITE } from '../projection.js'
import { tokenArray } from '../token-array.js'
import type { Candidate } from './validate.js'

/** The row of ledger_prepare. */
export interface Prepared extends AfterLocks {
  live: string[]
  archived: string[]
  require_evidence: boolean | null
  /** [type, value, owner contact, the external_id that owner holds] per identity found. */
  owners: [string, string, string, string | null][] | null
  /** [contact, chain head, chain length, merged] of the owners and the direct contacts, locked. */
  heads: [string, string | null, number, boolean][] | null
}

/** What ledger_prepare reads once the contacts are locked. */
export interface AfterLocks {
  /** [exactly-once key, the event it already names]. */
  seen: [string, string | null][] | null
  /** [contact, group, state, occurred_at, ledger id, source] of the current winners. */
  cur_states: [string, string, string, string, string, string][] | null
  ids: string[]
  now: Date
}

/**
 * Each identity once per group its items name (null when none): prepare reads the projection rows
 * of exactly the (owner, group) pairs the batch names, not every owner x every group.
 */
function identityProbes(candidates: Candidate[]): { type: string; value: string; group: string | null }[] {
  const probes = new Map<string, { type: string; value: string; groups: Set<string | null> }>()
  for (const c of candidates) {
    if (c.contactId !== undefined) continue
    for (const i of c.identities) {
      const k = `${i.type}\u0000${i.value}`
      const p = probes.get(k) ?? probes.set(k, { type: i.type, value: i.value, groups: new Set() }).get(k)!
      p.groups.add(c.identifyOnly ? null : c.groupId)
    }
  }
  return [...probes.values()].flatMap((p) =>
    [...p.groups].filter((g) => g !== null || p.groups.size === 1).map((g) => ({ type: p.type, value: p.value, group: g })),
  )
}

export async function prepare(tx: Sql, workspaceId: string, candidates: Candidate[]): Promise<Prepared> {
  const groupIds = [...new Set(candidates.filter((c) => !c.identifyOnly).map((c) => c.groupId))]
  const allIdentities = candidates.filter((c) => c.contactId === undefined).flatMap((c) => c.identities)
  const probes = identityProbes(candidates)
  const direct = candidates.filter((c) => c.contactId !== undefined)
  const [pre] = await tx.query<Prepared>(
    `SELECT p.* FROM ledger_prepare($1, $2::uuid[], $3::text[], $4::text[], $5::text[], $6::uuid[], $7::uuid[], $8::uuid[], $9::text[], $10::int) AS p
       CROSS JOIN set_config('${PROJECTION_WRITE}', 'on', true)`,
    [
      workspaceId,
      tokenArray(groupIds),
      tokenArray(identityLockKeys(workspaceId, allIdentities)),
      tokenArray(probes.map((r) => r.type)),
      tokenArray(probes.map((r) => r.value)),
      tokenArray(probes.map((r) => r.group)),
      tokenArray(direct.map((c) => c.contactId!.toLowerCase())),
      tokenArray(direct.map((c) => (c.identifyOnly ? null : c.groupId))),
      tokenArray([...new Set(candidates.filter((c) => c.dedupeKey !== undefined).map((c) => c.dedupeKey!))]),
      candidates.filter((c) => !c.identifyOnly).length,
    ],
    'ledger-prepare',
  )
  return pre!
}

/**
 * After a merge or move only: the after-lock reads of ledger_prepare again, for the contacts that
 * resulted (per-key primary-key probes, see contact-resolver.ts). Unnamed, so planned at each call
 * with the tables' current sizes (merges are rare; test/ledger/plan-stability.test.ts).
 */
export async function readAfterLocks(
  tx: Sql,
  workspaceId: string,
  idCount: number,
  keys: string[],
  pairs: { contactId: string; groupId: string }[],
): Promise<AfterLocks> {
  const [after] = await tx.query<AfterLocks>(
    `SELECT date_trunc('milliseconds', clock_timestamp()) AS now,
            ARRAY(SELECT nextval('consent_events_id_seq')::text FROM generate_series(1, $1::int)) AS ids,
            (SELECT json_agg(json_build_array(q.key, d.event_id))
               FROM unnest($3::text[]) AS q(key)
              CROSS JOIN LATERAL (SELECT d.event_id FROM ledger_dedupe d WHERE d.workspace_id = $2 AND d.key = q.key LIMIT 1) d) AS seen,
            (SELECT json_agg(json_build_array(q.c, q.g, s.state, s.occurred_at, s.event_seq::text, s.source))
               FROM unnest($4::uuid[], $5::uuid[]) AS q(c, g)
              CROSS JOIN LATERAL (SELECT s.state, s.occurred_at, s.event_seq, s.source FROM consent_state s
                                   WHERE s.workspace_id = $2 AND s.contact_id = q.c AND s.subscription_group_id = q.g LIMIT 1) s) AS cur_states`,
    [idCount, workspaceId, keys, pairs.map((p) => p.contactId), pairs.map((p) => p.groupId)],
  )
  return after!
}
