import t from 'tap'
import { withFirst } from '../../src/plugins/route-hooks.js'

t.test('withFirst puts a hook in front of none, one or several', async (t) => {
  const a = () => 'a'
  const b = () => 'b'
  const c = () => 'c'
  t.same(withFirst(a, undefined), [a])
  t.same(withFirst(a, b), [a, b])
  t.same(withFirst(a, [b, c]), [a, b, c])
})
