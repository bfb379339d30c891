/**
 * A workspace's consent settings (the workspace_settings columns the ledger reads). A workspace
 * without a row reads the defaults, which are what the ledger applies when the row is missing.
 * Writing upserts the row without touching its other columns (keywords, WhatsApp app).
 */
import type { Sql } from '../db/sql.js'
import type { ConsentSettings } from '../schemas/settings.js'

const DEFAULTS: ConsentSettings = { require_evidence_to_override_opt_out: true }

export async function readConsentSettings(sql: Sql, workspaceId: string): Promise<ConsentSettings> {
  const [row] = await sql.query<ConsentSettings>(
    `SELECT require_evidence_to_override_opt_out FROM workspace_settings WHERE workspace_id = $1`,
    [workspaceId],
  )
  return row ?? DEFAULTS
}

export async function writeConsentSettings(sql: Sql, workspaceId: string, s: ConsentSettings): Promise<ConsentSettings> {
  const [row] = await sql.query<ConsentSettings>(
    `INSERT INTO workspace_settings (workspace_id, require_evidence_to_override_opt_out, updated_at)
     VALUES ($1, $2, now())
     ON CONFLICT (workspace_id) DO UPDATE
        SET require_evidence_to_override_opt_out = excluded.require_evidence_to_override_opt_out, updated_at = now()
     RETURNING require_evidence_to_override_opt_out`,
    [workspaceId, s.require_evidence_to_override_opt_out],
  )
  return row!
}
