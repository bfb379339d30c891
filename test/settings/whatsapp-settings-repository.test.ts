/** A workspace's own Meta app: nothing until written, replaced whole, other columns kept. */
import t from 'tap'
import { buildTestApp } from '../helpers/build-app.js'
import { readConsentSettings, writeConsentSettings } from '../../src/settings/consent-settings-repository.js'
import { readWorkspaceWhatsApp, writeWorkspaceWhatsApp } from '../../src/settings/whatsapp-settings-repository.js'

t.test('WhatsApp settings repository', async (t) => {
  const { app } = await buildTestApp(t)
  const { sql } = app.database
  const [w] = await sql.query<{ id: string }>(`INSERT INTO workspaces (name) VALUES ('ws') RETURNING id`)
  const ws = w!.id

  t.same(await readWorkspaceWhatsApp(sql, ws), { secrets: [], verifyToken: null }, 'nothing without a row')
  t.same(await readWorkspaceWhatsApp(sql, '00000000-0000-4000-8000-000000000000'), { secrets: [], verifyToken: null }, 'nor for an unknown workspace')
  await writeConsentSettings(sql, ws, { require_evidence_to_override_opt_out: false })
  await writeWorkspaceWhatsApp(sql, ws, { secrets: ['old', 'new'], verifyToken: 'v1' })
  t.same(await readWorkspaceWhatsApp(sql, ws), { secrets: ['old', 'new'], verifyToken: 'v1' })
  await writeWorkspaceWhatsApp(sql, ws, { secrets: ['new'], verifyToken: null })
  t.same(await readWorkspaceWhatsApp(sql, ws), { secrets: ['new'], verifyToken: null }, 'replaced whole')
  t.same(await readConsentSettings(sql, ws), { require_evidence_to_override_opt_out: false }, 'consent settings untouched')
})
