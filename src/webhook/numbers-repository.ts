/**
 * WhatsApp business numbers mapped to workspaces (`whatsapp_numbers`, DESIGN §3.3
 * `POST|GET /whatsapp/numbers`). A number belongs to one workspace: `phone_number_id` is unique on
 * its own, because a webhook names the number before anyone knows the workspace.
 */
import type { Sql } from '../db/sql.js'
import { conflict } from '../errors/domain-error.js'

export interface NumberRow {
  phone_number_id: string
  display_phone_number: string | null
  created_at: Date
}

export function toNumberDto(r: NumberRow) {
  return { phone_number_id: r.phone_number_id, display_phone_number: r.display_phone_number, created_at: new Date(r.created_at).toISOString() }
}

const COLUMNS = 'phone_number_id, display_phone_number, created_at'

export function createNumbersRepository(sql: Sql) {
  return {
    async list(workspaceId: string): Promise<NumberRow[]> {
      return sql.query<NumberRow>(`SELECT ${COLUMNS} FROM whatsapp_numbers WHERE workspace_id = $1 ORDER BY created_at, phone_number_id`, [workspaceId])
    },

    async get(workspaceId: string, phoneNumberId: string): Promise<NumberRow | null> {
      const [row] = await sql.query<NumberRow>(`SELECT ${COLUMNS} FROM whatsapp_numbers WHERE workspace_id = $1 AND phone_number_id = $2`, [
        workspaceId,
        phoneNumberId,
      ])
      return row ?? null
    },

    /**
     * Maps a number to the workspace. Already this workspace's: answers it (`created: false`), with
     * the display number updated when one is given. Another workspace's: 409.
     */
    async map(tx: Sql, workspaceId: string, phoneNumberId: string, display: string | undefined): Promise<{ row: NumberRow; created: boolean }> {
      const [created] = await tx.query<NumberRow>(
        `INSERT INTO whatsapp_numbers (workspace_id, phone_number_id, display_phone_number) VALUES ($1, $2, $3)
         ON CONFLICT (phone_number_id) DO NOTHING RETURNING ${COLUMNS}`,
        [workspaceId, phoneNumberId, display ?? null],
      )
      if (created) return { row: created, created: true }
      const [mine] = await tx.query<NumberRow>(
        `UPDATE whatsapp_numbers SET display_phone_number = COALESCE($3, display_phone_number)
          WHERE workspace_id = $1 AND phone_number_id = $2 RETURNING ${COLUMNS}`,
        [workspaceId, phoneNumberId, display ?? null],
      )
      if (mine) return { row: mine, created: false }
      throw conflict('phone_number_mapped_elsewhere', `phone_number_id ${phoneNumberId} belongs to another workspace`)
    },
  }
}

export type NumbersRepository = ReturnType<typeof createNumbersRepository>
