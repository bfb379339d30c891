/**
 * `GET|PUT /settings/whatsapp`: the workspace's own Meta app, for a workspace whose WhatsApp
 * webhooks come from its own app rather than the operator's (docs/webhook.md "Tenancy"). PUT
 * (admin) replaces the app secrets (rotation: a list) and the verify token; GET (admin, because it
 * describes a credential) and PUT answer them masked, never in full. Payloads POSTed to
 * `webhook_path` and signed with one of these secrets reach only this workspace's own numbers.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses } from '../../schemas/common.js'
import { WhatsAppSettingsInput, WhatsAppSettingsSchema } from '../../schemas/settings.js'
import type { Sql } from '../../db/sql.js'
import { replyIdempotent } from '../idempotent-reply.js'

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

const mask = (secret: string) => `****${secret.slice(-4)}`

const view = (workspaceId: string, s: WorkspaceWhatsApp) => ({
  app_secrets: s.secrets.map(mask),
  verify_token_set: s.verifyToken !== null,
  webhook_path: `/webhooks/whatsapp/${workspaceId}`,
})

const whatsappSettings: FastifyPluginAsyncTypebox = async (app) => {
  const tags = ['settings']

  app.get(
    '/settings/whatsapp',
    {
      config: { scope: 'admin' },
      schema: { tags, summary: "Read the workspace's own WhatsApp app settings (secrets masked)", response: { 200: WhatsAppSettingsSchema, ...errorResponses() } },
    },
    async (request) => view(request.principal.workspaceId, await readWorkspaceWhatsApp(app.database.sql, request.principal.workspaceId)),
  )

  app.put(
    '/settings/whatsapp',
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        summary: "Replace the workspace's own WhatsApp app secrets and verify token",
        description: 'Accepts `Idempotency-Key`. The answer shows the secrets masked.',
        body: WhatsAppSettingsInput,
        response: { 200: WhatsAppSettingsSchema, ...errorResponses(409, 415, 422) },
      },
    },
    async (request, reply) =>
      replyIdempotent(app, request, reply, async (tx) => {
        const ws = request.principal.workspaceId
        const { app_secrets: secrets, verify_token: verifyToken } = request.body
        await tx.query(
          `INSERT INTO workspace_settings (workspace_id, whatsapp_app_secrets, whatsapp_verify_token, updated_at) VALUES ($1, $2::text[], $3, now())
           ON CONFLICT (workspace_id) DO UPDATE
              SET whatsapp_app_secrets = excluded.whatsapp_app_secrets, whatsapp_verify_token = excluded.whatsapp_verify_token, updated_at = now()`,
          [ws, secrets, verifyToken],
        )
        return { statusCode: 200, body: view(ws, { secrets, verifyToken }) }
      }),
  )
}

export default whatsappSettings
