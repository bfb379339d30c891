/** What PostgreSQL can store exactly: no NUL, no unpaired surrogate, bounded depth. */
import t from 'tap'
import fc from 'fast-check'
import { findUnstorable, MAX_DEPTH, unstorable } from '../../src/input/storable.js'

t.test('unstorable names NUL and unpaired surrogates, and accepts all valid Unicode', async (t) => {
  t.equal(unstorable('a\u0000b'), 'nul_character')
  t.equal(unstorable('a\ud800'), 'lone_surrogate')
  t.equal(unstorable('\udc00a'), 'lone_surrogate')
  t.equal(unstorable('\ud83d\ude00\ude00'), 'lone_surrogate', 'a low surrogate after a complete pair')
  t.equal(unstorable('\ud83d\ud83d\ude00'), 'lone_surrogate', 'a high surrogate before a complete pair')
  t.equal(unstorable('ok 😀 é \u0001 \uffff'), undefined)
  fc.assert(fc.property(fc.string({ unit: 'grapheme' }), (s) => unstorable(s.replaceAll('\u0000', '')) === undefined))
  // Exactly the strings whose UTF-8 encoding round-trips (what node-postgres sends), minus NUL.
  fc.assert(
    fc.property(fc.string({ unit: 'binary' }), (s) => {
      const roundTrips = Buffer.from(s, 'utf8').toString('utf8') === s
      return (unstorable(s) === undefined) === (roundTrips && !s.includes('\u0000'))
    }),
  )
})

t.test('findUnstorable walks values and keys with JSON pointers', async (t) => {
  const found = findUnstorable({ a: ['ok', 'x\u0000'], 'k/~\ud800': 1, n: { m: '\udc00' } }, '/body')
  t.same(
    found.map((f) => [f.pointer, f.code]),
    [
      ['/body/a/1', 'nul_character'],
      ['/body/k~1~0\ufffd', 'lone_surrogate'],
      ['/body/n/m', 'lone_surrogate'],
    ],
  )
  t.same(findUnstorable({ a: [1, true, null, 'fine'] }), [])
  t.same(findUnstorable(Buffer.from('a\u0000b')), [], 'a Buffer is not walked')
})

t.test('depth is capped without recursing into hostile nesting', async (t) => {
  const nest = (n: number) => {
    let v: unknown = 'leaf'
    for (let i = 0; i < n; i++) v = i % 2 ? [v] : { x: v }
    return v
  }
  t.same(findUnstorable(nest(MAX_DEPTH)), [])
  t.same(findUnstorable(nest(MAX_DEPTH + 1)).map((f) => f.code), ['too_deep'])
  const deep = findUnstorable(nest(100_000))
  t.equal(deep.length, 1)
  t.equal(deep[0]!.code, 'too_deep')
})
