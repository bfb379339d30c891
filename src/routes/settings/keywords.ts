/**
 * `GET|PUT /settings/keywords` (docs/webhook.md): the workspace's keyword rules. GET needs
 * consent:read and answers the defaults (STOP, STOPALL, STOP ALL, UNSUBSCRIBE, CANCEL, END, QUIT,
 * REVOKE, OPTOUT, OPT OUT → opt-out all; STOP PROMOTIONS → opt-out marketing; START, UNSTOP →
 * opt-in) until a PUT stores a document. PUT (admin) replaces the whole document: keywords are
 * stored normalised and upper-case; a keyword that normalises to nothing, a duplicate, or a scope
 * naming a group that is not a WhatsApp group of this workspace answers 422 with JSON pointers and
 * changes nothing.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { KeywordSettingsSchema } from '../../schemas/keywords.js'
import { registerSettingsDocument } from './settings-document.js'

const keywordSettings: FastifyPluginAsyncTypebox = async (app) => {
  registerSettingsDocument(app, {
    path: '/settings/keywords',
    schema: KeywordSettingsSchema,
    readSummary: "Read the workspace's keyword rules (defaults until set)",
    writeSummary: "Replace the workspace's keyword rules",
    writeDescription: 'Accepts `Idempotency-Key`. Keywords are stored normalised and upper-case.',
    read: app.settings.keywords.read,
    write: app.settings.keywords.write,
  })
}

export default keywordSettings
