/**
 * Step 6 of an append: every write in ONE statement of data-modifying CTEs (the reference
 * triggers of migration 0008 run at its end and see all of it):
 *   new_contacts    new contacts with their final chain head and attributes;
 *   new_identities  their identities;
 *   dedupe          exactly-once keys;
 *   events          the events (events-insert.ts);
 *   heads           chain heads (and attributes) of the existing contacts;
 *   projection_new, projection, stops   the projections (project.ts).
 * Only the parts this append has rows for are included, because starting the executor on a part
 * costs more than running it for one row, and most appends have no exactly-once keys, no platform
 * stops, and either new or existing contacts. Each combination is its own prepared statement,
 * named by the tags of its parts (docs/performance.md).
 */
import type { Pending } from '../contact-resolver.js'
import type { ChainedEvent } from '../event.js'
import { eventsPart } from './events-insert.js'
import { Params, type Part } from './params.js'
import { newContactsStatePart, platformStopsPart, statePart } from './project.js'
import type { Recorded } from './record.js'
import type { ChainHeads } from './resolve.js'

/** PostgreSQL keeps NAMEDATALEN - 1 (63) bytes of a prepared statement's name: longer names would collide. */
export const MAX_STATEMENT_NAME = 63

export interface WritePlan extends Recorded {
  workspaceId: string
  recordedAt: Date
  events: ChainedEvent[]
  /** Rows to create with this append (the resolution's pending contacts and identities). */
  pending: Pending
  heads: ChainHeads
  /** Existing contacts whose chains the append extends (locked). */
  chainContacts: string[]
  created: Set<string>
}

const json = (a: Record<string, string> | undefined) => (a ? JSON.stringify(a) : null)

function newContactsPart(p: Params, ids: string[], heads: ChainHeads, attributes: Recorded['attributes']): Part {
  return {
    tag: 'new',
    sql: `new_contacts AS (
           INSERT INTO contacts (workspace_id, id, chain_head, chain_length, attributes)
           SELECT $1, x.id, x.chain_head, x.chain_length, COALESCE(x.attributes::jsonb, '{}'::jsonb)
             FROM unnest(${p.tokens(ids)}::uuid[], ${p.tokens(ids.map((id) => (heads.get(id)?.length ? heads.get(id)!.hash : null)))}::text[],
                         ${p.tokens(ids.map((id) => heads.get(id)?.length ?? 0))}::int[],
                         ${p.add(ids.map((id) => json(attributes.get(id))))}::text[]) AS x(id, chain_head, chain_length, attributes))`,
  }
}

function newIdentitiesPart(p: Params, identities: Pending['identities']): Part {
  return {
    tag: 'ids',
    sql: `new_identities AS (
           INSERT INTO identities (workspace_id, type, value, contact_id)
           SELECT $1, x.type, x.value, x.contact_id
             FROM unnest(${p.tokens(identities.map((i) => i.type))}::text[], ${p.add(identities.map((i) => i.value))}::text[],
                         ${p.tokens(identities.map((i) => i.contact))}::uuid[]) AS x(type, value, contact_id))`,
  }
}

function dedupePart(p: Params, rows: Recorded['dedupeRows']): Part {
  return {
    tag: 'keys',
    sql: `dedupe AS (
           INSERT INTO ledger_dedupe (workspace_id, key, event_id)
           SELECT $1, x.key, x.event_id
             FROM unnest(${p.add(rows.map((d) => d.key))}::text[], ${p.tokens(rows.map((d) => d.eventId))}::uuid[]) AS x(key, event_id))`,
  }
}

function chainHeadsPart(p: Params, touched: [string, { hash: string; length: number }][], attributes: Recorded['attributes']): Part {
  return {
    tag: 'heads',
    sql: `heads AS (
           UPDATE contacts c SET chain_head = v.chain_head, chain_length = v.chain_length, updated_at = now(),
                  attributes = CASE WHEN v.attributes IS NULL THEN c.attributes ELSE c.attributes || v.attributes::jsonb END
             FROM unnest(${p.tokens(touched.map(([id]) => id))}::uuid[], ${p.tokens(touched.map(([, h]) => h.hash))}::text[],
                         ${p.tokens(touched.map(([, h]) => h.length))}::int[],
                         ${p.add(touched.map(([id]) => json(attributes.get(id))))}::text[]) AS v(id, chain_head, chain_length, attributes)
            WHERE c.workspace_id = $1 AND c.id = v.id AND (c.chain_length IS DISTINCT FROM v.chain_length OR v.attributes IS NOT NULL))`,
  }
}

/** The write statement of an append: its text, parameters and prepared statement name. */
export function writeStatement(plan: WritePlan): { text: string; values: unknown[]; name: string } {
  const p = new Params(plan.workspaceId)
  const parts: Part[] = []
  const { contacts, identities } = plan.pending
  if (contacts.length > 0) parts.push(newContactsPart(p, contacts, plan.heads, plan.attributes))
  if (identities.length > 0) parts.push(newIdentitiesPart(p, identities))
  if (plan.dedupeRows.length > 0) parts.push(dedupePart(p, plan.dedupeRows))
  parts.push(eventsPart(p, plan.events, plan.recordedAt, plan.winners.length > 0))
  const locked = new Set(plan.chainContacts)
  const touched = [...plan.heads.entries()].filter(([id]) => locked.has(id))
  if (touched.length > 0) parts.push(chainHeadsPart(p, touched, plan.attributes))
  const ofNew = plan.winners.filter((w) => plan.created.has(w.contact_id))
  const ofExisting = ofNew.length === 0 ? plan.winners : plan.winners.filter((w) => !plan.created.has(w.contact_id))
  if (ofNew.length > 0) parts.push(newContactsStatePart(p, ofNew))
  if (ofExisting.length > 0) parts.push(statePart(p, ofExisting))
  if (plan.stops.length > 0) parts.push(platformStopsPart(p, plan.stops))
  return {
    text: `WITH ${parts.map((x) => x.sql).join(',\n         ')}\n         SELECT 1`,
    values: p.values,
    name: `ledger-write-${parts.flatMap((x) => (x.tag ? [x.tag] : [])).join('_')}`,
  }
}
