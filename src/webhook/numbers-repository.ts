/**
 * WhatsApp business numbers mapped to workspaces (`whatsapp_numbers`,
 * `POST|GET /whatsapp/numbers`), and who may receive their webhooks (docs/webhook.md "Tenancy"):
 *   - an OPERATOR mapping (the root key, any admin of the operator's own workspace `default`, or
 *     `POST /workspaces/{id}/whatsapp/numbers`) routes the payloads signed with the operator's app
 *     secret to its workspace; one workspace per number (a unique index), verified when made;
 *   - a WORKSPACE mapping (an admin of any other workspace) is a claim: it routes only the payloads
 *     signed with that workspace's own app secret, so claiming someone else's number gets nothing.
 *     Several workspaces may claim one number; each sees its own claim only, `pending` until a
 *     payload signed with its own secret names it (`verified`). No 409 ever tells a workspace that
 *     someone else has the number.
 */
import type { Sql } from '../db/sql.js'
import { conflict } from '../errors/domain-error.js'

export type MappedBy = 'operator' | 'workspace'

export interface NumberRow {
  phone_number_id: string
  display_phone_number: string | null
  created_at: Date
  mapped_by: MappedBy
  verified_at: Date | null
}

export function toNumberDto(r: NumberRow) {
  return {
    phone_number_id: r.phone_number_id,
    display_phone_number: r.display_phone_number,
    created_at: new Date(r.created_at).toISOString(),
    mapped_by: r.mapped_by,
    status: r.verified_at ? ('verified' as const) : ('pending' as const),
    verified_at: r.verified_at ? new Date(r.verified_at).toISOString() : null,
  }
}

const COLUMNS = 'phone_number_id, display_phone_number, created_at, mapped_by, verified_at'

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
     * the display number updated when one is given. As the operator: a claim of this workspace
     * becomes an operator mapping, and another workspace's operator mapping is a 409 (only the
     * operator ever learns that). As a workspace: a claim, whoever else has the number; verified at
     * once when a payload signed with the workspace's own secret already named it.
     */
    async map(tx: Sql, workspaceId: string, phoneNumberId: string, display: string | undefined, by: MappedBy): Promise<{ row: NumberRow; created: boolean }> {
      if (by === 'operator') {
        const [other] = await tx.query(`SELECT 1 FROM whatsapp_numbers WHERE phone_number_id = $1 AND mapped_by = 'operator' AND workspace_id <> $2`, [
          phoneNumberId,
          workspaceId,
        ])
        if (other) throw mappedElsewhere(phoneNumberId)
        try {
          const [row] = await tx.query<NumberRow & { created: boolean }>(
            `INSERT INTO whatsapp_numbers (workspace_id, phone_number_id, display_phone_number, mapped_by, verified_at) VALUES ($1, $2, $3, 'operator', now())
             ON CONFLICT (workspace_id, phone_number_id) DO UPDATE
                SET display_phone_number = COALESCE(excluded.display_phone_number, whatsapp_numbers.display_phone_number),
                    mapped_by = 'operator', verified_at = COALESCE(whatsapp_numbers.verified_at, now())
             RETURNING ${COLUMNS}, (xmax = 0) AS created`,
            [workspaceId, phoneNumberId, display ?? null],
          )
          return { row: row!, created: row!.created }
        } catch (err) {
          // Another operator mapping of the number committed meanwhile (whatsapp_numbers_operator_key).
          if ((err as { code?: string }).code === '23505') throw mappedElsewhere(phoneNumberId)
          throw err
        }
      }
      const [row] = await tx.query<NumberRow & { created: boolean }>(
        `INSERT INTO whatsapp_numbers (workspace_id, phone_number_id, display_phone_number, mapped_by, verified_at)
         VALUES ($1, $2, $3, 'workspace',
                 CASE WHEN EXISTS (SELECT 1 FROM webhook_inbox i WHERE i.workspace_id = $1 AND $2 = ANY(i.phone_number_ids)) THEN now() END)
         ON CONFLICT (workspace_id, phone_number_id) DO UPDATE
            SET display_phone_number = COALESCE(excluded.display_phone_number, whatsapp_numbers.display_phone_number)
         RETURNING ${COLUMNS}, (xmax = 0) AS created`,
        [workspaceId, phoneNumberId, display ?? null],
      )
      return { row: row!, created: row!.created }
    },

    /** A payload signed with the workspace's own secret named these numbers: its claims are verified. */
    async verifyClaims(workspaceId: string, phoneNumberIds: string[]): Promise<void> {
      if (phoneNumberIds.length === 0) return
      await sql.query(`UPDATE whatsapp_numbers SET verified_at = now() WHERE workspace_id = $1 AND phone_number_id = ANY($2::text[]) AND verified_at IS NULL`, [
        workspaceId,
        phoneNumberIds,
      ])
    },
  }
}

const mappedElsewhere = (phoneNumberId: string) =>
  conflict('phone_number_mapped_elsewhere', `phone_number_id ${phoneNumberId} is mapped by the operator to another workspace`)

export type NumbersRepository = ReturnType<typeof createNumbersRepository>
