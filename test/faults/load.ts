/**
 * The load of a fault scenario and its bookkeeping: concurrent writers that append one consent
 * event per request through `POST /consent/events`, each with its own `Idempotency-Key` and its own
 * phone number, retrying the same key after a failed attempt (a dropped connection, a 503) as a
 * careful client would. Every answer is recorded with its time, so a scenario can count what
 * happened during its fault; every acknowledged (200, applied) key is kept with its event_id, so
 * the ledger can be checked afterwards: each acknowledged event present exactly once, and no key
 * (acknowledged or not) appended twice.
 */
import { sign } from '../../src/webhook/signature.js'
import { PgCluster, sleep } from './processes.js'

export interface Answer {
  /** ms since the epoch, when the answer (or the failure) arrived. */
  at: number
  /** HTTP status, or 0 for a failed connection / reset / timeout. */
  status: number
  retryAfter: string | null
  route: string
}

export interface Ack {
  key: string
  eventId: string
  phone: string
  at: number
}

export interface LoadOptions {
  /** Concurrent writers. */
  writers: number
  /** Concurrent pre-send checks (readers), on phones already acknowledged. */
  readers?: number
  /** Pause between a writer's failed attempt and its retry. */
  retryDelayMs?: number
  /** Prefix of the Idempotency-Keys (unique per scenario). */
  prefix: string
  /** First phone number offset, so two loads on one database never share a number. */
  phoneBase?: number
}

export class Load {
  readonly answers: Answer[] = []
  readonly acks = new Map<string, Ack>()
  readonly prefix: string
  /** Answers that were not 200/applied nor a retryable failure (4xx other than 409/429): a test bug or a service bug. */
  readonly unexpected: { key: string; status: number; body: string }[] = []
  private base: string
  private stopped = false
  private loops: Promise<void>[] = []
  private seq = 0
  /** Requests sent but not answered yet. */
  inFlight = 0

  constructor(
    base: string,
    private readonly auth: { authorization: string },
    private readonly groupId: string,
    private readonly opts: LoadOptions,
  ) {
    this.base = base
    this.prefix = opts.prefix
  }

  /** Points the load at another instance (a restarted service on a new port). */
  retarget(base: string) {
    this.base = base
  }

  start(): this {
    for (let w = 0; w < this.opts.writers; w++) this.loops.push(this.writer())
    for (let r = 0; r < (this.opts.readers ?? 0); r++) this.loops.push(this.reader())
    return this
  }

  /** Stops issuing new requests; resolves once every loop has finished its current request. */
  async stop(): Promise<void> {
    this.stopped = true
    await Promise.all(this.loops)
  }

  private record(route: string, status: number, retryAfter: string | null) {
    this.answers.push({ at: Date.now(), status, retryAfter, route })
  }

  private phoneOf(n: number): string {
    return `+1415${2_000_000 + (this.opts.phoneBase ?? 0) + n}`
  }

  private async writer(): Promise<void> {
    while (!this.stopped) {
      const n = this.seq++
      const key = `${this.opts.prefix}-${n}`
      const phone = this.phoneOf(n)
      const body = JSON.stringify({ events: [{ phone, subscription_group_id: this.groupId, state: 'subscribed', method: 'web_form', evidence: { consent_text: 'faults' } }] })
      // The same key until acknowledged: a retry of a request that did commit replays its answer.
      for (;;) {
        this.inFlight++
        let status = 0
        let retryAfter: string | null = null
        let text = ''
        try {
          const r = await fetch(`${this.base}/consent/events`, {
            method: 'POST',
            headers: { ...this.auth, 'content-type': 'application/json', 'idempotency-key': key },
            body,
            signal: AbortSignal.timeout(30_000),
          })
          status = r.status
          retryAfter = r.headers.get('retry-after')
          text = await r.text()
        } catch {
          status = 0
        } finally {
          this.inFlight--
        }
        this.record('events', status, retryAfter)
        if (status === 200) {
          const res = JSON.parse(text) as { results: { status: string; event_id?: string }[] }
          const item = res.results[0]
          if (item?.status === 'applied' && item.event_id) this.acks.set(key, { key, eventId: item.event_id, phone, at: Date.now() })
          else this.unexpected.push({ key, status, body: text })
          break
        }
        if (status >= 400 && status < 500 && status !== 409 && status !== 429) {
          this.unexpected.push({ key, status, body: text })
          break
        }
        if (this.stopped) break
        await sleep(this.opts.retryDelayMs ?? 100)
      }
    }
  }

  private async reader(): Promise<void> {
    while (!this.stopped) {
      const phones = [...this.acks.values()].slice(-20).map((a) => a.phone)
      if (phones.length === 0) phones.push(this.phoneOf(0))
      this.inFlight++
      let status = 0
      let retryAfter: string | null = null
      try {
        const r = await fetch(`${this.base}/consent/check`, {
          method: 'POST',
          headers: { ...this.auth, 'content-type': 'application/json' },
          body: JSON.stringify({ subscription_group_id: this.groupId, phones }),
          signal: AbortSignal.timeout(30_000),
        })
        status = r.status
        retryAfter = r.headers.get('retry-after')
        await r.arrayBuffer()
      } catch {
        status = 0
      } finally {
        this.inFlight--
      }
      this.record('check', status, retryAfter)
      await sleep(status === 200 ? 5 : (this.opts.retryDelayMs ?? 100))
    }
  }

  /** Time of the first 2xx that arrived at or after `from` (waits for it up to `timeoutMs`). */
  async firstOkAfter(from: number, timeoutMs = 60_000, giveUp: () => boolean = () => false): Promise<number | undefined> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const hit = this.answers.find((a) => a.at >= from && a.status >= 200 && a.status < 300)
      if (hit) return hit.at
      if (Date.now() > deadline || giveUp()) return undefined
      await sleep(20)
    }
  }

  /** Answers that arrived in [from, to). */
  between(from: number, to: number = Infinity): Answer[] {
    return this.answers.filter((a) => a.at >= from && a.at < to)
  }
}

/** Counts of a window of answers: 5xx other than 503, 503s, 503s without Retry-After, failed connections. */
export function tally(answers: Answer[]) {
  return {
    total: answers.length,
    ok: answers.filter((a) => a.status >= 200 && a.status < 300).length,
    fiveXX: answers.filter((a) => a.status >= 500 && a.status !== 503).length,
    s503: answers.filter((a) => a.status === 503).length,
    s503NoRetryAfter: answers.filter((a) => a.status === 503 && !a.retryAfter).length,
    refused: answers.filter((a) => a.status === 0).length,
    statuses: [...new Set(answers.map((a) => a.status))].sort((a, b) => a - b),
  }
}

/**
 * The ledger against the acknowledgements: `lost` acknowledged events missing from the ledger,
 * `duplicated` keys of this load with more than one event (acknowledged or not; one event per key),
 * and `wrongEvent` acknowledged keys whose event in the ledger has another event_id.
 */
export async function checkLedger(cluster: PgCluster, database: string, load: Load) {
  // The acknowledgements first: each committed before its answer, so before the query below
  // starts. Read after it, a write acknowledged meanwhile (the load may still run) would look lost.
  const acks = [...load.acks.values()]
  const rows = await cluster.query<{ key: string; n: number; event_ids: string[] }>(
    `SELECT idempotency_key AS key, count(*)::int AS n, array_agg(event_id::text) AS event_ids
       FROM consent_events WHERE starts_with(idempotency_key, $1) GROUP BY idempotency_key`,
    [`${load.prefix}-`],
    database,
  )
  const byKey = new Map(rows.map((r) => [r.key, r]))
  let lost = 0
  let wrongEvent = 0
  for (const ack of acks) {
    const row = byKey.get(ack.key)
    if (!row) lost++
    else if (!row.event_ids.includes(ack.eventId)) wrongEvent++
  }
  const duplicated = rows.filter((r) => r.n > 1).length
  return { acknowledged: acks.length, lost, duplicated, wrongEvent, keysInLedger: rows.length }
}

/**
 * Signed Meta `user_preferences` stops, one person each, sent by concurrent senders; every 200 is
 * kept with its inbox id (the payload is committed before the 200; processing may come after).
 */
export class WebhookLoad {
  readonly acked: { inboxId: string; waId: string; status: string }[] = []
  readonly answers: Answer[] = []
  private stopped = false
  private loops: Promise<void>[] = []
  private seq = 0
  private base: string

  constructor(
    base: string,
    private readonly opts: { senders: number; pnid: string; secret: string; template: string },
  ) {
    this.base = base
  }

  retarget(base: string) {
    this.base = base
  }

  start(): this {
    for (let s = 0; s < this.opts.senders; s++) this.loops.push(this.sender())
    return this
  }

  async stop(): Promise<void> {
    this.stopped = true
    await Promise.all(this.loops)
  }

  private async sender(): Promise<void> {
    while (!this.stopped) {
      const n = this.seq++
      const waId = `16282${String(n).padStart(6, '0')}`
      const raw = this.opts.template
        .replaceAll('16505551234', waId)
        .replaceAll('106540352242922', this.opts.pnid)
        .replace(/("timestamp"\s*:\s*)(\d+)/g, `$1${1_760_000_000 + n}`)
      let status = 0
      try {
        const r = await fetch(`${this.base}/webhooks/whatsapp`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-hub-signature-256': sign(raw, this.opts.secret) },
          body: raw,
          signal: AbortSignal.timeout(30_000),
        })
        status = r.status
        const text = await r.text()
        if (status === 200) {
          const ack = JSON.parse(text) as { inbox_id: string; status: string }
          this.acked.push({ inboxId: String(ack.inbox_id), waId, status: ack.status })
        }
      } catch {
        status = 0
      }
      this.answers.push({ at: Date.now(), status, retryAfter: null, route: 'webhook' })
      // Meta redelivers a failed payload later; here a failed one is simply not acknowledged.
      if (status !== 200) await sleep(100)
    }
  }
}
