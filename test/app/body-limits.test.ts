/**
 * Bodies over the limit answer 413 (problem+json; Braze's shape on Braze routes) instead of a
 * connection reset, and the client's next request on the same keep-alive connection is answered
 * at once (the server reads and discards the rest of the body, or closes the connection with
 * `Connection: close` so the client opens a new one). Node's fetch (undici) over a real socket.
 */
import t from 'tap'
import type { AddressInfo } from 'node:net'
import { buildTestApp, newGroup } from '../helpers/build-app.js'

const MiB = 1024 * 1024

t.test('over-limit bodies: 413 on every kind of route, and the connection stays usable', async (t) => {
  const ta = await buildTestApp(t, { BODY_LIMIT: String(64 * 1024), IMPORT_MAX_BYTES: String(256 * 1024), WHATSAPP_APP_SECRETS: 'secret' })
  const G = await newGroup(ta, ta.root)
  await ta.app.listen({ port: 0, host: '127.0.0.1' })
  const base = `http://127.0.0.1:${(ta.app.server.address() as AddressInfo).port}`
  // Requests one after the other: fetch's global agent reuses its keep-alive connection.
  const send = async (path: string, init: RequestInit & { duplex?: 'half' }) => {
    const r = await fetch(`${base}${path}`, init)
    const text = await r.text()
    return { status: r.status, headers: r.headers, text }
  }
  const json = { ...ta.root, 'content-type': 'application/json' }
  const bigJson = JSON.stringify({ events: [{ phone: '+14155550100', subscription_group_id: G, state: 'subscribed', evidence: { pad: 'x'.repeat(2 * MiB) } }] })

  const native = await send('/subscription-groups', { method: 'POST', headers: json, body: JSON.stringify({ name: 'x'.repeat(2 * MiB), channel: 'whatsapp', category: 'marketing' }) })
  t.equal(native.status, 413, 'JSON route: 413')
  t.match(native.headers.get('content-type'), /problem\+json/)
  t.match(JSON.parse(native.text), { code: 'body_too_large' })

  const braze = await send('/users/track', { method: 'POST', headers: json, body: bigJson })
  t.equal(braze.status, 413, 'Braze route: 413')
  t.same(Object.keys(JSON.parse(braze.text)), ['message'], "Braze's shape")

  const webhook = await send('/webhooks/whatsapp', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-hub-signature-256': 'sha256=00' },
    body: JSON.stringify({ object: 'whatsapp_business_account', pad: 'x'.repeat(4 * MiB) }),
  })
  t.equal(webhook.status, 413, 'webhook over 3 MiB: 413')

  const csv = 'phone\n' + '+14155550100\n'.repeat(Math.ceil((2 * MiB) / 13))
  for (let i = 0; i < 4; i++) {
    const up = await send(`/imports?subscription_group_id=${G}&subscription_state=subscribed`, {
      method: 'POST',
      headers: { ...ta.root, 'content-type': 'text/csv' },
      body: csv,
    })
    t.equal(up.status, 413, `upload ${i + 1} over the limit (Content-Length): 413`)
    t.match(JSON.parse(up.text), { code: 'body_too_large' })
  }
  // Streamed without Content-Length (chunked): the limit is found while reading.
  for (let i = 0; i < 3; i++) {
    const chunks = Buffer.from(csv)
    const body = new ReadableStream({
      start(c) {
        for (let o = 0; o < chunks.length; o += 64 * 1024) c.enqueue(chunks.subarray(o, o + 64 * 1024))
        c.close()
      },
    })
    const up = await send(`/imports?subscription_group_id=${G}&subscription_state=subscribed`, {
      method: 'POST',
      headers: { ...ta.root, 'content-type': 'text/csv' },
      body,
      duplex: 'half',
    })
    t.equal(up.status, 413, `chunked upload ${i + 1} over the limit: 413`)
  }
  const next = await send('/consent/check', { method: 'POST', headers: json, body: JSON.stringify({ subscription_group_id: G, phones: ['+14155550100'] }) })
  t.equal(next.status, 200, 'the next request is answered')
  const small = await send(`/imports?subscription_group_id=${G}&subscription_state=subscribed`, {
    method: 'POST',
    headers: { ...ta.root, 'content-type': 'text/csv' },
    body: 'phone\n+14155550101\n',
  })
  t.equal(small.status, 202, 'an upload within the limit is stored')
})
