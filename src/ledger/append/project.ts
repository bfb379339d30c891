/**
 * Step 7 of an append: the projections, as parts of the write statement. consent_state gets each
 * (contact, group)'s new winner, read back from the events' RETURNING by ledger id (cheaper for
 * PostgreSQL than parsing seven more arrays); platform_stops gets the latest Meta signal per
 * (contact, business number).
 */
import type { ChainedEvent } from '../event.js'
import { isoString } from '../hash-chain.js'
import { beatsSql, stateColumns } from '../ordering.js'
import type { PlatformStopRow } from './record.js'
import type { Params, Part } from './params.js'

const STATE_COLUMNS = 'workspace_id, contact_id, subscription_group_id, state, occurred_at, event_seq, event_id, source, updated_at'

const winnerRows = (p: Params, winners: ChainedEvent[]) =>
  `SELECT $1, e.contact_id, e.subscription_group_id, e.state, e.occurred_at, e.id, e.event_id, e.source, now()
             FROM events e WHERE e.id = ANY(${p.tokens(winners.map((w) => w.id))}::bigint[])`

/**
 * The winners of contacts this append creates: plain INSERTs. Nobody else can have written a row
 * for a contact that is not committed yet, and a (contact, group) pair has one winner, so the
 * speculative insertion of ON CONFLICT would be cost for nothing (new people are most of a large
 * /users/track).
 */
export function newContactsStatePart(p: Params, winners: ChainedEvent[]): Part {
  return {
    tag: 'fresh',
    sql: `projection_new AS (
           INSERT INTO consent_state (${STATE_COLUMNS})
           ${winnerRows(p, winners)})`,
  }
}

/** The winners of existing contacts: upserts, guarded by the ordering rule in case the row moved since it was read. */
export function statePart(p: Params, winners: ChainedEvent[]): Part {
  return {
    tag: 'state',
    sql: `projection AS (
           INSERT INTO consent_state AS s (${STATE_COLUMNS})
           ${winnerRows(p, winners)}
           ON CONFLICT (workspace_id, contact_id, subscription_group_id) DO UPDATE
              SET state = excluded.state, occurred_at = excluded.occurred_at, event_seq = excluded.event_seq,
                  event_id = excluded.event_id, source = excluded.source, updated_at = now()
            WHERE ${beatsSql(stateColumns('excluded'), stateColumns('s'))})`,
  }
}

/** Platform stops: the latest Meta signal per (contact, number) wins; an equal-time stop beats a resume. */
export function platformStopsPart(p: Params, stops: PlatformStopRow[]): Part {
  return {
    tag: 'stops',
    sql: `stops AS (
           INSERT INTO platform_stops AS p (workspace_id, contact_id, phone_number_id, stopped, occurred_at, event_id, updated_at)
           SELECT DISTINCT ON (c, n) $1, c, n, s, o, e, now()
             FROM unnest(${p.tokens(stops.map((s) => s.contactId))}::uuid[], ${p.tokens(stops.map((s) => s.phoneNumberId))}::text[],
                         ${p.tokens(stops.map((s) => s.stopped))}::bool[], ${p.tokens(stops.map((s) => isoString(s.occurredAt)))}::timestamptz[],
                         ${p.tokens(stops.map((s) => s.eventId))}::uuid[])
                  WITH ORDINALITY AS x(c, n, s, o, e, ord)
            ORDER BY c, n, o DESC, s DESC, ord DESC
           ON CONFLICT (workspace_id, contact_id, phone_number_id) DO UPDATE
              SET stopped = excluded.stopped, occurred_at = excluded.occurred_at, event_id = excluded.event_id, updated_at = now()
            WHERE (excluded.occurred_at, excluded.stopped) >= (p.occurred_at, p.stopped))`,
  }
}
