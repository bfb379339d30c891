/**
 * Step 5 of an append: each event gets its ledger id, its event id and its place in its
 * contact's hash chain (hash-chain.ts), in the order the append records them.
 */
import { chainHash, GENESIS } from '../hash-chain.js'
import type { ChainedEvent, EventBody, Origin } from '../event.js'
import { uuidv7 } from '../uuid7.js'
import type { ChainHeads } from './resolve.js'

export interface Chain {
  readonly events: ChainedEvent[]
  /** The chain heads, moved on by every event added. */
  readonly heads: ChainHeads
  /** The ledger id the next event added will get. */
  nextId(): string
  add(contactId: string, origin: Origin, body: EventBody): ChainedEvent
}

/**
 * `ids`: the ledger ids allocated for the append, used in order. `counts`: events per source,
 * counted as they are added (metrics, reported once the transaction commits).
 */
export function createChain(workspaceId: string, recordedAt: Date, ids: string[], heads: ChainHeads, counts: Map<string, number>): Chain {
  const events: ChainedEvent[] = []
  let next = 0
  return {
    events,
    heads,
    nextId: () => ids[next]!,
    add(contactId, origin, e) {
      const h = heads.get(contactId) ?? { hash: GENESIS, length: 0 }
      // One object of one fixed shape: the append builds one per event, and spreads of several
      // objects per event are a visible JS cost of a large batch.
      const ev: ChainedEvent = {
        id: ids[next++]!,
        event_id: uuidv7(),
        workspace_id: workspaceId,
        contact_id: contactId,
        type: e.type,
        subscription_group_id: e.subscription_group_id,
        state: e.state,
        occurred_at: e.occurred_at,
        recorded_at: recordedAt,
        source: e.source,
        method: e.method,
        evidence: e.evidence,
        identity_type: e.identity_type,
        identity_value: e.identity_value,
        actor: origin.actor,
        request_id: origin.request_id,
        idempotency_key: origin.idempotency_key,
        platform_stop: e.platform_stop,
        prev_hash: h.hash,
        hash: '',
      }
      ev.hash = chainHash(h.hash, ev)
      heads.set(contactId, { hash: ev.hash, length: h.length + 1 })
      events.push(ev)
      counts.set(e.source, (counts.get(e.source) ?? 0) + 1)
      return ev
    },
  }
}
