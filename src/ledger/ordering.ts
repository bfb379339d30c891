/**
 * The ordering rule: which consent event of one (contact, subscription group) is the current one.
 * Declared once here and derived three ways, so the append (TypeScript), the append's SQL guard and
 * the projection's fold (SQL ORDER BY) can never disagree (docs/architecture.md):
 *   1. the later occurred_at wins;
 *   2. on equal occurred_at, `unsubscribed` wins (an opt-out is never lost to a same-instant opt-in);
 *   3. then the later ledger id (the order the ledger recorded them in).
 */

/** An event as the rule sees it. */
export interface Ranked {
  occurredAt: Date
  state: string | null
  seq: bigint
}

/** The column (or expression) that holds each key of the rule, in one SQL row. */
export interface RankColumns {
  occurredAt: string
  state: string
  seq: string
}

/** The keys of the rule, most significant first; on each, the greater value wins. */
const RULE: readonly { sql: (c: RankColumns) => string; ts: (e: Ranked) => number | bigint }[] = [
  { sql: (c) => c.occurredAt, ts: (e) => e.occurredAt.getTime() },
  { sql: (c) => `(${c.state} = 'unsubscribed')`, ts: (e) => (e.state === 'unsubscribed' ? 1 : 0) },
  { sql: (c) => c.seq, ts: (e) => e.seq },
]

/** > 0 if a wins over b, < 0 if b wins, 0 for the same rank (the same event). */
export function compareRank(a: Ranked, b: Ranked): number {
  for (const key of RULE) {
    const x = key.ts(a)
    const y = key.ts(b)
    if (x !== y) return x > y ? 1 : -1
  }
  return 0
}

/** Does event a beat event b by the ordering rule? */
export const beats = (a: Ranked, b: Ranked): boolean => compareRank(a, b) > 0

/** The columns of a consent_events row aliased `alias`. */
export const eventColumns = (alias: string): RankColumns => ({ occurredAt: `${alias}.occurred_at`, state: `${alias}.state`, seq: `${alias}.id` })

/** The columns of a consent_state row aliased `alias`. */
export const stateColumns = (alias: string): RankColumns => ({ occurredAt: `${alias}.occurred_at`, state: `${alias}.state`, seq: `${alias}.event_seq` })

/** SQL ORDER BY items that put the winner first. */
export const winnerOrderSql = (c: RankColumns): string => RULE.map((k) => `${k.sql(c)} DESC`).join(', ')

/** SQL condition: the row of columns `a` beats the row of columns `b`. */
export const beatsSql = (a: RankColumns, b: RankColumns): string =>
  `(${RULE.map((k) => k.sql(a)).join(', ')}) > (${RULE.map((k) => k.sql(b)).join(', ')})`

/** ORDER BY for consent_events aliased `e`: the winning event first. */
export const WINNER_ORDER = winnerOrderSql(eventColumns('e'))
