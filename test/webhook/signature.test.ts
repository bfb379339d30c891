/** X-Hub-Signature-256: HMAC-SHA256 of the raw bytes, any configured secret. */
import t from 'tap'
import { createHmac } from 'node:crypto'
import { parseSecrets, safeEqual, sign, verifySignature } from '../../src/webhook/signature.js'
import { fixture } from './helpers.js'

t.test('signatures over the exact bytes, against every configured secret', async (t) => {
  const raw = Buffer.from(fixture('meta-text.json'))
  const secrets = parseSecrets(' old-secret , new-secret ,, ')
  t.same(secrets, ['old-secret', 'new-secret'])
  const expected = `sha256=${createHmac('sha256', 'new-secret').update(raw).digest('hex')}`
  t.equal(sign(raw, 'new-secret'), expected)
  t.ok(verifySignature(raw, expected, secrets), 'current secret')
  t.ok(verifySignature(raw, sign(raw, 'old-secret'), secrets), 'previous secret (rotation)')
  t.ok(verifySignature(raw, expected.toUpperCase().replace('SHA256=', 'sha256='), secrets), 'hex case does not matter')
  t.notOk(verifySignature(raw, sign(raw, 'other'), secrets), 'unknown secret')
  t.notOk(verifySignature(Buffer.from(JSON.stringify(JSON.parse(raw.toString()))), expected, secrets), 're-serialised body fails')
  t.notOk(verifySignature(Buffer.concat([raw, Buffer.from(' ')]), expected, secrets), 'one byte more fails')
  t.notOk(verifySignature(raw, undefined, secrets), 'missing')
  t.notOk(verifySignature(raw, '', secrets), 'empty')
  t.notOk(verifySignature(raw, expected.slice(7), secrets), 'without the sha256= prefix')
  t.notOk(verifySignature(raw, `sha1=${expected.slice(7)}`, secrets), 'another algorithm')
  t.notOk(verifySignature(raw, expected.slice(0, -2), secrets), 'too short')
  t.notOk(verifySignature(raw, `${expected}00`, secrets), 'too long')
  t.notOk(verifySignature(raw, expected.replace(/.$/, 'g'), secrets), 'not hex')
  t.notOk(verifySignature(raw, [expected, expected], secrets), 'repeated header')
  t.notOk(verifySignature(raw, expected, []), 'no secret configured: nothing verifies')
})

t.test('safeEqual', async (t) => {
  t.ok(safeEqual('token', 'token'))
  t.notOk(safeEqual('token', 'token2'))
  t.notOk(safeEqual('', 'x'))
})
