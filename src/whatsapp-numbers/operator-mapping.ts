/**
 * The operator (root key) maps a WhatsApp number to a workspace, in one transaction: the workspace
 * must exist, and a number that was the workspace's own claim counts as created (201), since the
 * operator's mapping changes whose payloads it receives (src/webhook/numbers-repository.ts).
 */
import type { Sql } from '../db/sql.js'
import { notFound } from '../errors/domain-error.js'
import type { MappedBy, NumberRow, NumbersRepository } from '../webhook/numbers-repository.js'
import { workspaceExists } from '../workspaces/workspace-repository.js'

async function previousMappingBy(tx: Sql, workspaceId: string, phoneNumberId: string): Promise<MappedBy | null> {
  const [row] = await tx.query<{ mapped_by: MappedBy }>(`SELECT mapped_by FROM whatsapp_numbers WHERE workspace_id = $1 AND phone_number_id = $2`, [
    workspaceId,
    phoneNumberId,
  ])
  return row?.mapped_by ?? null
}

/** `workspaceId` must be a lower-case UUID. */
export async function mapNumberAsOperator(
  sql: Sql,
  numbers: NumbersRepository,
  workspaceId: string,
  phoneNumberId: string,
  display: string | undefined,
): Promise<{ row: NumberRow; created: boolean }> {
  return sql.tx(async (tx) => {
    if (!(await workspaceExists(tx, workspaceId))) throw notFound('workspace')
    const before = await previousMappingBy(tx, workspaceId, phoneNumberId)
    const out = await numbers.map(tx, workspaceId, phoneNumberId, display, 'operator')
    return { row: out.row, created: out.created || before === 'workspace' }
  })
}
