/**
 * Unknown paths and wrong methods under Braze's routes answer Braze's `{"message": ...}` shape
 * (docs/braze.md): Braze clients read `message` to report an error. Native paths keep problem+json.
 */
import t from 'tap'
import { buildTestApp } from '../../helpers/build-app.js'

t.test('unknown Braze paths answer 404 {"message"}', async (t) => {
  const ta = await buildTestApp(t)
  for (const url of ['/users/delete', '/users/identify', '/users/merge', '/users/external_ids/rename', '/users/alias/new', '/subscription/status/nope', '/v2/users/track']) {
    const r = await ta.app.inject({ method: 'POST', url, headers: ta.root, payload: { external_ids: ['a'] } })
    t.equal(r.statusCode, 404, url)
    t.match(r.headers['content-type'], /^application\/json/, url)
    const body = r.json()
    t.type(body.message, 'string', `${url}: message`)
    t.match(body.message, /not found/i)
    t.notOk('title' in body || 'type' in body, `${url}: not problem+json`)
    t.ok(r.headers['x-request-id'])
  }
  const badJson = await ta.app.inject({
    method: 'POST',
    url: '/users/delete',
    headers: { ...ta.root, 'content-type': 'application/json' },
    payload: '{"external_ids": [',
  })
  t.type(badJson.json().message, 'string', 'a malformed body to an unknown Braze path is Braze-shaped too')
})

t.test('wrong methods on existing Braze paths answer 405 {"message"} with Allow', async (t) => {
  const ta = await buildTestApp(t)
  for (const [method, url, allow] of [
    ['GET', '/users/track', 'POST'],
    ['DELETE', '/users/track', 'POST'],
    ['GET', '/subscription/status/set', 'POST'],
    ['PUT', '/v2/subscription/status/set', 'POST'],
    ['POST', '/subscription/status/get', 'GET'],
    ['POST', '/subscription/user/status', 'GET'],
  ] as const) {
    const r = await ta.app.inject({ method, url, headers: ta.root })
    t.equal(r.statusCode, 405, `${method} ${url}`)
    t.type(r.json().message, 'string', `${method} ${url}`)
    t.notOk('title' in r.json(), `${method} ${url}: not problem+json`)
    t.match(r.headers.allow, allow, `${method} ${url}: Allow`)
  }
})

t.test('native unknown paths keep problem+json', async (t) => {
  const ta = await buildTestApp(t)
  const r = await ta.app.inject({ method: 'GET', url: '/no-such-thing', headers: ta.root })
  t.equal(r.statusCode, 404)
  t.match(r.headers['content-type'], /^application\/problem\+json/)
  t.equal(r.json().code, 'not_found')
  const groups = await ta.app.inject({ method: 'GET', url: '/subscription-groups/x/y', headers: ta.root })
  t.match(groups.headers['content-type'], /^application\/problem\+json/, '/subscription-groups is native, not Braze')
})
