/**
 * Per-workspace keyword settings (`GET|PUT /settings/keywords`; defaults in docs/webhook.md), stored as JSON in
 * `workspace_settings.keywords`; null (or no row) means DEFAULT_KEYWORD_SETTINGS. Writing touches
 * only that column (the consent settings in the same row are left alone).
 */
import type { Sql } from '../db/sql.js'
import { unprocessable } from '../errors/domain-error.js'
import { DEFAULT_KEYWORD_SETTINGS, normalizeKeywordSettings, type KeywordSettings } from './keywords.js'

export async function readKeywordSettings(sql: Sql, workspaceId: string): Promise<KeywordSettings> {
  const [row] = await sql.query<{ keywords: unknown }>(`SELECT keywords FROM workspace_settings WHERE workspace_id = $1`, [workspaceId])
  return keywordSettingsFrom(row?.keywords)
}

/** The stored JSON (null: defaults). A partial document (written by hand) falls back field by field. */
export function keywordSettingsFrom(stored: unknown): KeywordSettings {
  if (!stored || typeof stored !== 'object') return DEFAULT_KEYWORD_SETTINGS
  const k = stored as Partial<KeywordSettings>
  return {
    enabled: typeof k.enabled === 'boolean' ? k.enabled : DEFAULT_KEYWORD_SETTINGS.enabled,
    mode: k.mode === 'lenient' ? 'lenient' : 'exact',
    rules: Array.isArray(k.rules) ? k.rules : DEFAULT_KEYWORD_SETTINGS.rules,
  }
}

/**
 * Validates (keywords non-empty once normalised, unique; listed groups are WhatsApp groups of this
 * workspace) and stores the normalised settings. 422 with JSON pointers otherwise; nothing changes.
 */
export async function writeKeywordSettings(sql: Sql, workspaceId: string, input: KeywordSettings): Promise<KeywordSettings> {
  const { settings, problems } = normalizeKeywordSettings(input)
  const ids = [...new Set(settings.rules.flatMap((r) => (Array.isArray(r.scope) ? r.scope : [])))]
  if (ids.length > 0) {
    const rows = await sql.query<{ id: string; channel: string }>(
      `SELECT g.id::text AS id, g.channel FROM subscription_groups g
        WHERE g.workspace_id = $1 AND g.id::text = ANY($2::text[])`,
      [workspaceId, ids],
    )
    const known = new Map(rows.map((r) => [r.id, r.channel]))
    settings.rules.forEach((r, i) => {
      if (!Array.isArray(r.scope)) return
      r.scope.forEach((g, j) => {
        const channel = known.get(g)
        if (channel === undefined) {
          problems.push({ pointer: `/body/rules/${i}/scope/${j}`, code: 'unknown_subscription_group', message: `subscription group ${g} does not exist` })
        } else if (channel !== 'whatsapp') {
          problems.push({ pointer: `/body/rules/${i}/scope/${j}`, code: 'invalid_scope', message: `subscription group ${g} is not a WhatsApp group` })
        }
      })
    })
  }
  if (problems.length > 0) {
    throw unprocessable('invalid_keyword_settings', 'The keyword settings are invalid; nothing was changed.', problems)
  }
  await sql.query(
    `INSERT INTO workspace_settings (workspace_id, keywords, updated_at) VALUES ($1, $2::jsonb, now())
     ON CONFLICT (workspace_id) DO UPDATE SET keywords = excluded.keywords, updated_at = now()`,
    [workspaceId, JSON.stringify(settings)],
  )
  return settings
}
