/** The identifiers some contact already holds, keyed by type and normalised value. */
import t from 'tap'
import { buildTestApp, newGroup, newWorkspace } from '../helpers/build-app.js'
import { existingIdentities, identityKey } from '../../src/braze/known-identities.js'

t.test('known identities', async (t) => {
  const ta = await buildTestApp(t)
  const { id: ws, auth } = await newWorkspace(ta)
  const { id: other } = await newWorkspace(ta, 'other')
  const group = await newGroup(ta, auth)
  const r = await ta.app.inject({
    method: 'POST',
    url: '/subscription/status/set',
    headers: auth,
    payload: { subscription_group_id: group, subscription_state: 'subscribed', external_id: 'u-1', phone: '+14155550100' },
  })
  t.equal(r.statusCode, 201, r.body)
  const { sql } = ta.app.database

  const known = await existingIdentities(sql, ws, [
    { type: 'external_id', value: 'u-1' },
    { type: 'phone', value: '+1 415 555 0100' },
    { type: 'external_id', value: 'u-2' },
  ])
  t.same([...known].sort(), [identityKey('external_id', 'u-1'), identityKey('phone', '+14155550100')].sort())
  t.same([...(await existingIdentities(sql, other, [{ type: 'external_id', value: 'u-1' }]))], [], 'another workspace knows nobody')
  t.same([...(await existingIdentities(sql, ws, [{ type: 'phone', value: 'not a phone' }]))], [], 'invalid identifiers are skipped')
})
