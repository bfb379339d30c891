/**
 * A workspace's own Meta app (docs/webhook.md "Tenancy"): its app secrets (a list, for rotation)
 * and its webhook verify token, kept in workspace_settings.
 */
import type { Sql } from '../db/sql.js'

export interface WorkspaceWhatsApp {
  secrets: string[]
  verifyToken: string | null
}

/** The workspace's own app secrets and verify token (none when the workspace does not exist). */
export async function readWorkspaceWhatsApp(sql: Sql, workspaceId: string): Promise<WorkspaceWhatsApp> {
  const [row] = await sql.query<{ whatsapp_app_secrets: string[]; whatsapp_verify_token: string | null }>(
    `SELECT whatsapp_app_secrets, whatsapp_verify_token FROM workspace_settings WHERE workspace_id = $1`,
    [workspaceId],
  )
  return { secrets: row?.whatsapp_app_secrets ?? [], verifyToken: row?.whatsapp_verify_token ?? null }
}

/** Replaces the app secrets and the verify token, leaving the row's other columns as they are. */
export async function writeWorkspaceWhatsApp(sql: Sql, workspaceId: string, s: WorkspaceWhatsApp): Promise<void> {
  await sql.query(
    `INSERT INTO workspace_settings (workspace_id, whatsapp_app_secrets, whatsapp_verify_token, updated_at) VALUES ($1, $2::text[], $3, now())
     ON CONFLICT (workspace_id) DO UPDATE
        SET whatsapp_app_secrets = excluded.whatsapp_app_secrets, whatsapp_verify_token = excluded.whatsapp_verify_token, updated_at = now()`,
    [workspaceId, s.secrets, s.verifyToken],
  )
}
