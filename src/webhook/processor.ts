/**
 * Webhook processing (DESIGN §3.4, §5, §6): inbox row → signals → ledger items, through the one
 * append path (`ledger.append`, actor `meta-webhook`).
 *
 * Durability. `receive` commits the raw payload first (its own statement), then processes it in
 * the same request. A row is processed in ONE transaction that locks it (`FOR UPDATE`), appends
 * every item and records the row's new status, so a row is either processed with all its events or
 * not at all; a crash leaves it `pending` and the startup / periodic sweep (plugin.ts) finishes it.
 * Processing errors never reach Meta: the row becomes `failed` (kept, listed, replayable).
 *
 * Routing. Each change's `metadata.phone_number_id` names the workspace (whatsapp_numbers). Signals
 * of unmapped numbers are skipped and the row stays `unmapped` until the number is mapped, when it
 * is reprocessed (already-applied signals are duplicates by their keys).
 *
 * Exactly once. Every item carries a ledger dedupe key (kept forever in ledger_dedupe), per group:
 *   messages          `wa:msg:<message id>:<group id>`
 *   error 131050      `wa:status:<status id>:131050:<group id>`
 *   user_preferences  `wa:pref:<bsuid, else wa_id>:<value>:<timestamp>:<group id>`
 * so any redelivery, however late, appends nothing. The part before `:<group id>` is written to
 * the evidence as `signal_key`: it groups the events of one signal.
 *
 * What is recorded (DESIGN §6):
 *   - a message matching an opt-out rule: `unsubscribed` for the rule's scope (`all` = every active
 *     WhatsApp group of the workspace, `marketing` = its marketing groups, or the listed groups);
 *     source `inbound_keyword` for typed text, `template_button` for taps (template `button`,
 *     `interactive` button/list replies);
 *   - a message matching an opt-in rule (START, UNSTOP, ...): `subscribed` for the groups the
 *     contact's latest keyword opt-out (by occurred_at, up to the START's own time) took away,
 *     intersected with the rule's scope; never a group the person was not subscribed to;
 *   - `user_preferences` stop, and a failed status with error 131050: `unsubscribed` + platform
 *     stop for the marketing groups of that number (phone_number_id equal or null);
 *   - `user_preferences` resume: platform stop cleared by one event per group the latest stop
 *     named: `subscribed` where the stops took a subscription away, else the group's state as it
 *     stands (when the latest platform signal before it is a stop);
 *   - anything else (no match, 131049, other statuses, unknown types): nothing.
 *   What a restore gives back is read from the ledger (src/ledger/restore.ts, docs/webhook.md), so
 *   the answer does not depend on the order in which older events arrived.
 *
 * Out-of-order delivery. Opt-outs and stops have fixed groups, so the ordering rule settles them
 * in any order. A restore (START/UNSTOP, resume) that finds NO opt-out to restore is `deferred`: it
 * records nothing yet, and is re-evaluated whenever an opt-out for the same number is applied
 * (for DEFER_DAYS), so "START, then the older STOP" ends as "STOP, then START". Known limit: a
 * restore evaluated against an older opt-out is not revised when an opt-out between the two
 * arrives later (the ledger cannot take an event back); this needs three of the person's own
 * messages reordered by Meta and is documented in the README.
 *
 * Evidence on every event: channel, message/status id, what the person sent (text, button
 * payload/text, reply id/title), `context.id`, matched keyword, `phone_number_id`, display number,
 * WABA id (`entry.id`), wa_id / bsuid, the inbox row id and the sha256 of the raw body.
 */
import { createHash } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { Sql } from '../db/sql.js'
import type { Ledger } from '../ledger/ledger-service.js'
import type { AppendItem, RawIdentity } from '../ledger/types.js'
import { normalizePhone, possiblePhone } from '../contacts/identity.js'
import { historyOf } from '../ledger/history.js'
import { planRestore } from '../ledger/restore.js'
import { matchKeyword, type KeywordScope, type KeywordSettings } from './keywords.js'
import { keywordSettingsFrom } from './keyword-settings-repository.js'
import { mapPayload, phoneNumberIdsOf, type Signal } from './map-payload.js'
import type { InboxRepository, InboxRow, InboxStatus } from './inbox-repository.js'

export const WEBHOOK_ACTOR = 'meta-webhook'

/** Why a row is processed: decides whether a busy row is waited for and which statuses qualify. */
export type ProcessMode =
  /** Just received in this request. */
  | 'fresh'
  /** POST /webhooks/whatsapp/inbox/{id}/replay: any status. */
  | 'replay'
  /** Startup / periodic sweep: pending rows (a crash), unmapped rows whose numbers are mapped now. */
  | 'sweep'
  /** Its number was just mapped. */
  | 'mapped'
  /** An opt-out arrived that a deferred restore may have been waiting for. */
  | 'deferred'

const QUALIFIES: Record<ProcessMode, InboxStatus[] | null> = {
  fresh: null,
  replay: null,
  sweep: ['pending', 'unmapped'],
  mapped: ['unmapped'],
  deferred: ['deferred'],
}

export interface ProcessContext {
  requestId?: string
  log: FastifyBaseLogger
  /** receive: the workspace whose own webhook URL received the payload (absent: the operator's URL). */
  workspaceId?: string
}

interface GroupInfo {
  id: string
  category: string
  phone_number_id: string | null
}

interface WorkspaceContext {
  id: string
  settings: KeywordSettings
  /** Active WhatsApp groups, oldest first. */
  groups: GroupInfo[]
}

interface Plan {
  items: AppendItem[]
  /** A restore found nothing to restore yet. */
  deferred?: boolean
  /** The items are an opt-out or a platform stop (may complete a deferred restore). */
  optOut?: boolean
}

interface RowOutcome {
  status: InboxStatus
  optOutNumbers: Set<string>
  /** Deferred rows wait on one of optOutNumbers. */
  deferredWaiting: boolean
}

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex')
const RETRYABLE = new Set(['40P01', '40001', '23505'])
const DEFERRED_BATCH = 100

/** Rows acknowledged under load are processed together, this many per transaction at most. */
export const QUEUE_BATCH = 200

export interface WebhookProcessorOptions {
  /**
   * At most this many payloads are processed inside their own request at a time; beyond that (or
   * while acknowledged rows wait), a payload is acknowledged once committed and processed right
   * after, together with the others waiting (one transaction, one ledger append per workspace).
   * 0: always queue. DESIGN §3.4 "processing happens in the same request when possible".
   */
  inlineMax?: number
}

export function createWebhookProcessor(
  deps: { sql: Sql; ledger: Ledger; inbox: InboxRepository; onStatus?: (status: InboxStatus) => void; log?: FastifyBaseLogger },
  opts: WebhookProcessorOptions = {},
) {
  const { sql, ledger, inbox } = deps
  const inlineMax = opts.inlineMax ?? 4
  let inline = 0
  /** Committed, acknowledged, not processed yet (FIFO). A crash leaves them `pending` for the sweep. */
  const queue: { id: string; ctx: ProcessContext }[] = []
  let draining: Promise<void> | null = null

  /**
   * Commits the authentic raw payload, then processes it. Never throws once the row is committed:
   * Meta must get its 200 for every authentic payload.
   */
  async function receive(raw: Buffer, ctx: ProcessContext): Promise<{ id: string; status: InboxStatus }> {
    // PostgreSQL text cannot hold NUL; valid JSON never contains a raw one. body_sha256 is of the bytes.
    const text = raw.toString('utf8').replaceAll('\u0000', '\uFFFD')
    const digest = sha256(raw)
    let payload: unknown
    try {
      payload = JSON.parse(text)
    } catch {
      const stored = await inbox.insert(text, digest, [], 'failed', 'malformed_json: the body is not valid JSON', ctx.workspaceId ?? null)
      if (!stored.duplicate) deps.onStatus?.('failed')
      return { id: stored.id, status: stored.status }
    }
    const stored = await inbox.insert(text, digest, phoneNumberIdsOf(payload), 'pending', null, ctx.workspaceId ?? null)
    // A replayed body is stored once: its first row answers (the sweep finishes it if still pending).
    if (stored.duplicate) return { id: stored.id, status: stored.status }
    const id = stored.id
    // In arrival order: while rows wait in the queue, a new row joins them rather than overtake.
    if (inline >= inlineMax || queue.length > 0 || draining) {
      queue.push({ id, ctx })
      draining ??= drain()
      return { id, status: 'pending' }
    }
    inline++
    try {
      const status = (await process(id, 'fresh', ctx)) ?? 'pending'
      return { id, status }
    } catch (err) {
      ctx.log.error({ err, inboxId: id }, 'webhook processing failed; the payload is kept')
      return { id, status: 'pending' }
    } finally {
      inline--
    }
  }

  /** Processes the queue in batches until it is empty. Never rejects. */
  async function drain(): Promise<void> {
    // Let the acknowledgements of this tick go out first, and more rows join the first batch.
    await new Promise((r) => setImmediate(r))
    try {
      while (queue.length > 0) {
        const batch = queue.splice(0, QUEUE_BATCH)
        const ctx = batch[0]!.ctx
        try {
          await processMany(
            batch.map((b) => b.id),
            ctx,
          )
        } catch (err) {
          // One row at a time instead: each row ends processed or failed on its own.
          ctx.log.warn({ err, rows: batch.length }, 'webhook batch failed; processing its rows one by one')
          for (const b of batch) await process(b.id, 'fresh', b.ctx).catch((e) => b.ctx.log.error({ err: e, inboxId: b.id }, 'webhook processing failed; the payload is kept'))
        }
      }
    } finally {
      draining = null
    }
  }

  /** Resolves once every acknowledged row in the queue is processed (shutdown, tests). */
  async function idle(): Promise<void> {
    while (draining) await draining
  }

  /**
   * Several `pending` rows in ONE transaction: signals are planned row by row, their items
   * appended together (one ledger append per workspace). A signal whose plan reads the ledger
   * (START/UNSTOP, `resume`) first flushes the items before it, so it sees them, exactly as if the
   * rows had been processed one after the other. Rows held elsewhere or already processed are
   * skipped. Throws (and changes nothing) if the batch cannot be processed whole.
   */
  async function processMany(ids: string[], ctx: ProcessContext): Promise<void> {
    interface RowState {
      row: InboxRow
      rejected: Map<string, number>
      optOut: Set<string>
      deferred: boolean
      unmapped: boolean
      failed?: string
      status?: InboxStatus
    }
    let done: { states: RowState[]; waiting: Set<string> } | null = null
    for (let attempt = 1; ; attempt++) {
      try {
        done = await sql.tx(async (tx) => {
          const rows = await inbox.lockPendingForProcessing(tx, ids)
          const states: RowState[] = []
          let queued: { state: RowState; workspaceId: string; phoneNumberId: string; optOut: boolean; item: AppendItem }[] = []
          const flush = async () => {
            const byWorkspace = new Map<string, typeof queued>()
            for (const q of queued) byWorkspace.set(q.workspaceId, [...(byWorkspace.get(q.workspaceId) ?? []), q])
            queued = []
            for (const [workspaceId, list] of byWorkspace) {
              const results = await ledger.append(
                tx,
                { workspaceId, actor: WEBHOOK_ACTOR, requestId: ctx.requestId, receivedAt: new Date(list[0]!.state.row.received_at) },
                list.map((q) => q.item),
              )
              results.forEach((r, i) => {
                const q = list[i]!
                if (r.status === 'rejected') q.state.rejected.set(r.code, (q.state.rejected.get(r.code) ?? 0) + 1)
                else if (r.status === 'applied' && q.optOut) q.state.optOut.add(q.phoneNumberId)
              })
            }
          }
          for (const row of rows) {
            const state: RowState = { row, rejected: new Map(), optOut: new Set(), deferred: false, unmapped: false }
            states.push(state)
            let payload: unknown
            try {
              payload = JSON.parse(row.raw_body)
            } catch {
              state.failed = 'malformed_json: the body is not valid JSON'
              continue
            }
            const mapping = new Map(Object.entries(row.routing.numbers))
            state.unmapped = phoneNumberIdsOf(payload).some((n) => !mapping.has(n))
            const workspaces = new Map<string, WorkspaceContext>(
              row.routing.workspaces.map((w) => [w.id, { id: w.id, settings: keywordSettingsFrom(w.keywords), groups: w.groups }]),
            )
            for (const signal of mapPayload(payload)) {
              const workspaceId = mapping.get(signal.phoneNumberId)
              const w = workspaceId ? workspaces.get(workspaceId) : undefined
              if (!workspaceId || !w) continue
              if (readsLedger(w, signal) && queued.length > 0) await flush()
              const plan = await planSignal(tx, w, signal, row)
              if (plan.deferred) state.deferred = true
              for (const item of plan.items) queued.push({ state, workspaceId, phoneNumberId: signal.phoneNumberId, optOut: !!plan.optOut, item })
            }
          }
          if (queued.length > 0) await flush()
          const outcomes = states.map((st) => ({ id: st.row.id, ...rowStatus(st.rejected, st.unmapped, st.deferred, st.failed) }))
          for (const st of states) {
            if (st.rejected.size > 0) ctx.log.warn({ inboxId: st.row.id, rejected: Object.fromEntries(st.rejected) }, 'webhook items rejected by the ledger; the payload is kept as failed')
          }
          const numbers = [...new Set(states.flatMap((st) => [...st.optOut]))]
          const waiting = states.length > 0 ? await inbox.finishMany(tx, outcomes, numbers) : new Set<string>()
          // A restore deferred in this very batch waits on an opt-out applied after it in the batch.
          const deferredHere = new Set(states.filter((_, i) => outcomes[i]!.status === 'deferred').flatMap((st) => st.row.phone_number_ids))
          for (const n of numbers) if (deferredHere.has(n)) waiting.add(n)
          states.forEach((st, i) => (st.status = outcomes[i]!.status))
          return { states, waiting }
        })
        break
      } catch (err) {
        const code = (err as { code?: string }).code
        if (code && RETRYABLE.has(code) && attempt < 3) continue
        throw err
      }
    }
    for (const st of done.states) if (st.status) deps.onStatus?.(st.status)
    if (done.waiting.size > 0) {
      for (const other of await inbox.deferredIds([...done.waiting], '0', DEFERRED_BATCH)) await process(other, 'deferred', ctx)
    }
  }

  /** Does planning this signal read the ledger (a restore looks for what to restore)? */
  function readsLedger(w: WorkspaceContext, s: Signal): boolean {
    if (s.kind === 'message') return matchKeyword(w.settings, s.candidates)?.rule.action === 'opt_in'
    return s.kind === 'preference' && s.value !== 'stop'
  }

  /** Processes one row; null when skipped (busy elsewhere, or no longer in a qualifying status). */
  async function process(id: string, mode: ProcessMode, ctx: ProcessContext): Promise<InboxStatus | null> {
    let outcome: RowOutcome | null = null
    for (let attempt = 1; ; attempt++) {
      try {
        outcome = await sql.tx((tx) => processLocked(tx, id, mode, ctx))
        break
      } catch (err) {
        const code = (err as { code?: string }).code ?? (err as { cause?: { code?: string } }).cause?.code
        if (code && RETRYABLE.has(code) && attempt < 3) continue
        ctx.log.error({ err, inboxId: id, mode }, 'webhook processing failed; the payload is kept as failed')
        await inbox.fail(id, `processing_error: ${code ?? 'unexpected'} (see the service log)`)
        deps.onStatus?.('failed')
        return 'failed'
      }
    }
    if (!outcome) return null
    deps.onStatus?.(outcome.status)
    if (outcome.deferredWaiting) {
      for (const other of await inbox.deferredIds([...outcome.optOutNumbers], id, DEFERRED_BATCH)) {
        await process(other, 'deferred', ctx)
      }
    }
    return outcome.status
  }

  async function processLocked(tx: Sql, id: string, mode: ProcessMode, ctx: ProcessContext): Promise<RowOutcome | null> {
    const row = await inbox.lockForProcessing(tx, id, mode !== 'fresh' && mode !== 'replay')
    if (!row) return null
    const qualifies = QUALIFIES[mode]
    if (qualifies && !qualifies.includes(row.status)) return null

    let payload: unknown
    try {
      payload = JSON.parse(row.raw_body)
    } catch {
      await inbox.finish(tx, id, 'failed', 'malformed_json: the body is not valid JSON')
      return { status: 'failed', optOutNumbers: new Set(), deferredWaiting: false }
    }
    // Routing (number → workspace, keyword settings, groups) came with the row lock.
    const mapping = new Map(Object.entries(row.routing.numbers))
    const unmapped = phoneNumberIdsOf(payload).filter((n) => !mapping.has(n))
    const workspaces = new Map<string, WorkspaceContext>(
      row.routing.workspaces.map((w) => [w.id, { id: w.id, settings: keywordSettingsFrom(w.keywords), groups: w.groups }]),
    )

    const rejected = new Map<string, number>()
    const optOutNumbers = new Set<string>()
    let deferred = false
    for (const signal of mapPayload(payload)) {
      const workspaceId = mapping.get(signal.phoneNumberId)
      const w = workspaceId ? workspaces.get(workspaceId) : undefined
      if (!workspaceId || !w) continue
      const plan = await planSignal(tx, w, signal, row)
      if (plan.deferred) deferred = true
      if (plan.items.length === 0) continue
      const results = await ledger.append(tx, { workspaceId, actor: WEBHOOK_ACTOR, requestId: ctx.requestId, receivedAt: new Date(row.received_at) }, plan.items)
      for (const r of results) {
        if (r.status === 'rejected') rejected.set(r.code, (rejected.get(r.code) ?? 0) + 1)
        else if (r.status === 'applied' && plan.optOut) optOutNumbers.add(signal.phoneNumberId)
      }
    }
    if (rejected.size > 0) ctx.log.warn({ inboxId: id, rejected: Object.fromEntries(rejected) }, 'webhook items rejected by the ledger; the payload is kept as failed')

    const { status, lastError } = rowStatus(rejected, unmapped.length > 0, deferred)
    // Completing deferred restores is one level only: a restore never produces an opt-out.
    const { deferredWaiting } = await inbox.finish(tx, id, status, lastError, mode === 'deferred' ? [] : [...optOutNumbers])
    return { status, optOutNumbers, deferredWaiting }
  }

  function scopeGroups(w: WorkspaceContext, scope: KeywordScope): string[] {
    if (scope === 'all') return w.groups.map((g) => g.id)
    if (scope === 'marketing') return w.groups.filter((g) => g.category === 'marketing').map((g) => g.id)
    const wanted = new Set(scope)
    return w.groups.filter((g) => wanted.has(g.id)).map((g) => g.id)
  }

  /** Marketing groups of a business number: its own and the workspace-wide ones. */
  function platformGroups(w: WorkspaceContext, phoneNumberId: string): string[] {
    return w.groups.filter((g) => g.category === 'marketing' && (g.phone_number_id === null || g.phone_number_id === phoneNumberId)).map((g) => g.id)
  }

  async function planSignal(tx: Sql, w: WorkspaceContext, s: Signal, row: InboxRow): Promise<Plan> {
    const { identities, phoneUnverified } = identitiesOf(s)
    const occurredAt = s.occurredAt ?? new Date(row.received_at)
    const base: Record<string, unknown> = {
      ...(phoneUnverified ? { phone_unverified: true } : {}),
      channel: 'whatsapp',
      phone_number_id: s.phoneNumberId,
      display_phone_number: s.displayPhoneNumber,
      waba_id: s.wabaId,
      wa_id: s.who.waId,
      bsuid: s.who.bsuid,
      webhook_timestamp: s.rawTimestamp,
      inbox_id: row.id,
      body_sha256: row.body_sha256,
    }
    const items = (groups: string[], state: 'subscribed' | 'unsubscribed', source: AppendItem['source'], rawKey: string, rawEvidence: Record<string, unknown>, platformStop?: AppendItem['platformStop']): AppendItem[] => {
      // What the person sent may hold text PostgreSQL cannot store ("STOP\u0000"): the opt-out
      // is kept, with the evidence made storable and flagged.
      const signalKey = storableText(rawKey)
      const { evidence, changed } = storableEvidence({ ...base, ...rawEvidence, signal_key: signalKey })
      if (changed) evidence.evidence_sanitized = true
      return groups.map((g) => ({
        identities,
        subscriptionGroupId: g,
        state,
        occurredAt,
        source,
        method: 'whatsapp',
        evidence,
        dedupeKey: `${signalKey}:${g}`,
        platformStop,
      }))
    }

    if (s.kind === 'message') {
      const match = matchKeyword(w.settings, s.candidates)
      if (!match) return { items: [] }
      const source = s.messageType === 'text' ? 'inbound_keyword' : 'template_button'
      const signalKey = `wa:msg:${s.messageId}`
      const evidence = {
        message_id: s.messageId,
        message_type: s.messageType,
        ...s.content,
        context_message_id: s.contextId,
        matched_keyword: match.rule.keyword,
        matched_field: match.field,
        match: match.how,
        keyword_action: match.rule.action,
        keyword_scope: match.rule.scope,
      }
      if (match.rule.action === 'opt_out') {
        return { items: items(scopeGroups(w, match.rule.scope), 'unsubscribed', source, signalKey, evidence), optOut: true }
      }
      const plan = planRestore(await historyOf(tx, w.id, identities, occurredAt), { kind: 'keyword' })
      if (!plan.found) return { items: [], deferred: true }
      if (plan.resumed) return { items: [] }
      const allowed = new Set(scopeGroups(w, match.rule.scope))
      const groups = [...plan.restore].filter((g) => allowed.has(g))
      return { items: items(groups, 'subscribed', source, signalKey, { ...evidence, restores_message_id: plan.anchor.messageId, restores_signal_key: plan.anchor.signalKey }) }
    }

    if (s.kind === 'delivery_error') {
      const signalKey = `wa:status:${s.statusId}:131050`
      const evidence = { status_id: s.statusId, error_code: s.code, error_title: s.title }
      const groups = platformGroups(w, s.phoneNumberId)
      return { items: items(groups, 'unsubscribed', 'meta_delivery_error', signalKey, evidence, { action: 'stop', phoneNumberId: s.phoneNumberId }), optOut: true }
    }

    // user_preferences
    const signalKey = `wa:pref:${s.who.bsuid ?? s.who.waId ?? 'unknown'}:${s.value}:${s.rawTimestamp ?? 'none'}`
    const evidence = { user_preference: s.value, category: s.category, detail: s.detail }
    if (s.value === 'stop') {
      const groups = platformGroups(w, s.phoneNumberId)
      return { items: items(groups, 'unsubscribed', 'meta_user_preferences', signalKey, evidence, { action: 'stop', phoneNumberId: s.phoneNumberId }), optOut: true }
    }
    const plan = planRestore(await historyOf(tx, w.id, identities, occurredAt), { kind: 'platform', phoneNumberId: s.phoneNumberId })
    if (!plan.found) return { items: [], deferred: true }
    if (plan.resumed) return { items: [] } // already resumed
    // One event per group the latest stop named, each carrying the resume (it clears the platform
    // stop): `subscribed` where the stops took a subscription away, else the group's state as it
    // stands at the resume's time (consent unchanged), so a resume never grants consent.
    const active = new Set(w.groups.map((g) => g.id))
    const resume = { action: 'resume' as const, phoneNumberId: s.phoneNumberId }
    const ev = { ...evidence, resumes_signal_key: plan.anchor.signalKey }
    const out: AppendItem[] = []
    for (const g of new Set([...plan.named, ...plan.restore])) {
      if (!active.has(g)) continue
      const restored = plan.restore.has(g)
      out.push(...items([g], restored ? 'subscribed' : (plan.stateAt.get(g) ?? 'unsubscribed'), 'meta_user_preferences', signalKey, { ...ev, restored }, resume))
    }
    return { items: out }
  }

  /** Reprocesses the unmapped rows that name a number just mapped; returns how many were processed. */
  async function afterMapping(phoneNumberId: string, ctx: ProcessContext): Promise<number> {
    let n = 0
    for (const id of await inbox.unmappedIds(phoneNumberId, 1000)) {
      if ((await process(id, 'mapped', ctx)) !== null) n++
    }
    return n
  }

  /**
   * Finishes what a crash or a lost race left: pending rows untouched for `staleMs`, unmapped rows
   * whose numbers are all mapped by now; and retires deferred rows older than DEFER_DAYS.
   */
  async function sweep(staleMs: number, ctx: ProcessContext, limit = 500): Promise<number> {
    let n = 0
    for (const id of await inbox.pendingIds(staleMs, limit)) if ((await process(id, 'sweep', ctx)) !== null) n++
    for (const id of await inbox.unmappedIds(null, limit)) if ((await process(id, 'sweep', ctx)) !== null) n++
    await inbox.expireDeferred()
    return n
  }

  return { receive, process, afterMapping, sweep, idle }
}

/** A processed row's status and note, from what happened to its signals. */
function rowStatus(rejected: Map<string, number>, unmapped: boolean, deferred: boolean, failed?: string): { status: InboxStatus; lastError: string | null } {
  if (failed) return { status: 'failed', lastError: failed }
  if (rejected.size > 0) return { status: 'failed', lastError: `rejected by the ledger: ${[...rejected].map(([code, n]) => `${code} x${n}`).join(', ')}` }
  if (unmapped) return { status: 'unmapped', lastError: null }
  if (deferred) return { status: 'deferred', lastError: 'waiting for an opt-out to restore (START/UNSTOP or resume arrived first)' }
  return { status: 'processed', lastError: null }
}

/**
 * The ledger identities of a signal: the phone (wa_id) and/or the BSUID, linked when both are
 * present. Meta vouches for a wa_id: one that libphonenumber does not accept as valid is still the
 * phone `+<wa_id>` when it is a possible number (`unverified`, flagged `phone_unverified` in the
 * evidence), so an opt-out is never lost for a formatting reason. One that is not even possible is
 * left out when a BSUID identifies the person; alone it is kept, so the ledger rejects the item
 * (invalid_phone) and the row is kept as failed (listed, replayable).
 */
function identitiesOf(s: Signal): { identities: RawIdentity[]; phoneUnverified: boolean } {
  const out: RawIdentity[] = []
  let phoneUnverified = false
  if (s.who.waId !== undefined) {
    if (normalizePhone(s.who.waId) !== null) out.push({ type: 'phone', value: s.who.waId })
    else if (possiblePhone(s.who.waId) !== null) {
      out.push({ type: 'phone', value: s.who.waId, unverified: true })
      phoneUnverified = true
    } else if (s.who.bsuid === undefined) out.push({ type: 'phone', value: s.who.waId })
  }
  if (s.who.bsuid !== undefined) out.push({ type: 'bsuid', value: s.who.bsuid })
  return { identities: out, phoneUnverified }
}

// A NUL, or a UTF-16 surrogate without its pair (JSON allows both as escapes).
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g

/**
 * Text PostgreSQL can store: NUL dropped, a lone surrogate replaced by U+FFFD. Applied to the
 * evidence before the ledger hashes it, so the stored and the hashed values are the same (the raw
 * payload, with its body_sha256, stays in the inbox).
 */
export function storableText(v: string): string {
  return v.replace(UNSTORABLE, (c) => (c === '\u0000' ? '' : '\uFFFD'))
}

/** The evidence with every string made storable; `changed` when anything was. */
function storableEvidence(ev: Record<string, unknown>): { evidence: Record<string, unknown>; changed: boolean } {
  let changed = false
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') {
      const c = storableText(v)
      if (c !== v) changed = true
      return c
    }
    if (Array.isArray(v)) return v.map(walk)
    if (v !== null && typeof v === 'object') {
      const o: Record<string, unknown> = {}
      for (const [k, x] of Object.entries(v)) o[walk(k) as string] = walk(x)
      return o
    }
    return v
  }
  const evidence = walk(ev) as Record<string, unknown>
  return { evidence, changed }
}

export type WebhookProcessor = ReturnType<typeof createWebhookProcessor>
