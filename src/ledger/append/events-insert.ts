/**
 * The INSERT of an append's events into consent_events, derived from the one list of the event's
 * fields (event.ts): each field says how its column travels. Most travel as one array per column
 * (unnested); the workspace, the recording time and, when one request made the whole append, who
 * asked, travel once.
 */
import { EVENT_FIELDS, type ChainedEvent, type EventField } from '../event.js'
import { isoString } from '../hash-chain.js'
import type { Params, Part } from './params.js'

/**
 * How a field's column is sent: `tokens` (an array literal of plain tokens), `text` (an array
 * node-postgres escapes), `json` (text, cast to jsonb), `time` (ISO strings); `workspace`,
 * `recorded`: one value for all events; `origin`: one value when one request made the append,
 * an array otherwise.
 */
type Sent = { array: 'tokens' | 'text' | 'json' | 'time'; cast: string } | 'workspace' | 'recorded' | 'origin'

const COLUMNS: Record<EventField, Sent> = {
  event_id: { array: 'tokens', cast: 'uuid' },
  workspace_id: 'workspace',
  contact_id: { array: 'tokens', cast: 'uuid' },
  type: { array: 'tokens', cast: 'text' },
  subscription_group_id: { array: 'tokens', cast: 'uuid' },
  state: { array: 'tokens', cast: 'text' },
  occurred_at: { array: 'time', cast: 'timestamptz' },
  recorded_at: 'recorded',
  source: { array: 'tokens', cast: 'text' },
  method: { array: 'tokens', cast: 'text' },
  evidence: { array: 'json', cast: 'text' },
  identity_type: { array: 'tokens', cast: 'text' },
  identity_value: { array: 'text', cast: 'text' },
  actor: 'origin',
  request_id: 'origin',
  idempotency_key: 'origin',
  platform_stop: { array: 'tokens', cast: 'text' },
}

/** The ledger id and the chain links, sent as arrays of tokens. */
const CHAIN_COLUMNS = [
  ['id', 'bigint'],
  ['prev_hash', 'text'],
  ['hash', 'text'],
] as const

const ORIGIN_FIELDS = ['actor', 'request_id', 'idempotency_key'] as const

/** Is every event of one request (the same actor, request id and idempotency key)? */
const oneOrigin = (events: ChainedEvent[]) =>
  events.every((e) => ORIGIN_FIELDS.every((f) => e[f] === events[0]![f]))

function arrayOf(p: Params, events: ChainedEvent[], field: EventField, how: 'tokens' | 'text' | 'json' | 'time'): string {
  if (how === 'tokens') return p.tokens(events.map((e) => e[field]))
  if (how === 'time') return p.tokens(events.map((e) => isoString(e[field] as Date)))
  if (how === 'json') return p.add(events.map((e) => JSON.stringify(e[field])))
  return p.add(events.map((e) => e[field]))
}

/**
 * The `events` part of the write statement. With `returning`, it returns the columns the
 * projection's parts read back (see project.ts).
 */
export function eventsPart(p: Params, events: ChainedEvent[], recordedAt: Date, returning: boolean): Part {
  const single = oneOrigin(events)
  const selected: string[] = []
  const arrays: string[] = []
  const names: string[] = []
  for (const [column, cast] of CHAIN_COLUMNS) {
    selected.push(`x.${column}`)
    arrays.push(`${p.tokens(events.map((e) => e[column]))}::${cast}[]`)
    names.push(column)
  }
  for (const field of EVENT_FIELDS) {
    const how = COLUMNS[field]
    if (how === 'workspace') selected.push('$1')
    else if (how === 'recorded') selected.push(p.add(isoString(recordedAt)))
    else if (how === 'origin' && single) selected.push(`${p.add(events[0]![field])}::text`)
    else {
      const array = how === 'origin' ? { array: 'text' as const, cast: 'text' } : how
      selected.push(field === 'evidence' ? 'x.evidence::jsonb' : `x.${field}`)
      arrays.push(`${arrayOf(p, events, field, array.array)}::${array.cast}[]`)
      names.push(field)
    }
  }
  const sql = `events AS (
           INSERT INTO consent_events (${CHAIN_COLUMNS.map(([c]) => c).join(', ')}, ${EVENT_FIELDS.join(', ')})
           SELECT ${selected.join(', ')}
             FROM unnest(${arrays.join(', ')}) AS x(${names.join(', ')})${
               returning ? '\n           RETURNING id, contact_id, subscription_group_id, state, occurred_at, event_id, source' : ''
             })`
  return { tag: single ? '' : 'origins', sql }
}
