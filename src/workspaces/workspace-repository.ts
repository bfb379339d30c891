/**
 * Workspaces (tenants): created and listed by the operator's root key. A new workspace gets its
 * workspace_settings row in the same transaction, so every workspace has one from the start.
 */
import type { Sql } from '../db/sql.js'

export interface WorkspaceRow {
  id: string
  name: string
  created_at: Date
}

/** Creates a workspace and its settings row inside the caller's transaction (an Idempotency-Key's work). */
export async function insertWorkspace(tx: Sql, name: string): Promise<WorkspaceRow> {
  const [w] = await tx.query<WorkspaceRow>(`INSERT INTO workspaces (name) VALUES ($1) RETURNING id, name, created_at`, [name])
  await tx.query(`INSERT INTO workspace_settings (workspace_id) VALUES ($1)`, [w!.id])
  return w!
}

/** Every workspace, oldest first. */
export async function listWorkspaces(sql: Sql): Promise<WorkspaceRow[]> {
  return sql.query<WorkspaceRow>(`SELECT id, name, created_at FROM workspaces ORDER BY created_at, id`)
}

/** Whether the workspace exists (`id` must be a UUID: the column is uuid). */
export async function workspaceExists(sql: Sql, id: string): Promise<boolean> {
  const [w] = await sql.query(`SELECT 1 FROM workspaces WHERE id = $1`, [id])
  return w !== undefined
}

export function createWorkspaceRepository(sql: Sql) {
  return {
    insert: insertWorkspace,
    list: () => listWorkspaces(sql),
    exists: workspaceExists,
  }
}

export type WorkspaceRepository = ReturnType<typeof createWorkspaceRepository>
