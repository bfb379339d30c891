/**
 * Idempotency-Key on write routes (draft-ietf-httpapi-idempotency-key-header, Stripe's semantics):
 * - the same key and the same request replays the first answer (status and body) for
 *   IDEMPOTENCY_TTL_HOURS (24 h by default), with `idempotent-replayed: true`;
 * - the same key with a different request (method, route or body) answers 422;
 * - a duplicate that arrives while the first is still in flight answers 409;
 * - the work and the stored answer commit in ONE transaction, so there is exactly one ledger write
 *   whatever happens (a crash before commit leaves no key and no event; the retry runs afresh).
 * Keys are scoped to the workspace. Failed requests (4xx/5xx thrown) store nothing: nothing
 * changed, so a retry may run again.
 */
import { createHash } from 'node:crypto'
import type { Sql } from '../db/sql.js'
import { canonicalJson } from '../ledger/canonical-json.js'
import { badRequest, conflict, unprocessable } from '../errors/domain-error.js'

export interface IdempotentResult {
  statusCode: number
  body: unknown
  /**
   * What a replay answers when it must differ from the first answer: a secret shown once (a new API
   * key) is not kept in the store, so its replay leaves it out. Default: `body`.
   */
  replayBody?: unknown
}

export interface IdempotentRequest {
  workspaceId: string
  key: string | undefined
  method: string
  route: string
  body: unknown
}

export type Outcome = IdempotentResult & { replayed: boolean }

const KEY = /^[\x21-\x7e]{1,255}$/

export function createIdempotency(sql: Sql, ttlHours: number) {
  async function run(req: IdempotentRequest, work: (tx: Sql) => Promise<IdempotentResult>): Promise<Outcome> {
    if (req.key === undefined) {
      const r = await sql.tx(work)
      return { statusCode: r.statusCode, body: r.body, replayed: false }
    }
    if (!KEY.test(req.key)) throw badRequest('invalid_idempotency_key', 'Idempotency-Key must be 1 to 255 visible ASCII characters')
    const key = req.key
    const fingerprint = `${req.method} ${req.route} ${createHash('sha256').update(canonicalJson(req.body ?? null)).digest('hex')}`
    return sql.tx(async (tx) => {
      const [lock] = await tx.query<{ ok: boolean }>(`SELECT pg_try_advisory_xact_lock(hashtextextended($1, 1)) AS ok`, [
        `${req.workspaceId}:${key}`,
      ])
      if (!lock!.ok) throw conflict('idempotency_in_flight', 'a request with this Idempotency-Key is still being processed; retry later')
      const [prior] = await tx.query<{ fingerprint: string; status_code: number; response_body: string; expired: boolean }>(
        `SELECT fingerprint, status_code, response_body, created_at < now() - make_interval(hours => $3) AS expired
           FROM idempotency_keys WHERE workspace_id = $1 AND key = $2`,
        [req.workspaceId, key, ttlHours],
      )
      if (prior && !prior.expired) {
        if (prior.fingerprint !== fingerprint) {
          throw unprocessable('idempotency_key_reused', 'this Idempotency-Key was used for a different request')
        }
        return { statusCode: prior.status_code, body: JSON.parse(prior.response_body), replayed: true }
      }
      const result = await work(tx)
      await tx.query(
        `INSERT INTO idempotency_keys (workspace_id, key, fingerprint, status_code, response_body, content_type)
         VALUES ($1, $2, $3, $4, $5, 'application/json')
         ON CONFLICT (workspace_id, key) DO UPDATE
            SET fingerprint = excluded.fingerprint, status_code = excluded.status_code,
                response_body = excluded.response_body, created_at = now()`,
        [req.workspaceId, key, fingerprint, result.statusCode, JSON.stringify(result.replayBody ?? result.body)],
      )
      return { statusCode: result.statusCode, body: result.body, replayed: false }
    })
  }
  return { run }
}

export type Idempotency = ReturnType<typeof createIdempotency>
