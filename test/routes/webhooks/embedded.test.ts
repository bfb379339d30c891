/**
 * The webhook on the embedded database (no DATABASE_URL: PGlite, in memory here), so `npm start`
 * on a fresh machine handles Meta's payloads too: every statement of the inbox, routing, restores
 * and the sweep runs unchanged on PGlite.
 */
import t from 'tap'
import { buildApp } from '../../../src/app.js'
import { loadConfig } from '../../../src/config/env.js'
import { ROOT_KEY } from '../../helpers/build-app.js'
import { WEBHOOK_ENV, deliver, mapNumber, textMessage, variant } from '../../webhook/helpers.js'

t.test('inbox, unmapped → mapped, deferred START, platform stop and the sweep on PGlite', async (t) => {
  const app = await buildApp(loadConfig({ DATA_DIR: 'memory://', CONSENT_ADMIN_KEY: ROOT_KEY, LOG_LEVEL: 'silent', ...WEBHOOK_ENV }))
  t.teardown(() => app.close())
  await app.ready()
  t.equal(app.database.kind, 'pglite')
  const root = { authorization: `Bearer ${ROOT_KEY}` }
  const group = (await app.inject({ method: 'POST', url: '/subscription-groups', headers: root, payload: { name: 'promos', channel: 'whatsapp', category: 'marketing' } })).json().id

  // Subscribed first: the deferred START below gives back what its STOP took away.
  const sub = await app.inject({
    method: 'POST',
    url: '/consent/events',
    headers: root,
    payload: { events: [{ phone: '+14155550100', subscription_group_id: group, state: 'subscribed', occurred_at: '2025-01-01T00:00:00Z', method: 'web_form', evidence: { consent_text: 'yes' } }] },
  })
  t.equal(sub.statusCode, 200, sub.body)
  t.equal((await deliver(app, textMessage('STOP', { id: 'e0', ts: 1750000000 }))).status, 'unmapped')
  await mapNumber(app, root)
  t.equal((await deliver(app, textMessage('START', { id: 'e2', ts: 1750000020, waId: '14155550100' }))).status, 'deferred')
  t.equal((await deliver(app, textMessage('STOP', { id: 'e1', ts: 1750000010, waId: '14155550100' }))).status, 'processed')
  await deliver(app, variant('meta-user-preferences-stop.json', { id: 'e3', ts: 1750000030 }))
  const check = async (phone: string) =>
    (await app.inject({ method: 'POST', url: '/consent/check', headers: root, payload: { subscription_group_id: group, phones: [phone] } })).json().results[0]
  t.match(await check('+16505551234'), { allowed: false, reason: 'platform_stopped' })
  t.match(await check('+14155550100'), { allowed: true, state: 'subscribed' }, 'the deferred START completed')
  const list = (await app.inject({ method: 'GET', url: '/webhooks/whatsapp/inbox?status=all', headers: root })).json().payloads
  t.same(list.map((p: { status: string }) => p.status), ['processed', 'processed', 'processed', 'processed'])
  t.equal(await app.whatsapp.processor.sweep(0, { log: app.log }), 0, 'nothing left for the sweep')
})
