/** Consent settings: defaults without a row, upsert that keeps the row's other columns. */
import t from 'tap'
import { buildTestApp } from '../helpers/build-app.js'
import { readConsentSettings, writeConsentSettings } from '../../src/settings/consent-settings-repository.js'
import { readWorkspaceWhatsApp, writeWorkspaceWhatsApp } from '../../src/settings/whatsapp-settings-repository.js'

t.test('consent settings repository', async (t) => {
  const { app } = await buildTestApp(t)
  const { sql } = app.database
  const [w] = await sql.query<{ id: string }>(`INSERT INTO workspaces (name) VALUES ('no settings row') RETURNING id`)
  const ws = w!.id

  t.same(await readConsentSettings(sql, ws), { require_evidence_to_override_opt_out: true }, 'defaults without a row')
  await writeWorkspaceWhatsApp(sql, ws, { secrets: ['s1'], verifyToken: 'tok' })
  t.same(await writeConsentSettings(sql, ws, { require_evidence_to_override_opt_out: false }), { require_evidence_to_override_opt_out: false })
  t.same(await readConsentSettings(sql, ws), { require_evidence_to_override_opt_out: false })
  t.same(await readWorkspaceWhatsApp(sql, ws), { secrets: ['s1'], verifyToken: 'tok' }, 'the WhatsApp columns are untouched')
})
