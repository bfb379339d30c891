/**
 * `GET|PUT /settings/consent` (DESIGN §3.3): the caller's workspace's consent settings. GET needs
 * consent:read, PUT admin. PUT replaces the whole document (every field required) and upserts the
 * workspace_settings row without touching its other columns (keywords). A workspace without a row
 * reads the defaults, which are what the ledger applies when the row is missing.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses } from '../../schemas/common.js'
import { ConsentSettingsSchema, type ConsentSettings } from '../../schemas/settings.js'
import type { Sql } from '../../db/sql.js'
import { replyIdempotent } from '../idempotent-reply.js'

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

const consentSettings: FastifyPluginAsyncTypebox = async (app) => {
  const tags = ['settings']

  app.get(
    '/settings/consent',
    {
      config: { scope: 'consent:read' },
      schema: { tags, summary: "Read the workspace's consent settings", response: { 200: ConsentSettingsSchema, ...errorResponses() } },
    },
    async (request) => readConsentSettings(app.database.sql, request.principal.workspaceId),
  )

  app.put(
    '/settings/consent',
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        summary: "Replace the workspace's consent settings",
        description: 'Accepts `Idempotency-Key`.',
        body: ConsentSettingsSchema,
        response: { 200: ConsentSettingsSchema, ...errorResponses(409, 415, 422) },
      },
    },
    async (request, reply) =>
      replyIdempotent(app, request, reply, async (tx) => ({
        statusCode: 200,
        body: await writeConsentSettings(tx, request.principal.workspaceId, request.body),
      })),
  )
}

export default consentSettings
