/**
 * `GET|PUT /settings/consent` (docs/architecture.md): the caller's workspace's consent settings.
 * GET needs consent:read, PUT admin. PUT replaces the whole document (every field required); a
 * workspace that never stored one reads the defaults (src/settings/consent-settings-repository.ts).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { ConsentSettingsSchema } from '../../schemas/settings.js'
import { registerSettingsDocument } from './settings-document.js'

const consentSettings: FastifyPluginAsyncTypebox = async (app) => {
  registerSettingsDocument(app, {
    path: '/settings/consent',
    schema: ConsentSettingsSchema,
    readSummary: "Read the workspace's consent settings",
    writeSummary: "Replace the workspace's consent settings",
    writeDescription: 'Accepts `Idempotency-Key`.',
    read: app.settings.consent.read,
    write: app.settings.consent.write,
  })
}

export default consentSettings
