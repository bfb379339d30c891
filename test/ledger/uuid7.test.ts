import t from 'tap'
import { uuidv7 } from '../../src/ledger/uuid7.js'

t.test('uuidv7: RFC 9562 layout, time prefix, unique', async (t) => {
  const at = Date.UTC(2026, 10, 30, 12, 0, 0, 123)
  const id = uuidv7(at)
  t.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
  t.equal(parseInt(id.replace(/-/g, '').slice(0, 12), 16), at, 'the first 48 bits are the milliseconds')
  const many = new Set(Array.from({ length: 20_000 }, () => uuidv7(at)))
  t.equal(many.size, 20_000, 'no repeats within one millisecond')
  t.ok(uuidv7(at + 1) > uuidv7(at), 'later ids sort after earlier ones')
})
