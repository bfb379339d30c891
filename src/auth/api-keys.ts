/**
 * API keys: `cl_<prefix>_<secret>`. Only sha256(key) is stored; `prefix` (non-secret) finds the row.
 * The bootstrap root key (CONSENT_ADMIN_KEY) may have any shape; its lookup prefix is derived from
 * its hash. A key of another shape that is not this instance's root key is refused unlooked-up, so
 * changing CONSENT_ADMIN_KEY takes effect on each instance when it restarts with the new value. Scopes: consent:write, consent:read, audit:read, admin (admin implies all).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { Sql } from '../db/sql.js'

export const SCOPES = ['consent:write', 'consent:read', 'audit:read', 'admin'] as const
export type Scope = (typeof SCOPES)[number]

/** Workspace `default`, owned by the root key. A fixed id so every instance agrees on it. */
export const DEFAULT_WORKSPACE_ID = '00000000-0000-4000-8000-000000000001'

export interface ApiKeyRow {
  workspace_id: string
  id: string
  name: string
  prefix: string
  scopes: string[]
  is_root: boolean
  created_at: Date
  revoked_at: Date | null
  last_used_at: Date | null
  rate_limit_max: number | null
}

export interface Principal {
  workspaceId: string
  keyId: string
  scopes: Set<string>
  isRoot: boolean
  /** Per-key rate limit override (requests per window). */
  rateLimitMax: number | null
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex')

const KEY_SHAPE = /^cl_([a-z0-9]{12})_[A-Za-z0-9_-]{20,200}$/

export function prefixOf(key: string): string {
  const m = KEY_SHAPE.exec(key)
  return m ? m[1]! : `h${sha256(key).slice(0, 15)}`
}

export function generateKey(): { key: string; prefix: string; hash: string } {
  const prefix = randomBytes(9).toString('base64url').toLowerCase().replace(/[^a-z0-9]/g, '0').slice(0, 12)
  const key = `cl_${prefix}_${randomBytes(24).toString('base64url')}`
  return { key, prefix, hash: sha256(key) }
}

export const hasScope = (p: Principal, scope: Scope) => p.scopes.has('admin') || p.scopes.has(scope)

const PUBLIC_COLUMNS = 'workspace_id, id, name, prefix, scopes, is_root, created_at, revoked_at, last_used_at, rate_limit_max'

export function createApiKeyService(sql: Sql) {
  /**
   * Principals of the keys seen lately, by the presented key itself, so a hit (every pre-send check
   * but the first of a key in CACHE_MS) costs one Map lookup and no hashing. The raw keys stay in
   * this process's memory for at most CACHE_MS, as long as a slow request carrying them would.
   * Revocation clears the cache.
   */
  const cache = new Map<string, { principal: Principal | null; until: number }>()
  const CACHE_MS = 5_000
  const touched = new Map<string, number>()

  /** The principal of `key` when it was looked up lately (null: unknown or revoked), else undefined. */
  function cached(key: string): Principal | null | undefined {
    const hit = cache.get(key)
    return hit !== undefined && hit.until > Date.now() ? hit.principal : undefined
  }

  /** sha256 of the root key (CONSENT_ADMIN_KEY), the only key that may have another shape. */
  let rootHash: string | undefined

  async function authenticate(key: string): Promise<Principal | null> {
    const hit = cached(key)
    if (hit !== undefined) return hit
    const hash = sha256(key)
    // Keys we issue have one shape; the root key is known. Anything else cannot be valid, and is
    // refused without a lookup (a flood of made-up keys must not become a flood of queries).
    if (!KEY_SHAPE.test(key) && hash !== rootHash) return null
    const rows = await sql.query<ApiKeyRow & { key_hash: string }>(
      `SELECT ${PUBLIC_COLUMNS}, key_hash FROM api_keys WHERE prefix = $1 AND revoked_at IS NULL`,
      [prefixOf(key)],
      'api-key-by-prefix',
    )
    const row = rows.find((r) => timingSafeEqual(Buffer.from(r.key_hash), Buffer.from(hash)))
    const principal = row
      ? { workspaceId: row.workspace_id, keyId: row.id, scopes: new Set(row.scopes), isRoot: row.is_root, rateLimitMax: row.rate_limit_max }
      : null
    cache.set(key, { principal, until: Date.now() + CACHE_MS })
    if (cache.size > 10_000) cache.delete(cache.keys().next().value!)
    if (principal) touch(principal)
    return principal
  }

  /** last_used_at, written at most once a minute per key and never on the request's critical path. */
  function touch(p: Principal) {
    const last = touched.get(p.keyId) ?? 0
    if (Date.now() - last < 60_000) return
    touched.set(p.keyId, Date.now())
    sql
      .query(`UPDATE api_keys SET last_used_at = now() WHERE workspace_id = $1 AND id = $2`, [p.workspaceId, p.keyId])
      .catch(() => touched.delete(p.keyId))
  }

  /** `opts.tx`: create inside the caller's transaction (an Idempotency-Key's work). */
  async function create(
    workspaceId: string,
    name: string,
    scopes: string[],
    opts: { isRoot?: boolean; key?: string; rateLimitMax?: number | null; tx?: Sql } = {},
  ) {
    const gen = opts.key ? { key: opts.key, prefix: prefixOf(opts.key), hash: sha256(opts.key) } : generateKey()
    const [row] = await (opts.tx ?? sql).query<ApiKeyRow>(
      `INSERT INTO api_keys (workspace_id, name, prefix, key_hash, scopes, is_root, rate_limit_max)
       VALUES ($1, $2, $3, $4, $5::text[], $6, $7) RETURNING ${PUBLIC_COLUMNS}`,
      [workspaceId, name, gen.prefix, gen.hash, [...new Set(scopes)], opts.isRoot ?? false, opts.rateLimitMax ?? null],
    )
    return { ...row!, key: gen.key }
  }

  async function list(workspaceId: string) {
    return sql.query<ApiKeyRow>(`SELECT ${PUBLIC_COLUMNS} FROM api_keys WHERE workspace_id = $1 ORDER BY created_at, id`, [workspaceId])
  }

  async function revoke(workspaceId: string, id: string): Promise<ApiKeyRow | null> {
    const [row] = await sql.query<ApiKeyRow>(
      `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE workspace_id = $1 AND id = $2 AND NOT is_root
       RETURNING ${PUBLIC_COLUMNS}`,
      [workspaceId, id],
    )
    cache.clear()
    return row ?? null
  }

  /**
   * Make CONSENT_ADMIN_KEY the root key of workspace `default` (created if missing); a previous
   * root key that differs is revoked. Idempotent; safe when several instances start together.
   */
  async function ensureRoot(rootKey: string | undefined): Promise<void> {
    await sql.tx(async (tx) => {
      await tx.query(`SELECT pg_advisory_xact_lock(727002)`)
      await tx.query(`INSERT INTO workspaces (id, name) VALUES ($1, 'default') ON CONFLICT (id) DO NOTHING`, [DEFAULT_WORKSPACE_ID])
      await tx.query(`INSERT INTO workspace_settings (workspace_id) VALUES ($1) ON CONFLICT DO NOTHING`, [DEFAULT_WORKSPACE_ID])
      if (!rootKey) return
      const hash = sha256(rootKey)
      rootHash = hash
      const existing = await tx.query<{ id: string; key_hash: string }>(
        `SELECT id, key_hash FROM api_keys WHERE workspace_id = $1 AND is_root AND revoked_at IS NULL`,
        [DEFAULT_WORKSPACE_ID],
      )
      if (existing.some((e) => e.key_hash === hash)) return
      await tx.query(`UPDATE api_keys SET revoked_at = now() WHERE workspace_id = $1 AND is_root AND revoked_at IS NULL`, [DEFAULT_WORKSPACE_ID])
      await tx.query(
        `INSERT INTO api_keys (workspace_id, name, prefix, key_hash, scopes, is_root) VALUES ($1, 'root (CONSENT_ADMIN_KEY)', $2, $3, '{admin}', true)`,
        [DEFAULT_WORKSPACE_ID, prefixOf(rootKey), hash],
      )
    })
    cache.clear()
  }

  return { authenticate, cached, create, list, revoke, ensureRoot }
}

export type ApiKeyService = ReturnType<typeof createApiKeyService>
